"""A chip of cores (spec §10, docs/rtl.md §8): ``n_cores`` :class:`Neurocore` of one
geometry, the :class:`~neurocore.rtl.router.Router` between them and the barrier.

The chip's ports are the core's ports with a core index added:

- ``cfg``: :class:`ChipConfigSignature`: ``addr`` is ``Cat(word, core)`` (the word address of
  the core's port in the low ``config_addr_bits`` bits, the core index above them), so every
  memory and register of every core is one address; ``ready`` only while the chip is idle.
- ``ctrl``: the core's :class:`~neurocore.rtl.controller.ControlSignature`; ``start``,
  ``clear`` and ``error_clear`` go to every core, which start together and take DONE together;
  ``error`` is the OR of the cores' flags and the chip's own (a host spike or a configuration
  access to a core ``>= n_cores``: ``input_range`` / ``cfg_range``).
- ``inp``: host spikes :func:`host_spike_layout` ``(axon, core)``, into that core's queue.
- ``out``: output events (ids), core 0's of the step first, then core 1's, and so on; within
  a core in its own order (docs/rtl.md §2), so the order is a function of the configuration
  and the step's spikes only, never of timing or backpressure.
- ``cycles``, ``flits``, ``flit_waits``: chip counters (``REGISTER_BITS``, wrapping, zero at
  reset): cycles of steps (start cycle to DONE cycle, as the core's ``cycles`` counter),
  flits the router handed to cores, and per cycle the cores whose ``flit_out`` waits for the
  router (backpressure).

Barrier: ``step_end`` (to every core) is high while every core reports ``deliver_done`` and
the router is empty; the cores then take DONE in the same cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry, bits_for
from ..spec.schedule import (CONFIG_DATA_BITS, FLIT_IN_DEPTH, MEMORY_INDEX, REGISTER_BITS,
                             ROUTER_FIFO_DEPTH)
from .config_bus import config_addr_bits
from .controller import ControlSignature, ErrorFlags
from .core import Neurocore
from .router import Router, RouterFault

__all__ = ["Chip", "ChipConfigSignature", "host_spike_layout", "chip_config_addr"]


def host_spike_layout(g: CoreGeometry) -> data.StructLayout:
    """A host spike on a chip: axon ``axon`` of core ``core``."""
    return data.StructLayout({"axon": g.axon_bits, "core": g.core_bits})


def chip_config_addr(g: CoreGeometry, core: int, addr: int) -> int:
    """The chip's configuration address of word ``addr`` of core ``core``."""
    return (core << config_addr_bits(g)) | addr


class ChipConfigSignature(wiring.Signature):
    """The core's configuration port (:class:`~neurocore.rtl.core.ConfigSignature`) with
    ``core_bits`` more address bits on top: ``addr = Cat(word, core)``."""

    def __init__(self, g: CoreGeometry):
        super().__init__({
            "valid": Out(1),
            "ready": In(1),
            "mem": Out(bits_for(len(MEMORY_INDEX))),
            "addr": Out(config_addr_bits(g) + g.core_bits),
            "write": Out(1),
            "wdata": Out(CONFIG_DATA_BITS),
            "rdata": In(CONFIG_DATA_BITS),
            "rvalid": In(1),
        })


class Chip(wiring.Component):
    """``geometry.n_cores`` (≥ 2) cores of ``geometry``, a router and the barrier (module
    docstring).  ``flit_depth``: each core's queue of remote flits; ``router_depth``: the
    router's FIFO per core; ``fault`` (tests only): a
    :class:`~neurocore.rtl.router.RouterFault`."""

    def __init__(self, geometry: CoreGeometry, *, step_bits: int = 32,
                 input_depth: int | None = None, flit_depth: int = FLIT_IN_DEPTH,
                 router_depth: int = ROUTER_FIFO_DEPTH, fault: RouterFault | None = None):
        if not isinstance(geometry, CoreGeometry) or geometry.n_cores < 2:
            self._MustUse__silence = True
            raise ValueError(f"a chip needs a CoreGeometry with n_cores >= 2, not {geometry!r}")
        g = self.geometry = geometry
        self.step_bits = step_bits
        self.input_depth = input_depth
        self.fault = fault
        self.cores = [Neurocore(g, step_bits=step_bits, input_depth=input_depth, index=k,
                                flit_depth=flit_depth) for k in range(g.n_cores)]
        self.router = Router(g, depth=router_depth, fault=fault)
        super().__init__({
            "cfg": In(ChipConfigSignature(g)),
            "ctrl": In(ControlSignature(g, step_bits)),
            "inp": In(stream.Signature(host_spike_layout(g))),
            "out": Out(stream.Signature(bits_for(g.n_outputs))),
            "cycles": Out(REGISTER_BITS),
            "flits": Out(REGISTER_BITS),
            "flit_waits": Out(REGISTER_BITS),
        })

    def elaborate(self, platform):
        g = self.geometry
        m = Module()
        cores, router = self.cores, self.router
        for k, c in enumerate(cores):
            m.submodules[f"core{k}"] = c
        m.submodules.router = router
        raised = Signal(ErrorFlags)
        self._config(m, g, cores, raised)
        self._control(m, cores, raised)
        self._spikes(m, g, cores, raised)
        self._events(m, g, cores)
        for k, c in enumerate(cores):
            wiring.connect(m, c.flit_out, router.inp[k])
            wiring.connect(m, router.out[k], c.flit_in)
        step_end = Cat(c.deliver_done for c in cores).all() & router.empty
        m.d.comb += [c.step_end.eq(step_end) for c in cores]
        stepping, started = Signal(), self.ctrl.start & ~self.ctrl.busy
        with m.If(started):
            m.d.sync += stepping.eq(1)
        with m.Elif(self.ctrl.done):
            m.d.sync += stepping.eq(0)
        with m.If(started | stepping):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        m.d.sync += [self.flits.eq(self.flits + router.moved),
                     self.flit_waits.eq(self.flit_waits
                                        + sum(c.flit_out.valid & ~c.flit_out.ready
                                              for c in cores))]
        return m

    def _config(self, m, g, cores, raised):
        """Configuration port: the core index selects the core; reads come back from it."""
        cfg = self.cfg
        low = config_addr_bits(g)
        sel = cfg.addr[low:]
        fire = cfg.valid & cfg.ready
        m.d.comb += cfg.ready.eq(cores[0].cfg.ready)
        for k, c in enumerate(cores):
            m.d.comb += [c.cfg.valid.eq(cfg.valid & (sel == k)), c.cfg.mem.eq(cfg.mem),
                         c.cfg.addr.eq(cfg.addr[:low]), c.cfg.write.eq(cfg.write),
                         c.cfg.wdata.eq(cfg.wdata)]
        outside = sel >= g.n_cores
        m.d.comb += raised.cfg_range.eq(fire & outside)
        read_sel, stray = Signal.like(sel), Signal()
        m.d.sync += [read_sel.eq(sel), stray.eq(fire & outside & ~cfg.write)]
        rdata = 0
        for k, c in enumerate(cores):
            rdata = Mux(read_sel == k, c.cfg.rdata, rdata)
        m.d.comb += [cfg.rdata.eq(rdata),
                     cfg.rvalid.eq(Cat(c.cfg.rvalid for c in cores).any() | stray)]

    def _control(self, m, cores, raised):
        """Broadcast start/clear/error_clear; status from core 0 (the cores start together and
        take DONE together); the chip's sticky flags ORed into the cores'."""
        ctrl = self.ctrl
        for c in cores:
            m.d.comb += [c.ctrl.start.eq(ctrl.start), c.ctrl.clear.eq(ctrl.clear),
                         c.ctrl.error_clear.eq(ctrl.error_clear)]
        own = Signal(ErrorFlags)
        with m.If(ctrl.error_clear):
            m.d.sync += own.eq(raised)
        with m.Else():
            m.d.sync += own.eq(own.as_value() | raised.as_value())
        error = own.as_value()
        for c in cores:
            error = error | c.ctrl.error.as_value()
        m.d.comb += [ctrl.busy.eq(Cat(c.ctrl.busy for c in cores).any()),
                     ctrl.done.eq(cores[0].ctrl.done), ctrl.step.eq(cores[0].ctrl.step),
                     ctrl.error.eq(error)]

    def _spikes(self, m, g, cores, raised):
        """Host spikes to the core they name; a core ``>= n_cores`` is dropped and flagged."""
        inp = self.inp
        sel = inp.payload.core
        m.d.comb += inp.ready.eq(1)            # only for a core >= n_cores (overridden below)
        for k, c in enumerate(cores):
            m.d.comb += [c.inp.valid.eq(inp.valid & (sel == k)), c.inp.payload.eq(inp.payload.axon)]
            with m.If(sel == k):
                m.d.comb += inp.ready.eq(c.inp.ready)
        m.d.comb += raised.input_range.eq(inp.valid & (sel >= g.n_cores))

    def _events(self, m, g, cores):
        """Output events, core by core: core ``cur``'s events pass until its ``out_done``;
        ``cur`` returns to 0 when a step starts."""
        n = g.n_cores
        cur = Signal(range(n + 1))
        with m.If(self.ctrl.start & ~self.ctrl.busy):
            m.d.sync += cur.eq(0)
        for k, c in enumerate(cores):
            with m.If(cur == k):
                m.d.comb += [self.out.valid.eq(c.out.valid), self.out.payload.eq(c.out.payload),
                             c.out.ready.eq(self.out.ready)]
                with m.If(c.out_done):
                    m.d.sync += cur.eq(k + 1)
