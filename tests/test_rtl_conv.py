"""Conv descriptors in the RTL (spec §3.5; rtl/conv_walker.py, rtl/synapse_walker.py).

* The cycle model's scatter (``conv_cycles``: the chunks the generator issues, one per cycle)
  lists exactly golden/conv.py's pairs in the spec's scatter order, at most ``k_s`` per cycle,
  one per synapse bank, at least one.
* The ``conv`` memory is select 9 of the configuration port, only on a geometry with
  ``n_conv > 0``; it reads back what was loaded.
* Regression: seeded random conv networks (``random_conv_network``: CONV, DEPTHWISE and
  BROADCAST descriptors, strides, padding, recurrent second layers, dense lists beside them)
  on the tiny preset with lanes (k_u, k_s) in {(1, 1), (2, 4), (4, 2)}, all networks of one
  lane configuration in one job on the C++ harness: every step's length and output events
  with their cycles against the cycle model, u and v of every compartment every 4 steps
  against golden, every hardware counter against the cycle model, and the ``sops`` counter
  against the synaptic operations counted from golden's spikes (dense and conv pairs).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import base_seed

from neurocore.golden.conv import expand
from neurocore.golden.core import GoldenCore
from neurocore.golden.random_networks import random_conv_network
from neurocore.sim.fast import run_many_fast
from neurocore.sim.stored import StoredRun
from neurocore.spec.cycle_model import conv_cycles
from neurocore.spec.geometry import CoreGeometry
from neurocore.spec.schedule import MEMORY_INDEX, port_targets
from neurocore.spec.words import memories

TINY = CoreGeometry.preset("tiny")
STEPS = 24
#: lanes (k_u, k_s) -> networks: 56 in all.
LANES = {(1, 1): 24, (2, 4): 16, (4, 2): 16}


def lanes_geometry(k_u: int, k_s: int) -> CoreGeometry:
    return TINY if (k_u, k_s) == (1, 1) else TINY.replace(k_u=k_u, k_s=k_s)


def conv_runs(seed: int, g: CoreGeometry, n: int, *, reads=()) -> list[StoredRun]:
    runs = []
    for i in range(n):
        net = random_conv_network(seed + i, g, steps=STEPS)
        runs.append(StoredRun(net.config, net.inputs, f"conv seed {seed + i}", 4, 0,
                              reads if i == 0 else ()))
    return runs


def golden_sops(run: StoredRun) -> int:
    """Synaptic operations of a run from golden's spikes: per step, every axon spike (host or
    routed) times the axon's pairs (dense list and scatter)."""
    cfg = run.config
    g = cfg.geometry
    fan = np.bincount(cfg.synapse_list(conv=True).axon, minlength=g.n_axons)
    R, _ = cfg.route_matrices()
    spikes = GoldenCore(cfg).run(run.inputs).spikes[0]
    counts = run.inputs[0].astype(np.int64) + spikes.astype(np.int64) @ R
    return int((counts * fan[None, :]).sum())


def test_scatter_cycles_are_the_golden_pairs_in_scatter_order(seed):
    for k_s in (1, 2, 4, 8):
        g = TINY.replace(k_s=k_s)
        for s in range(seed, seed + 12):
            cfg = random_conv_network(s, g, steps=2).config
            cycles = conv_cycles(cfg)
            axon, target, address = expand(cfg)
            want: dict[int, list] = {}
            for a, t, w in zip(axon.tolist(), target.tolist(), address.tolist()):
                want.setdefault(a, []).append((w, t))
            assert {a: [p for c in cl for p in c] for a, cl in cycles.items()} == want, (s, k_s)
            for cl in cycles.values():
                for c in cl:
                    banks = [w % k_s for w, _ in c]
                    assert 1 <= len(c) <= k_s and len(set(banks)) == len(c)


def test_conv_memory_only_where_the_geometry_has_it():
    assert MEMORY_INDEX["registers"] == 8 and MEMORY_INDEX["conv"] == 9
    assert port_targets(TINY)["conv"] == (8, memories(TINY)["conv"].layout.size)
    assert set(port_targets(TINY)) == set(memories(TINY)) | {"registers"}
    ice = CoreGeometry.preset("icebreaker")
    assert ice.n_conv == 0 and "conv" not in port_targets(ice)
    for name in ("tiny", "ulx3s"):
        g = CoreGeometry.preset(name)
        assert g.n_conv > 0 and memories(g)["conv"].layout.size <= 64


@pytest.mark.parametrize("lanes", list(LANES), ids=lambda ks: f"ku{ks[0]}-ks{ks[1]}")
def test_conv_networks_match_golden_and_cycle_model(lanes):
    seed = base_seed() + 4000
    g = lanes_geometry(*lanes)
    n = LANES[lanes]
    t0 = time.perf_counter()
    runs = conv_runs(seed, g, n, reads=[(0, 0, MEMORY_INDEX["conv"], 0, g.n_conv)])
    reports = run_many_fast(g, runs, name=f"conv_ku{lanes[0]}_ks{lanes[1]}")
    failures = [r["failure"] for r in reports if r["failure"]]
    assert not failures, f"{len(failures)} of {n} conv networks: {failures[0]}"
    samples = [r["networks"][0]["samples"][0] for r in reports]
    (conv_read,) = samples[0]["reads"]
    assert conv_read["words"] == runs[0].config.to_words()["conv"].tolist()
    sops = [s["counters"]["sops"] for s in samples]
    assert sops == [golden_sops(r) for r in runs]
    deliver = sum(s["counters"]["host_cycles"] + s["counters"]["spike_cycles"]
                  for s in samples)
    scatter = [c for r in runs for cl in conv_cycles(r.config).values() for c in cl]
    conv_axons = sum(len(conv_cycles(r.config)) for r in runs)
    assert conv_axons >= n and sum(sops) > 0
    print(f"\n{n} conv networks, lanes {lanes}: {sum(sum(s['cycles']) for s in samples)} cycles, "
          f"{sum(sops)} SOPs, {sum(sops) / deliver:.2f} SOP per HOST+SPIKE cycle; scatter "
          f"{sum(map(len, scatter)) / len(scatter):.2f} pairs per cycle; "
          f"{time.perf_counter() - t0:.1f} s (build {reports[0]['build_s']:.1f} s)")
