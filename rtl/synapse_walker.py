"""Synapse walker: turns a stream of axon ids into ``k_s`` synapse words per cycle.

It owns the synapse map and the ``k_s`` synapse banks (word ``a`` in bank ``a mod k_s``, row
``a // k_s``).  An accepted axon first waits in the input FIFO (``AXON_PIPE_DEPTH`` entries,
spec/schedule.py; ``axon.ready`` is its registered ``w_rdy``, so the lookup below never
lengthens the route reader's or the host queue's combinational paths); from the FIFO's head
it goes through two registers:

- **map** (``m``): the synapse-map word of the axon read in the cycle it was accepted;
- **list** (``l``): the list being walked, ``k_s`` consecutive words per cycle, one from each
  bank, so a list of ``L`` synapses takes ``ceil(L / k_s)`` cycles.

The map register hands its list over in the list's last cycle, and accepts the next axon in
the same cycle, so the next lookup overlaps the current list: no cycle is lost between
axons.  An empty list (or an axon flagged ``bad``) leaves the map register at once.  The
words read in a cycle appear on ``syn``/``syn_valid`` in the next (stage S1 of the
dendrite lanes).  :mod:`neurocore.spec.cycle_model` mirrors these registers cycle by cycle.

On a core with conv descriptors (``n_conv > 0``) the list stage also holds the axon's
**scatter** (:class:`~neurocore.rtl.conv_walker.ConvWalker`, spec §3.5): an axon whose map
word has ``conv ≠ 0`` stays in the map register until its descriptor setup is done (2 cycles
after the lookup, overlapped with the list stage's current work), is handed over together
with its dense list, and its (target, kernel word) pairs follow the dense list's last cycle
directly, up to ``k_s`` per cycle on the same banks and lanes as dense words.  The kernel word
read from the bank gives weight, exponent, sign mode and delay; its ``target`` field is
replaced by the generator's target (registered with the read, so it is in S1 with the word).
The list stage's last cycle is then the scatter's last cycle.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry
from ..spec.schedule import AXON_PIPE_DEPTH
from ..spec.words import synapse_layout, synapse_map_layout
from .config_bus import ConfigBus, ConfigReader, bank_split
from .conv_walker import ConvWalker
from .fault import Fault

__all__ = ["SynapseWalker", "axon_request_layout"]


def axon_request_layout(g: CoreGeometry) -> data.StructLayout:
    """An axon to deliver: its id, and ``bad`` (an out-of-range route: deliver nothing)."""
    return data.StructLayout({"axon": g.axon_bits, "bad": 1})


class SynapseWalker(wiring.Component):
    """Members: ``cfg``/``rdata`` (configuration bus; ``synapse_map`` and ``synapses``),
    ``running`` (memories follow the walker, not the bus), ``axon`` (stream in, accepted
    only while ``running``, into the input FIFO), ``syn_valid``/``syn`` (per lane, stage S1),
    ``busy`` (the FIFO holds an axon, an axon or a list is held, or S1 holds words).  With ``n_conv > 0`` it also owns the ``conv`` memory
    (through its :class:`~neurocore.rtl.conv_walker.ConvWalker`); ``fault`` (tests only)
    reaches the conv walker (``conv_target``)."""

    def __init__(self, geometry: CoreGeometry, *, fault: Fault | None = None):
        g = self.geometry = geometry
        self.fault = fault
        super().__init__({
            "cfg": In(ConfigBus(g)),
            "rdata": Out(64),
            "running": In(1),
            "axon": In(stream.Signature(axon_request_layout(g))),
            "syn_valid": Out(data.ArrayLayout(1, g.k_s)),
            "syn": Out(data.ArrayLayout(synapse_layout(g), g.k_s)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        g = self.geometry
        k_s = g.k_s
        shift = (k_s - 1).bit_length()
        m = Module()
        smap_mem = m.submodules.synapse_map = Memory(
            shape=synapse_map_layout(g), depth=g.n_axons, init=[])
        banks = [Memory(shape=synapse_layout(g), depth=g.synapse_bank_depth, init=[])
                 for _ in range(k_s)]
        for b, mem in enumerate(banks):
            m.submodules[f"synapses{b}"] = mem
        smap_rd, smap_wr = smap_mem.read_port(), smap_mem.write_port()
        rd = [b.read_port() for b in banks]
        wr = [b.write_port() for b in banks]

        # ---- input FIFO ------------------------------------------------------------------
        request = axon_request_layout(g)
        pipe = m.submodules.axon_pipe = SyncFIFO(width=request.size, depth=AXON_PIPE_DEPTH)
        head = data.View(request, pipe.r_data)
        m.d.comb += [self.axon.ready.eq(self.running & pipe.w_rdy),
                     pipe.w_en.eq(self.running & self.axon.valid),
                     pipe.w_data.eq(self.axon.payload)]

        # ---- map register --------------------------------------------------------------
        m_valid, m_bad = Signal(), Signal()
        smap = smap_rd.data
        m_len = Signal.like(smap.length)
        m.d.comb += m_len.eq(Mux(m_bad, 0, smap.length))
        l_valid = Signal()
        l_ptr = Signal(g.synapse_addr_bits)
        l_rem = Signal(g.fanout_bits)
        l_last = l_valid & (l_rem <= k_s)
        ready = Signal()
        if g.n_conv:
            # conv: the map register waits for the descriptor setup; the list stage (dense
            # list, then scatter) ends with the scatter's last cycle
            conv = m.submodules.conv = ConvWalker(g, fault=self.fault)
            m.d.comb += [conv.running.eq(self.running), conv.word.eq(smap), conv.new.eq(ready),
                         conv.hold.eq(l_valid)]
            for name in ("valid", "write", "mem", "addr", "wdata"):
                m.d.comb += getattr(conv.cfg, name).eq(getattr(self.cfg, name))
            m_conv = Signal()
            m.d.comb += m_conv.eq(~m_bad & conv.has_conv)
            stage_free = ~(l_valid | conv.busy) | (l_last & ~conv.busy) | conv.last
            m_consume = (m_valid & (conv.ready | m_bad)
                         & (stage_free | ((m_len == 0) & ~m_conv)))
            m.d.comb += conv.load.eq(m_consume & m_conv)
        else:
            conv = None
            m_consume = m_valid & (~l_valid | l_last | (m_len == 0))
        m.d.comb += [ready.eq(self.running & (~m_valid | m_consume)), pipe.r_en.eq(ready)]
        with m.If(ready):
            m.d.sync += [m_valid.eq(pipe.r_rdy), m_bad.eq(head.bad)]

        # ---- list register and issue -----------------------------------------------------
        with m.If(l_valid):
            m.d.sync += [l_ptr.eq(l_ptr + k_s), l_rem.eq(l_rem - k_s)]
            with m.If(l_last):
                m.d.sync += l_valid.eq(0)
        with m.If(m_consume & (m_len != 0)):
            m.d.sync += [l_valid.eq(1), l_ptr.eq(smap.base), l_rem.eq(m_len)]
        s1_valid = Signal(k_s)
        issue_row = []
        for b in range(k_s):
            offset = Signal(range(k_s), name=f"offset{b}")
            m.d.comb += offset.eq(b - l_ptr[:shift]) if shift else offset.eq(0)
            row = Signal(range(g.synapse_bank_depth), name=f"row{b}")
            m.d.comb += row.eq((l_ptr + offset) >> shift)
            issue_row.append(row)
            dense = l_valid & (offset < l_rem)
            m.d.comb += [self.syn_valid[b].eq(s1_valid[b]), self.syn[b].eq(rd[b].data)]
            if conv is None:
                m.d.sync += s1_valid[b].eq(dense)
                continue
            s1_conv, s1_target = Signal(name=f"s1_conv{b}"), Signal(g.cx_bits, name=f"s1_t{b}")
            m.d.sync += [s1_valid[b].eq(dense | conv.lane_valid[b]),
                         s1_conv.eq(conv.emit), s1_target.eq(conv.lane_target[b])]
            with m.If(conv.emit):
                m.d.comb += row.eq(conv.lane_row[b])
            with m.If(s1_conv):
                m.d.comb += self.syn[b].target.eq(s1_target)
        m.d.comb += self.busy.eq(pipe.r_rdy | m_valid | l_valid | s1_valid.any()
                                 | (conv.busy if conv is not None else 0))

        # ---- configuration access --------------------------------------------------------
        if conv is not None:                      # the conv memory's reads (0 otherwise)
            m.d.comb += self.rdata.eq(conv.rdata)
        reader = ConfigReader(m, self.cfg, self.rdata, ("synapse_map", "synapses"))
        c_bank, c_row = bank_split(self.cfg.addr, k_s)
        c_bank_q = Signal(range(k_s))
        m.d.sync += c_bank_q.eq(c_bank)
        reader.drive("synapse_map", smap_rd.data)
        with m.Switch(c_bank_q):
            for b in range(k_s):
                with m.Case(b):
                    reader.drive("synapses", rd[b].data)
        m.d.comb += [
            smap_rd.addr.eq(Mux(self.running, head.axon, self.cfg.addr)),
            smap_rd.en.eq(~self.running | ready),
            smap_wr.addr.eq(self.cfg.addr),
            smap_wr.data.eq(self.cfg.wdata[:synapse_map_layout(g).size]),
            smap_wr.en.eq(reader.write("synapse_map")),
        ]
        for b in range(k_s):
            m.d.comb += [
                rd[b].addr.eq(Mux(self.running, issue_row[b], c_row)),
                wr[b].addr.eq(c_row), wr[b].data.eq(self.cfg.wdata[:synapse_layout(g).size]),
                wr[b].en.eq(reader.write("synapses") & (c_bank == b)),
            ]
        return m
