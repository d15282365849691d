"""Response side of the bridge: the reply buffer and the frame transmitter (docs/protocol.md).

:class:`ResponseSender` holds ``depth`` bytes of reply data, written by the executor through
``w_*`` (one byte per cycle), and sends one response frame when ``start`` pulses while not
``busy``: ``SYNC_RESPONSE``, ``cmd``, ``count + 1``, ``status``, the first ``count`` bytes of
the buffer, CRC-16 over cmd … data (high byte first), over an 8N1 UART at ``divisor`` cycles
per bit.  ``cmd``, ``status`` and ``count`` are sampled at ``start``; ``busy`` stays high until
the last stop bit has left.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .protocol import CRC_INIT, SYNC_RESPONSE
from .uart import UARTTx, crc16_byte

__all__ = ["ResponseSender"]


class ResponseSender(wiring.Component):
    """Reply buffer + response-frame transmitter (module docstring)."""

    def __init__(self, *, divisor: int, depth: int):
        self.divisor, self.depth = divisor, depth
        super().__init__({"tx": Out(1, init=1), "start": In(1), "busy": Out(1),
                          "cmd": In(8), "status": In(8), "count": In(8),
                          "w_en": In(1), "w_addr": In(8), "w_data": In(8)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_tx = utx = UARTTx(self.divisor)
        txbuf = m.submodules.txbuf = Memory(shape=8, depth=self.depth, init=[])
        txw, txr = txbuf.write_port(), txbuf.read_port()
        m.d.comb += [self.tx.eq(utx.tx), txw.en.eq(self.w_en), txw.addr.eq(self.w_addr),
                     txw.data.eq(self.w_data)]
        t_cmd = Signal(8)
        t_status = Signal(8)
        t_count = Signal(8)
        t_idx = Signal(8)
        t_idx_nxt = Signal(8)
        t_crc = Signal(16)
        t_byte = Signal(8)
        m.d.comb += [t_idx_nxt.eq(t_idx), txr.addr.eq(t_idx_nxt), utx.data.payload.eq(t_byte)]
        m.d.sync += t_idx.eq(t_idx_nxt)
        fire = utx.data.valid & utx.data.ready
        with m.If(fire):
            m.d.sync += t_crc.eq(crc16_byte(t_crc, t_byte))

        with m.FSM(name="sender"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [t_cmd.eq(self.cmd), t_status.eq(self.status),
                                 t_count.eq(self.count)]
                    m.next = "SYNC"
            with m.State("SYNC"):
                m.d.comb += [self.busy.eq(1), t_byte.eq(SYNC_RESPONSE), utx.data.valid.eq(1)]
                with m.If(fire):
                    m.d.sync += t_crc.eq(CRC_INIT)        # the sync byte is not covered
                    m.next = "CMD"
            with m.State("CMD"):
                m.d.comb += [self.busy.eq(1), t_byte.eq(t_cmd), utx.data.valid.eq(1)]
                with m.If(fire):
                    m.next = "LEN"
            with m.State("LEN"):
                m.d.comb += [self.busy.eq(1), t_byte.eq(t_count + 1), utx.data.valid.eq(1)]
                with m.If(fire):
                    m.next = "STATUS"
            with m.State("STATUS"):
                m.d.comb += [self.busy.eq(1), t_byte.eq(t_status), utx.data.valid.eq(1),
                             t_idx_nxt.eq(0)]
                with m.If(fire):
                    m.next = "BODY_OR_CRC"
            with m.State("BODY_OR_CRC"):
                m.d.comb += self.busy.eq(1)
                with m.If(t_idx == t_count):
                    m.next = "CRC_HI"
                with m.Else():
                    m.next = "BODY"
            with m.State("BODY"):
                m.d.comb += [self.busy.eq(1), t_byte.eq(txr.data), utx.data.valid.eq(1)]
                with m.If(fire):
                    m.d.comb += t_idx_nxt.eq(t_idx + 1)
                    with m.If(t_idx + 1 == t_count):
                        m.next = "CRC_HI"
            with m.State("CRC_HI"):
                m.d.comb += [self.busy.eq(1), t_byte.eq(t_crc[8:]), utx.data.valid.eq(1)]
                with m.If(fire):
                    m.d.sync += t_crc.eq(t_crc)           # keep: CRC_LO sends the low byte
                    m.next = "CRC_LO"
            with m.State("CRC_LO"):
                m.d.comb += [self.busy.eq(1), t_byte.eq(t_crc[:8]), utx.data.valid.eq(1)]
                with m.If(fire):
                    m.next = "DONE"
            with m.State("DONE"):                          # wait for the stop bit to leave
                m.d.comb += self.busy.eq(1)
                with m.If(~utx.busy):
                    m.next = "IDLE"
        return m
