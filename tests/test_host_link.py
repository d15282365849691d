"""BoardLink and NeurocoreHost against scripted boards: noisy lines, stale frames, short and
out-of-range replies, foreign INFO, and the host command line (issue 14, defects 4-6)."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest
import torch
from torch import nn

from neurocore.boards.protocol import (GEOMETRY_FIELDS, SYNC_RESPONSE, Cmd, decode_info,
                                       encode_frame)
from neurocore.sw.convert import from_model
from neurocore.sw.host import (MAX_STRAY_BYTES, BoardLink, LinkTimeout, NeurocoreHost,
                               ProtocolError, main)
from neurocore.sw.image import save_program

from scripted_board import TINY, EndlessBoard, ScriptedBoard, info_payload, ok

STALE = encode_frame(Cmd.READ, b"\x00\x01\x02", sync=SYNC_RESPONSE)


def timed(call, limit_s: float):
    t0 = time.monotonic()
    with pytest.raises(LinkTimeout) as err:
        call()
    assert time.monotonic() - t0 < limit_s
    return str(err.value)


@pytest.mark.parametrize("chunk", [b"\x00", b"\x5a", STALE], ids=["zeros", "sync bytes",
                                                                 "stale frames"])
def test_a_line_that_never_goes_quiet_still_times_out(chunk):
    msg = timed(lambda: BoardLink(EndlessBoard(chunk), timeout=0.2, retries=0).status(), 3.0)
    assert "within 0.2 s" in msg and "bytes of other traffic" in msg


def test_without_a_deadline_garbage_is_bounded():
    board = EndlessBoard(b"\x00" * 64)
    msg = timed(lambda: BoardLink(board, timeout=None, retries=0).status(), 3.0)
    assert "other traffic" in msg and int(msg.split("(")[1].split()[0]) > MAX_STRAY_BYTES


@pytest.mark.parametrize("method,cmd,data", [
    (lambda link: link.status(), Cmd.STATUS, b"\x00\x00\x01"),
    (lambda link: link.run(1), Cmd.RUN, b"\x01\x00"),
    (lambda link: link.step([1]), Cmd.STEP, b""),
    (lambda link: link.spikes([1, 2]), Cmd.SPIKES, b""),
    (lambda link: link.spikes([1, 2]), Cmd.SPIKES, b"\x05"),
    (lambda link: link.events(), Cmd.EVENTS, b""),
    (lambda link: link.events(), Cmd.EVENTS, b"\x02" + bytes(6)),
    (lambda link: link.events(2), Cmd.EVENTS, b"\x03" + bytes(18)),
    (lambda link: link.info(), Cmd.INFO, b"\x01"),
])
def test_short_or_inconsistent_ok_replies_are_protocol_errors(method, cmd, data):
    board = ScriptedBoard(lambda c, p: ok(c, data) if c == cmd else b"")
    with pytest.raises(ProtocolError) as err:
        method(BoardLink(board, timeout=None))
    assert type(err.value) is ProtocolError and cmd.name in str(err.value)


def test_decode_info_rejects_another_protocol_version():
    data = bytearray(info_payload())
    data[0] = 1                                     # a version-1 bitstream
    with pytest.raises(ValueError, match="protocol version 1; this host speaks version 2"):
        decode_info(bytes(data))


def test_decode_info_rejects_a_short_geometry():
    """A reply with one geometry field less must not give the host a default for it."""
    head, fields = info_payload()[:16], info_payload()[16:]
    short = bytearray(head[:3] + bytes([len(GEOMETRY_FIELDS) - 1]) + head[4:]) + fields[:-4]
    with pytest.raises(ValueError, match=f"holds {len(GEOMETRY_FIELDS) - 1} geometry fields"):
        decode_info(bytes(short))


def test_invalid_board_geometry_is_a_protocol_error():
    bad = bytearray(info_payload())
    state_bits = 16 + 4 * GEOMETRY_FIELDS.index("state_bits")
    bad[state_bits:state_bits + 4] = struct.pack("<I", 64)
    board = ScriptedBoard(lambda c, p: ok(c, bytes(bad)))
    with pytest.raises(ProtocolError, match="state_bits=64 exceeds"):
        NeurocoreHost(board, timeout=None)


class RasterBoard(ScriptedBoard):
    """Answers INFO, CLEAR, STEP, STATUS and EVENTS; ``events`` are returned once."""

    def __init__(self, events):
        super().__init__(self.answer)
        self.step_counter = 0
        self.pending = list(events)

    def answer(self, cmd, payload):
        if cmd == Cmd.INFO:
            return ok(cmd, info_payload())
        if cmd == Cmd.STEP:
            self.step_counter += 1
            return ok(cmd, struct.pack("<IH", self.step_counter, 0))
        if cmd == Cmd.STATUS:
            return ok(cmd, struct.pack("<BBIH", 0, 0, self.step_counter, 0))
        if cmd == Cmd.EVENTS:
            ev, self.pending = self.pending, []
            return ok(cmd, bytes([len(ev)]) + b"".join(struct.pack("<HI", *e) for e in ev))
        return ok(cmd)


@pytest.mark.parametrize("event", [(0, 0), (0, 99), (TINY.n_outputs, 1)],
                         ids=["step before the run", "step after it", "output id"])
def test_events_outside_the_run_are_protocol_errors(event):
    board = RasterBoard([event])
    board.step_counter = 5                       # the run starts at step 5 (no CLEAR reset)
    host = NeurocoreHost(board, timeout=None)
    with pytest.raises(ProtocolError, match="lies outside this run"):
        host.run_raster(np.zeros((3, TINY.n_axons), dtype=bool), clear=False)


def test_events_inside_the_run_are_counted():
    board = RasterBoard([(2, 6)])
    board.step_counter = 5
    run = NeurocoreHost(board, timeout=None).run_raster(np.zeros((3, TINY.n_axons), bool),
                                                         clear=False)
    assert run.outputs.sum() == 1 and run.outputs[1, 2] == 1


# ---- python -m neurocore.sw.host ---------------------------------------------------------
@pytest.fixture(scope="module")
def image(tmp_path_factory):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    path = tmp_path_factory.mktemp("img") / "p.ncimg"
    return save_program(path, from_model(model, 8, torch.rand(16, 16) * 0.5))


def one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "error:" in err, err
    return err


def test_host_cli_missing_image(tmp_path, capsys):
    err = one_line_error(capsys, ["--port", "/dev/null", "--image", str(tmp_path / "no.ncimg")])
    assert "no.ncimg" in err


def test_host_cli_bad_port(tmp_path, capsys, image):
    err = one_line_error(capsys, ["--port", str(tmp_path / "ttyNOPE"), "--image", str(image)])
    assert "ttyNOPE" in err
