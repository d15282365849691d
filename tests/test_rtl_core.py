"""RTL core (rtl/core.py) in Amaranth's simulator: against the golden model and the cycle model.

Every run loads the network through the configuration port and compares, step by step, u and
v of every compartment (read back through the configuration port), the output events with
their cycles and the step length (spec/cycle_model.py).  The robustness rules of docs/rtl.md
each have a test: host spike on an axon with an empty list, output backpressure,
configuration access out of range, host spike out of range, accumulator overflow.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Shape

from neurocore.golden.arith import wrap_accumulator
from neurocore.golden.core import GoldenCore
from neurocore.spec.cycle_model import schedule
from neurocore.golden.network import CONFIG_MEMORIES, NetworkBuilder
from neurocore.golden.random_networks import random_network
from neurocore.rtl.core import Neurocore
from neurocore.sim.check import counter_mismatch, step_mismatch
from neurocore.sim.pysim import run_rtl, simulate
from neurocore.spec.cycle_model import counter_totals
from neurocore.spec.geometry import PRESETS, ConfigError, CoreGeometry
from neurocore.spec.schedule import (COUNTERS, MEMORY_INDEX, REGISTERS, drain_cycles,
                                     register_index, synapse_stages)
from neurocore.spec.words import memories

TINY = CoreGeometry.preset("tiny")
CFG_RANGE, INPUT_RANGE, LIST_RANGE = 1, 2, 4      # bits of ctrl.error (rtl.core.ErrorFlags)
#: (k_u, k_s) lane configurations run in Amaranth's simulator (every one of {1,2,4}² runs
#: under Verilator, tests/test_rtl_cocotb.py).
LANES = [(1, 1), (2, 4), (4, 2)]


def run_and_check(config, inputs, seed=None, **kw):
    """Run on the RTL; fail at the first mismatch against golden + cycle model (state, events,
    step lengths and the hardware counters)."""
    inputs = np.asarray(inputs)
    gold = GoldenCore(config).run(inputs, record=("u", "v"))
    sched = schedule(config, inputs, gold, out_ready=kw.get("out_ready"))
    if "dut" not in kw:
        kw["dut"] = Neurocore(config.geometry)
    rtl = run_rtl(config, inputs, **kw)
    for t in range(inputs.shape[0]):
        msg = step_mismatch(t, gold.u[t], gold.v[t], sched[t], rtl.steps[t], rtl.u[t],
                            rtl.v[t], seed=seed, geometry=config.geometry)
        assert msg is None, msg
    msg = counter_mismatch(counter_totals(sched), rtl.counters, what="after the run", seed=seed)
    assert msg is None, msg
    # The schedule's events are the golden model's output events.
    counts = np.zeros_like(gold.outputs)
    for t, s in enumerate(sched):
        for oid, _ in s.events:
            counts[t, oid] += 1
    assert (counts == gold.outputs).all()
    return gold, sched, rtl


def inputs_for(steps, g, spikes: dict[int, list[int]]):
    x = np.zeros((steps, g.n_axons), dtype=bool)
    for t, axons in spikes.items():
        x[t, axons] = True
    return x


@pytest.mark.parametrize("lanes", LANES, ids=lambda kk: f"ku{kk[0]}-ks{kk[1]}")
@pytest.mark.parametrize("k", range(2))
def test_random_networks(seed, k, lanes):
    g = TINY.replace(k_u=lanes[0], k_s=lanes[1])
    net = random_network(seed + k, g, steps=10)
    gold, sched, rtl = run_and_check(net.config, net.inputs[0], seed=seed + k)
    assert rtl.loaded_words > 0


def test_random_network_without_idle_skip(seed):
    """idle_skip=0: every compartment below n_active is updated every step (no skipped ones)."""
    g = TINY.replace(k_u=2, idle_skip=0)
    net = random_network(seed + 7, g, steps=8)
    _, sched, rtl = run_and_check(net.config, net.inputs[0], seed=seed + 7)
    assert rtl.counters["skipped"] == 0
    assert rtl.counters["updates"] == 8 * net.config.n_active()


def test_random_network_overlapped_inputs(seed):
    """Host spikes of step t+1 pushed while step t runs belong to step t+1."""
    for k in range(40):  # a network with host spikes in most steps
        net = random_network(seed + 100 + k, "tiny", steps=8)
        if net.inputs[0].sum(axis=1).min() > 0:
            break
    run_and_check(net.config, net.inputs[0], seed=seed + 100 + k, overlap=True)


def hand_network():
    """Two inputs, a recurrent chain with delay D-1, and outputs."""
    g = TINY
    b = NetworkBuilder(g)
    p = b.add_profile(du=0, du_offset=0, dv=0, vth=10)
    cx = b.add_compartments(4, profile=p)
    b.connect(0, [cx[0], cx[1]], [200, 100], weight_exp=3, delay=0)
    b.connect(1, [cx[1]], [-50], weight_exp=0, delay=2)
    b.connect(10, [cx[2], cx[3]], [255, 7], weight_exp=4, delay=g.n_delay_slots - 1)
    b.route_to_axon(cx[0], 10)
    b.route_to_output(cx[0], 5)
    b.route_to_output(cx[2], [6, 7])
    b.route_to_axon(cx[2], 10)
    return b.build()


def test_hand_network():
    cfg = hand_network()
    x = inputs_for(20, TINY, {0: [0], 1: [0, 1], 3: [1], 9: [0]})
    gold, sched, rtl = run_and_check(cfg, x)
    assert gold.outputs.sum() > 0


def test_empty_axon_list_has_no_effect():
    """A host spike on an axon with an empty synapse list changes nothing and costs at most
    two cycles (its host-queue slot, and its map lookup when nothing else hides it)."""
    cfg = hand_network()
    assert cfg.mem["synapse_map"]["length"][7] == 0
    x = inputs_for(6, TINY, {0: [0], 2: [0, 1]})
    x_empty = x.copy()
    x_empty[:, 7] = True
    _, sched, rtl = run_and_check(cfg, x)
    _, sched_e, rtl_e = run_and_check(cfg, x_empty)
    assert (rtl.u == rtl_e.u).all() and (rtl.v == rtl_e.v).all()
    assert (rtl.outputs == rtl_e.outputs).all()
    extra = [b.cycles - a.cycles for a, b in zip(rtl.steps, rtl_e.steps)]
    assert set(extra) <= {0, 1, 2} and max(extra) > 0


def test_output_backpressure_stalls_without_loss(seed):
    """With out.ready low at random, every event still leaves, in order, the state is
    unchanged, and the step lengths and counters follow the cycle model fed the same
    out.ready pattern (stalls can hide behind a walk, so they add at most their count)."""
    rng = np.random.default_rng(seed)
    cfg = hand_network()
    x = inputs_for(12, TINY, {0: [0], 1: [0], 2: [0], 4: [0, 1], 6: [0], 8: [0]})
    _, sched, ref = run_and_check(cfg, x)
    pattern = rng.random((12, 10_000)) < 0.5
    _, _, bp = run_and_check(cfg, x, out_ready=lambda t, c: pattern[t, c])
    assert sum(s.stalls for s in bp.steps) > 0
    assert (bp.u == ref.u).all() and (bp.v == ref.v).all()
    for a, b, p in zip(ref.steps, bp.steps, sched):
        assert [e[0] for e in a.events] == [e[0] for e in b.events] == [e[0] for e in p.events]
        assert a.cycles <= b.cycles <= a.cycles + b.stalls
        assert all(cb >= ca for (_, ca), (_, cb) in zip(a.events, b.events))


def test_accumulator_overflow_wraps():
    """Five 255<<7 contributions into one entry (back to back: forwarding) wrap at 18 bits."""
    g = TINY
    b = NetworkBuilder(g)
    p = b.add_profile(du=0, du_offset=0, dv=0, vth=(1 << g.vth_bits) - 1)
    b.add_compartments(2, profile=p)
    b.connect(0, [0, 0, 0, 0, 0, 1, 0], [255, 255, 255, 255, 255, 3, -1], weight_exp=7, delay=1)
    cfg = b.build()
    total = 5 * (255 << 7) - (1 << 7)          # into compartment 0
    assert total > (1 << (g.acc_bits - 1))
    dut = Neurocore(g)
    words = cfg.to_words()

    async def tb(drv):
        await drv.load(words)
        await drv.send_spikes([0])
        await drv.run_step()
        slot = (0 + 1 + 1) % g.n_delay_slots
        return await drv.read_many("accumulators", [slot * g.n_compartments + c for c in (0, 1)])

    acc = simulate(dut, tb)
    layout = memories(g)["accumulators"].layout
    got = [int(a) - (1 << layout.size) if a >> (layout.size - 1) else int(a) for a in acc]
    assert got == [int(wrap_accumulator(np.int64(total), g)), 3 << 7]
    assert got[0] == total - (1 << g.acc_bits)
    # and the whole run agrees with the golden model (u wraps too)
    run_and_check(cfg, inputs_for(5, g, {0: [0], 1: [0]}))


@pytest.mark.parametrize("k_s", [1, 4])
def test_full_fanout_axon_k_s_synapses_per_cycle(k_s):
    """One host spike on an axon with max_fanout synapses: k_s synapses per cycle."""
    g = TINY.replace(k_s=k_s)
    b = NetworkBuilder(g)
    p = b.add_profile(du=0, du_offset=0, dv=0, vth=(1 << g.vth_bits) - 1)
    b.add_compartments(g.n_compartments, profile=p)
    k = np.arange(g.max_fanout)
    b.connect(0, k % g.n_compartments, (k % 200) - 100, weight_exp=k % 8,
              delay=k % g.n_delay_slots)
    cfg = b.build()
    gold, sched, rtl = run_and_check(cfg, inputs_for(g.n_delay_slots + 1, g, {0: [0]}))
    assert sched[0].sops == g.max_fanout
    assert rtl.counters["sops"] == sum(s.sops for s in sched)
    # start + UPDATE + DRAIN, HOST (pop, then empty), the walker's input FIFO, the walk, the
    # synapse stages (S0 … S2), idle check, DONE
    walk = g.max_fanout // k_s
    assert rtl.steps[0].cycles == (1 + g.n_compartments + drain_cycles(g) + 2 + 1 + walk
                                   + synapse_stages(g) + 2)


def test_forwarding_back_to_back_and_gaps():
    g = TINY
    b = NetworkBuilder(g)
    p = b.add_profile(du=0, du_offset=0, dv=0, vth=1000)
    b.add_compartments(5, profile=p)
    b.connect(0, [3, 3, 3, 4, 3, 4, 4], [1, 2, 4, 8, 16, 32, 64], delay=0)
    cfg = b.build()
    run_and_check(cfg, inputs_for(4, g, {0: [0], 1: [0]}))


@pytest.mark.parametrize("lanes", [(1, 1), (2, 4), (4, 2)], ids=lambda kk: f"ku{kk[0]}-ks{kk[1]}")
def test_config_readback_every_memory(seed, lanes):
    """Every memory reads back what was written, whatever the banking."""
    rng = np.random.default_rng(seed)
    g = TINY.replace(k_u=lanes[0], k_s=lanes[1])
    mems = memories(g)
    plan = []
    for name in mems:
        width = mems[name].layout.size
        addrs = sorted(set(rng.integers(0, mems[name].depth, size=8).tolist())
                       | {0, mems[name].depth - 1})
        words = rng.integers(0, 1 << min(width, 62), size=len(addrs)).tolist()
        plan.append((name, addrs, words, width))

    async def tb(drv):
        for name, addrs, words, width in plan:
            for a, w in zip(addrs, words):
                # bits above the word's width are ignored
                await drv.write(name, a, w | (1 << 63))
        out = []
        for name, addrs, words, width in plan:
            out.append(await drv.read_many(name, addrs))
        return out, drv.bus.get("ctrl.error")

    got, err = simulate(Neurocore(g), tb)
    for (name, addrs, words, width), g_words in zip(plan, got):
        assert g_words == [w & ((1 << width) - 1) for w in words], name
    assert err == 0


def test_config_out_of_range_ignored_and_sticky():
    g = TINY
    mems = memories(g)

    async def tb(drv):
        b = drv.bus
        await drv.write("profiles", 1, 0x123)
        assert b.get("ctrl.error") == 0
        await drv.write("profiles", g.n_profiles + 1, 0x3FF)      # out of range: ignored
        await drv.tick()
        e1 = b.get("ctrl.error")
        await drv.write("routes", 3, 0x55)                         # in range: flag stays
        e2 = b.get("ctrl.error")
        profiles = await drv.read_many("profiles", range(g.n_profiles))
        oob_read = await drv.read("state", g.n_compartments)       # out of range read: 0
        await drv.tick()
        e3 = b.get("ctrl.error")
        b.set("ctrl.error_clear", 1)
        await drv.tick()
        b.set("ctrl.error_clear", 0)
        await drv.tick()
        e4 = b.get("ctrl.error")
        accs = await drv.read("accumulators", mems["accumulators"].depth - 1)
        return e1, e2, profiles, oob_read, e3, e4, accs

    e1, e2, profiles, oob_read, e3, e4, accs = simulate(Neurocore(g), tb)
    assert e1 == CFG_RANGE and e2 == CFG_RANGE and e3 == CFG_RANGE
    assert profiles == [0, 0x123, 0, 0]
    assert oob_read == 0
    assert e4 == 0 and accs == 0


def test_input_axon_out_of_range_dropped():
    """n_axons = 100 leaves ids 100..127 representable: they are dropped and flagged."""
    g = TINY.replace(name="tiny100", n_axons=100)
    b = NetworkBuilder(g)
    p = b.add_profile(du=0, du_offset=0, dv=0, vth=5)
    b.add_compartments(2, profile=p)
    b.connect(99, [0, 1], [10, 20])
    cfg = b.build()
    words = cfg.to_words()

    async def tb(drv):
        await drv.load(words)
        await drv.send_spikes([120, 99, 127])
        r = await drv.run_step()
        err = drv.bus.get("ctrl.error")
        await drv.run_step()
        u, v = await drv.read_state()
        return r, err, u

    r, err, u = simulate(Neurocore(g), tb)
    assert err == INPUT_RANGE
    gold = GoldenCore(cfg).run(inputs_for(2, g, {0: [99]}), record=("u",))
    assert (u == gold.u[1]).all()
    assert r.cycles == schedule(cfg, inputs_for(1, g, {0: [99]}))[0].cycles


def test_clear_resets_state_and_step():
    cfg = hand_network()
    x = inputs_for(5, TINY, {0: [0], 1: [0, 1], 2: [0]})
    gold = GoldenCore(cfg).run(x, record=("u", "v"))
    words = cfg.to_words()

    async def tb(drv):
        await drv.load(words)
        for _ in range(2):               # run, clear, run again: the same results
            results = []
            for t in range(x.shape[0]):
                await drv.send_spikes(np.flatnonzero(x[t]))
                await drv.run_step()
                results.append(await drv.read_state())
            step = drv.bus.get("ctrl.step")
            await drv.clear()
            u, v = await drv.read_state()
            accs = await drv.read_many("accumulators", range(memories(TINY)["accumulators"].depth))
            res = (results, step, drv.bus.get("ctrl.step"), u, v, accs)
        return res

    results, step, step_after, u, v, accs = simulate(Neurocore(TINY), tb)
    assert step == 5 and step_after == 0
    assert not u.any() and not v.any() and not any(accs)
    for t, (ut, vt) in enumerate(results):
        assert (ut == gold.u[t]).all() and (vt == gold.v[t]).all()


def test_verilog_for_small_preset_geometries():
    """Verilog for the presets that convert in seconds (bench's memories take minutes)."""
    for name in ("tiny", "small"):
        text = verilog.convert(Neurocore(CoreGeometry.preset(name)), name="neurocore",
                               emit_src=False)
        assert "module neurocore" in text


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_elaborates_with_its_own_memory_sizes(name):
    """Each preset's core holds every memory, banked by its lanes, at the geometry's depth
    and word width (the components' memories, without converting to Verilog)."""
    g = CoreGeometry.preset(name)
    core = Neurocore(g).elaborate(None)
    mems = memories(g)

    def sizes(component, *names):
        sub = core.submodules[component].elaborate(None).submodules
        return [(sub[n].depth, Shape.cast(sub[n].shape).width) for n in names]

    def want(name, depth):
        return (depth, mems[name].layout.size)

    assert sizes("walker", "synapse_map") == [want("synapse_map", g.n_axons)]
    assert sizes("walker", *(f"synapses{b}" for b in range(g.k_s))) == \
        [want("synapses", g.synapse_bank_depth)] * g.k_s
    assert sizes("route_reader", "routes") == [want("routes", g.n_routes)]
    for i in range(g.k_u):
        assert sizes(f"update{i}", "compartments", "state", "axon_map", "profiles") == [
            want("compartments", g.bank_depth), want("state", g.bank_depth),
            want("axon_map", g.bank_depth), want("profiles", g.n_profiles)], (name, i)
    for j in range(g.k_s):
        assert sizes(f"dendrite{j}", *(f"bank{i}" for i in range(g.k_u))) == \
            [want("accumulators", g.bank_depth * g.n_delay_slots)] * g.k_u, (name, j)


def test_constructor_errors():
    with pytest.raises(TypeError, match="geometry must be a CoreGeometry, not 'tiny'"):
        Neurocore("tiny")
    with pytest.raises(ValueError, match="step_bits must be a positive integer, not 0"):
        Neurocore(TINY, step_bits=0)
    with pytest.raises(ValueError, match="input_depth must be a positive integer, not -1"):
        Neurocore(TINY, input_depth=-1)


def test_memory_index_covers_every_memory():
    assert set(MEMORY_INDEX) == set(memories(TINY)) | {"registers"}
    assert set(CONFIG_MEMORIES) < set(MEMORY_INDEX)


def test_registers_read_back_and_counters_count():
    """n_active reads back what was written, a write clears a counter whatever the word; a
    step then adds to the counters."""
    cfg = hand_network()
    words = cfg.to_words()

    async def tb(drv):
        await drv.load(words)
        for i, name in enumerate(REGISTERS):
            await drv.write("registers", i, 1000 + i if name != "n_active" else 7)
        before = await drv.read_many("registers", range(len(REGISTERS)))
        await drv.run_step()
        after = await drv.read_counters()
        return before, after

    before, after = simulate(Neurocore(TINY), tb)
    assert before == [7] + [0] * len(COUNTERS)
    assert after["steps"] == 1
    assert after["updates"] == 7                                        # n_active = 7
    assert after["cycles"] > 7


def test_compartments_beyond_n_active_are_never_updated():
    """n_active bounds the UPDATE sweep: a compartment above it keeps its state."""
    cfg = hand_network()
    words = cfg.to_words()
    g = TINY

    async def tb(drv):
        await drv.load(words)
        await drv.write("state", 9, 12345)            # v = 0, u pattern = 12345
        await drv.run_step()
        u, v = await drv.read_state()
        return u[9], (await drv.read_counters())["updates"]

    u9, updates = simulate(Neurocore(g), tb)
    assert cfg.n_active() < 9
    assert u9 == 12345 and updates == cfg.n_active()


@pytest.mark.parametrize("changes, match", [
    ({"k_u": 3}, "k_u=3 is not one of"), ({"k_s": 16}, "k_s=16 is not one of"),
    ({"n_compartments": 12, "k_u": 8}, "k_u=8 does not divide n_compartments=12"),
    ({"n_synapses": 2044, "k_s": 8}, "k_s=8 does not divide n_synapses=2044"),
    ({"idle_skip": 2}, "idle_skip=2 must be 0")])
def test_lane_geometry_errors(changes, match):
    with pytest.raises(ConfigError, match=match):
        TINY.replace(**changes)


def test_periodic_reset_logic_only_with_reset_bits():
    """A core without reset fields has no reset logic (its Verilog is that of the core before
    the periodic reset); one with them has the phases (tests/test_rtl_reset.py runs it)."""
    from amaranth.hdl import Fragment

    from neurocore.rtl.update_lane import UpdateLane
    for g, has in ((TINY, False), (TINY.replace(reset_bits=4), True)):
        lane = UpdateLane(g, 0)
        assert ("due" in lane.signature.members) == has
        Fragment.get(lane, None)          # elaborates (the reset select only with reset_bits)


def test_narrow_counters_wrap_at_their_width():
    """counter_bits=4: every counter reads its 32-bit value modulo 16 (n_active stays whole);
    an invalid width is refused naming the value."""
    cfg = hand_network()
    words = cfg.to_words()

    async def tb(drv):
        await drv.load(words)
        for i, name in enumerate(REGISTERS):
            await drv.write("registers", i, 0 if name != "n_active" else 37)
        await drv.run_step()
        await drv.run_step()
        return await drv.read_many("registers", range(len(REGISTERS)))

    wide = simulate(Neurocore(TINY), tb)
    narrow = simulate(Neurocore(TINY, counter_bits=4), tb)
    assert narrow[0] == wide[0] == 37
    assert narrow[1:] == [v % 16 for v in wide[1:]] and wide[2] >= 16    # cycles wrapped
    with pytest.raises(ValueError, match="counter_bits must be an integer in 1..32, not 40"):
        Neurocore(TINY, counter_bits=40)
