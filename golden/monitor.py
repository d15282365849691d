"""Spike monitor routes: make every compartment spike leave the core as an output event.

The core only emits events for OUTPUT routes (docs/spec.md §5), so a run on the RTL shows the
spikes of the compartments that have one and nothing else.  :func:`monitored` returns a copy of
a :class:`~neurocore.golden.network.CoreConfig`, laid out on :func:`monitor_geometry`, in which
every compartment's route list ends with one extra OUTPUT route to output id
``offset + cx`` (``offset`` = the original geometry's ``n_outputs``).  The original routes,
and so the original output ids ``0 … n_outputs-1`` and every synapse, stay as they are, so the
network computes exactly the same spikes, u and v; its events now name every spike.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..spec.geometry import CoreGeometry
from ..spec.words import RouteKind
from .network import CoreConfig, config_memory_names

__all__ = ["monitor_geometry", "monitored", "monitor_offset", "spikes_from_events"]


def monitor_geometry(g: CoreGeometry) -> CoreGeometry:
    """Return ``g`` with room for one more route per compartment and its output ids.

    ``n_routes`` and ``n_outputs`` grow by ``n_compartments`` and ``max_routes`` by one; every
    other depth and width is ``g``'s, so a config of ``g`` fits unchanged.
    """
    name = g.name + "-monitor" if g.name else "monitor"
    return dataclasses.replace(g, name=name, n_routes=g.n_routes + g.n_compartments,
                               n_outputs=g.n_outputs + g.n_compartments,
                               max_routes=g.max_routes + 1)


def monitor_offset(config: CoreConfig) -> int:
    """Output id of compartment 0's monitor route for a config of this geometry."""
    return config.geometry.n_outputs


def monitored(config: CoreConfig, geometry: CoreGeometry | None = None, *,
              monitor: bool = True) -> CoreConfig:
    """Return ``config`` on ``geometry`` (default :func:`monitor_geometry`) with monitor routes.

    Compartment ``cx``'s route list becomes its original routes followed by one OUTPUT route to
    ``config.geometry.n_outputs + cx``.  With ``monitor=False`` the config is only re-laid onto
    the larger geometry (same network, same routes), so one Verilator build serves both.
    """
    g0 = config.geometry
    g = monitor_geometry(g0) if geometry is None else geometry
    offset = g0.n_outputs
    need = dict(n_compartments=g0.n_compartments, n_axons=g0.n_axons,
                n_synapses=g0.n_synapses, n_profiles=g0.n_profiles,
                n_delay_slots=g0.n_delay_slots)
    for k, v in need.items():
        if getattr(g, k) != v:
            raise ValueError(f"monitor geometry {g.name!r} must keep {k}={v}, has {getattr(g, k)}")
    widths = {f.name for f in dataclasses.fields(CoreGeometry)} - set(need) - {
        "name", "n_routes", "n_outputs", "max_routes", "max_fanout"}
    for k in widths:
        if getattr(g, k) != getattr(g0, k):
            raise ValueError(f"monitor geometry {g.name!r} changes {k}")
    n = g0.n_compartments
    if monitor and g.n_outputs < offset + n:
        raise ValueError(f"monitor routes need n_outputs >= {offset + n}, {g.name!r} has "
                         f"{g.n_outputs}")
    out = CoreConfig.empty(g)
    for name in config_memory_names(g0):
        if name in ("axon_map", "routes"):
            continue
        for f, a in config.mem[name].items():
            out.mem[name][f][:a.size] = a
    am, r = config.mem["axon_map"], config.mem["routes"]
    lengths = am["length"].astype(np.int64)
    new_len = lengths + (1 if monitor else 0)
    bases = np.concatenate([[0], np.cumsum(new_len)[:-1]])
    total = int(new_len.sum())
    if total > g.n_routes:
        raise ValueError(f"monitored routes need {total} words, {g.name!r} has {g.n_routes}")
    kind = np.zeros(g.n_routes, dtype=np.int64)
    target = np.zeros(g.n_routes, dtype=np.int64)
    for cx in range(n):
        b0, k, b1 = int(am["base"][cx]), int(lengths[cx]), int(bases[cx])
        kind[b1:b1 + k] = r["kind"][b0:b0 + k]
        target[b1:b1 + k] = r["target"][b0:b0 + k]
        if monitor:
            kind[b1 + k] = RouteKind.OUTPUT.value
            target[b1 + k] = offset + cx
    out.mem["axon_map"]["base"][:] = np.where(new_len > 0, bases, 0)
    out.mem["axon_map"]["length"][:] = new_len
    out.mem["routes"]["kind"][:] = kind
    out.mem["routes"]["target"][:] = target
    return out.validate()


def spikes_from_events(outputs: np.ndarray, offset: int, n_compartments: int) -> np.ndarray:
    """Return the compartment spikes ``(…, steps, n)`` carried by monitor events.

    ``outputs``: event counts ``(…, steps, n_outputs)`` of a monitored config.
    """
    return np.asarray(outputs)[..., offset:offset + n_compartments] > 0
