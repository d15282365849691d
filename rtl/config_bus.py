"""The configuration bus: how the core's configuration port reaches the components that own
the memories.

The core registers nothing on the way: every component with memories takes the bus
(:class:`ConfigBus`, ``In`` on the component), writes its own words in the cycle of an
accepted write, and for an accepted read of one of its memories drives :attr:`rdata` in the
next cycle (0 otherwise), so the core ORs the components' read data.  Addresses are the
logical word addresses of docs/spec.md §4; a component with banked memories splits them
(:func:`bank_split`).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from ..spec.geometry import CoreGeometry, bits_for
from ..spec.schedule import CONFIG_DATA_BITS, MEMORY_INDEX, port_targets

__all__ = ["ConfigBus", "config_addr_bits", "memory_depths", "bank_split", "ConfigReader"]


def memory_depths(g: CoreGeometry) -> dict[str, int]:
    """Depth (words) of every configuration-port target, in :data:`MEMORY_INDEX` order."""
    return {name: depth for name, (depth, _) in port_targets(g).items()}


def config_addr_bits(g: CoreGeometry) -> int:
    return max(bits_for(d) for d in memory_depths(g).values())


class ConfigBus(wiring.Signature):
    """One accepted configuration access per cycle (``valid``), seen from the core.

    ``mem`` is the :data:`~neurocore.spec.schedule.MEMORY_INDEX` select, ``addr`` the logical
    word address (already checked against the memory's depth), ``write`` a write of
    ``wdata`` (LSB-aligned) or a read.
    """

    def __init__(self, g: CoreGeometry):
        super().__init__({
            "valid": Out(1),
            "write": Out(1),
            "mem": Out(bits_for(len(MEMORY_INDEX))),
            "addr": Out(config_addr_bits(g)),
            "wdata": Out(CONFIG_DATA_BITS),
        })


def bank_split(addr, banks: int):
    """``(bank, row)`` of a logical address in ``banks`` interleaved banks (a power of two)."""
    shift = (banks - 1).bit_length()
    if shift == 0:
        return 0, addr
    return addr[:shift], addr[shift:]


class ConfigReader:
    """Read-data helper for a component: ``hit(name)`` is high for an accepted read of memory
    ``name`` in this cycle; :meth:`drive` puts ``data`` of the memory read in the previous
    cycle on ``rdata``."""

    def __init__(self, m: Module, bus, rdata: Signal, names: tuple[str, ...]):
        self._m, self._bus, self._rdata = m, bus, rdata
        self._sel = {name: Signal(name=f"cfg_rd_{name}") for name in names}
        for name, s in self._sel.items():
            m.d.sync += s.eq(self.hit(name))

    def hit(self, name: str):
        b = self._bus
        return b.valid & ~b.write & (b.mem == MEMORY_INDEX[name])

    def write(self, name: str):
        b = self._bus
        return b.valid & b.write & (b.mem == MEMORY_INDEX[name])

    def drive(self, name: str, data):
        with self._m.If(self._sel[name]):
            self._m.d.comb += self._rdata.eq(data)
