"""Periodic reset (docs/spec.md §11): which profiles reset ``u`` and ``v`` in the next step.

Only a core with ``reset_bits > 0`` has this component.  No divider: per profile ``p`` it
keeps, ``reset_bits`` wide each,

- ``interval[p]`` = ``reset_interval`` (``I``; 0: never resets),
- ``start[p]`` = ``(−reset_offset) mod I``, the phase at step 0, computed when the profile
  word is written,
- ``phase[p]`` = ``(t − reset_offset) mod I`` for the step ``t`` that runs next.

``due[p] = (I ≠ 0) & (phase[p] = 0)``: profile ``p`` resets in step ``t``.  ``phase`` is set
to ``start`` by a write of the profile word (``write``: the word goes in as for step 0) and
by ``clear`` (the step counter becomes 0); ``advance`` (the DONE cycle, when the step counter
increments) steps every phase by one, wrapping at ``I``: ``phase + 1 = I ? 0 : phase + 1``.
So ``due`` follows the rule exactly from ``clear`` on, for profiles written while the step
counter is 0 — after ``clear`` and before the first step, as every loader does (a profile
written at a later step ``t`` resets as if it had been written at a step ``≡ 0 mod I``).

``due`` is registered: it follows a phase change one cycle later, which no step sees (the
phases change at DONE, at a write while idle and in CLEAR; the first U1 of a step comes at
least two cycles after any of them).  It is stable through a whole step; the lanes select
their compartment's bit in U1 (rtl/update_lane.py).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry
from .fault import Fault, inject

__all__ = ["ResetPhases"]


class ResetPhases(wiring.Component):
    """Members: ``write``/``addr``/``interval``/``offset`` (a profile word written through the
    configuration port: profile index, its ``reset_interval`` and ``reset_offset``),
    ``clear`` (the step counter becomes 0), ``advance`` (DONE: the step counter increments),
    ``due`` (``n_profiles`` bits: profile ``p`` resets in the step that runs next).

    ``fault`` (tests only): ``reset_due`` corrupts bit ``p`` of ``due``; ``reset_start`` a bit
    of the start phase of every profile word written (bit 0 flipped: an offset off by one)."""

    def __init__(self, geometry: CoreGeometry, *, fault: Fault | None = None):
        g = self.geometry = geometry
        if not g.reset_bits:
            self._MustUse__silence = True
            raise ValueError(f"geometry {g.name!r} has no periodic reset (reset_bits = 0)")
        self.fault = fault
        super().__init__({
            "write": In(1), "addr": In(range(g.n_profiles)),
            "interval": In(g.reset_bits), "offset": In(g.reset_bits),
            "clear": In(1), "advance": In(1),
            "due": Out(g.n_profiles),
        })

    def elaborate(self, platform):
        g = self.geometry
        m = Module()
        R = g.reset_bits
        due = Signal(g.n_profiles)
        w_start = Signal(R)             # (−offset) mod I of the word being written
        m.d.comb += w_start.eq(Mux(self.offset == 0, 0, self.interval - self.offset))
        w_start = inject(m, self.fault, "reset_start", w_start)
        for p in range(g.n_profiles):
            interval = Signal(R, name=f"interval{p}")
            start = Signal(R, name=f"start{p}")
            phase = Signal(R, name=f"phase{p}")
            nxt = Signal(R + 1, name=f"next{p}")
            m.d.comb += [nxt.eq(phase + 1), due[p].eq((interval != 0) & (phase == 0))]
            with m.If(self.write & (self.addr == p)):
                m.d.sync += [interval.eq(self.interval), start.eq(w_start), phase.eq(w_start)]
            with m.Elif(self.clear):
                m.d.sync += phase.eq(start)
            with m.Elif(self.advance):
                m.d.sync += phase.eq(Mux(nxt == interval, 0, nxt))
        m.d.sync += self.due.eq(inject(m, self.fault, "reset_due", due))
        return m
