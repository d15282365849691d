"""Cycle model of the RTL core (rtl/core.py): the length of every time step and the cycle at
which each output event leaves the core.

The RTL's controller has a fixed, data-dependent but input-timing-independent schedule
(docs/rtl.md §Schedule).  Cycles of a step are counted from the cycle in which ``ctrl.start``
is accepted (cycle 0) to the cycle in which ``ctrl.done`` is high (cycle ``cycles - 1``), with
``out.ready`` held high:

``cycles = n_compartments + FIXED_CYCLES + H + S`` where

* ``H = 1 + Σ_host (1 + max(len_a, 1))`` over the host spikes of the step (one lookup cycle
  per spike, then one cycle per synapse of axon ``a``'s list, at least one cycle), plus one
  cycle that finds the input buffer empty;
* ``S = 1 + Σ_spiking cx with routes (1 + Σ_routes cost)`` over the compartments that spiked in
  this step's UPDATE *and* have a non-empty route list, in compartment order, with
  ``cost = 1`` for an OUTPUT route and ``1 + max(len_a, 1)`` for an AXON route to axon ``a``,
  plus one cycle that finds the spike buffer empty.

The fixed cycles are the start cycle, the ``UPDATE_DRAIN`` pipeline drain cycles and the
DONE cycle; UPDATE itself takes one cycle per compartment (every compartment, used or not).
An OUTPUT route's event leaves the core (``out.valid & out.ready``) in the first cycle of its
route slot: the spike phase begins at cycle ``n_compartments + UPDATE_DRAIN + 1 + H``, each spiking
compartment first takes one cycle to fetch its route list, then its routes follow in list
order.  Each cycle with ``out.valid & ~out.ready`` (backpressure) adds one cycle to the step
and delays every later event by one.

Synaptic operations (SOPs) are the synapse read-modify-writes: ``Σ len_a`` over every
delivered axon (host spikes and AXON routes).  ``forwards`` counts the read-modify-writes
whose accumulator entry was written in the cycle before (consecutive synapses of one list
with the same target and delay): the RTL forwards the written value to them (coverage of
the forwarding path; lists never follow each other back to back).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..spec.words import RouteKind
from .core import GoldenCore
from .network import CoreConfig

__all__ = ["StepSchedule", "step_schedule", "schedule", "axon_forwards", "FIXED_CYCLES",
           "UPDATE_DRAIN"]

#: Cycles after the last compartment's issue until its state is written (U1, U2 and the
#: datapath's stages: rtl/core.py UPDATE_DRAIN_CYCLES).
UPDATE_DRAIN = 7
#: Start cycle + UPDATE drain cycles + DONE cycle.
FIXED_CYCLES = 1 + UPDATE_DRAIN + 1


@dataclass
class StepSchedule:
    """Predicted timing of one step."""

    step: int
    cycles: int
    events: list[tuple[int, int]] = field(default_factory=list)   # (output id, cycle)
    sops: int = 0                                                  # synaptic operations
    forwards: int = 0                  # RMWs on the entry written the cycle before
    update_cycles: int = 0
    host_cycles: int = 0
    spike_cycles: int = 0


def _axon_cost(length: int) -> int:
    return 1 + max(int(length), 1)


def axon_forwards(config: CoreConfig) -> np.ndarray:
    """Per axon: synapses of its list whose (target, delay) equals the previous synapse's."""
    g = config.geometry
    syn = config.synapse_list()
    same = ((syn.axon[1:] == syn.axon[:-1]) & (syn.target[1:] == syn.target[:-1])
            & (syn.delay[1:] == syn.delay[:-1]))
    out = np.zeros(g.n_axons, dtype=np.int64)
    np.add.at(out, syn.axon[1:][same], 1)
    return out


def step_schedule(config: CoreConfig, spikes: np.ndarray, host_axons, step: int = 0,
                  forwards: np.ndarray | None = None) -> StepSchedule:
    """Return the schedule of one step.

    ``spikes``: bool (n_compartments,), the compartments that spike in this step's UPDATE;
    ``host_axons``: the host spikes of the step (axon ids, any order, repeats allowed);
    ``forwards``: :func:`axon_forwards` of ``config`` (computed when None).
    """
    g = config.geometry
    fwd = axon_forwards(config) if forwards is None else forwards
    n_fwd = 0
    n = g.n_compartments
    sm_len = config.mem["synapse_map"]["length"]
    am = config.mem["axon_map"]
    routes = config.mem["routes"]

    def axon_len(a: int) -> int:
        return int(sm_len[a]) if 0 <= a < g.n_axons else 0

    sops = 0
    host = 1
    for a in host_axons:
        a = int(a)
        if not 0 <= a < g.n_axons:      # dropped at the input (error flag input_range)
            continue
        host += _axon_cost(axon_len(a))
        sops += axon_len(a)
        n_fwd += int(fwd[a])
    cycle = n + UPDATE_DRAIN + 1 + host   # first spike-phase cycle
    events = []
    spike_start = cycle
    for cx in np.flatnonzero(np.asarray(spikes, dtype=bool)).tolist():
        length = int(am["length"][cx])
        if length == 0:
            continue
        cycle += 1                      # fetch the route list
        base = int(am["base"][cx])
        for r in range(base, base + length):
            if int(routes["kind"][r]) == RouteKind.OUTPUT.value:
                events.append((int(routes["target"][r]), cycle))
                cycle += 1
            else:
                a = int(routes["target"][r])
                cycle += _axon_cost(axon_len(a))
                sops += axon_len(a)
                n_fwd += int(fwd[a]) if 0 <= a < g.n_axons else 0
    cycle += 1                          # spike buffer found empty
    spike = cycle - spike_start
    return StepSchedule(step=step, cycles=n + FIXED_CYCLES + host + spike, events=events,
                        sops=sops, forwards=n_fwd, update_cycles=n, host_cycles=host,
                        spike_cycles=spike)


def schedule(config: CoreConfig, inputs: np.ndarray, spikes: np.ndarray | None = None,
             ) -> list[StepSchedule]:
    """Return the schedule of every step of one sample.

    ``inputs``: (steps, n_axons) 0/1 raster (host spikes sent in ascending axon order);
    ``spikes``: (steps, n_compartments) compartment spikes, computed with the golden model
    when None.
    """
    x = np.asarray(inputs)
    if spikes is None:
        spikes = GoldenCore(config).run(x).spikes
    fwd = axon_forwards(config)
    return [step_schedule(config, spikes[t], np.flatnonzero(x[t]), step=t, forwards=fwd)
            for t in range(x.shape[0])]
