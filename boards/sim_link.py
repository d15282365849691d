"""Protocol-v2 fault sessions for the full-system simulation (tests/test_boards_link_v2.py).

:func:`fault_session` runs, against a simulated board (:func:`neurocore.boards.sim_system.run`),
a clean batch and then each fault of docs/protocol.md "Faults and resynchronisation (v2)" as
raw bytes, and returns what came back (JSON-able) for the test to judge:

* ``crc``: an IMAGE frame with a flipped payload bit, then a good one;
* ``truncated``: the first half of an IMAGE frame, then a whole one (mid-batch);
* ``garbage``: a good frame, seeded random bytes (sync bytes included), another good frame;
* ``disconnect``: half a frame and nothing more; then a new host session runs a batch.
"""

from __future__ import annotations

import numpy as np

from ..sw.host import NeurocoreHost, decode_image_reply
from ..sw.image import load_program
from .protocol import SYNC_REQUEST, SYNC_REQUEST_V2, Cmd, FrameParser, encode_frame_v2
from .sim_uart import wait_cycles

__all__ = ["fault_session", "read_replies"]


def read_replies(t, n: int, cycles: int) -> list[dict]:
    """Read response frames until ``n`` arrived or none came for ``cycles`` cycles."""
    parser = FrameParser()
    frames = []
    t.read_timeout_cycles = cycles
    try:
        while len(frames) < n:
            chunk = t.read(1)
            if not chunk:
                break
            frames += parser.feed(chunk)
    finally:
        t.read_timeout_cycles = None
    return [{"cmd": f.cmd, "status": int(f.payload[0]),
             "tag": f.payload[1] if len(f.payload) > 1 else None,
             "data": list(f.payload[2:])} for f in frames]


def fault_session(transport, image: str, pixels, seed: int, reply_cycles: int) -> dict:
    """Run the session (module docstring); ``reply_cycles``: how long to wait for a reply."""
    program = load_program(image)
    px = np.asarray(pixels, dtype=np.uint8)
    host = NeurocoreHost(transport, timeout=None)
    host.load_encoder(program)
    t = transport
    before = (t.bytes_written, t.bytes_read)
    c0 = wait_cycles(t, 1)
    clean = host.infer_batch(program, px)
    c1 = wait_cycles(t, 1)
    out = {"clean": {"predicted": clean.predicted.tolist(), "counts": clean.counts.tolist(),
                     "first_spike": clean.first_spike.tolist(), "resends": clean.resends},
           "batch_bytes_written": t.bytes_written - before[0],
           "batch_bytes_read": t.bytes_read - before[1],
           "window": host.window(px.shape[1]), "batch_cycles": c1 - c0 - 1}
    n_cls = host.tables.n_outputs

    def frame(i, tag):
        return encode_frame_v2(Cmd.IMAGE, px[i].tobytes(), tag=tag)

    def result(reply):
        if reply["status"] != 0:
            return None
        cls, counts, first = decode_image_reply(bytes(reply["data"]), n_cls)
        return [cls, counts.tolist(), first.tolist()]

    t.reset_input_buffer()
    bad = bytearray(frame(0, 101))
    bad[10] ^= 0x04                                    # a payload bit
    t.write(bytes(bad) + frame(1, 102))
    out["crc"] = read_replies(t, 2, reply_cycles)

    whole = frame(2, 104)
    t.write(frame(2, 103)[:len(whole) // 2] + whole)
    out["truncated"] = read_replies(t, 2, reply_cycles)

    rng = np.random.default_rng(seed)
    junk = rng.integers(0, 256, 48, dtype=np.uint8)
    junk[::7] = SYNC_REQUEST_V2
    junk[3::11] = SYNC_REQUEST
    t.write(frame(3, 105) + junk.tobytes() + frame(4, 106))
    out["garbage"] = read_replies(t, 2, reply_cycles)
    out["status_after_faults"] = list(host.link.status().__dict__.values())

    t.write(frame(5, 107)[:20])                         # the host goes away mid-frame
    out["disconnect"] = read_replies(t, 1, reply_cycles)
    for key in ("crc", "truncated", "garbage"):
        for r in out[key]:
            r["result"] = result(r)
    # a new session on the same board: v1 INFO, then a batch
    host2 = NeurocoreHost(transport, timeout=None)
    # the board still holds the config and the encoder tables
    host2.loaded, host2.encoder_for, host2.tables = program.config, program, host.tables
    host2.link_info, host2.link.v2 = host2.link.link_info(), True
    again = host2.infer_batch(program, px[:3])
    out["after_disconnect"] = {"predicted": again.predicted.tolist(),
                               "first_spike": again.first_spike.tolist()}
    out["status"] = list(host2.link.status().__dict__.values())
    return out
