"""Commands INFO, LINK, STATUS and EVENTS of the bridge: replies from constants, registers and
the output-event FIFO (docs/protocol.md).

:class:`ReplyExec` executes one command when ``start`` pulses (``cmd``, payload ``length`` u8,
payload byte 0 on ``hdr0``), writes the reply data through ``tx_*`` and pulses ``done`` with
``status`` and ``count``:

* INFO / LINK (no payload): the constant bytes ``info`` / ``link``;
* STATUS (no payload): core error flags u8, bridge flags u8, step counter u32, events
  pending u16;
* EVENTS ([max u8]): count u8, then ``count`` × (output id u16, step u32) popped from the event
  FIFO (``ev_*``: ``ev_data`` is ``Cat(output id, step)``), at most ``max_events``.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .exec_reply import reply_writers
from .protocol import EVENT_BYTES, Cmd, Status

__all__ = ["ReplyExec"]


class ReplyExec(wiring.Component):
    """INFO/LINK/STATUS/EVENTS executor (module docstring)."""

    def __init__(self, *, info: bytes, link: bytes, out_bits: int, step_bits: int,
                 max_events: int):
        self.info, self.link = bytes(info), bytes(link)
        self.out_bits, self.max_events = out_bits, max_events
        super().__init__({
            "start": In(1), "cmd": In(8), "length": In(8), "hdr0": In(8),
            "tx_en": Out(1), "tx_addr": Out(8), "tx_data": Out(8),
            "done": Out(1), "status": Out(8), "count": Out(8),
            "errors": In(8), "flags": In(8), "step": In(step_bits),
            "ev_rdy": In(1), "ev_en": Out(1), "ev_data": In(out_bits + step_bits),
            "ev_level": In(16),
        })

    def elaborate(self, platform):
        m = Module()
        e_len, max_ev = self.length, self.max_events
        tptr, idx = Signal(8), Signal(8)
        ev_left = Signal(8)
        ev = Signal(len(self.ev_data))
        rom_sel = Signal()                   # 0: INFO, 1: LINK
        is_events, is_status, bad_len = Signal(), Signal(), Signal()
        step32, ev_id, ev_step = Signal(32), Signal(16), Signal(32)
        m.d.comb += [self.count.eq(tptr), step32.eq(self.step), ev_id.eq(ev[:self.out_bits]),
                     ev_step.eq(ev[self.out_bits:])]
        # INFO then LINK bytes in one ROM (block RAM, not a wide LUT multiplexer): the byte
        # for index idx is addressed one cycle ahead (ROM_WAIT primes index 0)
        rom = m.submodules.rom = Memory(shape=8, depth=len(self.info) + len(self.link),
                                        init=list(self.info + self.link))
        rom_rd = rom.read_port()
        in_rom = Signal()
        m.d.comb += rom_rd.addr.eq(Mux(rom_sel, len(self.info), 0) + idx + in_rom)
        level = self.ev_level
        status_bytes = Array([self.errors, self.flags, *(step32.word_select(i, 8)
                              for i in range(4)), level[:8], level[8:]])
        ev_bytes = Array([ev_id[:8], ev_id[8:], *(ev_step.word_select(i, 8) for i in range(4))])

        finish, put = reply_writers(m, self, tptr)

        with m.FSM(name="reply_exec"):
            # The command is decoded into registers here and dispatched in DECODE (timing).
            with m.State("IDLE"):
                with m.If(self.start):
                    limit = Mux((e_len == 1) & (self.hdr0 < max_ev), self.hdr0, max_ev)
                    m.d.sync += [tptr.eq(0), idx.eq(0), rom_sel.eq(self.cmd == Cmd.LINK),
                                 is_events.eq(self.cmd == Cmd.EVENTS),
                                 is_status.eq(self.cmd == Cmd.STATUS),
                                 bad_len.eq(Mux(self.cmd == Cmd.EVENTS, e_len > 1, e_len != 0)),
                                 ev_left.eq(Mux(level < limit, level, limit))]
                    m.next = "DECODE"
            with m.State("DECODE"):
                with m.If(bad_len):
                    finish(Status.BAD_LENGTH)
                with m.Elif(is_events):
                    m.next = "EV_COUNT"
                with m.Elif(is_status):
                    m.next = "STATUS"
                with m.Else():
                    m.next = "ROM_WAIT"
            with m.State("ROM_WAIT"):            # the ROM reads byte 0
                m.next = "ROM"
            with m.State("ROM"):                 # INFO / LINK: copy the constant bytes
                m.d.comb += in_rom.eq(1)
                put(rom_rd.data)
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx == Mux(rom_sel, len(self.link), len(self.info)) - 1):
                    finish(Status.OK)
            with m.State("STATUS"):
                put(status_bytes[idx])
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx == len(status_bytes) - 1):
                    finish(Status.OK)
            # -- EVENTS: count, then (id u16, step u32) per event
            with m.State("EV_COUNT"):
                put(ev_left)
                m.next = "EV_POP"
            with m.State("EV_POP"):
                with m.If(ev_left == 0):
                    finish(Status.OK)
                with m.Elif(self.ev_rdy):
                    m.d.comb += self.ev_en.eq(1)
                    m.d.sync += [ev.eq(self.ev_data), idx.eq(0), ev_left.eq(ev_left - 1)]
                    m.next = "EV_EMIT"
            with m.State("EV_EMIT"):
                put(ev_bytes[idx])
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx == EVENT_BYTES - 1):
                    m.next = "EV_POP"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
        return m
