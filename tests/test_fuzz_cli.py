"""CLI path fuzzer: every combination of path kinds for the `neurocore` options either passes
the checks (and reaches the long work, stubbed here) exactly when the paths are usable, or
exits with status 2 and one line on stderr, never a traceback."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import neurocore.sw.datasets
import neurocore.sw.models
from neurocore.cli import main

from fuzzing import count, fuzz

KINDS = ["missing", "file", "dir", "in missing dir", "odd name"]


class Reached(Exception):
    """The checks passed and the command started its long work."""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli-fuzz")
    (base / "file").write_bytes(b"\x00not an image")
    (base / "dir").mkdir()
    return base


NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
                min_size=1, max_size=12).filter(lambda n: n not in (".", "..", "file", "dir"))


def path_of(root, kind: str, name: str):
    """A path of ``kind``; ``name`` (random text) names the ones that do not exist."""
    return {"missing": root / name, "file": root / "file", "dir": root / "dir",
            "in missing dir": root / "nowhere" / name, "odd name": root / f"a b\tc?{name}"}[kind]


def usable(kind: str, role: str) -> bool:
    """Whether a path of ``kind`` passes for an option of ``role``."""
    return {"write file": kind in ("missing", "file", "odd name"),
            "folder": kind in ("missing", "dir", "in missing dir", "odd name"),
            "MNIST folder": False}[role]    # no kind holds the MNIST files


OPTIONS = {  # command: [(option, role)]
    "convert": [("--out", "write file"), ("--hex", "folder"), ("--cache", "folder")],
    "evaluate": [("--out", "folder"), ("--cache", "folder"), ("--mnist", "MNIST folder")],
    "demo": [("--out", "folder"), ("--mnist", "MNIST folder")],
}


@fuzz()
@given(command=st.sampled_from(sorted(OPTIONS) + ["report"]), data=st.data())
def test_cli_path_arguments(root, command, data, monkeypatch_module):
    count("CLI path arguments", "option path kinds")
    argv, ok_ = [command], True
    if command == "report":
        kind = data.draw(st.sampled_from(KINDS), label="image")
        argv.append(str(path_of(root, kind, data.draw(NAMES, label="name"))))
        ok_ = False                      # no kind is a valid image
    else:
        for option, role in OPTIONS[command]:
            kind = data.draw(st.sampled_from(KINDS + ["absent"]), label=option)
            if kind == "absent":
                ok_ &= option != "--out" or command != "convert"
                continue
            argv += [option, str(path_of(root, kind, data.draw(NAMES, label="name")))]
            ok_ &= usable(kind, role)
        if command == "convert" and data.draw(st.booleans(), label="bogus geometry"):
            argv += ["--geometry", "bogus"]
            ok_ = False
    if command == "convert" and "--out" not in argv:
        return                           # argparse's own usage error (also status 2)
    try:
        status = main(argv)
    except Reached:
        assert ok_, argv
        return
    err = capture.get()
    assert status == 2 and not ok_, (argv, status, err)
    assert err.startswith("neurocore: error: ") and err.count("\n") == 1, err


class Capture:
    def __init__(self):
        self.capsys = None

    def get(self) -> str:
        return self.capsys.readouterr().err


capture = Capture()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()

    def reached(*a, **k):
        raise Reached

    mp.setattr(neurocore.sw.models, "load_or_train", reached)
    mp.setattr(neurocore.sw.datasets, "load_digits_split", reached)   # the first long step
    yield mp
    mp.undo()


@pytest.fixture(autouse=True)
def _capsys(capsys):
    capture.capsys = capsys
