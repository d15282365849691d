"""Mutation check of the RTL: one corrupted bit inside the core must fail the cocotb regression.

Each mutant is the core built with a test-only :class:`~neurocore.rtl.fault.Fault` (one bit
of one internal signal flipped, or forced) in its own Verilator build
(``sim_build/tiny-fault-<tag>``), run on networks of the regression itself
(tests/rtl_jobs.py, same seeds) with ``record_only`` so that every network reports whether
it saw the mutant.  The fault-free build passes the same networks (tests/test_rtl_cocotb.py).

* Arithmetic: the u adder output, the v decay product and the threshold operand of the spike
  compare (vth bit 3: only networks whose v lands between the two thresholds notice).
* Forwarding: the read-modify-write forwarding path disabled.  The random networks almost
  never write one accumulator entry in consecutive cycles; the forwarding networks do, and
  must catch the missing path.  The same bug in synapse lane 1 only (two synapse lanes) must
  be caught too: a lane forwards on its own.
* Counters: the ``sops`` counter's increment with its LSB flipped (off by one in every
  cycle) must be caught by the counter comparison with the cycle model.
* Idle skip: the scanner's "needs an update" bit of group 0 inverted (a wrong skip
  decision) must be caught.
* Conv: the conv generator's target off by one (bit 0 of the chunk's target flipped) must be
  caught by the conv regression's networks (tests/test_rtl_conv.py, same seeds, C++ harness).
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import verilog
from conftest import base_seed
from rtl_jobs import N_FORWARDING, forwarding_jobs, random_jobs
from test_rtl_conv import TINY, conv_runs

from neurocore.golden.core import GoldenCore
from neurocore.golden.random_networks import random_network
from neurocore.rtl.core import Neurocore
from neurocore.rtl.fault import FAULT_SIGNALS, RESET_SIGNALS, Fault
from neurocore.sim.fast import run_many_fast
from neurocore.sim.pysim import run_rtl
from neurocore.sim.verilator import build_dir_for, run_regression
from neurocore.spec.geometry import CoreGeometry

#: (fault, networks of the regression to run): the first N random networks.
ARITHMETIC_MUTANTS = {
    "u_adder": (Fault("u_sum", 0), 12),          # LSB of decay(u) + (acc << 6)
    "v_decay": (Fault("v_dec", 11), 12),         # bit 11 of decay(v)
    "threshold": (Fault("threshold", 9), 40),    # vth bit 3 in the compare
}
NO_FORWARDING = Fault("fwd_hit", 0, stuck=0)
N_PLAIN_FOR_FORWARDING = 24
#: Forwarding disabled in synapse lane 1 of a two-lane core only.
LANE1_NO_FORWARDING = Fault("fwd_hit", 0, stuck=0, lane=1)
TWO_SYNAPSE_LANES = CoreGeometry.preset("tiny").replace(k_s=2)
COUNTER_OFF_BY_ONE = Fault("counter_inc", 0)
WRONG_SKIP = Fault("skip_need", 0)
CONV_TARGET_OFF_BY_ONE = Fault("conv_target", 0)
N_CONV_FOR_MUTANT = 8


def test_no_fault_adds_nothing_and_each_fault_changes_the_design():
    plain = verilog.convert(Neurocore(CoreGeometry.preset("tiny")), name="neurocore",
                            emit_src=False)
    assert verilog.convert(Neurocore(CoreGeometry.preset("tiny"), fault=None),
                           name="neurocore", emit_src=False) == plain
    assert "faulty" not in plain
    reset_plain = verilog.convert(Neurocore(CoreGeometry.preset("tiny-reset")),
                                  name="neurocore", emit_src=False)
    for sig in FAULT_SIGNALS:        # the reset signals exist on a core with reset fields
        name, base = (("tiny-reset", reset_plain) if sig in RESET_SIGNALS else ("tiny", plain))
        text = verilog.convert(Neurocore(CoreGeometry.preset(name), fault=Fault(sig, 0)),
                               name="neurocore", emit_src=False)
        assert text != base and f"{sig}_faulty" in text, sig
    with pytest.raises(ValueError, match="'reset_due' needs a core with periodic reset"):
        Neurocore(CoreGeometry.preset("tiny"), fault=Fault("reset_due", 0))
    assert build_dir_for("tiny", fault=NO_FORWARDING).name == "tiny-fault-fwd_hit-b0-stuck0"


def test_fault_arguments_are_checked():
    with pytest.raises(ValueError, match="fault signal"):
        Fault("nonsense")
    with pytest.raises(ValueError, match="stuck"):
        Fault("u_sum", 0, stuck=2)
    with pytest.raises(ValueError, match="outside u_sum"):
        verilog.convert(Neurocore(CoreGeometry.preset("tiny"), fault=Fault("u_sum", 99)),
                        name="neurocore")
    with pytest.raises(TypeError, match="fault must be a Fault"):
        Neurocore(CoreGeometry.preset("tiny"), fault=("u_sum", 0))


def test_datapath_fault_diverges_in_amaranth_sim(seed):
    """The injected bit reaches the state (Amaranth simulator, no Verilator)."""
    net = random_network(seed, "tiny", steps=3)
    gold = GoldenCore(net.config).run(net.inputs[0], record=("u", "v"))
    rtl = run_rtl(net.config, net.inputs[0],
                  dut=Neurocore(net.config.geometry, fault=Fault("u_sum", 0)))
    assert not np.array_equal(rtl.u, gold.u)


def _caught(report, label):
    nets = [n for n in report["networks"] if n["label"] == label]
    return nets, [n for n in nets if n["mismatch"]]


@pytest.mark.parametrize("name", list(ARITHMETIC_MUTANTS))
def test_arithmetic_mutant_is_detected(name):
    fault, n = ARITHMETIC_MUTANTS[name]
    seed = base_seed()
    report = run_regression(random_jobs(seed, n, record_only=True), geometry="tiny",
                            name=f"mutant_{name}", fault=fault)
    assert report["failure"] is None, report["failure"]     # no crash, no hang
    nets, caught = _caught(report, "random")
    assert len(nets) == n
    print(f"\nmutant {name} ({fault.describe()}): caught by {len(caught)} of {n} networks; "
          f"first: {caught[0]['mismatch'] if caught else None}")
    assert caught, f"{fault.describe()} was not detected by {n} networks (base seed {seed})"
    for rec in caught:
        assert rec["mismatch"].startswith("step ") and f"seed {rec['seed']}" in rec["mismatch"]


def test_missing_forwarding_is_detected_by_forwarding_networks():
    seed = base_seed()
    jobs = (random_jobs(seed, N_PLAIN_FOR_FORWARDING, record_only=True)
            + forwarding_jobs(seed, record_only=True))
    report = run_regression(jobs, geometry="tiny", name="mutant_no_forwarding",
                            fault=NO_FORWARDING)
    assert report["failure"] is None, report["failure"]
    plain, plain_caught = _caught(report, "random")
    fwd, fwd_caught = _caught(report, "forwarding")
    assert len(fwd) == N_FORWARDING
    print(f"\nmutant without forwarding ({NO_FORWARDING.describe()}): caught by "
          f"{len(fwd_caught)} of {len(fwd)} forwarding networks, {len(plain_caught)} of "
          f"{len(plain)} random networks")
    assert len(fwd_caught) >= N_FORWARDING // 2, (len(fwd_caught), base_seed())


def test_lane_forwarding_bug_is_detected():
    seed = base_seed()
    report = run_regression(forwarding_jobs(seed, record_only=True), geometry=TWO_SYNAPSE_LANES,
                            name="mutant_lane1_no_forwarding", fault=LANE1_NO_FORWARDING)
    assert report["failure"] is None, report["failure"]
    fwd, caught = _caught(report, "forwarding")
    print(f"\nmutant {LANE1_NO_FORWARDING.describe()}: caught by {len(caught)} of {len(fwd)} "
          f"forwarding networks")
    assert len(caught) >= N_FORWARDING // 2, (len(caught), seed)


def test_counter_off_by_one_is_detected():
    seed = base_seed()
    report = run_regression(random_jobs(seed, 4, record_only=True), geometry="tiny",
                            name="mutant_counter", fault=COUNTER_OFF_BY_ONE)
    assert report["failure"] is None, report["failure"]
    nets, caught = _caught(report, "random")
    assert len(caught) == len(nets) == 4
    for rec in caught:        # the state and the schedule are right; only the counter is not
        assert "counter sops" in rec["mismatch"] and f"seed {rec['seed']}" in rec["mismatch"]


def test_wrong_skip_decision_is_detected():
    seed = base_seed()
    report = run_regression(random_jobs(seed, 8, record_only=True), geometry="tiny",
                            name="mutant_skip", fault=WRONG_SKIP)
    assert report["failure"] is None, report["failure"]
    nets, caught = _caught(report, "random")
    print(f"\nmutant {WRONG_SKIP.describe()}: caught by {len(caught)} of {len(nets)} networks; "
          f"first: {caught[0]['mismatch'] if caught else None}")
    assert len(caught) >= len(nets) // 2, (len(caught), seed)


def test_conv_target_off_by_one_is_detected():
    """The first networks of the conv regression (lanes 1/1) on a core whose conv generator
    puts every pair on the neighbouring compartment (bit 0 of the target flipped)."""
    runs = conv_runs(base_seed() + 4000, TINY, N_CONV_FOR_MUTANT)
    reports = run_many_fast(TINY, runs, name="mutant_conv_target", fault=CONV_TARGET_OFF_BY_ONE)
    caught = [r["failure"] for r in reports if r["failure"]]
    print(f"\nmutant {CONV_TARGET_OFF_BY_ONE.describe()}: caught by {len(caught)} of "
          f"{len(runs)} conv networks; first: {caught[0] if caught else None}")
    assert len(caught) >= len(runs) // 2, (len(caught), base_seed())
