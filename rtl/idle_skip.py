"""Idle skip: which update groups need an update this step, and the scanner that finds them.

A group is row ``r`` of every update bank (compartments ``r·k_u … r·k_u + k_u - 1``).  It is
skipped at step ``t`` when it is **quiet** and **no input is pending** for slot ``t mod D``
(spec §2.5); its state then stays as it is, exactly what the update would have written.

- ``quiet[r]``: set at the group's write-back when every updated lane wrote ``u = 0`` with
  ``bias_mant = 0`` and ``v = 0`` or ``dv = 0`` (lanes ``>= n_active`` count as quiet);
  cleared by ``clear`` (CLEAR) and by a configuration write that can change a compartment
  (``touch``: state, compartments, profiles).
- ``pending[s][r]``: set when a synapse lane writes an accumulator entry of slot ``s`` in
  row ``r``; cleared when the group is issued in a step with slot ``s`` (the update clears
  the entry), by ``clear``; all set by a configuration write to the accumulators
  (``touch_acc``).

The scanner walks aligned windows of :attr:`window` groups: each UPDATE cycle it issues the
lowest needed group at or after ``pos`` in the current window, or moves to the next window.
With ``geometry.idle_skip = 0`` there are no flags: every group below ``groups`` is issued,
one per cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry
from ..spec.schedule import SKIP_WINDOW
from .fault import Fault, inject

__all__ = ["IdleSkip"]


class IdleSkip(wiring.Component):
    """Members: ``slot``, ``groups`` (``ceil(n_active / k_u)``, a register) and
    ``groups_next`` (its value next cycle), ``pos`` (first group the
    scanner may issue), ``found``/``group`` (a needed group in the window), ``next_pos``
    (where the scanner goes on), ``issue``/``issued`` (group ``issued`` went into the update
    pipeline, a cycle after the scanner found it: clear its pending bit),
    ``wb_valid``/``wb_group``/``wb_quiet`` (write-back), ``deliver_valid``/``deliver_slot``/
    ``deliver_row`` (per synapse lane, stage S2), ``clear``, ``touch``, ``touch_acc``."""

    def __init__(self, geometry: CoreGeometry, *, fault: Fault | None = None):
        g = self.geometry = geometry
        self.fault = fault
        self.window = min(SKIP_WINDOW, g.bank_depth)
        rows = range(g.bank_depth)
        super().__init__({
            "slot": In(range(g.n_delay_slots)),
            "groups": In(range(g.bank_depth + 1)),
            "groups_next": In(range(g.bank_depth + 1)),
            "pos": In(range(g.bank_depth + 1)),
            "found": Out(1), "group": Out(rows), "next_pos": Out(range(g.bank_depth + 1)),
            "issue": In(1), "issued": In(rows),
            "wb_valid": In(1), "wb_group": In(rows), "wb_quiet": In(1),
            "deliver_valid": In(g.k_s),
            "deliver_slot": In(data.ArrayLayout(range(g.n_delay_slots), g.k_s)),
            "deliver_row": In(data.ArrayLayout(rows, g.k_s)),
            "clear": In(1), "touch": In(1), "touch_acc": In(1),
        })

    def elaborate(self, platform):
        g = self.geometry
        m = Module()
        if not g.idle_skip:              # every group below `groups`, one per cycle
            m.d.comb += [self.found.eq(self.pos < self.groups), self.group.eq(self.pos),
                         self.next_pos.eq(self.pos + 1)]
            return m
        n, W, D = g.bank_depth, self.window, g.n_delay_slots
        quiet = Signal(n)
        pending = [Signal(n, name=f"pending{s}") for s in range(D)]

        # ---- scanner: lowest needed group in [pos, window end) ------------------------
        # The need vector and the range mask are registers (a cycle behind the flags and
        # ``groups_next``): no flag changes between a step's start cycle and its UPDATE for
        # a group the scanner has not passed, and the configuration port (``n_active``) is
        # closed in the start cycle.  The path from ``pos`` is then a window select, a mask
        # and a priority encoder; the group is ``pos``'s window with the encoder's index.
        shift = (W - 1).bit_length()
        need = Signal(n)
        with m.Switch(self.slot):
            for s in range(D):
                with m.Case(s):
                    m.d.sync += need.eq(~quiet | pending[s])
        in_range = Signal(n)
        m.d.sync += in_range.eq(Cat(self.groups_next > r for r in range(n)))
        need = inject(m, self.fault, "skip_need", need & in_range)
        padded = Cat(need, Const(0, -n % W))        # whole windows
        window = Signal(W)
        m.d.comb += window.eq(padded.word_select(self.pos >> shift, W) if n > W else need)
        low = self.pos[:shift]
        hi = self.pos >> shift
        for i in reversed(range(W)):
            with m.If(window[i] & (low <= i)):
                m.d.comb += [self.found.eq(1), self.group.eq(Cat(Const(i, shift), hi))]
        m.d.comb += self.next_pos.eq(self.group + 1)
        with m.If(~self.found):                  # the next window, at most the bank's end
            if n % (1 << shift):
                end = Signal(range(n + (1 << shift) + 1))
                m.d.comb += [end.eq((hi + 1) << shift),
                             self.next_pos.eq(Mux(end > n, n, end))]
            else:
                m.d.comb += self.next_pos.eq((hi + 1) << shift)

        # ---- flags ----------------------------------------------------------------------
        with m.If(self.clear | self.touch):
            m.d.sync += quiet.eq(0)
        with m.Elif(self.wb_valid):
            m.d.sync += quiet.bit_select(self.wb_group, 1).eq(self.wb_quiet)
        for s, p in enumerate(pending):
            with m.If(self.clear):
                m.d.sync += p.eq(0)
            with m.Elif(self.touch_acc):
                m.d.sync += p.eq((1 << n) - 1)
            with m.Else():
                with m.If(self.issue & (self.slot == s)):
                    m.d.sync += p.bit_select(self.issued, 1).eq(0)
                for j in range(g.k_s):
                    with m.If(self.deliver_valid[j] & (self.deliver_slot[j] == s)):
                        m.d.sync += p.bit_select(self.deliver_row[j], 1).eq(1)
        return m
