"""``neurocore board run`` argument errors: one line on stderr naming the bad value, exit 2,
before any port or simulation is opened (the run itself: tests/test_boards_link_v2.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neurocore.cli import main
from neurocore.sw.convert import from_model
from neurocore.sw.image import save_program


@pytest.fixture(scope="module")
def small_image(tmp_path_factory):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    path = tmp_path_factory.mktemp("img") / "p.ncimg"
    return save_program(path, from_model(model, 8, torch.rand(16, 16) * 0.5))


def _err(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("neurocore: error:"), (rc, err)
    return err


def test_board_run_missing_image(tmp_path, capsys):
    err = _err(capsys, ["board", "run", str(tmp_path / "none.ncimg"), "--port", "sim"])
    assert "none.ncimg does not exist" in err


def test_board_run_bad_batch(small_image, capsys):
    err = _err(capsys, ["board", "run", str(small_image), "--port", "sim", "--batch", "0"])
    assert "--batch 0" in err


def test_board_run_refuses_a_geometry_of_no_board(small_image, capsys):
    err = _err(capsys, ["board", "run", str(small_image), "--port", "sim", "--images", "2"])
    assert "is not a board's" in err


def test_board_run_bad_port(small_image, capsys):
    err = _err(capsys, ["board", "run", str(small_image), "--port", "/dev/does-not-exist",
                        "--images", "2"])
    assert "does-not-exist" in err
