"""A scripted board for host-link tests: a transport whose replies come from a function.

``ScriptedBoard(reply)`` parses each request frame the host writes and puts
``reply(cmd, payload)`` (raw bytes: frames, garbage or nothing) on the line; ``read`` hands
them out.  :func:`ok` builds an OK response frame, :func:`info_payload` a valid INFO reply.
"""

from __future__ import annotations

from neurocore.boards.protocol import (SYNC_REQUEST, SYNC_RESPONSE, FrameParser, Status,
                                       encode_frame, encode_info)
from neurocore.spec.geometry import CoreGeometry

TINY = CoreGeometry.preset("tiny")


def ok(cmd: int, data: bytes = b"", status: int = Status.OK) -> bytes:
    return encode_frame(cmd, bytes([status]) + data, sync=SYNC_RESPONSE)


def info_payload(g: CoreGeometry = TINY) -> bytes:
    return encode_info(g, max_payload=128, step_bits=32, event_depth=64, input_depth=64)


class ScriptedBoard:
    def __init__(self, reply):
        self.reply = reply
        self.parser = FrameParser(sync=SYNC_REQUEST)
        self.out = bytearray()
        self.requests: list[int] = []

    def write(self, data: bytes) -> int:
        for frame in self.parser.feed(data):
            self.requests.append(frame.cmd)
            self.out += self.reply(frame.cmd, frame.payload)
        return len(data)

    def read(self, n: int = 1) -> bytes:
        data, self.out = bytes(self.out[:n]), self.out[n:]
        return data

    def reset_input_buffer(self) -> None:
        self.out.clear()


class EndlessBoard(ScriptedBoard):
    """A line that never goes quiet: every read returns ``chunk`` (after the scripted bytes)."""

    def __init__(self, chunk: bytes, reply=lambda cmd, payload: b""):
        super().__init__(reply)
        self.chunk = chunk

    def read(self, n: int = 1) -> bytes:
        return super().read(n) or self.chunk[:max(1, n)]
