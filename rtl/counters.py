"""Register file: ``n_active`` and the hardware counters (spec/schedule.py ``REGISTERS``).

Every register is ``REGISTER_BITS`` wide and is read and written through the configuration
port (memory ``registers``).  ``n_active`` takes the written word.  A counter adds its
increment input one cycle later (the increment is registered, so the logic that computes it
and the counter's carry chain are timed apart; wrapping); a write clears it to 0 whatever
the word (the host starts a measurement so), and wins over the increment it would have
added in that cycle.  A step's last increments (its DONE cycle) are in the counters one cycle
after DONE, before any configuration read can return them.  Clearing instead of loading
lets the counter use its flip-flops' synchronous reset: no multiplexer in front of its adder
(about 290 of the iCE40UP5K's 5280 logic cells for the nine counters).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry
from ..spec.schedule import COUNTERS, REGISTER_BITS, REGISTERS
from .config_bus import ConfigBus, ConfigReader
from .fault import Fault, inject

__all__ = ["Counters", "INCREMENT_BITS", "increment_bits"]

#: Width of a counter's per-cycle increment (up to 8 lanes at once) ...
INCREMENT_BITS = 4
#: ... except ``skipped``, which adds a whole step's count in its DONE cycle.
_WIDE = ("skipped",)


def increment_bits(name: str) -> int:
    return REGISTER_BITS if name in _WIDE else INCREMENT_BITS


class Counters(wiring.Component):
    """Members: ``cfg``/``rdata`` (``registers``), ``n_active`` (register 0), and one
    increment input per counter, ``inc_<name>``.  ``width``: bits of each counter (at most
    ``REGISTER_BITS``; read zero-extended, wrapping at ``2**width``)."""

    def __init__(self, geometry: CoreGeometry, *, fault: Fault | None = None,
                 width: int = REGISTER_BITS):
        self.geometry = geometry
        self.width = width
        self.fault = fault
        super().__init__({
            "cfg": In(ConfigBus(geometry)),
            "rdata": Out(64),
            "n_active": Out(REGISTER_BITS),
            **{f"inc_{name}": In(increment_bits(name)) for name in COUNTERS},
        })

    def elaborate(self, platform):
        m = Module()
        regs = [Signal(REGISTER_BITS if name == "n_active" else self.width, name=name)
                for name in REGISTERS]
        m.d.comb += self.n_active.eq(regs[0])
        reader = ConfigReader(m, self.cfg, self.rdata, ("registers",))
        addr_q = Signal.like(self.cfg.addr)
        m.d.sync += addr_q.eq(self.cfg.addr)
        write = reader.write("registers")
        for i, (name, reg) in enumerate(zip(REGISTERS, regs)):
            hit = write & (self.cfg.addr == i)
            if name == "n_active":
                with m.If(hit):
                    m.d.sync += reg.eq(self.cfg.wdata[:REGISTER_BITS])
            else:
                inc = inject(m, self.fault, "counter_inc", getattr(self, f"inc_{name}")) \
                    if name == "sops" else getattr(self, f"inc_{name}")
                inc_q = Signal(min(increment_bits(name), self.width), name=f"{name}_inc")
                m.d.sync += [inc_q.eq(inc), reg.eq(Mux(hit, 0, reg + inc_q))]
            with m.If(addr_q == i):
                reader.drive("registers", reg)
        return m
