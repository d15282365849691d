"""Spike router of a chip: a crossbar that carries flits between ``n`` cores (spec §10).

Each core's ``flit_out`` feeds ``inp[i]``: a :class:`amaranth.lib.fifo.SyncFIFOBuffered` of
``depth`` (default ``ROUTER_FIFO_DEPTH``) flits ``(core, axon)``.  Output ``out[j]`` (an axon id, to core ``j``'s
``flit_in``) takes the head of the lowest-numbered input FIFO whose head names core ``j``; a
head whose output is not ready waits (head-of-line blocking), everything else moves.  One
flit per output and per input per cycle; a flit entering at cycle ``c`` can leave at
``c + 2`` (FIFO write, then its output register).  ``empty`` is high when no FIFO holds a
flit; ``moved`` counts the flits handed to cores in this cycle.

Contract: a flit's ``core`` is below ``n`` (the route reader counts a route to a core
``>= n_cores`` as out of range and never sends it).  Why this cannot deadlock: docs/rtl.md
§8.  The spec's mesh hop count (``ChipGeometry.hops``) is the cost model of a later mesh
router; on this crossbar every flit takes one hop.

``fault`` (tests only, :class:`RouterFault`) drops or misroutes one flit; ``None`` adds
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry
from ..spec.schedule import ROUTER_FIFO_DEPTH
from ..spec.words import flit_layout

__all__ = ["Router", "RouterFault"]


@dataclass(frozen=True)
class RouterFault:
    """Test-only router mutant: the ``nth`` flit (from 0) that enters from core ``source`` is
    dropped (``kind="drop"``) or sent to core ``core + 1 mod n`` (``kind="misroute"``)."""

    kind: str
    source: int = 0
    nth: int = 0

    def __post_init__(self):
        if self.kind not in ("drop", "misroute"):
            raise ValueError(f"RouterFault.kind must be 'drop' or 'misroute', not {self.kind!r}")


class Router(wiring.Component):
    """Members: ``inp`` (``n`` flit streams, from the cores' ``flit_out``), ``out`` (``n``
    axon streams, to the cores' ``flit_in``), ``empty``, ``moved`` (flits out this cycle)."""

    def __init__(self, geometry: CoreGeometry, *, depth: int = ROUTER_FIFO_DEPTH,
                 fault: RouterFault | None = None):
        if geometry.n_cores < 2:
            raise ValueError(f"a router joins 2 or more cores, geometry {geometry.name!r} has "
                             f"n_cores={geometry.n_cores}")
        if fault is not None and not (isinstance(fault, RouterFault)
                                      and 0 <= fault.source < geometry.n_cores):
            raise ValueError(f"fault must be a RouterFault with a source core below "
                             f"{geometry.n_cores}, not {fault!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, not {depth!r}")
        self.geometry = geometry
        self.depth = depth
        self.fault = fault
        n = geometry.n_cores
        super().__init__({
            "inp": In(stream.Signature(flit_layout(geometry))).array(n),
            "out": Out(stream.Signature(unsigned(geometry.axon_bits))).array(n),
            "empty": Out(1),
            "moved": Out(range(n + 1)),
        })

    def elaborate(self, platform):
        g = self.geometry
        n = g.n_cores
        layout = flit_layout(g)
        m = Module()
        fifos = []
        for i in range(n):
            f = SyncFIFOBuffered(width=layout.size, depth=self.depth)
            m.submodules[f"fifo{i}"] = f
            fifos.append(f)
            m.d.comb += [self.inp[i].ready.eq(f.w_rdy), f.w_en.eq(self.inp[i].valid),
                         f.w_data.eq(self.inp[i].payload)]
        if self.fault is not None:
            self._inject(m, fifos[self.fault.source], self.inp[self.fault.source])
        m.d.comb += self.empty.eq(Cat(f.level == 0 for f in fifos).all())
        heads = [layout(f.r_data) for f in fifos]
        moved = []
        for j in range(n):
            taken = Const(0, 1)               # a lower input already offers to core j
            for i, (f, head) in enumerate(zip(fifos, heads)):
                want = f.r_rdy & (head.core == j)
                with m.If(want & ~taken):
                    m.d.comb += [self.out[j].valid.eq(1), self.out[j].payload.eq(head.axon),
                                 f.r_en.eq(self.out[j].ready)]
                taken = taken | want
            moved.append(self.out[j].valid & self.out[j].ready)
        m.d.comb += self.moved.eq(sum(moved))
        return m

    def _inject(self, m, fifo, port):
        """The fault: count the flits entering from ``source``; corrupt the ``nth``."""
        g, fault = self.geometry, self.fault
        count = Signal(range(fault.nth + 2))
        hit = port.valid & port.ready & (count == fault.nth)
        with m.If(port.valid & port.ready & (count <= fault.nth)):
            m.d.sync += count.eq(count + 1)
        with m.If(hit):
            if fault.kind == "drop":
                m.d.comb += fifo.w_en.eq(0)
            else:
                core = port.payload.core
                wrong = Mux(core == g.n_cores - 1, 0, core + 1)
                m.d.comb += fifo.w_data.eq(Cat(port.payload.axon, wrong[:g.core_bits]))
