"""The C++ Verilator harness (sim/fast.py, sim/cxx/neurocore_tb.cpp) against the cocotb one.

Both harnesses run the same job file (sim/jobfile.py): the C++ testbench natively, cocotb
through the Python driver (sim/jobplay.py).  On seeded random networks of the tiny geometry,
with and without random output backpressure, every record must be equal: step lengths,
output events with their cycles, stall cycles, the start cycle of every step, every word read
back (the state memory and a configuration memory), and the cycle of every mark.  The C++
harness alone is then checked against golden + cycle model, its mismatch messages, its
timeout and its FST.  Seeds derive from ``NEUROCORE_SEED`` (tests/conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import base_seed, record_crosscheck

from neurocore.golden.core import GoldenCore
from neurocore.golden.random_networks import random_network
from neurocore.spec.geometry import CoreGeometry
from neurocore.spec.schedule import MEMORY_INDEX
from neurocore.sim.driver import decode_state
from neurocore.sim.fast import cxx_dir_for, run_job_fast, run_stored_fast
from neurocore.sim.jobfile import Job, Op, record_difference
from neurocore.sim.stored import StoredRun, stored_job, stored_report
from neurocore.sim.verilator import run_job_cocotb

GEOMETRY = "tiny"
N_NETWORKS = 4
STEPS = 16
READY_RATE = 0.4


def networks_with_events(seed: int, n: int = N_NETWORKS):
    """The first ``n`` random networks from ``seed`` on whose raster golden emits events."""
    nets = []
    for s in range(seed, seed + 20 * n):
        net = random_network(s, GEOMETRY, steps=STEPS)
        if GoldenCore(net.config).run(net.inputs).outputs.sum() > 0:
            nets.append((s, net))
            if len(nets) == n:
                return nets
    raise AssertionError(f"seeds {seed}..{s}: fewer than {n} networks with output events")


def comparison_job(seed: int) -> tuple[Job, list[int]]:
    """All networks in one job; backpressure on every other one; extra generic reads."""
    job, previous, rng = Job(), None, np.random.default_rng(seed)
    nets = networks_with_events(seed)
    for k, (s, net) in enumerate(nets):
        job.ready(rng.random(1009) < READY_RATE if k % 2 else [])
        stored_job(StoredRun(net.config, net.inputs, f"seed {s}", 4, 0), previous, job)
        previous = net.config.to_words()
        job.read(MEMORY_INDEX["compartments"], 0, 5)
    return job, [s for s, _ in nets]


@pytest.fixture(scope="module")
def both():
    seed = base_seed()
    job, seeds = comparison_job(seed)
    fast, fast_info = run_job_fast(GEOMETRY, job, name="fast_vs_cocotb")
    slow, slow_info = run_job_cocotb(GEOMETRY, job, name="fast_vs_cocotb")
    return seed, seeds, fast, fast_info, slow, slow_info


def test_fast_and_cocotb_harnesses_agree_cycle_for_cycle(both):
    seed, seeds, fast, fast_info, slow, slow_info = both
    assert fast_info["error"] is None and slow_info["error"] is None, (fast_info, slow_info)
    diff = record_difference(fast, slow)
    assert diff is None, f"C++ vs cocotb: {diff} (base seed {seed}, seeds {seeds})"
    assert fast[-1].op == Op.END
    steps = [r.step for r in fast if r.op == Op.STEP]
    assert len(steps) == N_NETWORKS * STEPS
    assert sum(len(s.events) for s in steps) > 0 and sum(s.stalls for s in steps) > 0
    record_crosscheck("C++ harness vs cocotb harness (records cycle for cycle)",
                      networks=N_NETWORKS, samples=N_NETWORKS, steps=len(steps))
    cycles = fast[-1].cycle
    print(f"\n{len(fast)} records equal (seeds {seeds}); {cycles} cycles: C++ "
          f"{cycles / fast_info['wall_s']:,.0f} cycles/s incl. start-up, cocotb "
          f"{cycles / slow_info['wall_s']:,.0f} cycles/s incl. start-up")


def test_fast_harness_matches_golden_and_cycle_model(seed):
    """Also the generic reads: config words after step 3, state words after step 6."""
    cx, st = MEMORY_INDEX["compartments"], MEMORY_INDEX["state"]
    for s, net in networks_with_events(seed + 500, 2):
        report = run_stored_fast(net.config, net.inputs, name="fast_golden", label=f"seed {s}",
                                 state_every=3, reads=[(0, 3, cx, 1, 4), (0, 6, st, 2, 5)])
        assert report["failure"] is None, report["failure"]
        (sample,) = report["networks"][0]["samples"]
        assert len(sample["cycles"]) == STEPS and sample["state_checks"] == STEPS // 3 + 1
        gold = GoldenCore(net.config).run(net.inputs, record=("u", "v"))
        assert sample["events"] == int(gold.outputs.sum())
        words, state = sample["reads"]
        assert (words["step"], words["mem"], words["first"]) == (3, cx, 1)
        assert words["words"] == net.config.to_words()["compartments"][1:5].tolist()
        u, v = decode_state(net.config.geometry, state["words"])
        assert state["step"] == 6 and np.array_equal(u, gold.u[0, 6, 2:7]), (u, gold.u[0, 6])
        assert np.array_equal(v, gold.v[0, 6, 2:7])


def test_fast_harness_mismatch_names_step_cycle_and_field(seed):
    (s, net), = networks_with_events(seed + 700, 1)
    run = StoredRun(net.config, net.inputs, f"seed {s}", 0, 0)
    job, loaded = stored_job(run)
    records, info = run_job_fast(GEOMETRY, job, name="fast_mismatch")
    step = next(r for r in records if r.op == Op.STEP and r.step.events)
    oid, cyc = step.step.events[0]
    step.step.events[0] = (oid, cyc + 1)
    msg = stored_report(run, records, loaded)["failure"]
    assert msg.startswith(f"step {step.step.step}, cycle {cyc} of the step (simulation cycle "
                          f"{step.start_cycle + cyc}"), msg
    assert f"expected ({oid}, {cyc}), actual ({oid}, {cyc + 1})" in msg
    assert f"seed {s} sample 0" in msg and "WAVES=1" in msg
    reads = [r for r in records if r.op == Op.READ]
    read = reads[-2]             # the last state read (the counters are read after it)
    assert len(read.words) == CoreGeometry.preset(GEOMETRY).n_compartments
    read.words[3] ^= 1
    step.step.events[0] = (oid, cyc)
    msg = stored_report(run, records, loaded)["failure"]
    assert msg.startswith(f"step {STEPS - 1}, ") and ", compartment 3, field " in msg, msg


def test_fast_harness_times_out_on_a_stuck_output(seed):
    """out.ready held low: the step cannot finish, the harness says so and keeps the records
    before it."""
    (s, net), = networks_with_events(seed + 900, 1)
    job = Job(max_cycles=5000)
    job.mark(1)
    job.ready(np.zeros(1, dtype=bool))
    stored_job(StoredRun(net.config, net.inputs, "stuck", 0, 0), job=job)
    records, info = run_job_fast(GEOMETRY, job, name="fast_timeout")
    assert "did not finish within 5000 cycles" in info["error"], info
    assert records[0].op == Op.MARK and records[0].tag == 1


def test_fast_harness_waves_write_an_fst(seed):
    (s, net), = networks_with_events(seed, 1)
    report = run_stored_fast(net.config, net.inputs[:, :2], name="fast_waves", waves=True)
    assert report["failure"] is None, report["failure"]
    fst = cxx_dir_for(GEOMETRY, waves=True) / "fast_waves.fst"
    assert report["waves"] == str(fst)
    assert fst.exists() and fst.stat().st_size > 0 and fst.read_bytes()[:1] == b"\x00"


def test_job_values_must_fit_the_ports():
    """A job value wider than its port (widths of the sidecar) is refused before running."""
    job = Job()
    job.send([1 << 20])
    with pytest.raises(ValueError, match="inp__payload"):
        run_job_fast(GEOMETRY, job, name="fast_width")
