"""Step controller: the phases of a time step (spec/schedule.py ``Phase``), the step counter
and delay slot, the UPDATE group counter, the CLEAR sweep and the sticky error flags.

One step, from the cycle in which ``ctrl.start`` is accepted (the start cycle, in IDLE):

- UPDATE: the idle-skip scanner (``rtl/idle_skip.py``) issues one needed group per cycle
  (or moves past a window without one) until it passes ``groups = ceil(n_active / k_u)``;
  at least one cycle;
- DRAIN: ``drain_cycles(geometry)`` cycles, until the last write-back and its spike in the queue;
- HOST: until the step's host spikes have left the host queue (at least one cycle);
- SPIKE: until the spike queue is empty and the route reader, the walker and the synapse
  lanes are idle (at least one cycle);
- DONE: ``ctrl.done``; the step counter and the slot ``t mod D`` advance.

On a chip core (``n_cores > 1``) SPIKE ends only on the chip's barrier: ``deliver_done`` is
high in SPIKE while the core has no DELIVER work left (``idle``: queues empty, walker and
lanes idle, no remote flit queued); the core stays in SPIKE, accepting remote flits, until
``step_end`` (the chip's barrier, docs/rtl.md §8) is high together with ``idle``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry
from ..spec.schedule import Phase, drain_cycles

__all__ = ["StepController", "ControlSignature", "ErrorFlags"]

#: Sticky error flags (``ctrl.error``), cleared by ``ctrl.error_clear``.
ErrorFlags = data.StructLayout({
    "cfg_range": 1,     # configuration access to an address beyond the memory's depth (ignored)
    "input_range": 1,   # host spike on an axon id >= n_axons (dropped)
    "list_range": 1,    # a route to an axon >= n_axons or a synapse to a compartment >= n (skipped)
})


class ControlSignature(wiring.Signature):
    """Time-step control, seen from the host: ``start`` runs one step, ``clear`` zeroes every
    state and accumulator entry and the step counter (both accepted while not ``busy``);
    ``done`` is high in the last cycle of a step; ``step`` is the step that runs (or runs
    next); ``error`` holds the sticky :data:`ErrorFlags` until ``error_clear``."""

    def __init__(self, g: CoreGeometry, step_bits: int):
        super().__init__({
            "start": Out(1),
            "clear": Out(1),
            "error_clear": Out(1),
            "busy": In(1),
            "done": In(1),
            "step": In(step_bits),
            "error": In(ErrorFlags),
        })


class StepController(wiring.Component):
    """Members: ``ctrl`` (the core's control port), status inputs from the components
    (``groups``, the scanner's ``found``/``next_pos``, ``drained``, ``spikes_empty``,
    ``routes_busy``, ``walker_busy``, ``lanes_busy``, error strobes
    ``cfg_range``/``input_range``/``list_range``) and the schedule outputs (``phase``,
    ``running``, ``cfg_open``, ``started``, ``issue``, ``pos``, ``slot``, ``clearing``,
    ``sweep``, ``done_cycle``, ``step_cycle``); on a chip core also ``flits_empty`` (no remote
    flit queued), ``step_end`` (the chip's barrier) and ``deliver_done``."""

    def __init__(self, geometry: CoreGeometry, step_bits: int):
        g = self.geometry = geometry
        self.rows = g.bank_depth * g.n_delay_slots
        chip = ({"flits_empty": In(1), "step_end": In(1), "deliver_done": Out(1)}
                if g.n_cores > 1 else {})
        super().__init__({
            **chip,
            "ctrl": In(ControlSignature(g, step_bits)),
            "groups": In(range(g.bank_depth + 1)),
            "found": In(1), "next_pos": In(range(g.bank_depth + 1)),
            "drained": In(1), "spikes_empty": In(1), "routes_busy": In(1),
            "walker_busy": In(1), "lanes_busy": In(1),
            "cfg_range": In(1), "input_range": In(1), "list_range": In(1),
            "phase": Out(3), "running": Out(1), "cfg_open": Out(1), "started": Out(1),
            "issue": Out(1), "pos": Out(range(g.bank_depth + 1)),
            "slot": Out(range(g.n_delay_slots)),
            "clearing": Out(1), "sweep": Out(range(self.rows)),
            "done_cycle": Out(1), "step_cycle": Out(1),
        })

    def elaborate(self, platform):
        g = self.geometry
        m = Module()
        ctrl = self.ctrl
        step = Signal.like(ctrl.step)
        error = Signal(ErrorFlags)
        raised = Signal(ErrorFlags)
        m.d.comb += [raised.cfg_range.eq(self.cfg_range), raised.input_range.eq(self.input_range),
                     raised.list_range.eq(self.list_range),
                     ctrl.step.eq(step), ctrl.error.eq(error)]
        with m.If(ctrl.error_clear):
            m.d.sync += error.eq(raised)
        with m.Else():
            m.d.sync += error.eq(error.as_value() | raised.as_value())
        drain_last = drain_cycles(self.geometry) - 1
        drain = Signal(range(drain_last + 1))

        def enter(phase: Phase):
            m.d.sync += self.phase.eq(phase.value)
            m.next = phase.name

        with m.FSM(name="phase"):
            with m.State(Phase.IDLE.name):
                m.d.comb += self.cfg_open.eq(~ctrl.start & ~ctrl.clear)
                with m.If(ctrl.clear):
                    m.d.sync += self.sweep.eq(0)
                    enter(Phase.CLEAR)
                with m.Elif(ctrl.start):
                    m.d.comb += [self.started.eq(1), self.step_cycle.eq(1)]
                    m.d.sync += self.pos.eq(0)
                    enter(Phase.UPDATE)
            with m.State(Phase.CLEAR.name):
                m.d.comb += [self.clearing.eq(1), self.running.eq(1)]
                m.d.sync += self.sweep.eq(self.sweep + 1)
                with m.If(self.sweep == self.rows - 1):
                    m.d.sync += [step.eq(0), self.slot.eq(0)]
                    enter(Phase.IDLE)
            with m.State(Phase.UPDATE.name):
                m.d.comb += [self.running.eq(1), self.step_cycle.eq(1), self.issue.eq(self.found)]
                m.d.sync += self.pos.eq(self.next_pos)
                with m.If(self.next_pos >= self.groups):
                    m.d.sync += drain.eq(0)
                    enter(Phase.DRAIN)
            with m.State(Phase.DRAIN.name):
                m.d.comb += [self.running.eq(1), self.step_cycle.eq(1)]
                m.d.sync += drain.eq(drain + 1)
                with m.If(drain == drain_last):
                    enter(Phase.HOST)
            with m.State(Phase.HOST.name):
                m.d.comb += [self.running.eq(1), self.step_cycle.eq(1)]
                with m.If(self.drained):
                    enter(Phase.SPIKE)
            with m.State(Phase.SPIKE.name):
                m.d.comb += [self.running.eq(1), self.step_cycle.eq(1)]
                idle = (self.spikes_empty & ~self.routes_busy & ~self.walker_busy
                        & ~self.lanes_busy)
                if g.n_cores > 1:
                    idle = idle & self.flits_empty
                    m.d.comb += self.deliver_done.eq(idle)
                    idle = idle & self.step_end
                with m.If(idle):
                    enter(Phase.DONE)
            with m.State(Phase.DONE.name):
                m.d.comb += [self.running.eq(1), self.step_cycle.eq(1), self.done_cycle.eq(1),
                             ctrl.done.eq(1)]
                m.d.sync += [step.eq(step + 1),
                             self.slot.eq(self._next_slot())]
                enter(Phase.IDLE)
        m.d.comb += ctrl.busy.eq(self.running)
        return m

    def _next_slot(self):
        return Mux(self.slot == self.geometry.n_delay_slots - 1, 0, self.slot + 1)
