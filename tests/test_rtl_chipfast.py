"""The RTL chip in the C++ Verilator harness (sim/chipfast.py) equals GoldenChip, and the chip
cycle model (spec/chip_cycle_model.py) predicts its counters exactly.

Random dense and conv networks on random partitions of a 4-core chip of tiny-sized cores:
every output event (id and order), ``u``/``v`` of every compartment after every step and the
flits equal :class:`GoldenChip`; the model's step lengths, event cycles, chip counters
(``cycles``, ``flits``, ``flit_waits``) and every core's counters equal the RTL's.  Then the
same with 1-deep FIFOs, 2 update and 2 synapse lanes and random ``out.ready`` (flits wait,
events stall).  A corrupted weight is reported with image, step, core, compartment and field.
Seeds: ``NEUROCORE_SEED`` (tests/conftest.py), printed in every failure.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_chip import random_partition

from neurocore.golden.chip import Partition, build_chip
from neurocore.golden.random_networks import random_conv_network, random_network
from neurocore.sim.chipfast import check_chip_fast
from neurocore.spec.chip_cycle_model import chip_schedule, chip_totals
from neurocore.spec.geometry import ChipGeometry, ConfigError, CoreGeometry

STEPS, N_CORES, CASES, MIN_FLITS = 6, 4, 6, 8


def harness_chip(lanes: tuple[int, int] = (1, 1)) -> ChipGeometry:
    """One fixed 4-core chip of tiny-sized cores (one Verilator build), with room for the
    routes and dense conv remnants a random partition makes."""
    core = CoreGeometry.preset("tiny").replace(
        name=f"tiny-chip{N_CORES}-{lanes[0]}x{lanes[1]}", n_cores=N_CORES, max_routes=64,
        n_routes=1024, n_synapses=4096, max_fanout=4096, k_u=lanes[0], k_s=lanes[1])
    return ChipGeometry(name=core.name, core=core, n_cores=N_CORES, mesh=(2, 2))


def cases(seed: int, geo: ChipGeometry, n: int):
    """``n`` networks (dense and conv alternating) from ``seed`` on random partitions of
    ``geo`` with at least ``MIN_FLITS`` flits: (chip config, raster, network seed)."""
    out, s = [], seed
    while len(out) < n:
        conv = len(out) % 2 == 1
        net = (random_conv_network(s, "tiny", steps=STEPS) if conv
               else random_network(s, "tiny", steps=STEPS, max_compartments=24))
        rng = np.random.default_rng(s)
        s += 1
        try:
            chip = build_chip(net.config, Partition(geo, random_partition(
                rng, net.config, int(rng.integers(2, N_CORES + 1)))))
        except ConfigError:
            continue
        flits = chip.remote_routes()
        from neurocore.golden.chip import GoldenChip
        spikes = GoldenChip(chip).run(net.inputs[0]).spikes
        if int((spikes.sum(axis=0) * flits).sum()) >= MIN_FLITS:
            out.append((chip, net.inputs[0], s - 1))
        assert s < seed + 400, f"too few networks with flits from seed {seed}"
    return out


def assert_model_equals_rtl(chip, x, run, where, **model_args):
    """Step lengths, event cycles, chip counters per step and every core's counters."""
    img = run.images[0]
    sched = chip_schedule(chip, x, **model_args)
    for t, (st, m) in enumerate(zip(img.steps, sched)):
        got = dict(img.chip_counters[t], step_cycles=st.cycles,
                   events=[tuple(e) for e in st.events])
        want = dict(cycles=m.cycles, step_cycles=m.cycles, events=[tuple(e) for e in m.events],
                    flits=m.flits, flit_waits=m.flit_waits)
        for key in want:
            assert got[key] == want[key], f"{where}: step {t} {key}: model {want[key]}, RTL " \
                                          f"{got[key]}"
    totals = chip_totals(sched)
    for k, (rtl, model) in enumerate(zip(img.core_counters, totals["cores"])):
        assert rtl == model, f"{where}: core {k} counters: model {model}, RTL {rtl}"
    return totals


def test_chip_harness_equals_golden_and_cycle_model(seed):
    geo = harness_chip()
    for i, (chip, x, s) in enumerate(cases(seed, geo, CASES)):
        where = f"network seed {s} on {chip.chip.n_cores} cores (NEUROCORE_SEED={seed})"
        run, _, problem = check_chip_fast(chip, x, label=where, name=f"case{i}")
        assert problem is None, problem
        assert_model_equals_rtl(chip, x, run, where)


def test_shallow_fifos_lanes_and_backpressure(seed):
    """1-deep flit FIFOs (flits wait for the router), 2 update and 2 synapse lanes, random
    ``out.ready``: still golden, and the model still exact, waits and stalls included."""
    geo = harness_chip((2, 2))
    rng = np.random.default_rng(seed)
    ready = rng.random(251) < 0.6
    waits = stalls = 0
    for i, (chip, x, s) in enumerate(cases(seed + 500, geo, 4)):
        where = f"network seed {s}, lanes (2, 2), FIFOs 1 deep (NEUROCORE_SEED={seed})"
        run, _, problem = check_chip_fast(chip, x, label=where, name=f"bp{i}", ready=ready,
                                          depths=(1, 1))
        assert problem is None, problem
        totals = assert_model_equals_rtl(chip, x, run, where, ready_pattern=ready, flit_depth=1,
                                         router_depth=1)
        waits += totals["flit_waits"]
        stalls += sum(c["stalls"] for c in totals["cores"])
    assert waits > 0 and stalls > 0, f"waits {waits}, stalls {stalls} (NEUROCORE_SEED={seed})"


def test_a_wrong_weight_is_reported_by_step_core_compartment_and_field(seed):
    """The RTL runs a config whose synapse weights on one core are changed; the report names
    where it first diverges."""
    chip, x, s = cases(seed, harness_chip(), 1)[0]
    from neurocore.golden.chip import GoldenChip
    from neurocore.sim.chipfast import chip_mismatch, run_chip_fast
    gold = GoldenChip(chip).run(x[None], record=("u", "v"))
    k = next(k for k, c in enumerate(chip.cores) if c.mem["synapse_map"]["length"].any())
    syn = chip.cores[k].mem["synapses"]
    syn["weight"][:] = (syn["weight"] + 77) % (1 << chip.chip.core.weight_bits)
    run = run_chip_fast(chip, x, name="wrong")
    msg = chip_mismatch(chip, run, gold, f"seed {s}")
    print(msg)
    assert msg is not None and f"seed {s}: image 0 step" in msg, msg
    assert ("field u" in msg or "field v" in msg or "output event" in msg), msg
    if "field" in msg:
        assert "core " in msg and "compartment" in msg and "expected" in msg and "RTL" in msg


def test_bad_inputs_are_refused_naming_the_value():
    from neurocore.sim.chipfast import run_chip_fast
    chip, x, _ = cases(0, harness_chip(), 1)[0]
    with pytest.raises(ValueError, match=r"inputs must be \(images, steps, \d+\).*\(6, 3\)"):
        run_chip_fast(chip, np.zeros((6, 3)))
    with pytest.raises(ValueError, match="FIFO depth must be a positive integer, not 0"):
        chip_schedule(chip, x, flit_depth=0)
