"""Host spike queue: the ``inp`` stream into a FIFO, handed to the synapse walker per step.

Host spikes (axon ids) are range-checked on entry (an id ``>= n_axons`` is dropped and raises
``input_range``) and queued in an :class:`amaranth.lib.fifo.SyncFIFOBuffered`.  ``start``
(the cycle in which the core accepts ``ctrl.start``) takes the queue's level as the step's
share: spikes accepted before that cycle belong to the step, later ones (also while it
runs) to the next.  During the HOST phase (``enable``) the step's spikes leave on ``out``,
one per cycle while the walker takes them; ``drained`` says the step's share is gone.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry
from .synapse_walker import axon_request_layout

__all__ = ["HostQueue"]


class HostQueue(wiring.Component):
    """Members: ``inp`` (host spikes), ``start``, ``enable``, ``out`` (axon requests),
    ``drained``, ``input_range`` (an id was dropped this cycle)."""

    def __init__(self, geometry: CoreGeometry, depth: int):
        self.geometry = geometry
        self.depth = depth
        super().__init__({
            "inp": In(stream.Signature(unsigned(geometry.axon_bits))),
            "start": In(1),
            "enable": In(1),
            "out": Out(stream.Signature(axon_request_layout(geometry))),
            "drained": Out(1),
            "input_range": Out(1),
        })

    def elaborate(self, platform):
        g = self.geometry
        m = Module()
        fifo = m.submodules.fifo = SyncFIFOBuffered(width=g.axon_bits, depth=self.depth)
        in_range = self.inp.payload < g.n_axons
        m.d.comb += [
            self.inp.ready.eq(fifo.w_rdy),
            fifo.w_data.eq(self.inp.payload),
            fifo.w_en.eq(self.inp.valid & in_range),
            self.input_range.eq(self.inp.valid & fifo.w_rdy & ~in_range),
        ]
        remaining = Signal(range(self.depth + 1))
        m.d.comb += [
            self.drained.eq(remaining == 0),
            self.out.valid.eq(self.enable & fifo.r_rdy & (remaining != 0)),
            self.out.payload.axon.eq(fifo.r_data),
            fifo.r_en.eq(self.out.valid & self.out.ready),
        ]
        with m.If(self.start):
            m.d.sync += remaining.eq(fifo.level)
        with m.Elif(fifo.r_en):
            m.d.sync += remaining.eq(remaining - 1)
        return m
