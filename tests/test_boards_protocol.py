"""Host side of the board protocol in pure Python: frames, parser, INFO, retries, docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from neurocore.boards.protocol import (MEMORY_INDEX, SYNC_REQUEST, SYNC_RESPONSE, BridgeFlags,
                                       Cmd, FrameParser, Status, crc16, decode_info,
                                       encode_frame, encode_info)
from neurocore.rtl.core import MEMORY_INDEX as RTL_MEMORY_INDEX
from neurocore.spec.geometry import CoreGeometry
from neurocore.sw.host import BoardLink, LinkTimeout, ProtocolError

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_doc_tables_match_the_constants():
    text = DOC.read_text()
    row = r"^\| `?(0x[0-9a-f]{2}|\d+)`? \| `([A-Z_]+)` \|"
    cmds = {name: int(code, 0) for code, name in
            re.findall(row, _section(text, "Commands"), re.M)}
    assert cmds == {c.name: c.value for c in Cmd}
    statuses = {name: int(code) for code, name in
                re.findall(row, _section(text, "Status codes"), re.M)}
    assert statuses == {s.name: s.value for s in Status}
    flags = {name: 1 << int(bit) for bit, name in
             re.findall(row, _section(text, "Bridge flags"), re.M)}
    assert flags == {f.name: f.value for f in BridgeFlags}
    assert f"`0x{SYNC_REQUEST:02X}`" in text and f"`0x{SYNC_RESPONSE:02X}`" in text
    for name, i in MEMORY_INDEX.items():
        assert f"`{name}` {i}" in text
    assert MEMORY_INDEX == RTL_MEMORY_INDEX


def test_frame_encoding_and_parser_resync():
    assert crc16(b"123456789") == 0x29B1
    f = encode_frame(Cmd.RUN, b"\x02\x00")
    assert f[:4] == bytes([SYNC_REQUEST, Cmd.RUN, 2, 2]) and crc16(f[1:-2]) == int.from_bytes(f[-2:], "big")
    with pytest.raises(ValueError):
        encode_frame(Cmd.WRITE, bytes(129), max_payload=128)
    good = encode_frame(Cmd.STATUS, b"\x00abc", sync=SYNC_RESPONSE)
    bad = bytearray(good)
    bad[4] ^= 1
    p = FrameParser()
    frames = p.feed(b"\x00\x5a" + bytes(bad) + good[:4])
    assert frames == [] and p.bad_crc >= 1
    frames = p.feed(good[4:] + good)
    assert [fr.payload for fr in frames] == [b"\x00abc", b"\x00abc"]
    assert frames[0].status == Status.OK and frames[0].data == b"abc"


def test_info_round_trip():
    g = CoreGeometry.preset("tiny")
    data = encode_info(g, max_payload=128, step_bits=32, event_depth=256, input_depth=128,
                       clock_hz=12_000_000, baud=115200)
    info = decode_info(data)
    assert info.same_geometry(g) and not info.same_geometry(g.replace(n_axons=256))
    assert (info.clock_hz, info.baud, info.event_depth, info.input_depth) == (12_000_000, 115200,
                                                                              256, 128)
    with pytest.raises(ValueError):
        decode_info(data[:-1])


class FakeBoard:
    """Transport that answers from a script of (status | None) per received frame."""

    def __init__(self, script):
        self.script = list(script)
        self.out = bytearray()
        self.sent = []

    def write(self, data):
        cmd = data[1]
        self.sent.append(cmd)
        action = self.script.pop(0)
        if action is not None:                       # None: the response is lost
            self.out += b"\x00\x5a" + encode_frame(0x7F, b"\x00", sync=SYNC_RESPONSE) \
                + encode_frame(cmd, bytes([action]) + b"\x01\x00\x00\x00\x00\x00",
                               sync=SYNC_RESPONSE)

    def read(self, n=1):
        data, self.out = bytes(self.out[:n]), self.out[n:]
        return data

    def reset_input_buffer(self):
        self.out.clear()


def test_link_resends_unexecuted_frames_and_lost_idempotent_responses():
    board = FakeBoard([Status.BAD_CRC, Status.TIMEOUT, Status.OK])
    assert BoardLink(board, timeout=None).run(1) == (1, 0)
    assert board.sent == [Cmd.RUN] * 3
    board = FakeBoard([None, Status.OK])             # lost response, idempotent: resent
    link = BoardLink(board, timeout=None)
    link.request(Cmd.CLEAR)
    assert board.sent == [Cmd.CLEAR] * 2 and link.resends == 1
    board = FakeBoard([None, Status.OK])             # RUN twice would run two steps
    with pytest.raises(LinkTimeout):
        BoardLink(board, timeout=None).run(1)
    assert board.sent == [Cmd.RUN]
    board = FakeBoard([Status.RANGE])
    with pytest.raises(ProtocolError) as e:
        BoardLink(board, timeout=None).spikes([1000])
    assert e.value.status == Status.RANGE
    board = FakeBoard([Status.BAD_CRC] * 3)
    with pytest.raises(ProtocolError, match="BAD_CRC"):
        BoardLink(board, timeout=None, retries=2).run(1)
