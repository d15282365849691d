"""ULX3S (ECP5-85F) bitstream: it builds with Yosys + nextpnr-ecp5 + ecppack from YoWASP and
meets timing at its clock constraint.  Several minutes on a 2-core machine, so it is marked
``boards`` and runs in ``make test-boards``, not in ``make test`` (docs/reliability.md)."""

from __future__ import annotations

import time

import pytest

from neurocore.boards.build import build_board
from neurocore.boards.presets import board_geometry

pytestmark = pytest.mark.boards


def test_ulx3s_bitstream_builds_and_meets_timing(tmp_path):
    t0 = time.perf_counter()
    r = build_board("ulx3s", tmp_path)
    print(f"\nulx3s bitstream: {time.perf_counter() - t0:.0f} s; Fmax {r['fmax_mhz']} MHz vs "
          f"{r['target_mhz']} MHz")
    assert (tmp_path / "neurocore.bit").stat().st_size == r["bitstream_bytes"] > 100_000
    assert r["timing_met"], r["clocks"]
    assert r["fmax_mhz"] >= r["target_mhz"]
    assert r["geometry"]["n_synapses"] == board_geometry("ulx3s").n_synapses
    assert r["device"].startswith("LFE5U")
