"""bench/rtl_perf.py takes the Fmax from a bitstream report (the build directory's, else the
stored report of `make boards-report`), or says none was built."""

import json

from neurocore.bench.rtl_perf import bitstream_fmax, fmax_row
from neurocore.boards import build


def test_fmax_comes_from_the_bitstream_report(tmp_path):
    (tmp_path / "ulx3s.report.json").write_text(json.dumps({"fmax_mhz": 61.25}))
    fmax, source = bitstream_fmax("ulx3s", tmp_path)
    assert fmax == 61.25 and source == "build/ulx3s/ulx3s.report.json"
    row = fmax_row({"fmax_mhz": 61.25, "us_per_inference_at_fmax": 1000.0,
                    "fmax_source": source})
    assert "61.25 MHz" in row and "1,000 µs" in row and source in row


def test_stored_report_when_nothing_was_built(tmp_path, monkeypatch):
    stored = tmp_path / "reports"
    stored.mkdir()
    (stored / "ulx3s.json").write_text(json.dumps({"fmax_mhz": 42.5, "design_key": "ab" * 32}))
    monkeypatch.setattr(build, "REPORTS", stored)
    fmax, source = bitstream_fmax("ulx3s", tmp_path / "empty")
    assert fmax == 42.5 and source == "boards/reports/ulx3s.json, design key abababababab"


def test_no_bitstream_means_no_figure(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "REPORTS", tmp_path / "none")
    assert bitstream_fmax("ulx3s", tmp_path) == (None, None)
    row = fmax_row({"fmax_mhz": None, "us_per_inference_at_fmax": None})
    assert "no bitstream built" in row and "MHz" not in row and "µs" not in row
