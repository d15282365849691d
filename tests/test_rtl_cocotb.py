"""cocotb + Verilator regression of the Verilog core (sim/verilator.py, sim/cocotb_neurocore.py).

One Verilator build of the "tiny" geometry (``sim_build/tiny``, incremental) and one
simulator run for all networks: seeded random networks compared step by step with the
golden model (u, v of every compartment) and the cycle model (step lengths, output events
with their cycles); networks that stress the accumulator forwarding path (runs of synapses
onto one entry); the same networks under random output backpressure; and fault injection
(one corrupted synapse weight, synapse delay or threshold per network) that must be
detected; a few conv networks (descriptors scattered by the conv walker).  Seeds derive from ``NEUROCORE_SEED`` (tests/conftest.py); ``WAVES=1`` writes FSTs.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import base_seed, record_crosscheck
from rtl_jobs import (LANE_CONFIGS, MUTATION_KINDS, N_BACKPRESSURE, N_CONV, N_FORWARDING,
                      N_LANE_FORWARDING, N_LANE_NETWORKS, N_MUTATION_SEEDS, N_NETWORKS, STEPS,
                      lane_plan, plan)

from neurocore.sim.verilator import build_dir_for, run_regression
from neurocore.spec.geometry import CoreGeometry


@pytest.fixture(scope="module")
def regression():
    seed = base_seed()
    report = run_regression(plan(seed), geometry="tiny", name="regression")
    report["seed"] = seed
    return report


def test_random_networks_match_golden_and_cycle_model(regression):
    if regression["failure"]:
        pytest.fail(f"{regression['failure']} (base seed {regression['seed']})")
    plain = [n for n in regression["networks"] if n["label"] == "random"]
    assert len(plain) >= N_NETWORKS
    assert len([n for n in regression["networks"] if n["label"] == "conv"]) == N_CONV
    steps = sum(len(n["cycles"]) for n in plain)
    assert steps == N_NETWORKS * STEPS
    record_crosscheck("golden + cycle model vs RTL (cocotb/Verilator)", networks=len(plain),
                      samples=len(plain), steps=steps,
                      compartment_steps=steps * CoreGeometry.preset("tiny").n_compartments)
    cycles = np.concatenate([n["cycles"] for n in plain])
    sops = np.concatenate([n["sops"] for n in plain])
    print(f"\nRTL regression (tiny): {len(plain)} networks x {STEPS} steps; cycles/step "
          f"mean {cycles.mean():.0f} (min {cycles.min()}, max {cycles.max()}); "
          f"SOP/cycle {sops.sum() / cycles.sum():.3f}; "
          f"{regression['total_sim_cycles']} simulated cycles in "
          f"{regression['total_wall_s']:.1f} s "
          f"({regression['total_sim_cycles'] / regression['total_wall_s']:.0f} cycles/s); "
          f"build {regression['build_s']:.1f} s")


def test_forwarding_networks_cover_back_to_back_writes(regression):
    """The forwarding networks match golden and exercise the forwarding path far more often
    than the random ones (cycle-model count of RMWs on the entry written the cycle before)."""
    if regression["failure"]:
        pytest.fail(regression["failure"])
    fwd = [n for n in regression["networks"] if n["label"] == "forwarding"]
    plain = [n for n in regression["networks"] if n["label"] == "random"]
    assert len(fwd) == N_FORWARDING
    assert all(n["mismatch"] is None for n in fwd)
    f_fwd, f_plain = sum(n["forwards"] for n in fwd), sum(n["forwards"] for n in plain)
    sops = sum(sum(n["sops"]) for n in fwd)
    print(f"\nforwarded RMWs: {f_fwd} of {sops} in {len(fwd)} forwarding networks "
          f"({sum(n['forwards'] > 0 for n in fwd)} with any), {f_plain} in {len(plain)} "
          f"random networks")
    assert f_fwd >= 1000 and f_fwd >= 10 * max(f_plain, 1)
    assert sum(n["forwards"] > 0 for n in fwd) >= 0.75 * len(fwd)
    record_crosscheck("golden + cycle model vs RTL (cocotb/Verilator)", networks=len(fwd),
                      samples=len(fwd), steps=sum(len(n["cycles"]) for n in fwd),
                      compartment_steps=sum(len(n["cycles"]) for n in fwd)
                      * CoreGeometry.preset("tiny").n_compartments)


def test_output_backpressure_never_drops(regression):
    if regression["failure"]:
        pytest.fail(regression["failure"])
    bp = [n for n in regression["networks"] if n["label"] == "backpressure"]
    assert len(bp) == N_BACKPRESSURE
    assert all(n["mismatch"] is None for n in bp)
    assert sum(n["stalls"] for n in bp) > 0


def test_corruptions_are_detected(regression):
    if regression["failure"]:
        pytest.fail(regression["failure"])
    mutated = [n for n in regression["networks"] if n["label"] == "mutation"]
    assert len(mutated) == N_MUTATION_SEEDS * len(MUTATION_KINDS)
    for n in mutated:
        assert n["mismatch"] and f"seed {n['seed']}" in n["mismatch"], n
    fields = {n["mutation"].split(".")[1].split(":")[0] for n in mutated}
    assert fields == {"weight", "delay", "vth"}


@pytest.mark.parametrize("lanes", [c for c in LANE_CONFIGS if c != (1, 1)],
                         ids=lambda c: f"ku{c[0]}-ks{c[1]}")
def test_lane_configuration_matches_golden_cycle_model_and_counters(lanes):
    """Every lane configuration: random, forwarding-stress and backpressure networks equal
    golden (u, v every step), the cycle model (step lengths, events with their cycles) and
    its counters, in their own Verilator build."""
    seed = base_seed()
    g = CoreGeometry.preset("tiny").replace(k_u=lanes[0], k_s=lanes[1])
    report = run_regression(lane_plan(seed), geometry=g, name="lanes")
    assert report["failure"] is None, f"{report['failure']} (base seed {seed})"
    nets = report["networks"]
    assert len(nets) == N_LANE_NETWORKS + N_LANE_FORWARDING + 1
    assert all(n["counters"]["cycles"] == sum(n["cycles"]) for n in nets)
    steps = sum(len(n["cycles"]) for n in nets)
    record_crosscheck(f"golden + cycle model vs RTL (cocotb/Verilator, k_u={lanes[0]}, "
                      f"k_s={lanes[1]})", networks=len(nets), samples=len(nets), steps=steps,
                      compartment_steps=steps * g.n_compartments)
    fwd = sum(n["forwards"] for n in nets if n["label"] == "forwarding")
    print(f"\nlanes k_u={lanes[0]} k_s={lanes[1]}: {len(nets)} networks, SOP/cycle "
          f"{sum(n['counters']['sops'] for n in nets) / sum(n['counters']['cycles'] for n in nets):.3f}, "
          f"{fwd} forwarded RMWs; build {report['build_s']:.1f} s, run {report['wall_s']:.1f} s")


def test_waves_write_an_fst(seed):
    """WAVES builds a traced model in sim_build/<geometry>-waves and writes an FST."""
    report = run_regression([{"seed": seed, "steps": 2}], geometry="tiny", name="waves_check",
                            waves=True)
    assert report["failure"] is None, report["failure"]
    fst = build_dir_for("tiny", waves=True) / "waves_check.fst"
    assert report["waves"] == str(fst)
    assert fst.exists() and fst.stat().st_size > 0
    assert fst.read_bytes()[:1] == b"\x00"          # FST header block
