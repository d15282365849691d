"""iCEBreaker bitstream (Yosys + nextpnr-ice40 + icepack from YoWASP): it builds and meets
timing at its clock constraint, every path timed by nextpnr (the decay multipliers are
SB_MAC16s registered at their inputs and outputs, boards/build.py checks it).  About a
minute on the 2-core CI machine."""

from __future__ import annotations

import time

from neurocore.boards.build import build_board
from neurocore.boards.icebreaker import Board
from neurocore.boards.ice40 import SPRAM_COUNT
from neurocore.boards.presets import board_geometry


def test_icebreaker_bitstream_builds_and_meets_timing(tmp_path):
    t0 = time.perf_counter()
    r = build_board("icebreaker", tmp_path)
    seconds = time.perf_counter() - t0
    print(f"\nicebreaker bitstream: {seconds:.0f} s; Fmax {r['fmax_mhz']} MHz vs "
          f"{r['target_mhz']} MHz; {r['utilisation']['ICESTORM_LC']}")
    assert (tmp_path / "neurocore.bin").stat().st_size == r["bitstream_bytes"] > 100_000
    assert r["timing_met"], (r["clocks"], r["untimed"])
    assert r["untimed"] == []                                   # every DSP registered
    assert abs(r["target_mhz"] - Board().clock_hz / 1e6) < 0.05
    assert r["fmax_mhz"] >= r["target_mhz"]
    assert r["pll"]["primitive"] == "SB_PLL40_PAD"
    util = r["utilisation"]
    assert util["ICESTORM_SPRAM"]["used"] == SPRAM_COUNT        # the synapse memory
    assert util["ICESTORM_DSP"]["used"] >= 4                    # the decay multipliers
    assert util["ICESTORM_LC"]["used"] <= util["ICESTORM_LC"]["total"]
    assert r["memories"]["override"] == ["synapses"]
    assert r["geometry"]["n_synapses"] == board_geometry("icebreaker").n_synapses
