"""8N1 UART receiver/transmitter and the CRC-16 of one byte as logic (docs/protocol.md).

* :class:`UARTRx`, :class:`UARTTx`: 8N1 at ``divisor`` clock cycles per bit (>= 4).  The
  receiver synchronises the line, rejects start-bit glitches and drops a byte without stop
  bit (``framing`` pulse).
* :func:`crc16_byte`: CRC-16/CCITT-FALSE update by one byte, unrolled into XORs.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from .protocol import CRC_POLY

__all__ = ["UARTRx", "UARTTx", "crc16_byte", "MIN_DIVISOR", "check_divisor"]

#: Smallest supported clock cycles per bit.
MIN_DIVISOR = 4


def check_divisor(divisor):
    if not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        raise ValueError(f"divisor must be an integer >= {MIN_DIVISOR} cycles per bit, "
                         f"not {divisor!r}")


class UARTRx(wiring.Component):
    """8N1 receiver: ``valid`` pulses for one cycle with ``data`` after each stop bit."""

    def __init__(self, divisor: int):
        check_divisor(divisor)
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "data": Out(8), "valid": Out(1),
                          "framing": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        cnt = Signal(range(d))
        bit = Signal(range(8))
        shreg = Signal(8)
        with m.FSM(name="rx"):
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += cnt.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += cnt.eq(cnt - 1)
                with m.If(cnt == 0):
                    with m.If(line):                 # glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [cnt.eq(d - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += cnt.eq(cnt - 1)
                with m.If(cnt == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), cnt.eq(d - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += cnt.eq(cnt - 1)
                with m.If(cnt == 0):
                    with m.If(line):
                        m.d.comb += [self.valid.eq(1), self.data.eq(shreg)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.framing.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):                   # wait for the line to go idle again
                with m.If(line):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter with a stream input (``data.ready`` while idle)."""

    def __init__(self, divisor: int):
        check_divisor(divisor)
        self.divisor = divisor
        super().__init__({"tx": Out(1, init=1), "data": In(stream.Signature(8)),
                          "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        cnt = Signal(range(d))
        bits = Signal(range(11))
        shreg = Signal(10, init=0x3FF)
        m.d.comb += [self.tx.eq(shreg[0]), self.busy.eq(bits != 0),
                     self.data.ready.eq(bits == 0)]
        with m.If(bits == 0):
            with m.If(self.data.valid):
                m.d.sync += [shreg.eq(Cat(Const(0, 1), self.data.payload, Const(1, 1))),
                             bits.eq(10), cnt.eq(d - 1)]
        with m.Else():
            m.d.sync += cnt.eq(cnt - 1)
            with m.If(cnt == 0):
                m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), bits.eq(bits - 1),
                             cnt.eq(d - 1)]
        return m


def crc16_byte(crc, byte):
    """CRC-16/CCITT-FALSE of one byte, unrolled into XORs (``crc``: 16 bits, ``byte``: 8)."""
    bits = [crc[i] for i in range(16)]
    data = [byte[i] for i in range(8)]
    for i in range(7, -1, -1):
        fb = bits[15] ^ data[i]
        shifted = [Const(0, 1)] + bits[:15]
        bits = [(shifted[j] ^ fb) if (CRC_POLY >> j) & 1 else shifted[j] for j in range(16)]
    return Cat(*bits)
