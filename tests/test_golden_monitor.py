"""golden/monitor.py: monitor routes turn every compartment spike into an output event.

On random networks: the monitored config computes the same spikes, u and v, keeps the original
output events, and its monitor events (id ``n_outputs + cx``) are exactly the spikes; without
monitor routes (``monitor=False``) the config only moves onto the larger geometry and keeps
its schedule.  One monitored network also runs on the RTL in Amaranth's simulator.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurocore.golden.core import GoldenCore
from neurocore.spec.cycle_model import schedule
from neurocore.golden.monitor import (monitor_geometry, monitor_offset, monitored,
                                      spikes_from_events)
from neurocore.golden.random_networks import random_network
from neurocore.sim.pysim import run_rtl
from neurocore.spec.geometry import CoreGeometry
from neurocore.spec.words import RouteKind


@pytest.mark.parametrize("k", range(8))
def test_monitored_network_has_same_dynamics_and_one_event_per_spike(seed, k):
    net = random_network(seed + k, "tiny", steps=16, batch=2)
    g0 = net.config.geometry
    cfg = monitored(net.config)
    assert cfg.geometry == monitor_geometry(g0)
    offset = monitor_offset(net.config)
    a = GoldenCore(net.config).run(net.inputs, record=("u", "v"))
    b = GoldenCore(cfg).run(net.inputs, record=("u", "v"))
    for f in ("spikes", "u", "v"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), (f, seed + k)
    assert np.array_equal(b.outputs[..., :offset], a.outputs)
    assert np.array_equal(spikes_from_events(b.outputs, offset, g0.n_compartments), a.spikes)
    assert b.outputs[..., offset + g0.n_compartments:].sum() == 0
    # the monitor route is the last of each list; the original routes keep their order
    am, r = cfg.mem["axon_map"], cfg.mem["routes"]
    for cx in range(g0.n_compartments):
        base, length = int(am["base"][cx]), int(am["length"][cx])
        assert length == net.config.mem["axon_map"]["length"][cx] + 1
        last = base + length - 1
        assert (r["kind"][last], r["target"][last]) == (RouteKind.OUTPUT.value, offset + cx)
    plain = monitored(net.config, monitor=False)
    assert plain.geometry == cfg.geometry
    s0 = schedule(net.config, net.inputs[0])
    s1 = schedule(plain, net.inputs[0])
    assert [(s.cycles, s.events, s.sops) for s in s0] == [(s.cycles, s.events, s.sops)
                                                          for s in s1]


def test_monitor_geometry_must_keep_the_network_memories():
    net = random_network(1, "tiny", steps=2)
    g = monitor_geometry(net.config.geometry)
    with pytest.raises(ValueError, match="n_synapses"):
        monitored(net.config, g.replace(n_synapses=g.n_synapses * 2))
    with pytest.raises(ValueError, match="n_outputs"):
        monitored(net.config, g.replace(n_outputs=g.n_outputs - 1))
    with pytest.raises(ValueError, match="state_bits"):
        monitored(net.config, g.replace(state_bits=20))


def test_monitored_network_on_rtl_emits_every_spike(seed):
    """Amaranth simulator: the RTL's events of a monitored network are its spikes."""
    for k in range(50, 100):      # a network whose compartments spike
        net = random_network(seed + k, CoreGeometry.preset("tiny"), steps=12)
        cfg = monitored(net.config)
        x = net.inputs[0]
        gold = GoldenCore(cfg).run(x, record=("u", "v"))
        if gold.spikes.sum() >= 5:
            break
    rtl = run_rtl(cfg, x)
    sched = schedule(cfg, x, gold)
    offset = monitor_offset(net.config)
    for t in range(x.shape[0]):
        assert rtl.steps[t].events == sched[t].events, (t, seed + k)
        assert rtl.steps[t].cycles == sched[t].cycles
    assert np.array_equal(rtl.outputs, gold.outputs)
    assert np.array_equal(spikes_from_events(rtl.outputs, offset, 64), gold.spikes)
    assert np.array_equal(rtl.u, gold.u) and np.array_equal(rtl.v, gold.v)
    assert gold.spikes.sum() >= 5
