"""Byte-stream side of the bridge: RX ring buffer and frame parser for protocol v1 and v2.

:class:`LinkReceiver` takes the UART's bytes into a ring buffer of ``depth`` bytes (a power of
two) and parses frames out of it (docs/protocol.md):

* v1: ``A5 CMD LEN payload CRC``; a bad CRC or ``LEN > max_payload`` skips bytes until the ring
  has been empty for ``timeout`` cycles, then reports ``BAD_CRC``/``BAD_LENGTH`` (as before).
* v2: ``A6 CMD TAG LEN_LO LEN_HI HCRC payload CRC`` (``HCRC``: CRC-16 of CMD..LEN_HI, ``CRC``:
  CRC-16 of the payload).  A bad header is skipped (``skipped`` pulse) and parsing resumes at
  the byte after its sync byte; a trusted header with ``LEN > max_frame`` reports
  ``BAD_LENGTH``; a bad payload CRC or a timeout reports ``BAD_CRC``/``TIMEOUT`` and rewinds the
  parser to the byte after the sync byte, so a frame hidden in a truncated one is still found.

No byte is dropped unless the ring is full (``overrun`` pulse): bytes stay in the ring from
their frame's sync byte until the command executed (``hold`` low again).  While a frame is
``pending`` the executor reads its payload byte ``pl_index`` on ``pl_data`` one cycle later.
After a good v2 header the parser is in v2 mode until the line has been quiet, with every
received byte parsed, for ``timeout`` cycles; in v2 mode ``A5`` is not a sync byte.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .protocol import CRC_INIT, SYNC_REQUEST, SYNC_REQUEST_V2, V1_HEADER, V2_HEADER, Status
from .uart import crc16_byte

__all__ = ["LinkReceiver"]


class LinkReceiver(wiring.Component):
    """RX ring + v1/v2 frame parser (module docstring).  ``timeout`` in cycles."""

    def __init__(self, *, depth: int, timeout: int, max_payload: int, max_frame: int):
        if depth < 16 or depth & (depth - 1):
            raise ValueError(f"ring depth must be a power of two >= 16, not {depth!r}")
        if depth < 5 + max_payload:
            raise ValueError(f"ring depth {depth} cannot hold a v1 frame of max_payload "
                             f"{max_payload} ({5 + max_payload} bytes)")
        if not 1 <= max_frame < 1 << 16:
            raise ValueError(f"max_frame must lie in 1..65535, not {max_frame!r}")
        self.depth, self.timeout = depth, timeout
        self.max_payload, self.max_frame = max_payload, max_frame
        super().__init__({
            "rx_data": In(8), "rx_valid": In(1), "hold": In(1), "take": In(1),
            "pending": Out(1), "v2": Out(1), "cmd": Out(8), "tag": Out(8), "length": Out(16),
            "status": Out(8), "hdr": Out(8).array(8),
            "pl_index": In(16), "pl_data": Out(8),
            "overrun": Out(1), "skipped": Out(1), "level": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.depth
        pw = (d - 1).bit_length()
        ring = m.submodules.ring = Memory(shape=8, depth=d, init=[])
        wp = ring.write_port()
        rp = ring.read_port(transparent_for=(wp,))
        pp = ring.read_port()                # a held frame is never written while read
        wr, rd, commit, start = (Signal(pw + 1, name=n) for n in ("wr", "rd", "commit", "start"))
        rd_nxt = Signal(pw + 1)
        full = (wr - commit) == d
        # Timing: both read addresses come from registers, and the parser decides on a
        # registered byte.  The ring is read at `rd`; its data is valid when the ring was not
        # empty and `rd` had not just moved (`moved`); that byte is registered (`byte`, `ok`)
        # and parsed a cycle later if `rd` still points at it: one byte per three cycles, far
        # above any baud rate.  Payload byte i lies at `pl_base + i`.
        moved = Signal()
        pl_base = Signal(pw + 1)
        m.d.comb += [wp.addr.eq(wr), wp.data.eq(self.rx_data), self.level.eq(wr - commit),
                     rp.addr.eq(rd), rd_nxt.eq(rd), pp.addr.eq(pl_base + self.pl_index[:pw]),
                     self.pl_data.eq(pp.data)]
        m.d.sync += [rd.eq(rd_nxt), moved.eq(0),
                     pl_base.eq(start + Mux(self.v2, V2_HEADER, V1_HEADER))]
        with m.If(self.rx_valid):
            with m.If(full):
                m.d.comb += self.overrun.eq(1)
            with m.Else():
                m.d.comb += wp.en.eq(1)
                m.d.sync += wr.eq(wr + 1)

        # line quiet timer (v2 mode) and frame timer (ring empty while a frame is incomplete)
        quiet = Signal(range(self.timeout + 1))
        # (quiet: no byte arrived and every received byte parsed, for `timeout` cycles)
        m.d.sync += quiet.eq(Mux(self.rx_valid | (wr != rd), 0,
                                 Mux(quiet == self.timeout, quiet, quiet + 1)))
        mode2 = Signal()
        with m.If(quiet == self.timeout):
            m.d.sync += mode2.eq(0)
        timer = Signal(range(self.timeout + 1))
        byte, ok = Signal(8), Signal()
        m.d.sync += [byte.eq(rp.data), ok.eq((wr != rd) & ~moved)]
        # compares of the byte with the CRC and length limits, registered beside it (crc,
        # crc_hi and length do not change between the byte's read and its parse)
        crc = Signal(16)
        crc_hi = Signal(8)
        crc_match, long_frame, long_v1 = Signal(), Signal(), Signal()
        m.d.sync += [crc_match.eq(Cat(rp.data, crc_hi) == crc),
                     long_frame.eq(self.length > self.max_frame),
                     long_v1.eq(rp.data > self.max_payload)]
        got = Signal()
        m.d.comb += got.eq(ok & ~moved & ~self.hold)
        m.d.sync += timer.eq(Mux(got, 0, Mux(timer == self.timeout, timer, timer + 1)))
        # `timeout` cycles without a byte (registered: one cycle later; timing)
        hit = Signal()
        m.d.sync += hit.eq((timer == self.timeout) & ~got)
        expired = ~got & hit

        idx = Signal(16)
        pl_end = Signal()                    # PAYLOAD: idx == length (registered)
        hdr = Array(self.hdr)
        v2 = self.v2

        def consume():
            m.d.comb += rd_nxt.eq(rd + 1)
            m.d.sync += moved.eq(1)

        def rewind_to_start():
            m.d.comb += rd_nxt.eq(start + 1)
            m.d.sync += moved.eq(1)

        def fail(status, rewind):
            m.d.sync += self.status.eq(status)
            with m.If(rewind):
                rewind_to_start()
            m.next = "PENDING"

        def field(state, nxt, target, *, crc_it=True):
            with m.State(state):
                with m.If(got):
                    consume()
                    m.d.sync += target.eq(byte)
                    if crc_it:
                        m.d.sync += crc.eq(crc16_byte(crc, byte))
                    m.next = nxt
                with m.Elif(expired):
                    fail(Status.TIMEOUT, v2)

        with m.FSM(name="parser"):
            with m.State("HUNT"):
                with m.If(got):
                    consume()
                    is1 = (byte == SYNC_REQUEST) & ~mode2
                    is2 = byte == SYNC_REQUEST_V2
                    m.d.sync += [crc.eq(CRC_INIT), idx.eq(0), v2.eq(is2), start.eq(rd),
                                 commit.eq(Mux(is1 | is2, rd, rd + 1)), self.tag.eq(0)]
                    with m.If(is1 | is2):
                        m.next = "CMD"
                    with m.Elif(mode2):
                        m.d.comb += self.skipped.eq(1)
                with m.Elif(~self.hold):
                    m.d.sync += commit.eq(rd)
            with m.State("CMD"):
                with m.If(got):
                    consume()
                    m.d.sync += [self.cmd.eq(byte), crc.eq(crc16_byte(crc, byte))]
                    m.next = "LEN_LO"
                    with m.If(v2):
                        m.next = "TAG"
                with m.Elif(expired):
                    fail(Status.TIMEOUT, v2)
            field("TAG", "LEN_LO", self.tag)
            with m.State("LEN_LO"):
                with m.If(got):
                    consume()
                    m.d.sync += [self.length.eq(byte), crc.eq(crc16_byte(crc, byte))]
                    with m.If(v2):
                        m.next = "LEN_HI"
                    with m.Elif(long_v1):
                        m.d.sync += self.status.eq(Status.BAD_LENGTH)
                        m.next = "DISCARD"
                    with m.Else():
                        m.d.sync += pl_end.eq(byte == 0)
                        m.next = "PAYLOAD"
                with m.Elif(expired):
                    fail(Status.TIMEOUT, v2)
            field("LEN_HI", "HCRC_HI", self.length[8:])
            field("HCRC_HI", "HCRC_LO", crc_hi, crc_it=False)
            with m.State("HCRC_LO"):
                with m.If(got):
                    consume()
                    with m.If(~crc_match):                        # untrusted header: skip it
                        m.d.comb += self.skipped.eq(1)
                        rewind_to_start()
                        m.next = "HUNT"
                    with m.Elif(long_frame):
                        m.d.sync += mode2.eq(1)
                        fail(Status.BAD_LENGTH, 0)
                    with m.Else():
                        m.d.sync += [mode2.eq(1), crc.eq(CRC_INIT), pl_end.eq(self.length == 0)]
                        m.next = "PAYLOAD"
                with m.Elif(expired):
                    fail(Status.TIMEOUT, 1)
            with m.State("PAYLOAD"):
                with m.If(pl_end):
                    m.next = "CRC_HI"
                with m.Elif(got):
                    consume()
                    with m.If(idx < 8):
                        m.d.sync += hdr[idx[:3]].eq(byte)
                    m.d.sync += [idx.eq(idx + 1), crc.eq(crc16_byte(crc, byte)),
                                 pl_end.eq(idx + 1 == self.length)]
                with m.Elif(expired):
                    fail(Status.TIMEOUT, v2)
            field("CRC_HI", "CRC_LO", crc_hi, crc_it=False)
            with m.State("CRC_LO"):
                with m.If(got):
                    consume()
                    with m.If(crc_match):
                        m.d.sync += self.status.eq(Status.OK)
                        m.next = "PENDING"
                    with m.Elif(v2):
                        fail(Status.BAD_CRC, 1)
                    with m.Else():
                        m.d.sync += self.status.eq(Status.BAD_CRC)
                        m.next = "DISCARD"
                with m.Elif(expired):
                    fail(Status.TIMEOUT, v2)
            with m.State("DISCARD"):                 # v1: skip the rest until the ring is quiet
                with m.If(got):
                    consume()
                    m.d.sync += commit.eq(rd + 1)
                with m.Elif(expired):
                    m.next = "PENDING"
            with m.State("PENDING"):
                m.d.comb += self.pending.eq(1)
                with m.If(self.take):
                    m.next = "HUNT"
        return m
