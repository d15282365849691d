"""Spike queue: the route lists of the compartments that spiked in this step's UPDATE.

One :class:`amaranth.lib.fifo.SyncFIFOBuffered` per update lane (a whole bank fits, so a
push never waits), behind one register stage (timing: the update lane's spike compare does
not reach the FIFO's pointers).  ``out`` offers the lowest-numbered lane that holds an entry,
so the lists leave lane by lane, each lane in compartment order (docs/rtl.md §2).  ``empty``
is exact one cycle after the last push (a push still in the register counts).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry
from ..spec.words import axon_map_layout

__all__ = ["SpikeQueue"]


class SpikeQueue(wiring.Component):
    """Members: ``push_valid``/``push`` (per update lane), ``out`` (route lists), ``empty``."""

    def __init__(self, geometry: CoreGeometry):
        g = self.geometry = geometry
        layout = axon_map_layout(g)
        super().__init__({
            "push_valid": In(g.k_u),
            "push": In(data.ArrayLayout(layout, g.k_u)),
            "out": Out(stream.Signature(layout)),
            "empty": Out(1),
        })

    def elaborate(self, platform):
        g = self.geometry
        m = Module()
        width = axon_map_layout(g).size
        fifos = [SyncFIFOBuffered(width=width, depth=g.bank_depth) for _ in range(g.k_u)]
        empty = 1
        for i, f in enumerate(fifos):
            m.submodules[f"lane{i}"] = f
            valid, word = Signal(name=f"push_valid{i}"), Signal(width, name=f"push{i}")
            m.d.sync += [valid.eq(self.push_valid[i]), word.eq(self.push[i])]
            m.d.comb += [f.w_en.eq(valid), f.w_data.eq(word)]
            empty = empty & (f.level == 0) & ~valid
        m.d.comb += self.empty.eq(empty)
        lower_ready = Const(0, 1)             # the lowest ready lane wins
        for f in fifos:
            with m.If(f.r_rdy & ~lower_ready):
                m.d.comb += [self.out.valid.eq(1), self.out.payload.eq(f.r_data),
                             f.r_en.eq(self.out.ready)]
            lower_ready = lower_ready | f.r_rdy
        return m
