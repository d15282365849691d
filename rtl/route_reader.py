"""Route reader: expands the route lists of spiking compartments.

It owns the ``routes`` memory.  In the SPIKE phase (``enable``) it takes one route list from
``lists`` (LIST: one cycle, which reads the first route), then offers one route per cycle
(ROUTE): an OUTPUT route as an event on ``out``, an AXON route as a request on ``axon`` to
the synapse walker (flagged ``bad``, and ``list_range`` raised, when the axon is
``>= n_axons``).  It moves on when the offer is taken; with the last route of a list it takes
the next list in the same cycle, so only the first list of a step costs a LIST cycle.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry, bits_for
from ..spec.words import RouteKind, axon_map_layout, route_layout
from .config_bus import ConfigBus, ConfigReader
from .synapse_walker import axon_request_layout

__all__ = ["RouteReader"]


class RouteReader(wiring.Component):
    """Members: ``cfg``/``rdata`` (``routes``), ``running``, ``enable``, ``lists`` (route
    lists in), ``out`` (output ids), ``axon`` (axon requests), ``busy`` (in ROUTE),
    ``list_range``."""

    def __init__(self, geometry: CoreGeometry):
        g = self.geometry = geometry
        super().__init__({
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
        with m.FSM(name="route"):
            with m.State("LIST"):
                m.d.comb += take.eq(self.enable & self.lists.valid)
                with m.If(take):
                    m.next = "ROUTE"
            with m.State("ROUTE"):
                m.d.comb += self.busy.eq(1)
                is_out = route.kind == RouteKind.OUTPUT
                m.d.comb += [
                    self.out.valid.eq(is_out), self.out.payload.eq(route.target),
                    self.axon.valid.eq(~is_out), self.axon.payload.axon.eq(route.target),
                    self.axon.payload.bad.eq(bad),
                ]
                advance = Mux(is_out, self.out.ready, self.axon.ready)
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
