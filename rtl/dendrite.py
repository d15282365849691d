"""One synapse lane's dendritic accumulators and its read-modify-write pipeline.

Lane ``j`` of ``k_s`` owns ``k_u`` accumulator banks (bank ``i`` holds compartments
``cx ≡ i mod k_u``; row ``slot · bank_depth + cx // k_u``).  It adds the synapses of synapse
bank ``j`` only, so two lanes never write one entry; a compartment's input is the sum of its
entries over the lanes (wrapped to ``acc_bits``, exactly the spec's single accumulator because
addition modulo ``2**acc_bits`` does not depend on the order).

Timing (docs/rtl.md §2): S1 computes the entry ``((t+1+delay) mod D, target)`` of the synapse
word and reads it; S2 adds ``weight << weight_exp`` and writes it back.  A write to the entry
written in the cycle before is forwarded (the read was stale).  With ``read_regs`` (spec/
schedule.py ``synapse_stages``) the walker's word (block-RAM data) is registered first (S0),
and every bank's read data too (S2r, between S1 and S2): the writes of the two cycles before
are forwarded, the latest first.
During UPDATE the update lanes read row ``upd_row`` of every bank (data on ``upd_data`` the
next cycle) and clear it with ``clr_en``/``clr_row``; the CLEAR sweep uses the same port.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry
from ..spec.words import SignMode, accumulator_layout, synapse_layout
from .config_bus import ConfigBus, ConfigReader, bank_split
from .fault import Fault, inject

__all__ = ["DendriteLane", "accumulator_row"]


def accumulator_row(g: CoreGeometry, slot, cx_hi):
    """Row of entry ``(slot, cx)`` in its bank, ``cx_hi = cx // k_u``."""
    return slot * g.bank_depth + cx_hi


class DendriteLane(wiring.Component):
    """Accumulator banks and read-modify-write pipeline of synapse lane ``lane``.

    Members: ``cfg`` (configuration bus; a read of ``accumulators`` puts this lane's entry on
    ``cfg_data`` the next cycle, a write stores ``wdata`` in lane 0 and 0 in the others),
    ``running`` (the core is not idle: memories follow the pipeline, not the bus), ``slot``
    (``t mod D``), ``syn_valid``/``syn`` (the synapse word of this lane), ``upd_row`` /
    ``upd_data`` (update read, one entry per bank, one cycle later), ``clr_en``/``clr_row``
    (write 0 into that row of every bank), ``sop`` (a read-modify-write in S2 this cycle),
    ``sop_slot``/``sop_group`` (its entry's slot and row in the bank), ``busy`` (a stage holds
    a synapse), ``list_range`` (a synapse's target is ``>= n``: skipped).
    """

    def __init__(self, geometry: CoreGeometry, lane: int, *, fault: Fault | None = None):
        g = self.geometry = geometry
        self.lane = lane
        self.fault = fault
        self.rows = g.bank_depth * g.n_delay_slots
        acc = accumulator_layout(g)
        super().__init__({
            "cfg": In(ConfigBus(g)),
            "cfg_data": Out(acc),
            "running": In(1),
            "slot": In(range(g.n_delay_slots)),
            "syn_valid": In(1),
            "syn": In(synapse_layout(g)),
            "upd_row": In(range(self.rows)),
            "upd_data": Out(data.ArrayLayout(acc, g.k_u)),
            "clr_en": In(1),
            "clr_row": In(range(self.rows)),
            "sop": Out(1),
            "sop_slot": Out(range(g.n_delay_slots)),
            "sop_group": Out(range(g.bank_depth)),
            "busy": Out(1),
            "list_range": Out(1),
        })

    def elaborate(self, platform):
        g, f = self.geometry, self.fault
        n, D, k_u = g.n_compartments, g.n_delay_slots, g.k_u
        m = Module()
        acc = accumulator_layout(g)
        banks = [Memory(shape=acc, depth=self.rows, init=[]) for _ in range(k_u)]
        for i, b in enumerate(banks):
            m.submodules[f"bank{i}"] = b
        rd = [b.read_port() for b in banks]
        wr = [b.write_port() for b in banks]

        # ---- S0: the synapse word into registers ---------------------------------------
        syn, syn_valid, held = self.syn, self.syn_valid, []
        for k in range(g.read_regs):
            r_syn, r_valid = Signal.like(syn, name=f"s0_{k}_syn"), Signal(name=f"s0_{k}_valid")
            m.d.sync += [r_syn.eq(syn), r_valid.eq(syn_valid)]
            syn, syn_valid = r_syn, r_valid
            held.append(r_valid)

        # ---- S1: entry address, contribution -------------------------------------------
        delay_sum = Signal(range(2 * D))
        s1_slot = Signal(range(D))
        m.d.comb += [delay_sum.eq(self.slot + 1 + syn.delay),
                     s1_slot.eq(Mux(delay_sum >= D, delay_sum - D, delay_sum))]
        s1_bank, s1_hi = bank_split(syn.target, k_u)
        s1_row = Signal(range(self.rows))
        m.d.comb += s1_row.eq(accumulator_row(g, s1_slot, s1_hi))
        weight = Signal(range(-(1 << g.weight_bits), 1 << g.weight_bits))
        with m.Switch(syn.sign_mode):
            with m.Case(SignMode.EXCITATORY):
                m.d.comb += weight.eq(syn.weight)
            with m.Case(SignMode.INHIBITORY):
                m.d.comb += weight.eq(-syn.weight)
            with m.Default():             # MIXED (and unused patterns, as the golden model)
                m.d.comb += weight.eq(syn.weight.as_signed() << 1)
        target_ok = (syn.target < n) if n < (1 << g.cx_bits) else Const(1)
        m.d.comb += self.list_range.eq(syn_valid & ~target_ok)

        # ---- S2 (with read_regs: S2r, then S2): add and write back, forwarding ----------
        p_valid, p_bank = Signal(name="p2_valid"), Signal(range(k_u), name="p2_bank")
        p_row = Signal(range(self.rows), name="p2_row")
        p_slot, p_group = Signal.like(self.sop_slot), Signal.like(self.sop_group)
        contrib = Signal(signed(len(weight) + (1 << g.weight_exp_bits) - 1))
        m.d.sync += [p_valid.eq(syn_valid & target_ok), p_bank.eq(s1_bank), p_row.eq(s1_row),
                     contrib.eq(weight << syn.weight_exp), p_slot.eq(s1_slot),
                     p_group.eq(s1_hi)]
        bank_data, stages = [rd[i].data for i in range(k_u)], [p_valid]
        for k in range(g.read_regs):      # S2r: every bank's block-RAM data into a register
            r_data = [Signal(acc, name=f"s2r{k}_bank{i}") for i in range(k_u)]
            m.d.sync += [r.eq(d) for r, d in zip(r_data, bank_data)]
            r_valid, r_bank = Signal(name=f"s2r{k}_valid"), Signal.like(p_bank)
            r_row, r_slot, r_group = Signal.like(p_row), Signal.like(p_slot), Signal.like(p_group)
            r_contrib = Signal.like(contrib)
            m.d.sync += [r_valid.eq(p_valid), r_bank.eq(p_bank), r_row.eq(p_row),
                         r_slot.eq(p_slot), r_group.eq(p_group), r_contrib.eq(contrib)]
            bank_data, p_valid, p_bank, p_row = r_data, r_valid, r_bank, r_row
            p_slot, p_group, contrib = r_slot, r_group, r_contrib
            stages.append(p_valid)
        stored = Signal(acc)
        with m.Switch(p_bank):
            for i in range(k_u):
                with m.Case(i):
                    m.d.comb += stored.eq(bank_data[i])
        # the read missed the writes of the 1 + read_regs cycles before: forward them, the
        # latest first
        old, new = Signal(acc), Signal(acc)
        fwd, value = [], stored
        for k in range(1 + g.read_regs):
            fwd.append((Signal(name=f"fwd{k}_valid"), Signal(range(k_u), name=f"fwd{k}_bank"),
                        Signal(range(self.rows), name=f"fwd{k}_row"),
                        Signal(acc, name=f"fwd{k}_data")))
        for k in reversed(range(len(fwd))):
            f_valid, f_bank, f_row, f_data = fwd[k]
            hit = Signal(name=f"hit{k}")
            m.d.comb += hit.eq(f_valid & (f_bank == p_bank) & (f_row == p_row))
            hit = inject(m, f, "fwd_hit", hit)
            value = Mux(hit, f_data, value)
        m.d.comb += [old.eq(value), new.acc.eq(old.acc + contrib)]
        new = inject(m, f, "acc_new", new)
        m.d.sync += [fwd[0][0].eq(p_valid), fwd[0][1].eq(p_bank), fwd[0][2].eq(p_row),
                     fwd[0][3].eq(new)]
        for k in range(1, len(fwd)):
            m.d.sync += [a.eq(b) for a, b in zip(fwd[k], fwd[k - 1])]
        m.d.comb += [self.sop.eq(p_valid), self.sop_slot.eq(p_slot), self.sop_group.eq(p_group),
                     self.busy.eq(Cat(*stages, *held).any())]
        p2_valid, p2_bank, p2_row = p_valid, p_bank, p_row

        # ---- configuration access ------------------------------------------------------
        reader = ConfigReader(m, self.cfg, self.cfg_data, ("accumulators",))
        c_slot = Signal(range(D))
        for s in range(1, D):
            with m.If(self.cfg.addr >= s * n):
                m.d.comb += c_slot.eq(s)
        c_cx = Signal(range(n))
        m.d.comb += c_cx.eq(self.cfg.addr - c_slot * n)
        c_bank, c_hi = bank_split(c_cx, k_u)
        c_row = Signal(range(self.rows))
        m.d.comb += c_row.eq(accumulator_row(g, c_slot, c_hi))
        c_bank_q = Signal(range(k_u))
        m.d.sync += c_bank_q.eq(c_bank)
        with m.Switch(c_bank_q):
            for i in range(k_u):
                with m.Case(i):
                    reader.drive("accumulators", rd[i].data)

        # ---- ports of every bank -------------------------------------------------------
        cfg_write = reader.write("accumulators")
        for i in range(k_u):
            m.d.comb += rd[i].addr.eq(Mux(~self.running, c_row,
                                          Mux(syn_valid, s1_row, self.upd_row)))
            m.d.comb += self.upd_data[i].eq(rd[i].data)
            with m.If(self.clr_en):
                m.d.comb += [wr[i].en.eq(1), wr[i].addr.eq(self.clr_row), wr[i].data.eq(0)]
            with m.Elif(p2_valid & (p2_bank == i)):
                m.d.comb += [wr[i].en.eq(1), wr[i].addr.eq(p2_row), wr[i].data.eq(new)]
            with m.Elif(cfg_write & (c_bank == i)):
                value = self.cfg.wdata[:g.acc_bits] if self.lane == 0 else 0
                m.d.comb += [wr[i].en.eq(1), wr[i].addr.eq(c_row), wr[i].data.eq(value)]
        return m
