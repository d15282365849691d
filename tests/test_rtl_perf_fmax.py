"""bench/rtl_perf.py takes the Fmax from a bitstream report, or says none was built."""

import json

from neurocore.bench.rtl_perf import bitstream_fmax, fmax_row


def test_fmax_comes_from_the_bitstream_report(tmp_path):
    (tmp_path / "ulx3s.report.json").write_text(json.dumps({"fmax_mhz": 61.25}))
    assert bitstream_fmax("ulx3s", tmp_path) == 61.25
    row = fmax_row({"fmax_mhz": 61.25, "us_per_inference_at_fmax": 1000.0})
    assert "61.25 MHz" in row and "1,000 µs" in row


def test_no_bitstream_means_no_figure(tmp_path):
    assert bitstream_fmax("ulx3s", tmp_path) is None
    row = fmax_row({"fmax_mhz": None, "us_per_inference_at_fmax": None})
    assert "no bitstream built" in row and "MHz" not in row and "µs" not in row
