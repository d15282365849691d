"""Host link v2 in the full-system simulation (Verilator): batches of 8-bit images through
the on-chip encoder, and the faults of docs/protocol.md "Faults and resynchronisation (v2)".

The digits MLP for the iCEBreaker geometry (as tests/test_boards_system.py) runs a batch of
digits test images, quantised to pixels, as IMAGE frames within the credit window; every
reply (class, spike counts, first spikes) must equal the golden model on
``program.encode(pixels / 255)``.  Then one session sends, as raw bytes: a frame with a bad
payload CRC, a frame truncated mid-batch, garbage between frames, and half a frame from a host
that goes away; each must be answered with its error (or skipped and flagged), no later frame
may be lost, and a new session must run afterwards.  The byte counts of the batch must equal
the link model of docs/boards.md (bytes per image).  Seeds: ``NEUROCORE_SEED``.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import base_seed

from neurocore.boards import sim_system
from neurocore.boards.presets import board_geometry
from neurocore.boards.protocol import BridgeFlags, Cmd, Status
from neurocore.golden.core import GoldenCore
from neurocore.sw.convert import from_model
from neurocore.sw.image import save_program
from neurocore.sw.link_model import link_bytes_per_image
from neurocore.sw.models import load_or_train
from neurocore.sw.pixels import pixel_values, to_pixels

T = 16
N_IMAGES = 8
DIV = 4


@pytest.fixture(scope="module")
def session(digits, model_cache, tmp_path_factory):
    seed = base_seed()
    model = load_or_train("digits_mlp", model_cache, data=digits)
    program = from_model(model, T, digits.x_train, geometry=board_geometry("icebreaker"))
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(digits.y_test), N_IMAGES, replace=False))
    px = to_pixels(digits.x_test[idx].numpy().reshape(N_IMAGES, -1))
    image = save_program(tmp_path_factory.mktemp("v2") / "digits_mlp.ncimg", program)
    report = sim_system.run(program.config.geometry, "neurocore.boards.sim_link:fault_session",
                            {"image": str(image), "pixels": px.tolist(), "seed": seed,
                             "reply_cycles": 400_000},
                            divisor=DIV, spram=("synapses",), name="link_v2")
    assert report["failure"] is None, report["failure"]
    out = GoldenCore(program.config).run(program.encode(pixel_values(px))).outputs
    gold = program.decode(out)
    counts = np.minimum(out[:, :, :program.n_outputs].sum(axis=1), 255)
    print(f"\nlink v2 system session: seed {seed}, images {idx.tolist()}; "
          f"{report['sim_cycles']} cycles in {report['wall_s']:.1f} s (build "
          f"{report['build_s']:.1f} s)")
    return report, program, px, gold, counts


def _same(result, gold, counts, i):
    cls, cnt, first = result
    return (cls == gold["predicted"][i] and cnt == counts[i].tolist()
            and first == gold["first_spike"][i].tolist())


def test_system_v2_batch_equals_golden(session):
    report, program, px, gold, counts = session
    res = report["result"]["clean"]
    assert res["predicted"] == gold["predicted"].tolist()
    assert res["first_spike"] == gold["first_spike"].tolist()
    assert res["counts"] == counts.tolist()
    assert res["resends"] == 0 and report["framing"] == 0


def test_system_v2_batch_bytes_match_the_link_model(session):
    report, program, px, gold, counts = session
    r = report["result"]
    to_board, to_host = link_bytes_per_image(px.shape[1], program.n_outputs)
    assert r["batch_bytes_written"] == N_IMAGES * to_board
    assert r["batch_bytes_read"] == N_IMAGES * to_host
    assert r["window"] >= 2
    per = r["batch_cycles"] / N_IMAGES
    print(f"\nbytes per image: {to_board} to the board, {to_host} back; window {r['window']}; "
          f"batch: {per:.0f} cycles per image at {DIV} cycles per bit (the core's steps "
          f"dominate: {program.n_steps} steps)")


def test_system_v2_bad_crc_is_answered_and_the_next_frame_runs(session):
    report, program, px, gold, counts = session
    crc = report["result"]["crc"]
    assert [(r["cmd"], r["status"], r["tag"]) for r in crc] == [
        (Cmd.IMAGE, Status.BAD_CRC, 101), (Cmd.IMAGE, Status.OK, 102)]
    assert _same(crc[1]["result"], gold, counts, 1)


def test_system_v2_truncated_frame_mid_batch_loses_no_later_frame(session):
    report, program, px, gold, counts = session
    tr = report["result"]["truncated"]
    assert [(r["status"], r["tag"]) for r in tr] == [(Status.BAD_CRC, 103), (Status.OK, 104)]
    assert _same(tr[1]["result"], gold, counts, 2)


def test_system_v2_garbage_between_frames_is_skipped_and_flagged(session):
    report, program, px, gold, counts = session
    r = report["result"]
    assert [(x["status"], x["tag"]) for x in r["garbage"]] == [(Status.OK, 105), (Status.OK, 106)]
    assert _same(r["garbage"][0]["result"], gold, counts, 3)
    assert _same(r["garbage"][1]["result"], gold, counts, 4)
    core_errors, flags = r["status_after_faults"][:2]
    assert core_errors == 0
    assert flags & BridgeFlags.SKIPPED and flags & BridgeFlags.REJECTED
    assert not flags & (BridgeFlags.RX_OVERRUN | BridgeFlags.FRAMING)


def test_system_v2_host_disconnect_times_out_and_a_new_session_runs(session):
    report, program, px, gold, counts = session
    r = report["result"]
    assert [(x["status"], x["tag"]) for x in r["disconnect"]] == [(Status.TIMEOUT, 107)]
    assert r["after_disconnect"]["predicted"] == gold["predicted"][:3].tolist()
    assert r["after_disconnect"]["first_spike"] == gold["first_spike"][:3].tolist()


def test_system_board_run_cli_on_the_simulation(digits, model_cache, tmp_path, capsys):
    from neurocore.cli import main

    model = load_or_train("digits_mlp", model_cache, data=digits)
    program = from_model(model, T, digits.x_train, geometry=board_geometry("icebreaker"))
    image = save_program(tmp_path / "mlp.ncimg", program)
    rc = main(["board", "run", str(image), "--port", "sim", "--images", "5", "--batch", "2",
               "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "5 images in" in out and "img/s" in out and "73.0 bytes per image" in out
    assert "0 mismatches against golden" in out and "accuracy" in out
