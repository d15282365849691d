"""Path and name mistakes on the `neurocore` command line: exit status 2, one line on stderr,
no traceback, and no long work before the check (issue 14, defect 6)."""

from __future__ import annotations

import pytest

import neurocore.sw.models
from neurocore.cli import main


@pytest.fixture(autouse=True)
def no_long_work(monkeypatch):
    """Training or loading a model would be the long work; the checks must come first."""
    def refuse(*a, **k):
        raise AssertionError("load_or_train called before the arguments were checked")
    monkeypatch.setattr(neurocore.sw.models, "load_or_train", refuse)


@pytest.fixture
def paths(tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir()
    return tmp_path


CASES = [
    ("report a directory", ["report", "{a_dir}"], "is a directory"),
    ("report a missing file", ["report", "{missing}"], "does not exist"),
    ("convert --out a directory", ["convert", "--out", "{a_dir}"], "is a directory"),
    ("convert --out in a missing folder", ["convert", "--out", "{missing}/x.ncimg"],
     "does not exist"),
    ("convert --hex an existing file", ["convert", "--out", "{tmp}/o.ncimg", "--hex", "{a_file}"],
     "is a file, not a folder"),
    ("convert --cache a file", ["convert", "--out", "{tmp}/o.ncimg", "--cache", "{a_file}"],
     "is a file, not a folder"),
    ("convert --geometry bogus", ["convert", "--out", "{tmp}/o.ncimg", "--geometry", "bogus"],
     "--geometry 'bogus' is not a preset"),
    ("evaluate --out an existing file", ["evaluate", "--out", "{a_file}"],
     "is a file, not a folder"),
    ("demo --mnist a missing folder", ["demo", "--mnist", "{missing}"], "does not exist"),
]


@pytest.mark.parametrize("case,argv,fragment", CASES, ids=[c[0] for c in CASES])
def test_path_mistake_is_one_line_and_status_2(paths, capsys, case, argv, fragment):
    values = dict(a_dir=paths / "a_dir", a_file=paths / "a_file", missing=paths / "missing",
                  tmp=paths)
    assert main([a.format(**values) for a in argv]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("neurocore: error: ") and err.count("\n") == 1, err
    assert fragment in err and "Traceback" not in err + captured.out, err
    assert not (paths / "o.ncimg").exists()
