"""Framed host protocol of the UART bridge (docs/protocol.md), shared by the RTL and the host.

Both directions use the same frame::

    SYNC  CMD  LEN  PAYLOAD[LEN]  CRC_HI  CRC_LO

``SYNC`` is :data:`SYNC_REQUEST` (host → board) or :data:`SYNC_RESPONSE` (board → host);
``CRC`` is CRC-16/CCITT-FALSE (:func:`crc16`) over ``CMD``, ``LEN`` and the payload, sent high
byte first.  Every request is answered by exactly one response frame whose ``CMD`` echoes the
request's and whose first payload byte is a :class:`Status`.  Multi-byte fields are
little-endian.  This module is pure Python: :mod:`neurocore.boards.uart_bridge` builds the
hardware from these constants and :mod:`neurocore.sw.host` speaks the protocol with them.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from dataclasses import dataclass

from ..spec.geometry import CoreGeometry
from ..spec.schedule import MEMORY_INDEX, port_targets

__all__ = ["PROTOCOL_VERSION", "SYNC_REQUEST", "SYNC_RESPONSE", "DEFAULT_MAX_PAYLOAD", "Cmd",
           "Status", "BridgeFlags", "ClearMask", "MEMORY_INDEX", "EVENT_BYTES", "SPIKE_BYTES",
           "crc16", "crc16_update", "encode_frame", "FrameParser", "Frame", "word_bytes",
           "BoardInfo", "encode_info", "decode_info", "GEOMETRY_FIELDS", "max_read_words",
           "max_events", "max_spikes", "max_write_words", "SYNC_REQUEST_V2", "V2_OVERHEAD",
           "V1_HEADER", "V2_HEADER",
           "encode_frame_v2", "LinkInfo", "encode_link", "decode_link", "BAUD_OPTIONS",
           "ENCODER_TABLES", "ENCODER_PARAMS", "image_reply_bytes", "CLASS_BYTES",
           "IMAGE_REPLY_HEAD"]

PROTOCOL_VERSION = 2
SYNC_REQUEST = 0xA5
SYNC_RESPONSE = 0x5A
#: Sync byte of a version-2 request frame (docs/protocol.md, "Version 2").
SYNC_REQUEST_V2 = 0xA6
#: Bytes a v2 request frame adds to its payload: sync, cmd, tag, len u16, header CRC, CRC.
V2_OVERHEAD = 9
#: Bytes before a request's payload: v1 sync, cmd, len; v2 sync, cmd, tag, len u16, header CRC.
V1_HEADER, V2_HEADER = 3, 7
#: Bytes a v1 frame occupies at most (sync, cmd, len, 255 payload bytes, CRC).
V1_MAX_FRAME = 5 + 255
#: Bytes of an IMAGE reply before the per-class fields: status, tag, class.
IMAGE_REPLY_HEAD = 3
#: Per class in an IMAGE reply: spike count u8, first-spike step u16 (0xFFFF: none).
CLASS_BYTES = 3
#: Encoder tables of the ENCODER command (rtl/encoder.py numbering, then the parameters).
ENCODER_TABLES = {"lut": 0, "axons": 1, "clock_axon": 2, "clock_step": 3, "params": 4}
#: Words of the ENCODER ``params`` table.
ENCODER_PARAMS = {"n_inputs": 0, "n_steps": 1, "n_classes": 2}
#: Header of an ENCODER request: table u8, address u16 (then u16 words).
ENCODER_HEADER = 3
#: Baud rates the boards' USB UARTs run (FT2232H on the iCEBreaker, FT231X on the ULX3S);
#: a bitstream is built for one (``BAUD=``), the divisor error must stay below 2 %.
BAUD_OPTIONS = (115200, 921600, 1_000_000, 2_000_000, 3_000_000)
#: Largest payload (bytes) a frame may carry unless a bridge is built with another limit.
DEFAULT_MAX_PAYLOAD = 128
#: One output event in an EVENTS response: output id (u16) then step (u32).
EVENT_BYTES = 6
#: One host spike in a SPIKES/STEP request: axon id (u16).
SPIKE_BYTES = 2
#: Header of WRITE/READ requests: memory (u8), address (u24), count (u8).
WRITE_HEADER = 5
#: Header of FILL requests: memory (u8), address (u24), count (u24), then one word.
FILL_HEADER = 7



class Cmd(enum.IntEnum):
    """Request commands (the ``CMD`` byte)."""

    INFO = 0x01      # -> protocol version, limits, clock, geometry
    LINK = 0x04      # -> v2 limits: rx ring, max frame, encoder sizes
    STATUS = 0x02    # -> core error flags, bridge flags, step counter, events pending
    CLEAR = 0x03     # [mask u8]: core state + step counter / event FIFO / error flags
    WRITE = 0x10     # mem u8, addr u24, count u8, count words
    READ = 0x11      # mem u8, addr u24, count u8 -> count words
    FILL = 0x12      # mem u8, addr u24, count u24, one word: write it count times
    SPIKES = 0x20    # axon ids (u16 each) -> accepted count u8
    RUN = 0x30       # n u16: run n steps -> step u32, events pending u16
    STEP = 0x31      # axon ids (u16 each), then run one step -> step u32, events pending u16
    EVENTS = 0x40    # [max u8] -> count u8, count x (output id u16, step u32)
    ENCODER = 0x50   # table u8, addr u16, u16 words -> tag
    IMAGE = 0x51     # n_inputs pixel bytes -> tag, class u8, per class (count u8, first u16)


class Status(enum.IntEnum):
    """First payload byte of every response."""

    OK = 0
    BAD_CRC = 1          # CRC mismatch (the frame is dropped after the line goes quiet)
    UNKNOWN_CMD = 2      # well-formed frame with an unknown command
    BAD_LENGTH = 3       # LEN above the limit, or not the length the command needs
    TIMEOUT = 4          # the frame stopped arriving (inter-byte timeout)
    BAD_MEMORY = 5       # no such memory select on this geometry (>= 10; conv without n_conv)
    RANGE = 6            # address range beyond the memory, or axon id >= n_axons
    INPUT_FULL = 7       # the core's host-spike buffer is full (payload: spikes accepted)


class BridgeFlags(enum.IntFlag):
    """Sticky bridge flags (STATUS byte 2), cleared by CLEAR with :attr:`ClearMask.ERRORS`."""

    EVENT_OVERFLOW = 1   # an output event was dropped: the event FIFO was full
    RX_OVERRUN = 2       # a byte arrived while a command executed or a frame waited (dropped)
    FRAMING = 4          # a byte had no stop bit (dropped)
    REJECTED = 8         # a frame was answered with an error status
    SKIPPED = 16         # v2: a header failed its CRC, or a non-sync byte came in v2 mode


class ClearMask(enum.IntFlag):
    """CLEAR's optional mask byte (all three when absent)."""

    CORE = 1             # ctrl.clear: every u, v, accumulator and the step counter to 0
    EVENTS = 2           # empty the event FIFO
    ERRORS = 4           # core error flags and bridge flags
    ALL = 7


# ---- CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor) -----------
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF


def crc16_update(crc: int, byte: int) -> int:
    crc ^= (byte & 0xFF) << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
        crc &= 0xFFFF
    return crc


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``)."""
    for b in data:
        crc = crc16_update(crc, b)
    return crc


def encode_frame(cmd: int, payload: bytes = b"", *, sync: int = SYNC_REQUEST,
                 max_payload: int = 255) -> bytes:
    """Return one frame: sync, cmd, len, payload, CRC (high byte first)."""
    payload = bytes(payload)
    for name, byte in (("command", cmd), ("sync", sync)):
        if not 0 <= int(byte) <= 0xFF:
            raise ValueError(f"{name} {int(byte):#x} does not fit one byte")
    if len(payload) > max_payload:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the limit of {max_payload}")
    body = bytes([int(cmd), len(payload)]) + payload
    crc = crc16(body)
    return bytes([sync]) + body + bytes([crc >> 8, crc & 0xFF])


def encode_frame_v2(cmd: int, payload: bytes = b"", *, tag: int = 0,
                    max_frame: int = 0xFFFF) -> bytes:
    """Return one v2 request frame: sync, cmd, tag, len u16 LE, header CRC (CRC-16 of cmd, tag
    and len, high byte first), payload, CRC-16 of the payload (high byte first)."""
    payload = bytes(payload)
    for name, byte in (("command", cmd), ("tag", tag)):
        if not 0 <= int(byte) <= 0xFF:
            raise ValueError(f"{name} {int(byte):#x} does not fit one byte")
    if len(payload) > max_frame:
        raise ValueError(f"v2 payload of {len(payload)} bytes exceeds the limit of {max_frame}")
    head = bytes([int(cmd), int(tag)]) + len(payload).to_bytes(2, "little")
    hcrc, crc = crc16(head), crc16(payload)
    return (bytes([SYNC_REQUEST_V2]) + head + bytes([hcrc >> 8, hcrc & 0xFF]) + payload
            + bytes([crc >> 8, crc & 0xFF]))


@dataclass(frozen=True)
class LinkInfo:
    """LINK reply: the v2 limits of a bridge."""

    rx_depth: int        # bytes of the RX ring
    max_frame: int       # largest v2 payload
    enc_inputs: int      # encoder: inputs per image
    enc_steps: int       # encoder: steps per image
    enc_classes: int     # classes an IMAGE reply reports at most
    enc_clocks: int      # clock axons

    def window(self, frame_bytes: int) -> int:
        """Frames of ``frame_bytes`` the host may have unanswered (credit window): they and
        one v1 frame of garbage fit the ring; at least 1."""
        return max(1, (self.rx_depth - V1_MAX_FRAME) // frame_bytes)


LINK_REPLY = struct.Struct("<HHHHBB")


def encode_link(info: LinkInfo) -> bytes:
    return LINK_REPLY.pack(info.rx_depth, info.max_frame, info.enc_inputs, info.enc_steps,
                           info.enc_classes, info.enc_clocks)


def decode_link(data: bytes) -> LinkInfo:
    if len(data) != LINK_REPLY.size:
        raise ValueError(f"LINK reply of {len(data)} bytes; expected {LINK_REPLY.size}")
    return LinkInfo(*LINK_REPLY.unpack(data))


def image_reply_bytes(n_classes: int) -> int:
    """Bytes of an IMAGE response frame (sync, cmd, len, payload, CRC)."""
    return 5 + IMAGE_REPLY_HEAD + CLASS_BYTES * n_classes


@dataclass
class Frame:
    """A received frame; ``payload[0]`` is the status of a response."""

    cmd: int
    payload: bytes

    @property
    def status(self) -> Status | int:
        if not self.payload:
            raise ValueError(f"response to command 0x{self.cmd:02x} has no status byte")
        try:
            return Status(self.payload[0])
        except ValueError:
            return self.payload[0]

    @property
    def data(self) -> bytes:
        return self.payload[1:]


class FrameParser:
    """Incremental frame parser (host side, and the reference the RTL receiver follows).

    ``feed(data)`` returns the complete frames found; bytes outside a frame are skipped
    (counted in ``skipped``), a frame whose CRC fails is dropped (counted in ``bad_crc``) and
    parsing resumes at the byte after its sync byte.
    """

    def __init__(self, sync: int = SYNC_RESPONSE):
        self.sync = sync
        self.buf = bytearray()
        self.skipped = 0
        self.bad_crc = 0

    def feed(self, data: bytes) -> list[Frame]:
        self.buf += data
        frames = []
        while True:
            i = self.buf.find(bytes([self.sync]))
            if i < 0:
                self.skipped += len(self.buf)
                self.buf.clear()
                break
            if i:
                self.skipped += i
                del self.buf[:i]
            if len(self.buf) < 3:
                break
            n = self.buf[2]
            if len(self.buf) < 5 + n:
                break
            body = bytes(self.buf[1:3 + n])
            crc = (self.buf[3 + n] << 8) | self.buf[4 + n]
            if crc16(body) != crc:
                self.bad_crc += 1
                self.skipped += 1
                del self.buf[:1]
                continue
            frames.append(Frame(cmd=body[0], payload=body[2:]))
            del self.buf[:5 + n]
        return frames

    def pending(self) -> int:
        return len(self.buf)

    def skip(self) -> list[Frame]:
        """Drop the first buffered byte (a sync byte that started no frame); parse the rest."""
        if self.buf:
            del self.buf[:1]
            self.skipped += 1
        return self.feed(b"")


# ---- per-geometry sizes ----------------------------------------------------------------------
def word_bytes(g: CoreGeometry) -> dict[str, int]:
    """Bytes per word of each port target (memories and registers) on the wire:
    ``ceil(bits / 8)``, little-endian."""
    return {name: (bits + 7) // 8 for name, (_, bits) in port_targets(g).items()}


def max_read_words(g: CoreGeometry, mem: str, max_payload: int = DEFAULT_MAX_PAYLOAD) -> int:
    """Most words one READ response carries (after its status byte)."""
    return min(255, (max_payload - 1) // word_bytes(g)[mem])


def max_write_words(g: CoreGeometry, mem: str, max_payload: int = DEFAULT_MAX_PAYLOAD) -> int:
    """Most words one WRITE request carries (after its 5-byte header)."""
    return min(255, (max_payload - WRITE_HEADER) // word_bytes(g)[mem])


def max_events(max_payload: int = DEFAULT_MAX_PAYLOAD) -> int:
    """Most events one EVENTS response carries (after status and count bytes)."""
    return min(255, (max_payload - 2) // EVENT_BYTES)


def max_spikes(max_payload: int = DEFAULT_MAX_PAYLOAD) -> int:
    """Most axon ids one SPIKES/STEP request carries."""
    return min(255, max_payload // SPIKE_BYTES)


# ---- INFO ----------------------------------------------------------------------------------------
#: CoreGeometry fields sent by INFO (u32 each, in this order).
#: Geometry fields an INFO response carries.  Boards have no periodic reset (the RTL does not
#: implement docs/spec.md §11 yet), so ``reset_bits`` is not sent and reads as
#: :data:`BOARD_RESET_BITS`: INFO is unchanged, and a program with reset fields is refused.
GEOMETRY_FIELDS = tuple(f.name for f in dataclasses.fields(CoreGeometry)
                        if f.name not in ("name", "reset_bits"))
BOARD_RESET_BITS = 0
_INFO_HEAD = struct.Struct("<BBBBHHII")


@dataclass(frozen=True)
class BoardInfo:
    """What a bridge reports about itself (INFO)."""

    version: int
    max_payload: int
    step_bits: int
    event_depth: int
    input_depth: int
    clock_hz: int
    baud: int
    geometry: dict

    def same_geometry(self, g: CoreGeometry) -> bool:
        return all(self.geometry[f] == getattr(g, f) for f in self.geometry)


def encode_info(g: CoreGeometry, *, max_payload: int, step_bits: int, event_depth: int,
                input_depth: int, clock_hz: int = 0, baud: int = 0) -> bytes:
    """INFO response payload after the status byte."""
    head = _INFO_HEAD.pack(PROTOCOL_VERSION, max_payload, step_bits, len(GEOMETRY_FIELDS),
                           event_depth, input_depth, int(clock_hz), int(baud))
    return head + b"".join(struct.pack("<I", getattr(g, f)) for f in GEOMETRY_FIELDS)


def decode_info(data: bytes) -> BoardInfo:
    if len(data) < _INFO_HEAD.size:
        raise ValueError(f"INFO payload of {len(data)} bytes is too short")
    version, max_payload, step_bits, n, ev, inp, clk, baud = _INFO_HEAD.unpack_from(data)
    if version != PROTOCOL_VERSION:
        raise ValueError(f"INFO reports protocol version {version}; this host speaks "
                         f"version {PROTOCOL_VERSION}")
    if n != len(GEOMETRY_FIELDS):
        raise ValueError(f"INFO holds {n} geometry fields, expected {len(GEOMETRY_FIELDS)} "
                         f"({', '.join(GEOMETRY_FIELDS)})")
    if len(data) != _INFO_HEAD.size + 4 * n:
        raise ValueError(f"INFO payload of {len(data)} bytes does not hold {n} geometry fields")
    values = struct.unpack_from(f"<{n}I", data, _INFO_HEAD.size)
    return BoardInfo(version=version, max_payload=max_payload, step_bits=step_bits,
                     event_depth=ev, input_depth=inp, clock_hz=clk, baud=baud,
                     geometry=dict(zip(GEOMETRY_FIELDS, values), reset_bits=BOARD_RESET_BITS))
