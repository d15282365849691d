"""Commands WRITE, READ and FILL of the bridge: the core's configuration port (docs/protocol.md).

:class:`MemoryAccess` executes one command when ``start`` pulses (``cmd``, payload ``length``
u8, the first 8 payload bytes on ``hdr``), reading payload byte ``pl_index`` on ``pl_data``
one cycle later and writing READ data into the reply buffer through ``tx_*``; it pulses
``done`` with ``status`` and ``count`` (reply data bytes).  The header checks are decided in
this order: short payload (``BAD_LENGTH``), memory select (``BAD_MEMORY``), length or count
(``BAD_LENGTH``), address range (``RANGE``).  A word travels in ``ceil(bits / 8)`` bytes,
little-endian; FILL writes its one word ``count`` times, one per clock.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..rtl.core import ConfigSignature
from ..spec.geometry import CoreGeometry, bits_for
from ..spec.schedule import port_targets
from .exec_reply import reply_writers
from .protocol import FILL_HEADER, MEMORY_INDEX, WRITE_HEADER, Cmd, Status, word_bytes

__all__ = ["MemoryAccess"]


class MemoryAccess(wiring.Component):
    """WRITE/READ/FILL executor (module docstring)."""

    def __init__(self, geometry: CoreGeometry, *, max_payload: int):
        self.geometry, self.max_payload = geometry, max_payload
        super().__init__({
            "start": In(1), "cmd": In(8), "length": In(8), "hdr": In(8).array(8),
            "pl_index": Out(8), "pl_data": In(8),
            "tx_en": Out(1), "tx_addr": Out(8), "tx_data": Out(8),
            "done": Out(1), "status": Out(8), "count": Out(8),
            "cfg": Out(ConfigSignature(geometry)), "core_busy": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        g, mp = self.geometry, self.max_payload
        targets = port_targets(g)
        names = list(MEMORY_INDEX)
        sel_bits = bits_for(len(names))
        # a select of a memory this geometry lacks (conv with n_conv = 0): BAD_MEMORY
        wb_of = {n: word_bytes(g).get(n, 1) for n in names}
        WB = Array([Const(wb_of[n], 4) for n in names])
        DEPTH = Array([Const(targets.get(n, (0, 8))[0], 25) for n in names])
        MAXREAD = Array([Const(min(255, (mp - 1) // wb_of[n]), 8) for n in names])
        PRESENT = Array([Const(n in targets, 1) for n in names])

        hdr = Array(self.hdr)
        e_cmd, e_len = self.cmd, self.length
        mem_sel, addr, remain = Signal(8), Signal(25), Signal(24)
        wbyte, word = Signal(3), Signal(64)
        tptr, rptr, rptr_nxt, first_byte = Signal(8), Signal(8), Signal(8), Signal(8)
        end = Signal(25)                     # first address after the access
        bad_short, bad_mem, bad_len, bad_range = Signal(), Signal(), Signal(), Signal()
        need = Signal(16)                    # payload bytes the header asks for
        cfg = self.cfg
        m.d.comb += [rptr_nxt.eq(rptr), self.pl_index.eq(rptr_nxt), self.count.eq(tptr),
                     cfg.mem.eq(mem_sel), cfg.addr.eq(addr), cfg.wdata.eq(word)]
        m.d.sync += rptr.eq(rptr_nxt)
        wb = WB[mem_sel[:sel_bits]]
        hdr_mem = hdr[0]
        hdr_addr = Cat(hdr[1], hdr[2], hdr[3])
        hdr_count8 = hdr[4]
        hdr_count24 = Cat(hdr[4], hdr[5], hdr[6])
        wb_h = WB[hdr_mem[:sel_bits]]
        # WRITE payload bytes: count * word bytes, by memory, as shifts and adds (Yosys would
        # share constant multiplications as one multiplier on a DSP)
        payload_h = Array([sum(hdr_count8 << i for i in range(wb_of[n].bit_length())
                               if wb_of[n] >> i & 1) for n in names])[hdr_mem[:sel_bits]]
        is_fill = e_cmd == Cmd.FILL
        is_read = e_cmd == Cmd.READ
        # The core's cfg.ready is ~busy & ~start & ~clear, and nothing drives start or clear
        # while this accesses the configuration port: the access is taken iff the core is not
        # busy.  (Waiting on busy, a register decode, keeps the core's ready logic out of
        # this FSM's next-state logic.)
        cfg_taken = ~self.core_busy

        finish, put = reply_writers(m, self, tptr)

        with m.FSM(name="mem_access"):
            with m.State("IDLE"):
                with m.If(self.start):
                    # The checks are registered here and in CHECK, and decided in ACCESS
                    # (timing: the payload length a header needs is one register stage).
                    count = Mux(is_fill, hdr_count24, hdr_count8)
                    m.d.sync += [mem_sel.eq(hdr_mem), addr.eq(hdr_addr), remain.eq(count),
                                 wbyte.eq(0), word.eq(0), end.eq(hdr_addr + count), tptr.eq(0),
                                 bad_short.eq(e_len < WRITE_HEADER),
                                 bad_mem.eq((hdr_mem >= len(MEMORY_INDEX))
                                            | ~PRESENT[hdr_mem[:sel_bits]]),
                                 need.eq(Mux(is_fill, FILL_HEADER + wb_h,
                                             Mux(is_read, WRITE_HEADER,
                                                 WRITE_HEADER + payload_h))),
                                 bad_len.eq((~is_fill & (hdr_count8 == 0)) |
                                            (is_read & (hdr_count8 > MAXREAD[hdr_mem[:sel_bits]])))]
                    m.next = "CHECK"
                # the payload's first word byte, whether or not `start` (timing: registered
                # from the pending frame's command, which holds still until `start`)
                m.d.sync += first_byte.eq(Mux(is_fill, FILL_HEADER, WRITE_HEADER))
                m.d.comb += rptr_nxt.eq(first_byte)
            with m.State("CHECK"):
                m.d.sync += [bad_len.eq(bad_len | (e_len != need)),
                             bad_range.eq(end > DEPTH[mem_sel[:sel_bits]])]
                m.next = "ACCESS"
            with m.State("ACCESS"):              # the header checks, in order of precedence
                with m.If(bad_short):
                    finish(Status.BAD_LENGTH)
                with m.Elif(bad_mem):
                    finish(Status.BAD_MEMORY)
                with m.Elif(bad_len):
                    finish(Status.BAD_LENGTH)
                with m.Elif(bad_range):
                    finish(Status.RANGE)
                with m.Elif(is_read):
                    m.next = "READ_ISSUE"
                with m.Elif(is_fill & (remain == 0)):
                    finish(Status.OK)
                with m.Else():
                    m.next = "WORD"
            # -- WRITE / FILL: assemble one word from the payload (little-endian)
            with m.State("WORD"):
                m.d.comb += [rptr_nxt.eq(rptr + 1)]
                m.d.sync += [word.word_select(wbyte, 8).eq(self.pl_data), wbyte.eq(wbyte + 1)]
                with m.If(wbyte == wb - 1):
                    m.next = "STORE"
            with m.State("STORE"):
                m.d.comb += [cfg.valid.eq(1), cfg.write.eq(1)]
                with m.If(cfg_taken):
                    m.d.sync += [addr.eq(addr + 1), remain.eq(remain - 1), wbyte.eq(0)]
                    with m.If(remain == 1):
                        finish(Status.OK)
                    with m.Elif(e_cmd == Cmd.WRITE):
                        m.d.sync += word.eq(0)
                        m.next = "WORD"
            # -- READ: one word per round, wb bytes into the response
            with m.State("READ_ISSUE"):
                m.d.comb += [cfg.valid.eq(1)]
                with m.If(cfg_taken):
                    m.next = "READ_WAIT"
            with m.State("READ_WAIT"):
                with m.If(cfg.rvalid):
                    m.d.sync += [word.eq(cfg.rdata), wbyte.eq(0)]
                    m.next = "READ_EMIT"
            with m.State("READ_EMIT"):
                put(word.word_select(wbyte, 8))
                m.d.sync += wbyte.eq(wbyte + 1)
                with m.If(wbyte == wb - 1):
                    m.d.sync += [addr.eq(addr + 1), remain.eq(remain - 1)]
                    with m.If(remain == 1):
                        finish(Status.OK)
                    with m.Else():
                        m.next = "READ_ISSUE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
        return m
