"""Periodic reset (docs/spec.md §11): which profiles reset ``u`` and ``v`` in the next step.

Only a core with ``reset_bits > 0`` has this component.  It owns the profiles' reset fields
(the update lanes' profile copies hold only the decay and threshold fields, so their LUT RAM
and its read path are those of a core without reset).  No divider, no comparison with the
step counter: per profile ``p`` it keeps, ``reset_bits`` wide each,

- ``last[p]`` = ``reset_interval − 1`` and ``active[p]`` = ``reset_interval ≠ 0`` (``I``),
- ``start[p]`` = ``reset_offset`` (``o < I``): the steps from step 0 to the first reset,
- ``count[p]``: the steps from the step ``t`` that runs next to the profile's next reset,
  i.e. ``(o − t) mod I``.

``due[p] = active[p] & (count[p] = 0)``: profile ``p`` resets in step ``t``.  A write of the
profile word and ``clear`` (the step counter becomes 0) set ``count = start``; ``advance``
(the DONE cycle, when the step counter increments) counts down, reloading ``last`` after 0.
So ``due`` follows the rule exactly from ``clear`` on, for profiles written while the step
counter is 0 — after ``clear`` and before the first step, as every loader does (a profile
written at a later step ``t`` resets as if written at a step ``≡ 0 mod I``).  A read of the
profile word returns ``reset_interval = active ? last + 1 : 0`` and ``reset_offset =
start``, so every word reads back as written.

``due`` is registered: it follows a change of ``count`` one cycle later, which no step sees
(the counts change at DONE, at a write while idle and in CLEAR; the first U1 of a step comes
at least two cycles after any of them).  ``due`` and ``active`` are stable through a step; the
lanes select their compartment's bits in U2 (rtl/update_lane.py).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry
from ..spec.words import profile_layout
from .config_bus import ConfigBus, ConfigReader
from .fault import Fault, inject

__all__ = ["ResetPhases"]


class ResetPhases(wiring.Component):
    """Members: ``cfg``/``rdata`` (configuration bus: writes of ``profiles`` words set a
    profile's reset fields; a read returns them at their place in the word, the lanes the
    rest), ``clear`` (the step counter becomes 0), ``advance`` (DONE: the step counter
    increments), ``due`` (``n_profiles`` bits: profile ``p`` resets in the step that runs
    next), ``active`` (``n_profiles`` bits: profile ``p`` has ``reset_interval ≠ 0``).

    ``fault`` (tests only): ``reset_due`` corrupts bit ``p`` of ``due``; ``reset_start`` a bit
    of the offset of every profile word written (bit 0 flipped: an offset off by one)."""

    def __init__(self, geometry: CoreGeometry, *, fault: Fault | None = None):
        g = self.geometry = geometry
        if not g.reset_bits:
            self._MustUse__silence = True
            raise ValueError(f"geometry {g.name!r} has no periodic reset (reset_bits = 0)")
        self.fault = fault
        super().__init__({
            "cfg": In(ConfigBus(g)), "rdata": Out(64),
            "clear": In(1), "advance": In(1),
            "due": Out(g.n_profiles), "active": Out(g.n_profiles),
        })

    def elaborate(self, platform):
        g = self.geometry
        m = Module()
        R, layout = g.reset_bits, profile_layout(g)
        word = data.View(layout, self.cfg.wdata[:layout.size])
        reader = ConfigReader(m, self.cfg, self.rdata, ("profiles",))
        written = Signal(range(g.n_profiles))
        m.d.comb += written.eq(self.cfg.addr)
        w_last = Signal(R)              # I − 1 of the word being written (all ones for I = 0)
        m.d.comb += w_last.eq(word.reset_interval - 1)
        w_start = inject(m, self.fault, "reset_start", word.reset_offset)
        due = Signal(g.n_profiles)
        regs = []
        for p in range(g.n_profiles):
            last = Signal(R, name=f"last{p}")
            start = Signal(R, name=f"start{p}")
            count = Signal(R, name=f"count{p}")
            dec = Signal(R + 1, name=f"dec{p}")      # count − 1; its borrow: count = 0
            m.d.comb += dec.eq(count - 1)
            zero = dec[R]
            m.d.comb += due[p].eq(self.active[p] & zero)
            with m.If(reader.write("profiles") & (written == p)):
                m.d.sync += [last.eq(w_last), start.eq(w_start), count.eq(w_start),
                             self.active[p].eq(word.reset_interval != 0)]
            with m.Elif(self.clear):
                m.d.sync += count.eq(start)
            with m.Elif(self.advance):
                m.d.sync += count.eq(Mux(zero, last, dec[:R]))
            regs.append((last, start, self.active[p]))
        m.d.sync += self.due.eq(inject(m, self.fault, "reset_due", due))
        # read back: the addressed profile's fields, registered (one mux per field)
        r_last, r_start, r_active = Signal(R), Signal(R), Signal()
        for reg, k in ((r_last, 0), (r_start, 1), (r_active, 2)):
            m.d.sync += reg.eq(Cat(r[k] for r in regs).word_select(written, len(reg)))
        back = Signal(layout)
        m.d.comb += [back.reset_interval.eq(Mux(r_active, r_last + 1, 0)),
                     back.reset_offset.eq(r_start)]
        reader.drive("profiles", back.as_value())
        return m
