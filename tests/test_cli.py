"""The `neurocore` command: convert → image → report, and bad input as a clear error."""

import torch
from torch import nn

from neurocore.cli import main
from neurocore.sw.convert import from_model


def test_convert_and_report(tmp_path, digits_cnn, digits, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    # reuse the session's trained model through the checkpoint cache
    from neurocore.sw.models import checkpoint_path
    torch.save(digits_cnn.state_dict(), checkpoint_path("digits_cnn", cache))
    image = tmp_path / "digits.ncimg"
    assert main(["convert", "--cache", str(cache), "--t-max", "8", "--out", str(image),
                 "--hex", str(tmp_path / "hex")]) == 0
    out = capsys.readouterr().out
    assert "compartments" in out and "model[0] (Conv2d)" in out and image.is_file()
    assert (tmp_path / "hex" / "synapses.hex").is_file()
    assert main(["report", str(image)]) == 0
    report = capsys.readouterr().out
    assert "T=8" in report and "model[7] (Linear)" in report


def test_convert_pipelined(tmp_path, digits_cnn, digits, capsys):
    """``--pipelined`` on a preset's reset variant: the image holds the stream period, its
    profiles reset with it, and the report says so."""
    from neurocore.sw.image import load_program
    from neurocore.sw.models import checkpoint_path
    cache = tmp_path / "cache"
    cache.mkdir()
    torch.save(digits_cnn.state_dict(), checkpoint_path("digits_cnn", cache))
    image = tmp_path / "pipelined.ncimg"
    assert main(["convert", "--cache", str(cache), "--t-max", "16", "--geometry", "ulx3s-reset",
                 "--pipelined", "--out", str(image)]) == 0
    program = load_program(image)
    P = program.stream_period
    assert 0 < P < program.n_steps and program.config.geometry.name == "ulx3s-reset"
    used = program.config.mem["compartments"]["profile"][:program.config.n_active()]
    assert (program.config.mem["profiles"]["reset_interval"][used] == P).all()
    assert f"pipelined: a new image every {P} steps" in capsys.readouterr().out
    assert main(["convert", "--cache", str(cache), "--geometry", "ulx3s", "--pipelined",
                 "--out", str(tmp_path / "x.ncimg")]) == 2
    assert "neurocore: error: pipelined=True" in capsys.readouterr().err


def test_report_of_a_corrupt_image_is_an_error(tmp_path, capsys):
    bad = tmp_path / "bad.ncimg"
    bad.write_bytes(b"NOTANIMAGE" * 10)
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "neurocore: error" in err and str(bad) in err


def test_fold_report_lands_in_the_fit_report():
    torch.manual_seed(0)             # an untrained net: its output percentile must be > 0
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.BatchNorm1d(6), nn.ReLU(),
                          nn.Dropout(0.1), nn.Linear(6, 3))
    model.eval()
    program = from_model(model, 8, torch.rand(64, 8))
    text = program.fit_report()
    assert "folded BatchNorm model[2] into model[1]" in text, text
    assert "dropped Dropout model[4]" in text, text


class _Stop(Exception):
    """Raised by the stand-in for load_or_train: the test needs only its arguments."""


def test_model_option_picks_the_convnet_on_the_bundled_digits(tmp_path, monkeypatch, capsys):
    """``--model mnist_convnet_digits`` needs no MNIST files: it gets the 28×28 digits split."""
    import pytest

    import neurocore.sw.models

    seen = {}

    def record(name, cache_dir=None, *, seed=0, data=None):
        seen.update(name=name, cache=cache_dir, data=data)
        raise _Stop

    monkeypatch.setattr(neurocore.sw.models, "load_or_train", record)
    with pytest.raises(_Stop):
        main(["convert", "--model", "mnist_convnet_digits", "--cache", str(tmp_path),
              "--out", str(tmp_path / "c.ncimg")])
    assert seen["name"] == "mnist_convnet_digits" and seen["cache"] == str(tmp_path)
    assert seen["data"].x_train.shape[1:] == (1, 28, 28) and len(seen["data"].y_test) == 360
    with pytest.raises(_Stop):
        main(["evaluate", "--out", str(tmp_path)])
    assert seen["name"] == "digits_cnn" and seen["data"].x_train.shape[1:] == (1, 8, 8)
    # the MNIST-trained ConvNet still comes only with --mnist DIR
    with pytest.raises(SystemExit):
        main(["convert", "--model", "mnist_convnet", "--out", str(tmp_path / "c.ncimg")])
    assert "invalid choice: 'mnist_convnet'" in capsys.readouterr().err
