"""Conv address generator: the (target, kernel word) pairs of one conv descriptor in hardware.

It owns the ``conv`` memory (descriptors, spec §3.5) and serves the synapse walker
(rtl/synapse_walker.py).  Timing, in cycles of the core clock, counted from the first cycle in
which the walker's map register holds an axon (``age`` 0; ``new`` restarts it):

- age 0: the map word (``word``: ``conv``, ``ci``, ``iy``, ``ix``) addresses the descriptor
  memory (registered read);
- age 1: the descriptor is out; **P1** computes the axon's output window per axis —
  ``y_lo = max(0, ceil((iy + pad − kernel_h + 1) / s))``, ``y_hi = min(out_h − 1,
  (iy + pad) >> stride_shift)`` (shifts only: ``s = 1 << stride_shift``), the first kernel
  row ``ky0 = iy + pad − (y_lo << stride_shift)``, the same for x — and the small products
  ``out_h·out_w``, ``kernel_w·out_c``, ``c_k·kernel_h``, ``co_start·out_h`` (registered);
- age ≥ 2: ``ready``: ``has_conv`` says whether the axon scatters (``conv ≠ 0`` and a
  non-empty window), and ``load`` (the walker's hand-over) starts the generator with the
  first target ``out_base + (co_start·out_h + y_lo)·out_w + x_lo`` and the first kernel word
  ``kernel_base + ((c_k·kernel_h + ky0)·kernel_w + kx0)·out_c + co_start``.

The generator then **emits** in every cycle in which ``hold`` (the axon's dense list) is low:
one chunk of up to ``k_s`` consecutive output channels of one position (``y``, ``x``, kernel
position for BROADCAST), i.e. ``k_s`` consecutive kernel words, one per synapse bank (word
``a`` in bank ``a mod k_s``).  Lane ``b`` gets offset ``o = (b − word) mod k_s`` of the chunk
(``lane_valid``), bank row ``(word + o) >> log2 k_s`` (``lane_row``) and target
``target + o·out_h·out_w`` (``lane_target``).  A position of ``C`` channels (``out_c``; 1 for
DEPTHWISE) takes ``ceil(C / k_s)`` cycles; positions follow in the spec's scatter order (y, x,
kernel position), each in the cycle after the last chunk of the one before, with incremental
addresses: x + 1 moves the kernel word by ``−(out_c << stride_shift)`` and the target by 1,
y + 1 by ``−((kernel_w·out_c) << stride_shift)`` and ``out_w`` (BROADCAST: the kernel word
restarts at ``kernel_base``; the next kernel position adds ``out_c``).  ``last`` marks the last
emitting cycle; ``busy`` holds from ``load`` to it.  :mod:`neurocore.spec.cycle_model` mirrors
this cycle by cycle (``conv_cycles``).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry
from ..spec.schedule import CONV_SETUP
from ..spec.words import CONV_KERNEL_BITS, ConvKind, conv_layout, synapse_map_layout
from .config_bus import ConfigBus, ConfigReader
from .fault import Fault, inject

__all__ = ["ConvWalker"]


class ConvWalker(wiring.Component):
    """Members: ``cfg``/``rdata`` (the ``conv`` memory), ``running``, ``word`` (the map
    register's synapse-map word), ``new`` (the map register loads this cycle), ``ready`` /
    ``has_conv`` (setup done; the held axon scatters), ``load`` (start the generator),
    ``hold`` (do not emit this cycle), ``emit``/``last``/``busy``, and per lane
    ``lane_valid``/``lane_row``/``lane_target`` (the pair issued this cycle).

    ``fault`` (tests only): ``conv_target`` corrupts the chunk's target before the lane
    offsets are added."""

    def __init__(self, geometry: CoreGeometry, *, fault: Fault | None = None):
        g = self.geometry = geometry
        self.fault = fault
        super().__init__({
            "cfg": In(ConfigBus(g)),
            "rdata": Out(64),
            "running": In(1),
            "word": In(synapse_map_layout(g)),
            "new": In(1),
            "ready": Out(1),
            "has_conv": Out(1),
            "load": In(1),
            "hold": In(1),
            "emit": Out(1),
            "last": Out(1),
            "busy": Out(1),
            "lane_valid": Out(data.ArrayLayout(1, g.k_s)),
            "lane_row": Out(data.ArrayLayout(range(g.synapse_bank_depth), g.k_s)),
            "lane_target": Out(data.ArrayLayout(g.cx_bits, g.k_s)),
        })

    def elaborate(self, platform):
        g = self.geometry
        k_s, shift = g.k_s, (g.k_s - 1).bit_length()
        A, T = g.synapse_addr_bits, g.cx_bits + 1
        S, C = g.conv_side_bits, g.conv_channel_bits
        m = Module()
        mem = m.submodules.conv = Memory(shape=conv_layout(g), depth=g.n_conv, init=[])
        rd, wr = mem.read_port(), mem.write_port()
        w, d = self.word, rd.data

        # ---- setup: age, descriptor read, P1 … P4 (one register stage each) -------------------
        age = Signal(range(CONV_SETUP + 1))
        m.d.sync += age.eq(Mux(self.new, 0, Mux(age == CONV_SETUP, CONV_SETUP, age + 1)))
        conv_field = w.conv != 0
        m.d.comb += self.ready.eq(~conv_field | (age == CONV_SETUP))
        conv_k, dw_k = d.kind == ConvKind.CONV, d.kind == ConvKind.DEPTHWISE
        bc_k = d.kind == ConvKind.BROADCAST
        wq = Signal.like(w)                  # P0: the map word (block-RAM data) registered
        m.d.sync += wq.eq(w)
        p = {n: Signal(S + 1, name=f"p2_{n}") for n in ("y_lo", "ny", "x_lo", "nx")}
        p.update({n: Signal(CONV_KERNEL_BITS, name=f"p2_{n}") for n in ("ky0", "kx0")})
        empty = Signal()
        for ax, i, size, k in (("y", wq.iy, d.out_h, d.kernel_h),
                               ("x", wq.ix, d.out_w, d.kernel_w)):
            a, a1 = Signal(S + 1, name=f"a{ax}"), Signal(S + 1, name=f"p1_a{ax}")  # iy + pad
            lo_num = Signal(range(-16, 1 << (S + 1)), name=f"lo_num_{ax}")
            lo, hi = Signal(S + 1, name=f"{ax}_lo"), Signal(S + 1, name=f"{ax}_hi")
            lo1, hi1 = Signal(S + 1, name=f"p1_{ax}_lo"), Signal(S + 1, name=f"p1_{ax}_hi")
            m.d.comb += [a.eq(i + d.pad), lo_num.eq(a + 1 - k),
                         lo.eq(Mux(lo_num <= 0, 0, (lo_num + (Const(1, 4) << d.stride_shift) - 1)
                                   >> d.stride_shift)),
                         hi.eq(Mux((a >> d.stride_shift) > size - 1, size - 1,
                                   a >> d.stride_shift))]
            m.d.sync += [a1.eq(a), lo1.eq(lo), hi1.eq(hi)]           # P1
            with m.If(bc_k):                                           # P2
                m.d.sync += [p[f"{ax}_lo"].eq(0), p[f"n{ax}"].eq(size), p[f"k{ax}0"].eq(0)]
            with m.Else():
                m.d.sync += [p[f"{ax}_lo"].eq(lo1), p[f"n{ax}"].eq(hi1 - lo1 + 1),
                             p[f"k{ax}0"].eq(a1 - (lo1 << d.stride_shift))]
            with m.If(~bc_k & (lo1 > hi1)):
                m.d.comb += empty.eq(1)
        p_empty, hw, kwc = Signal(), Signal(2 * S), Signal(CONV_KERNEL_BITS + C)
        ckkh, co_h = Signal(C + CONV_KERNEL_BITS), Signal(C + S)
        co_start, c_eff, nk = Signal(C), Signal(C + 1), Signal(2 * CONV_KERNEL_BITS)
        m.d.sync += [p_empty.eq(empty), hw.eq(d.out_h * d.out_w), kwc.eq(d.kernel_w * d.out_c),
                     ckkh.eq(Mux(conv_k, wq.ci * d.kernel_h, 0)),
                     co_h.eq(Mux(dw_k, wq.ci * d.out_h, 0)), co_start.eq(Mux(dw_k, wq.ci, 0)),
                     c_eff.eq(Mux(dw_k, 1, d.out_c)),
                     nk.eq(Mux(bc_k, d.kernel_h * d.kernel_w, 1))]
        m.d.comb += self.has_conv.eq(conv_field & ~p_empty)
        # P3: the products of the first kernel word and target; P4: their sums
        A_, T_ = 2 * A, 2 * T
        k_row, k_col, t_row = Signal(A_), Signal(A_), Signal(T_)
        m.d.sync += [k_row.eq((ckkh + p["ky0"]) * kwc), k_col.eq(p["kx0"] * d.out_c),
                     t_row.eq((co_h + p["y_lo"]) * d.out_w)]
        kstart, tstart = Signal(A), Signal(T)
        m.d.sync += [kstart.eq(d.kernel_base + k_row + k_col + co_start),
                     tstart.eq(d.out_base + t_row + p["x_lo"])]

        # ---- generator ------------------------------------------------------------------------
        valid = Signal()
        c_rem, k_rem = Signal(C + 1), Signal(2 * CONV_KERNEL_BITS)
        x_rem, y_rem = Signal(S + 1), Signal(S + 1)
        g_ceff, g_nk, g_nx = Signal.like(c_eff), Signal.like(nk), Signal(S + 1)
        kc, kk, kx, ky = (Signal(A, name=n) for n in ("kc", "kk", "kx", "ky"))
        tc, tx, ty = (Signal(T, name=n) for n in ("tc", "tx", "ty"))
        dkx, dky, dkk = Signal(A), Signal(A), Signal(A)
        g_w, hw_ks = Signal(S), Signal(T)
        mult = [Signal(T, name=f"mult{o}") for o in range(k_s)]
        emit = Signal()
        m.d.comb += [emit.eq(valid & ~self.hold), self.emit.eq(emit), self.busy.eq(valid)]
        chunk_last = c_rem <= k_s
        m.d.comb += self.last.eq(emit & chunk_last & (k_rem == 1) & (x_rem == 1) & (y_rem == 1))
        with m.If(emit):
            with m.If(~chunk_last):
                m.d.sync += [c_rem.eq(c_rem - k_s), kc.eq(kc + k_s), tc.eq(tc + hw_ks)]
            with m.Else():
                m.d.sync += c_rem.eq(g_ceff)
                with m.If(k_rem != 1):
                    m.d.sync += [k_rem.eq(k_rem - 1), kk.eq(kk + dkk), kc.eq(kk + dkk),
                                 tc.eq(tx)]
                with m.Elif(x_rem != 1):
                    m.d.sync += [x_rem.eq(x_rem - 1), k_rem.eq(g_nk), kx.eq(kx - dkx),
                                 kk.eq(kx - dkx), kc.eq(kx - dkx), tx.eq(tx + 1), tc.eq(tx + 1)]
                with m.Elif(y_rem != 1):
                    m.d.sync += [y_rem.eq(y_rem - 1), x_rem.eq(g_nx), k_rem.eq(g_nk)]
                    m.d.sync += [s.eq(ky - dky) for s in (ky, kx, kk, kc)]
                    m.d.sync += [s.eq(ty + g_w) for s in (ty, tx, tc)]
                with m.Else():
                    m.d.sync += valid.eq(0)
        with m.If(self.load):
            m.d.sync += [valid.eq(1), c_rem.eq(c_eff), g_ceff.eq(c_eff), k_rem.eq(nk),
                         g_nk.eq(nk), x_rem.eq(p["nx"]), g_nx.eq(p["nx"]), y_rem.eq(p["ny"]),
                         dkx.eq(Mux(bc_k, 0, d.out_c << d.stride_shift)),
                         dky.eq(Mux(bc_k, 0, kwc << d.stride_shift)), dkk.eq(d.out_c),
                         g_w.eq(d.out_w), hw_ks.eq(hw * k_s)]
            m.d.sync += [s.eq(kstart) for s in (kc, kk, kx, ky)]
            m.d.sync += [s.eq(tstart) for s in (tc, tx, ty)]
            m.d.sync += [mult[o].eq(hw * o) for o in range(k_s)]

        # ---- lanes: chunk offset o = (b - kc) mod k_s -------------------------------------------
        t_chunk = inject(m, self.fault, "conv_target", tc)
        for b in range(k_s):
            o = Signal(range(k_s), name=f"off{b}")
            m.d.comb += o.eq(b - kc[:shift]) if shift else o.eq(0)
            addr = Signal(A, name=f"kaddr{b}")
            m.d.comb += [addr.eq(kc + o), self.lane_row[b].eq(addr >> shift),
                         self.lane_valid[b].eq(emit & (o < c_rem))]
            with m.Switch(o):
                for j in range(k_s):
                    with m.Case(j):
                        m.d.comb += self.lane_target[b].eq(t_chunk + mult[j])

        # ---- configuration access -------------------------------------------------------------
        reader = ConfigReader(m, self.cfg, self.rdata, ("conv",))
        reader.drive("conv", rd.data)
        m.d.comb += [rd.addr.eq(Mux(self.running, w.conv - 1, self.cfg.addr)),
                     wr.addr.eq(self.cfg.addr), wr.data.eq(self.cfg.wdata[:conv_layout(g).size]),
                     wr.en.eq(reader.write("conv"))]
        return m
