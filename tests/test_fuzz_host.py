"""Host-link fuzzers: the frame parser on garbage-laced streams, and BoardLink against a
scripted board that answers with garbage, short replies, stale frames, bad CRCs, error
statuses or silence.  Nothing but ProtocolError (LinkTimeout included) may escape, nothing
hangs, and a correct reply gives the correct value."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from neurocore.boards.protocol import (SYNC_RESPONSE, Cmd, FrameParser, Status, encode_frame,
                                       word_bytes)
from neurocore.sw.host import BoardLink, BoardStatus, ProtocolError

from fuzzing import count, fuzz
from scripted_board import TINY, ScriptedBoard, info_payload, ok

FRAME = st.tuples(st.integers(0, 255), st.binary(max_size=40))
SEGMENTS = st.lists(st.one_of(FRAME, st.binary(min_size=1, max_size=30)), max_size=8)


def stream_of(segments) -> tuple[bytes, list[tuple[int, bytes]]]:
    data, frames = b"", []
    for seg in segments:
        if isinstance(seg, tuple):
            data += encode_frame(seg[0], seg[1], sync=SYNC_RESPONSE)
            frames.append(seg)
        else:
            data += seg
    return data, frames


def parse_all(chunks) -> list[tuple[int, bytes]]:
    """Feed ``chunks``, then drain what is left the way the host does (skip stray syncs)."""
    parser, out = FrameParser(), []
    for chunk in chunks:
        out += parser.feed(chunk)
    while parser.pending():
        out += parser.skip()
    return [(f.cmd, f.payload) for f in out]


def is_subsequence(small, big) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


@fuzz(share=0.5)
@given(segments=SEGMENTS, cuts=st.lists(st.integers(0, 400), max_size=6))
def test_frame_parser_finds_every_frame_in_any_chunking(segments, cuts):
    count("host frame parser", "garbage-laced streams")
    data, frames = stream_of(segments)
    whole = parse_all([data])
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunked = parse_all([data[a:b] for a, b in zip(bounds, bounds[1:])])
    assert chunked == whole
    assert is_subsequence(frames, whole)


@fuzz(share=0.5)
@given(data=st.binary(max_size=600))
def test_frame_parser_survives_any_bytes(data):
    count("host frame parser", "arbitrary bytes")
    frames = parse_all([data])
    assert len(frames) <= len(data) // 5


# ---- BoardLink against a scripted board --------------------------------------------------------
STEP = struct.Struct("<IH")


def correct_reply(cmd: int, payload: bytes) -> bytes:
    """What a working tiny-geometry board answers."""
    if cmd == Cmd.INFO:
        return info_payload()
    if cmd == Cmd.STATUS:
        return struct.pack("<BBIH", 0, 0, 7, 0)
    if cmd in (Cmd.RUN, Cmd.STEP):
        return STEP.pack(7, 0)
    if cmd == Cmd.SPIKES:
        return bytes([len(payload) // 2])
    if cmd == Cmd.EVENTS:
        return b"\x01" + struct.pack("<HI", 1, 6)
    if cmd == Cmd.READ:
        return bytes(payload[4] * word_bytes(TINY)["synapses"])
    return b""


BEHAVIOURS = ["ok", "garbage then ok", "stale then ok", "short", "long", "garbage", "silence",
              "bad crc", "error status", "unknown status", "no status"]


def misbehave(behaviour: str, cmd: int, good: bytes, noise: bytes) -> bytes:
    if behaviour == "ok":
        return ok(cmd, good)
    if behaviour == "garbage then ok":
        return noise.replace(b"\x5a", b"") + ok(cmd, good)
    if behaviour == "stale then ok":
        return ok(cmd ^ 0x80, good) + ok(cmd, good)
    if behaviour == "short":
        return ok(cmd, good[:-1] if good else b"")
    if behaviour == "long":
        return ok(cmd, good + noise[:3] + b"\x00")
    if behaviour == "garbage":
        return noise
    if behaviour == "bad crc":
        frame = bytearray(ok(cmd, good))
        frame[-1] ^= 0xFF
        return bytes(frame)
    if behaviour == "error status":
        return ok(cmd, b"", status=Status.RANGE)
    if behaviour == "unknown status":
        return ok(cmd, b"", status=0xEE)
    if behaviour == "no status":
        return encode_frame(cmd, b"", sync=SYNC_RESPONSE)
    return b""                                   # silence


CALLS = {
    "info": (lambda link: link.info(), lambda r: r.same_geometry(TINY)),
    "status": (lambda link: link.status(), lambda r: r == BoardStatus(0, 0, 7, 0)),
    "clear": (lambda link: link.clear(), lambda r: r is None),
    "run": (lambda link: link.run(3), lambda r: r == (7, 0)),
    "step": (lambda link: link.step([1, 2]), lambda r: r == (7, 0)),
    "spikes": (lambda link: link.spikes([1, 2, 3]), lambda r: r == 3),
    "events": (lambda link: link.events(), lambda r: r == [(1, 6)]),
    "read": (lambda link: link.read(TINY, "synapses", 0, 3), lambda r: r == [0, 0, 0]),
}


@fuzz()
@given(call=st.sampled_from(sorted(CALLS)),
       script=st.lists(st.sampled_from(BEHAVIOURS), min_size=1, max_size=4),
       noise=st.binary(min_size=1, max_size=80))
def test_boardlink_against_a_misbehaving_board(call, script, noise):
    count("BoardLink vs scripted board", "scripted replies")
    behaviours = iter(script)

    def reply(cmd, payload):
        return misbehave(next(behaviours, "silence"), cmd, correct_reply(cmd, payload), noise)

    method, check = CALLS[call]
    try:
        result = method(BoardLink(ScriptedBoard(reply), timeout=None, retries=2))
    except ProtocolError:
        return
    assert check(result), (call, script, result)
