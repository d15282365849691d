"""The converted digits CNN (T = 16) on the RTL core of the ULX3S preset (8 update lanes,
4 synapse lanes) in Verilator (the C++ harness, sim/fast.py).

The program, converted for the ``ulx3s`` geometry, gets one monitor route per compartment
(golden/monitor.py: an OUTPUT route per compartment after the class ids), so every
compartment spike leaves the core as an event; the class events (ids 0..9) stay.  One
Verilator build of the monitored geometry serves this test and the benchmark.  For each of
``N_IMAGES`` test images (80 steps each):

* every step: its length and **every output event with its cycle** (so every compartment
  spike, with the step and the cycle it leaves the core) against the cycle model fed with the
  golden model's spikes of the same monitored config;
* every ``STATE_EVERY`` steps and after the last step: u and v of every compartment, read
  back through the configuration port, against the golden model;
* after each image: every hardware counter against the cycle model;
* the class decoded from the RTL's class events (ids < ``program.n_outputs``) against the
  golden model's class (of the unmonitored program).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import record_crosscheck

from neurocore.golden.core import GoldenCore
from neurocore.golden.monitor import monitor_offset, monitored, spikes_from_events
from neurocore.sim.fast import run_stored_fast

N_IMAGES = 20
STATE_EVERY = 8
BOARD = "ulx3s"


@pytest.fixture(scope="module")
def ulx3s_program(digits_cnn, digits):
    from neurocore.sw.convert import from_model
    # conv descriptors (the ulx3s preset has 16): the RTL's conv walker scatters them
    return from_model(digits_cnn, 16, digits.x_train, geometry=BOARD)


def test_digits_cnn_on_rtl_every_spike_and_class(ulx3s_program, digits):
    program = ulx3s_program
    cfg = monitored(program.config)
    offset, n = monitor_offset(program.config), program.config.geometry.n_compartments
    x = program.encode(digits.x_test[:N_IMAGES])
    gold = GoldenCore(cfg).run(x)
    plain = GoldenCore(program.config).run(x)
    # The monitor routes change nothing but add one event per spike.
    assert np.array_equal(gold.spikes, plain.spikes)
    assert np.array_equal(gold.outputs[..., :offset], plain.outputs)
    assert np.array_equal(spikes_from_events(gold.outputs, offset, n), gold.spikes)

    report = run_stored_fast(cfg, x, name="digits_t16", label="digits T=16",
                             state_every=STATE_EVERY, keep_outputs=program.n_outputs)
    assert report["failure"] is None, report["failure"]
    rec = report["networks"][0]
    samples = rec["samples"]
    assert len(samples) == N_IMAGES
    B, steps = x.shape[:2]
    rtl_out = np.zeros((B, steps, program.n_outputs), dtype=np.int64)
    for b, s in enumerate(samples):
        assert len(s["cycles"]) == steps
        # every event was compared with its cycle; their number is golden's spikes + classes
        assert s["events"] == int(gold.outputs[b].sum())
        assert s["state_checks"] == steps // STATE_EVERY + (steps % STATE_EVERY != 0)
        assert s["counters"] == s["model_counters"] and s["counters"]["sops"] > 0
        for t, oid in s["outputs"]:
            rtl_out[b, t, oid] += 1
    assert np.array_equal(rtl_out, plain.outputs[..., :program.n_outputs])
    rtl_class = program.decode(rtl_out)["predicted"]
    gold_class = program.decode(plain.outputs)["predicted"]
    assert np.array_equal(rtl_class, gold_class), (rtl_class, gold_class)
    spikes = int(gold.spikes.sum())
    record_crosscheck("golden + cycle model vs RTL (digits CNN T=16: every spike event, "
                      f"u/v every {STATE_EVERY} steps)", networks=1, samples=B, steps=B * steps,
                      compartment_steps=sum(s["state_checks"] for s in samples) * n)
    acc = float((rtl_class == digits.y_test[:N_IMAGES].numpy()).mean()) * 100
    cyc = sum(sum(s["cycles"]) for s in samples)
    print(f"\ndigits CNN on the RTL: {B} images x {steps} steps, {spikes} spikes compared "
          f"event by event with their cycles, u/v of {n} compartments every {STATE_EVERY} "
          f"steps; classes = golden (accuracy {acc:.1f} %); {cyc / B:.0f} cycles/image; "
          f"{rec['sim_cycles']} cycles in {rec['wall_s']:.1f} s; build {report['build_s']:.1f} s")


def test_rtl_perf_bench_on_two_images(ulx3s_program, digits):
    """bench/rtl_perf.py (same Verilator build, C++ profile ``quick``): its figures are the hardware counters, equal
    to the cycle model's, and the cocotb harness gives the C++ harness's records."""
    from neurocore.bench.rtl_perf import markdown, measure
    from neurocore.spec.cycle_model import counter_totals, schedule

    program = ulx3s_program
    r = measure(2, 16, program=program, data=digits, geometry=BOARD, opt="quick")
    assert r["agrees"] and r["counters_agree"], r["failure"]
    x = program.encode(digits.x_test[:2])
    gold = GoldenCore(program.config).run(x)
    model = [counter_totals(schedule(program.config, x[b])) for b in range(2)]
    assert r["cycles_per_inference"] == np.mean([c["cycles"] for c in model])
    assert r["sops"] == sum(c["sops"] for c in model)
    assert r["updates"] == sum(c["updates"] for c in model)
    assert r["sop_per_cycle"] == r["sops"] / r["step_cycles"]
    assert 0 < r["sop_per_cycle"] < r["sop_per_deliver_cycle"]
    assert r["cocotb_images"] == 2 and r["cocotb_identical"]
    assert r["sim_cycles_per_s"] > r["cocotb_cycles_per_s"] > 0
    assert "counted by the RTL" in markdown(r)
