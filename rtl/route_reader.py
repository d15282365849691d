"""Route reader: expands the route lists of spiking compartments.

It owns the ``routes`` memory.  In the SPIKE phase (``enable``) it takes one route list from
``lists`` (LIST: one cycle, which reads the first route), then offers one route per cycle
(ROUTE): an OUTPUT route as an event on ``out``, an AXON route as a request on ``axon`` to
the synapse walker (flagged ``bad``, and ``list_range`` raised, when the axon is
``>= n_axons``).  It moves on when the offer is taken; with the last route of a list it takes
the next list in the same cycle, so only the first list of a step costs a LIST cycle.

On a chip core (``n_cores > 1``, spec §10) an AXON route whose ``core`` field names another
core leaves as a flit ``(core, axon)`` on ``flit`` instead of going to the local walker; a
route to a core ``>= n_cores`` counts as out of range like an axon ``>= n_axons`` (``bad``).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry, bits_for
from ..spec.words import RouteKind, axon_map_layout, flit_layout, route_layout
from .config_bus import ConfigBus, ConfigReader
from .synapse_walker import axon_request_layout

__all__ = ["RouteReader"]


class RouteReader(wiring.Component):
    """Members: ``cfg``/``rdata`` (``routes``), ``running``, ``enable``, ``lists`` (route
    lists in), ``out`` (output ids), ``axon`` (axon requests), ``busy`` (in ROUTE),
    ``list_range``; on a chip core (``n_cores > 1``) also ``flit`` (remote AXON routes out),
    ``index`` being this core's own index."""

    def __init__(self, geometry: CoreGeometry, index: int = 0):
        g = self.geometry = geometry
        self.index = index
        chip = {"flit": Out(stream.Signature(flit_layout(g)))} if g.n_cores > 1 else {}
        super().__init__({
            **chip,
            "cfg": In(ConfigBus(g)),
            "rdata": Out(64),
            "running": In(1),
            "enable": In(1),
            "lists": In(stream.Signature(axon_map_layout(g))),
            "out": Out(stream.Signature(unsigned(bits_for(g.n_outputs)))),
            "axon": Out(stream.Signature(axon_request_layout(g))),
            "busy": Out(1),
            "list_range": Out(1),
        })

    def elaborate(self, platform):
        g = self.geometry
        m = Module()
        mem = m.submodules.routes = Memory(shape=route_layout(g), depth=g.n_routes, init=[])
        rd, wr = mem.read_port(), mem.write_port()
        ptr, rem = Signal(g.route_addr_bits), Signal(g.route_len_bits)
        ptr_nxt = Signal(g.route_addr_bits)
        m.d.comb += ptr_nxt.eq(ptr)
        m.d.sync += ptr.eq(ptr_nxt)
        take = Signal()                       # comb: take a list from `lists` this cycle
        m.d.comb += self.lists.ready.eq(take)
        with m.If(take):
            m.d.comb += ptr_nxt.eq(self.lists.payload.base)
            m.d.sync += rem.eq(self.lists.payload.length)

        route = rd.data
        bad = (route.target >= g.n_axons) if g.n_axons < (1 << len(route.target)) else Const(0)
        remote = None
        if g.n_cores > 1:
            if g.n_cores < (1 << g.core_bits):
                bad = bad | (route.core >= g.n_cores)
            remote = ~bad & (route.core != self.index)
        with m.FSM(name="route"):
            with m.State("LIST"):
                m.d.comb += take.eq(self.enable & self.lists.valid)
                with m.If(take):
                    m.next = "ROUTE"
            with m.State("ROUTE"):
                m.d.comb += self.busy.eq(1)
                is_out = route.kind == RouteKind.OUTPUT
                local = ~is_out if remote is None else ~is_out & ~remote
                m.d.comb += [
                    self.out.valid.eq(is_out), self.out.payload.eq(route.target),
                    self.axon.valid.eq(local), self.axon.payload.axon.eq(route.target),
                    self.axon.payload.bad.eq(bad),
                ]
                advance = Mux(is_out, self.out.ready, self.axon.ready)
                if remote is not None:
                    m.d.comb += [self.flit.valid.eq(~is_out & remote),
                                 self.flit.payload.core.eq(route.core),
                                 self.flit.payload.axon.eq(route.target)]
                    advance = Mux(is_out, self.out.ready,
                                  Mux(remote, self.flit.ready, self.axon.ready))
                with m.If(advance):
                    m.d.comb += self.list_range.eq(~is_out & bad)
                    with m.If(rem == 1):
                        m.d.comb += take.eq(self.enable & self.lists.valid)
                        with m.If(~take):
                            m.next = "LIST"
                    with m.Else():
                        m.d.comb += ptr_nxt.eq(ptr + 1)
                        m.d.sync += rem.eq(rem - 1)

        reader = ConfigReader(m, self.cfg, self.rdata, ("routes",))
        reader.drive("routes", rd.data)
        m.d.comb += [
            rd.addr.eq(Mux(self.running, ptr_nxt, self.cfg.addr)),
            wr.addr.eq(self.cfg.addr), wr.data.eq(self.cfg.wdata[:route_layout(g).size]),
            wr.en.eq(reader.write("routes")),
        ]
        return m
