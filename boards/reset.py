"""Power-on reset shared by the board clock generators."""

from __future__ import annotations

from amaranth.hdl import ClockDomain, Module, Signal

__all__ = ["hold_reset_until_lock"]


def hold_reset_until_lock(m: Module, sync: ClockDomain, por: ClockDomain, lock: Signal,
                          por_cycles: int) -> None:
    """Hold ``sync`` in reset until ``lock`` has been high for ``por_cycles`` cycles.

    ``por`` is a reset-less domain on the same clock as ``sync``; the counter restarts
    whenever the PLL loses lock.  The reset is a register (no counter compare in front of
    its fanout to every flip-flop of the design).
    """
    m.d.comb += por.clk.eq(sync.clk)
    count = Signal(range(por_cycles + 1))
    rst = Signal(init=1)
    with m.If(~lock):
        m.d.por += count.eq(0)
    with m.Elif(count != por_cycles):
        m.d.por += count.eq(count + 1)
    m.d.por += rst.eq(~lock | (count != por_cycles))
    m.d.comb += sync.rst.eq(rst)
