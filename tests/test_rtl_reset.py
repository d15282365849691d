"""Periodic reset (docs/spec.md §11) in the RTL core (rtl/reset_phase.py, rtl/update_lane.py).

* a hand network in Amaranth's simulator: the reset trajectory, and a quiet compartment
  (``u = 0``, ``dv = 0``, ``v ≠ 0``) that idle skip must not skip at its reset step;
* seeded random networks with random resets (golden/random_networks.py
  ``with_random_resets``), in Amaranth's simulator (2 and 4 update lanes) and in the C++
  Verilator harness (``tiny-reset``): every step's u, v, length, output events with their
  cycles and every hardware counter equal golden + cycle model;
* reset mutants (rtl/fault.py ``reset_due``, ``reset_start``: the offset off by one) are
  reported as mismatches;
* the pipelined digits CNN (``from_model(..., pipelined=True)`` on ``ulx3s-reset``, 8 update
  and 4 synapse lanes): 20 test images back to back with no clear, every compartment spike as
  an event with its cycle, u/v read back, against golden; predictions equal the unpipelined
  program's, also run on the RTL.

Seeds derive from ``NEUROCORE_SEED`` (tests/conftest.py) and are named in every failure.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import record_crosscheck
from test_rtl_core import run_and_check

from neurocore.golden.core import GoldenCore
from neurocore.golden.network import NetworkBuilder
from neurocore.golden.random_networks import random_network, with_random_resets
from neurocore.rtl.core import Neurocore
from neurocore.rtl.fault import Fault
from neurocore.spec.geometry import CoreGeometry

TINY_RESET = CoreGeometry.preset("tiny-reset")
#: Random reset intervals are drawn from 1 … MAX_INTERVAL (short: many resets per run).
MAX_INTERVAL = 9
N_VERILATOR = 12
STEPS = 40


def _reset_net(seed: int, g: CoreGeometry = TINY_RESET, steps: int = STEPS):
    return with_random_resets(random_network(seed, g, steps=steps), np.random.default_rng(seed),
                              max_interval=MAX_INTERVAL)


def _reset_count(config, steps: int) -> int:
    """Compartment resets (below ``n_active``) in ``steps`` steps, by the rule of spec §11."""
    pr = config.mem["profiles"]
    prof = config.mem["compartments"]["profile"][:config.n_active()]
    interval, offset = pr["reset_interval"][prof], pr["reset_offset"][prof]
    t = np.arange(steps)[:, None]
    return int(((interval > 0) & ((t - offset) % np.maximum(interval, 1) == 0)).sum())


def hand_network(g: CoreGeometry = TINY_RESET):
    """Compartment 0: bias 3, non-leaky, I = 5, o = 2.  Compartment 1: u decays to 0 in one
    step (du + du_offset = 2**decay_shift), v holds (dv = 0), I = 6, o = 4, input weight 2 on
    axon 1: after its input it is quiet with v = 128 until its reset."""
    b = NetworkBuilder(g)
    vth = (1 << g.vth_bits) - 1
    p0 = b.add_profile(du=0, du_offset=0, dv=0, vth=vth, reset_interval=5, reset_offset=2)
    p1 = b.add_profile(du=(1 << g.decay_shift) - 1, du_offset=1, dv=0, vth=vth,
                       reset_interval=6, reset_offset=4)
    b.add_compartments(1, profile=p0, bias_mant=3)
    b.add_compartments(1, profile=p1)
    b.connect(axon=0, targets=[0], weights=[2])
    b.connect(axon=1, targets=[1], weights=[2])
    return b.build()


def test_hand_network_resets_and_idle_skip_keeps_reset_steps():
    cfg = hand_network()
    x = np.zeros((14, TINY_RESET.n_axons), dtype=bool)
    x[6, 0] = x[0, 1] = x[7, 1] = True
    gold, sched, rtl = run_and_check(cfg, x)      # u, v, lengths, events, counters every step
    #          t:  0  1  2  3  4   5   6   7    8    9   10   11   12   13
    assert gold.v[:, 0].tolist() == [3, 6, 3, 6, 9, 12, 15, 131, 262, 393, 524, 655, 3, 6]
    assert gold.v[:, 1].tolist() == [0, 128, 128, 128, 0, 0, 0, 0, 128, 128, 0, 0, 0, 0]
    assert rtl.v[:, 1].tolist() == gold.v[:, 1].tolist()
    # compartment 1 is updated at its reset steps 4 and 10 although quiet (u = 0, dv = 0),
    # and skipped in the quiet steps after them (v = 0): 5, 6, 7, 11, 12, 13
    assert [s.counters["skipped"] for s in sched] == [0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1]
    assert rtl.counters["skipped"] == 6


def test_profile_words_read_back(seed):
    """Profile words (random bits: the lanes keep the decay and threshold fields, the reset
    phases the reset fields) read back through the configuration port as written, after a
    clear and after steps."""
    from neurocore.sim.pysim import simulate
    from neurocore.spec.words import memories
    g = TINY_RESET.replace(k_u=2)
    rng = np.random.default_rng(seed)
    width = memories(g)["profiles"].layout.size
    words = [int(w) for w in rng.integers(0, 1 << min(width, 63), size=g.n_profiles)]
    words[0] &= (1 << (width - 2 * g.reset_bits)) - 1        # no reset fields at all

    async def tb(drv):
        for a, w in enumerate(words):
            await drv.write("profiles", a, w)
        first = await drv.read_many("profiles", list(range(g.n_profiles)))
        await drv.run_step()
        await drv.run_step()
        return first, await drv.read_many("profiles", list(range(g.n_profiles)))

    first, later = simulate(Neurocore(g), tb)
    assert first == words and later == words, (seed, words, first, later)


@pytest.mark.parametrize("lanes", [(2, 2), (4, 2)], ids=lambda kk: f"ku{kk[0]}-ks{kk[1]}")
def test_random_reset_networks_in_amaranth_sim(seed, lanes):
    g = TINY_RESET.replace(k_u=lanes[0], k_s=lanes[1])
    s = seed + 41 + lanes[0]
    net = _reset_net(s, g, steps=20)
    run_and_check(net.config, net.inputs[0], seed=s)


@pytest.mark.parametrize("fault", [Fault("reset_due", 0), Fault("reset_due", 1, stuck=0),
                                   Fault("reset_start", 0)], ids=lambda f: f.tag)
def test_reset_mutants_are_caught(fault):
    """Each mutant of the reset logic gives a mismatch on the hand network (naming step,
    compartment and field); the fault-free core passes it (the test above)."""
    cfg = hand_network()
    x = np.zeros((14, TINY_RESET.n_axons), dtype=bool)
    x[6, 0] = x[0, 1] = x[7, 1] = True
    with pytest.raises(AssertionError, match=r"step \d+, cycle \d+ .*compartment \d, field"):
        run_and_check(cfg, x, dut=Neurocore(TINY_RESET, fault=fault))


def test_random_reset_networks_on_verilator(seed):
    """``N_VERILATOR`` random networks with random resets, one C++ harness job (a clear and a
    load per network): every step against golden + cycle model."""
    from neurocore.sim.fast import run_many_fast
    from neurocore.sim.stored import StoredRun
    seeds = [seed + 300 + i for i in range(N_VERILATOR)]
    runs, resets = [], 0
    for s in seeds:
        net = _reset_net(s)
        resets += _reset_count(net.config, STEPS)
        runs.append(StoredRun(net.config, net.inputs, f"seed {s}", 4, 0))
    reports = run_many_fast(TINY_RESET, runs, name="reset_random")
    for s, rep in zip(seeds, reports):
        assert rep["failure"] is None, f"seed {s}: {rep['failure']}"
    assert resets > 0
    record_crosscheck("golden + cycle model vs RTL (periodic reset, random networks)",
                      networks=N_VERILATOR, samples=N_VERILATOR, steps=N_VERILATOR * STEPS,
                      compartment_steps=TINY_RESET.n_compartments * sum(
                          r["networks"][0]["samples"][0]["state_checks"] for r in reports))
    print(f"\n{N_VERILATOR} random reset networks x {STEPS} steps (seeds {seeds[0]}.."
          f"{seeds[-1]}): {resets} compartment resets, RTL = golden + cycle model")


def test_chip_of_reset_cores_equals_golden(seed):
    """A random reset network partitioned over 2–4 chip cores with reset fields (rtl/chip.py
    in Amaranth's simulator): output events, u and v of every step equal one golden core's."""
    from test_chip import chip_for, random_partition
    from test_rtl_chip import check_run

    from neurocore.golden.chip import Partition, build_chip
    from neurocore.sim.chipsim import run_chip_rtl
    for s in range(seed + 900, seed + 1100):
        net = with_random_resets(random_network(s, TINY_RESET, steps=12, max_compartments=24),
                                 np.random.default_rng(s), max_interval=4, no_reset=0)
        rng = np.random.default_rng(s)
        n_cores = int(rng.integers(2, 5))
        chip = build_chip(net.config, Partition(chip_for(net.config, n_cores),
                                                random_partition(rng, net.config, n_cores)))
        x = net.inputs[0]
        ref = GoldenCore(net.config).run(x, record=("u", "v"))
        flits = int((ref.spikes.sum(axis=0) * chip.remote_routes()).sum())
        if flits >= 8 and _reset_count(net.config, 12):
            break
    assert chip.chip.core.reset_bits == TINY_RESET.reset_bits
    check_run(chip, ref, run_chip_rtl(chip, x), flits,
              f"seed {s} on {n_cores} cores (NEUROCORE_SEED={seed})")


# ---- the pipelined digits CNN on the RTL ------------------------------------------------
N_STREAM = 20          # images back to back in one stream
STREAM_STATE_EVERY = 40
BOARD_RESET = "ulx3s-reset"


@pytest.fixture(scope="module")
def digits_on_reset_core(digits_cnn, digits):
    """The digits CNN (T = 16) on ``ulx3s-reset``: pipelined and one image at a time."""
    from neurocore.sw.convert import from_model
    pip = from_model(digits_cnn, 16, digits.x_train, pipelined=True, geometry=BOARD_RESET)
    ref = from_model(digits_cnn, 16, digits.x_train, geometry=BOARD_RESET)
    return pip, ref


def test_pipelined_digits_stream_on_rtl(digits_on_reset_core, digits):
    """``N_STREAM`` test images through the RTL core back to back (one sample: no clear), a
    new image every ``stream_period`` steps; in the same C++ harness job the unpipelined
    program runs them one at a time (a clear per image).  Both carry monitor routes, so every
    compartment spike is an event checked with its cycle against golden + cycle model; u/v are
    read back; the hardware counters equal the cycle model's.  The stream's decoded first
    spikes and classes equal the unpipelined run's, on the RTL and in golden."""
    from neurocore.golden.monitor import monitored
    from neurocore.sim.fast import run_many_fast
    from neurocore.sim.stored import StoredRun
    pip, ref = digits_on_reset_core
    images = digits.x_test[:N_STREAM]
    stream, single = pip.encode_stream(images), ref.encode(images)
    cfg_pip, cfg_ref = monitored(pip.config), monitored(ref.config)
    assert cfg_pip.geometry == cfg_ref.geometry and cfg_pip.geometry.reset_bits > 0
    runs = [StoredRun(cfg_pip, stream, "digits pipelined stream", STREAM_STATE_EVERY,
                      pip.n_outputs),
            StoredRun(cfg_ref, single, "digits one at a time", 0, ref.n_outputs)]
    rep_pip, rep_ref = run_many_fast(cfg_pip.geometry, runs, name="digits_pipelined")
    assert rep_pip["failure"] is None, rep_pip["failure"]
    assert rep_ref["failure"] is None, rep_ref["failure"]

    def rtl_outputs(report, shape, n_outputs):
        out = np.zeros((*shape, n_outputs), dtype=np.int64)
        for b, s in enumerate(report["networks"][0]["samples"]):
            assert s["counters"] == s["model_counters"]
            for t, oid in s["outputs"]:
                out[b, t, oid] += 1
        return out

    got = pip.decode_stream(rtl_outputs(rep_pip, stream.shape[:2], pip.n_outputs), N_STREAM)
    one = ref.decode(rtl_outputs(rep_ref, single.shape[:2], ref.n_outputs))
    gold = ref.decode(GoldenCore(ref.config).run(single).outputs)
    for what, d in (("RTL one at a time", one), ("golden one at a time", gold)):
        np.testing.assert_array_equal(got["first_spike"], d["first_spike"], err_msg=what)
        np.testing.assert_array_equal(got["predicted"], d["predicted"], err_msg=what)
    (s_pip,) = rep_pip["networks"][0]["samples"]
    cyc_pip = s_pip["counters"]["cycles"] / N_STREAM
    cyc_ref = sum(s["counters"]["cycles"]
                  for s in rep_ref["networks"][0]["samples"]) / N_STREAM
    P, n = pip.stream_period, ref.n_steps
    assert P < n and stream.shape[1] == (N_STREAM - 1) * P + n
    record_crosscheck("golden + cycle model vs RTL (pipelined digits stream, every spike event)",
                      networks=1, samples=1, steps=stream.shape[1],
                      compartment_steps=s_pip["state_checks"] * cfg_pip.geometry.n_compartments)
    print(f"\npipelined digits CNN on the RTL ({BOARD_RESET}): {N_STREAM} images back to back, "
          f"{stream.shape[1]} steps, {s_pip['events']} events compared with their cycles, "
          f"0 mismatches; steps/image {n} one at a time -> {P} pipelined ({n / P:.2f}x); "
          f"RTL-counted cycles/image {cyc_ref:,.0f} -> {cyc_pip:,.0f} ({cyc_ref / cyc_pip:.2f}x);"
          f" predictions = unpipelined (RTL and golden); build {rep_pip['build_s']:.1f} s, "
          f"harness {rep_pip['wall_s']:.1f} s")
