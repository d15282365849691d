"""The RTL chip (rtl/chip.py, rtl/router.py) equals the golden chip model (spec §10).

Random networks partitioned onto 2–4 tiny cores run on :class:`Chip` in Amaranth's simulator:
output events of every step (count and order) and ``u``/``v`` of every compartment after
every step equal the logical :class:`GoldenCore` (== :class:`GoldenChip`), and the chip's flit
counter equals the flits the partition implies.  Router mutants (a flit dropped or
misrouted) are caught; the router alone delivers random traffic under random backpressure.
Seeds come from ``NEUROCORE_SEED`` (tests/conftest.py) and are printed in every failure.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from test_chip import chip_for, random_partition

from neurocore.golden.chip import GoldenChip, Partition, build_chip
from neurocore.golden.core import GoldenCore
from neurocore.golden.network import NetworkBuilder
from neurocore.golden.random_networks import random_conv_network, random_network
from neurocore.rtl.chip import Chip, chip_config_addr
from neurocore.rtl.core import Neurocore
from neurocore.rtl.router import Router, RouterFault
from neurocore.sim.chipfast import expected_events
from neurocore.sim.chipsim import run_chip_rtl
from neurocore.spec.geometry import CHIP_PRESETS, ChipGeometry, CoreGeometry
from neurocore.spec.words import RouteKind

#: Steps per run; cases tried when looking for one with at least MIN_FLITS flits (and, for
#: the backpressure test, MIN_EVENTS output events).
STEPS, SEARCH, MIN_FLITS, MIN_EVENTS = 6, 200, 8, 8


def chip_case(seed: int, *, outputs: int = 0, lanes: tuple[int, int] = (1, 1),
              conv: bool = False):
    """The first network from ``seed`` on whose random partition (2–4 cores) ``MIN_FLITS`` or
    more flits cross cores (and at least ``outputs`` output events leave; with ``conv``, a conv
    network that keeps a conv descriptor on some core), on cores with ``lanes = (k_u, k_s)``:
    (chip config, raster, golden run, expected flits, the seed used)."""
    for s in range(seed, seed + SEARCH):
        net = (random_conv_network(s, "tiny", steps=STEPS) if conv
               else random_network(s, "tiny", steps=STEPS, max_compartments=24))
        rng = np.random.default_rng(s)
        n_cores = int(rng.integers(2, 5))
        geo = chip_for(net.config, n_cores)
        core = geo.core.replace(k_u=lanes[0], k_s=lanes[1])
        geo = ChipGeometry(name=geo.name, core=core, n_cores=n_cores, mesh=geo.mesh)
        chip = build_chip(net.config, Partition(geo, random_partition(rng, net.config, n_cores)))
        x = net.inputs[0]
        ref = GoldenCore(net.config).run(x, record=("u", "v"))
        flits = int((ref.spikes.sum(axis=0) * chip.remote_routes()).sum())
        descriptors = sum(int(c.mem["synapse_map"]["conv"].any()) for c in chip.cores)
        if flits >= MIN_FLITS and ref.outputs.sum() >= outputs and (not conv or descriptors):
            return chip, x, ref, flits, s
    raise AssertionError(f"no network with flits in seeds {seed}..{seed + SEARCH - 1}")


def mismatch(run, ref) -> str | None:
    """The first difference between an RTL chip run and the golden run, or None."""
    for name in ("outputs", "u", "v"):
        a, b = getattr(run, name), getattr(ref, name)
        bad = np.argwhere(a != b)
        if bad.size:
            return f"{name} differs first at {bad[0].tolist()} ({a[tuple(bad[0])]} vs " \
                   f"{b[tuple(bad[0])]})"
    return None


def check_run(chip, ref, run, flits, where):
    problem = mismatch(run, ref)
    assert problem is None, f"{where}: {problem}"
    for t, step in enumerate(run.steps):
        assert [oid for oid, _ in step.events] == expected_events(chip, ref.spikes[t]), \
            f"{where}: output events of step {t} out of order"
    assert run.flits == flits, f"{where}: {run.flits} flits counted, {flits} expected"
    assert run.cycles == sum(s.cycles for s in run.steps), where


def test_random_partitions_equal_golden(seed):
    """A random dense and a random conv network on random partitions of 2–4 cores:
    0 mismatches, flits counted."""
    for conv in (False, True):
        chip, x, ref, flits, s = chip_case(seed, conv=conv)
        where = f"{'conv' if conv else 'dense'} network seed {s} on {chip.chip.n_cores} " \
                f"cores (NEUROCORE_SEED={seed})"
        assert_golden_chip(chip, x, ref, where)
        check_run(chip, ref, run_chip_rtl(chip, x), flits, where)


def assert_golden_chip(chip, x, ref, where):
    gold = GoldenChip(chip).run(x, record=("u", "v"))
    assert mismatch(gold, ref) is None, f"{where}: golden chip != golden core"


def test_output_backpressure_lanes_and_overlap(seed):
    """Random ``out.ready``, cores with 2 update and 2 synapse lanes, host spikes of step
    ``t + 1`` sent while step ``t`` runs, every flit FIFO 1 deep (so flits wait for the
    router): the same results and the same event order."""
    chip, x, ref, flits, s = chip_case(seed + 1000, outputs=MIN_EVENTS, lanes=(2, 2))
    rng = np.random.default_rng(s)
    pattern = rng.random(1 << 14) < 0.5
    run = run_chip_rtl(chip, x, out_ready=lambda t, c: pattern[(t * 997 + c) % pattern.size],
                       overlap=True, flit_depth=1, router_depth=1)
    where = f"network seed {s} on {chip.chip.n_cores} cores, lanes (2, 2), overlapped host " \
            f"spikes (NEUROCORE_SEED={seed})"
    check_run(chip, ref, run, flits, where)
    assert sum(st.stalls for st in run.steps) > 0, f"{where}: no stall was exercised"
    assert run.flit_waits > 0, f"{where}: no flit waited for the router"


def test_last_flit_of_a_step_is_waited_for():
    """A step whose last DELIVER work is a flit in the router: every core is idle while the
    flit sits in the router's FIFO, and the barrier still waits for it (a barrier without
    the router's ``empty`` would end the step and deliver the flit a step late)."""
    g = CoreGeometry.preset("tiny")
    b = NetworkBuilder(g)
    fire = b.add_profile(vth=1)
    src = b.add_compartments(1, profile=fire, bias_mant=100, bias_exp=4)   # spikes every step
    dst = b.add_compartments(1, profile=b.add_profile(vth=(1 << g.vth_bits) - 1))
    b.route_to_axon(src, 5)
    b.connect(5, dst, [37], weight_exp=2, delay=0)
    b.route_to_output(dst, 3)
    config = b.build()
    core_of = np.full(g.n_compartments, -1)
    core_of[src], core_of[dst] = 0, 1
    chip = build_chip(config, Partition(chip_for(config, 2), core_of))
    x = np.zeros((STEPS, g.n_axons), dtype=bool)
    ref = GoldenCore(config).run(x, record=("u", "v"))
    assert ref.spikes[:, src].all() and ref.u[-1, dst[0]] != 0
    flits = int((ref.spikes.sum(axis=0) * chip.remote_routes()).sum())
    check_run(chip, ref, run_chip_rtl(chip, x), flits, "hand network")


def visible_flit(chip, ref) -> tuple[int, int]:
    """(source core, n): the first flit, in a source core's sending order (step by step, lane
    by lane, by compartment, routes in list order), that adds a nonzero contribution to a
    slot that a later step of the run reads, so losing it changes u."""
    T = ref.spikes.shape[0]
    k_u, n = chip.chip.core.k_u, chip.chip.n_cores
    syn = [cfg.synapse_list(conv=True) for cfg in chip.cores]
    for k, cfg in enumerate(chip.cores):
        am, r = cfg.mem["axon_map"], cfg.mem["routes"]
        cxs = chip.compartments[k]
        sent = 0
        for t in range(T):
            for lc in sorted(range(cxs.size), key=lambda i: (i % k_u, i)):
                if not ref.spikes[t, cxs[lc]]:
                    continue
                for a in range(am["base"][lc], am["base"][lc] + am["length"][lc]):
                    j, axon = int(r["core"][a]), int(r["target"][a])
                    if r["kind"][a] != RouteKind.AXON.value or j == k:
                        continue
                    s = syn[j]
                    if ((s.axon == axon) & (s.contribution != 0) & (t + 1 + s.delay < T)).any():
                        return k, sent
                    sent += 1
    raise AssertionError("no flit of this run changes a later step")


@pytest.mark.parametrize("kind", ["drop", "misroute"])
def test_router_mutant_is_caught(seed, kind):
    """A router that drops or misroutes one flit (one whose loss shows in a later step's u)
    gives another result than the golden model."""
    chip, x, ref, flits, s = chip_case(seed + 2000)
    source, nth = visible_flit(chip, ref)
    run = run_chip_rtl(chip, x, fault=RouterFault(kind, source=source, nth=nth))
    where = f"network seed {s}, {kind} flit {nth} of core {source} (NEUROCORE_SEED={seed})"
    assert mismatch(run, ref) is not None, f"{where}: the mutant went unnoticed"


def test_router_alone_random_traffic(seed):
    """Random flits from every input under random output backpressure: each arrives once, at
    its core; ``empty`` when all have left; ``moved`` counts them."""
    g = CHIP_PRESETS["chip-test"].core
    n = g.n_cores
    rng = np.random.default_rng(seed)
    flits = [[(int(rng.integers(0, n)), int(rng.integers(0, g.n_axons)))
              for _ in range(int(rng.integers(5, 25)))] for _ in range(n)]
    dut = Router(g)
    got = [[] for _ in range(n)]
    moved = [0]

    async def tb(ctx):
        pos = [0] * n
        for _ in range(2000):
            for i in range(n):
                if pos[i] < len(flits[i]):
                    core, axon = flits[i][pos[i]]
                    ctx.set(dut.inp[i].valid, 1)
                    ctx.set(dut.inp[i].payload, {"core": core, "axon": axon})
                else:
                    ctx.set(dut.inp[i].valid, 0)
            for j in range(n):
                ctx.set(dut.out[j].ready, int(rng.random() < 0.6))
            await ctx.delay(1e-9)
            took = [ctx.get(dut.inp[i].valid) and ctx.get(dut.inp[i].ready) for i in range(n)]
            for j in range(n):
                if ctx.get(dut.out[j].valid) and ctx.get(dut.out[j].ready):
                    got[j].append(ctx.get(dut.out[j].payload))
            moved[0] += ctx.get(dut.moved)
            await ctx.tick()
            for i in range(n):
                pos[i] += int(took[i])
            if all(p == len(f) for p, f in zip(pos, flits)) and ctx.get(dut.empty):
                break
        assert ctx.get(dut.empty)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    total = sum(len(f) for f in flits)
    assert moved[0] == total, f"NEUROCORE_SEED={seed}"
    for j in range(n):
        want = sorted(a for f in flits for c, a in f if c == j)
        assert sorted(got[j]) == want, f"core {j} (NEUROCORE_SEED={seed})"
        # per source, flits keep their order (one FIFO per input, first come first served)
        for f in flits:
            mine = [a for c, a in f if c == j]
            it = iter(got[j])
            assert all(a in it for a in mine), f"core {j} order (NEUROCORE_SEED={seed})"


def test_chip_ports_only_on_chip_cores():
    """A single core has no flit or barrier port; a chip core does; bad arguments are named."""
    single = Neurocore(CoreGeometry.preset("tiny"))
    assert not any(hasattr(single, p) for p in ("flit_in", "flit_out", "step_end"))
    g = CHIP_PRESETS["chip-test"].core
    core = Neurocore(g, index=3)
    assert all(hasattr(core, p) for p in ("flit_in", "flit_out", "deliver_done", "out_done",
                                          "step_end"))
    core._MustUse__silence = True                 # built to look at its ports only
    with pytest.raises(ValueError, match="index"):
        Neurocore(g, index=4)
    with pytest.raises(ValueError, match="n_cores >= 2"):
        Chip(CoreGeometry.preset("tiny"))
    with pytest.raises(ValueError, match="kind"):
        RouterFault("swap")
    text = verilog.convert(single, name="neurocore", emit_src=False)
    assert "flit" not in text and "step_end" not in text


def test_chip_converts_to_verilog():
    """A small 2-core chip converts to Verilog with its ports ``group__member``."""
    g = CHIP_PRESETS["chip-test"].core.replace(n_cores=2, n_compartments=16, n_axons=32,
                                               n_synapses=256, n_routes=64, n_conv=0)
    text = verilog.convert(Chip(g), name="chip", emit_src=False)
    assert "module chip" in text
    for port in ("cfg__addr", "inp__payload", "out__valid", "ctrl__done", "flits"):
        assert port in text, port


def test_chip_flags_a_core_that_does_not_exist():
    """On 3 cores (2-bit core fields) a host spike or a configuration access to core 3 is
    dropped and raises ``input_range`` / ``cfg_range``; a read of it still answers."""
    g = CHIP_PRESETS["chip-test"].core.replace(n_cores=3)
    dut = Chip(g)
    seen = {}

    async def tb(ctx):
        await ctx.tick()
        ctx.set(dut.inp.valid, 1)
        ctx.set(dut.inp.payload, {"core": 3, "axon": 1})
        await ctx.delay(1e-9)
        seen["inp_ready"] = ctx.get(dut.inp.ready)
        await ctx.tick()
        ctx.set(dut.inp.valid, 0)
        await ctx.tick()
        seen["input_range"] = ctx.get(dut.ctrl.error.input_range)
        ctx.set(dut.cfg.valid, 1)
        ctx.set(dut.cfg.addr, chip_config_addr(g, 3, 0))
        await ctx.tick()
        ctx.set(dut.cfg.valid, 0)
        await ctx.delay(1e-9)
        seen["rvalid"] = ctx.get(dut.cfg.rvalid)
        await ctx.tick()
        seen["cfg_range"] = ctx.get(dut.ctrl.error.cfg_range)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert seen == {"inp_ready": 1, "input_range": 1, "rvalid": 1, "cfg_range": 1}
