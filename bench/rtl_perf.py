"""Benchmark: the RTL core's throughput on the digits CNN, counted by the RTL's own counters.

The digits CNN (trained with seed 0, converted at ``--t`` for the ``--geometry`` preset,
default ``ulx3s``: 8 update lanes, 4 synapse lanes) runs on the Verilog core in Verilator
through the C++ harness (sim/fast.py), one test image after another (``ctrl.clear``
between images).  Every figure below is read from the core's hardware counters
(spec/schedule.py ``COUNTERS``: cycles per phase, SOPs, updates, stalls), and the cycle model
(spec/cycle_model.py) must predict each counter exactly; every step's length and output
events equal the cycle model, u and v after each image equal golden, and the classes equal
golden's.  The first ``--cocotb-images`` images also run through cocotb, whose records must
equal the C++ harness's.  Nothing is reported unless all of that holds.  The main table maps
the convolutions as dense synapse lists; on a preset with conv descriptors (spec §3.5) the
same images run again with them, and a second table sets both mappings side by side.

Time per inference uses the post-route Fmax of the board's last bitstream build
(``build/<board>/<board>.report.json``, written by ``make bitstream``); without one, none is
given.

Run ``python -m neurocore.bench.rtl_perf`` (or ``make bench-rtl``).  Results go to
``bench/results/rtl_perf.json`` and, with ``--update-docs``, into docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from ..golden.core import GoldenCore
from ..golden.monitor import monitored
from ..spec.geometry import CoreGeometry
from .report import update_doc_section

ROOT = Path(__file__).resolve().parent.parent
#: How the digits CNN's convolutions are mapped: dense synapse lists, or conv descriptors.
MAPPINGS = ("dense", "conv")


def bitstream_fmax(board: str, build_dir=None) -> tuple[float, str] | tuple[None, None]:
    """(post-route Fmax in MHz, where it comes from) of ``board``'s last bitstream build:
    ``build/<board>/<board>.report.json`` (``make bitstream``), else the stored report of
    ``make boards-report`` (``boards/reports/<board>.json``); (None, None) without either."""
    from ..boards.build import REPORTS, load_report
    try:
        return float(load_report(board, build_dir)["fmax_mhz"]), \
            f"build/{board}/{board}.report.json"
    except FileNotFoundError:
        pass
    stored = REPORTS / f"{board}.json"
    if stored.exists():
        r = json.loads(stored.read_text())
        return float(r["fmax_mhz"]), (f"boards/reports/{board}.json, design key "
                                      f"{r['design_key'][:12]}")
    return None, None


def fmax_row(f: dict) -> str:
    """The time-per-inference row: at the built bitstream's post-route Fmax, or none."""
    board = f.get("geometry", "ulx3s")
    if f.get("fmax_mhz") is None:
        return (f"| time per inference | no bitstream built (`make bitstream BOARD={board}`), "
                f"so no time is given |")
    us = f["us_per_inference_at_fmax"]
    return (f"| time per inference at the {board} bitstream's post-route Fmax "
            f"({f['fmax_mhz']:.2f} MHz, {f.get('fmax_source') or 'build/' + board}) | "
            f"{us:,.0f} µs "
            f"({1e6 / us:,.0f} inferences/s core-bound) |")


def measure(images: int, t_max: int, cache=None, *, program=None, data=None,
            cocotb_images: int = 2, geometry: str = "ulx3s", mapping: str = "dense",
            opt: str = "fast") -> dict:
    """Run the benchmark; ``program``/``data`` (a QuartzProgram at ``t_max`` and the digits
    split) skip the training/conversion (tests pass their session fixtures).  ``mapping``:
    convolutions as dense synapse lists (``"dense"``) or as conv descriptors (``"conv"``,
    spec §3.5).  ``opt``: the Verilator models' C++ profile (sim/verilator.py ``CXX_OPT``;
    ``fast`` measures simulation speed, tests use ``quick``).  ``cocotb_images=0`` skips the
    cocotb harness (and its build)."""
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping {mapping!r} is not one of {MAPPINGS}")
    from ..sim.fast import crosscheck_cocotb, run_stored_fast
    from ..sim.stored import StoredRun
    from ..sim.verilator import build_dir_for
    from ..sw.convert import from_model
    from ..sw.datasets import load_digits_split
    from ..sw.models import load_or_train

    data = load_digits_split() if data is None else data
    if program is None:
        model = load_or_train("digits_cnn", cache, data=data)
        program = from_model(model, t_max, data.x_train, geometry=geometry,
                             dense=mapping == "dense")
    if program.t_max != t_max:
        raise ValueError(f"program has T={program.t_max}, not {t_max}")
    # on the monitor geometry (routes and output ids for one monitor route per compartment,
    # nothing else changes) so that tests/test_rtl_digits.py's Verilator build serves both
    config = monitored(program.config, monitor=False)
    g = config.geometry
    x = program.encode(data.x_test[:images])
    y = data.y_test[:images].numpy()
    gold = GoldenCore(program.config).run(x)
    gold_class = program.decode(gold.outputs)["predicted"]

    t0 = time.perf_counter()
    report = run_stored_fast(config, x, name=f"rtl_perf_t{t_max}", label=f"digits T={t_max}",
                             keep_outputs=program.n_outputs, opt=opt)
    total_s = time.perf_counter() - t0
    k = min(cocotb_images, len(x))
    cross = (crosscheck_cocotb(StoredRun(config, x[:k], f"digits T={t_max}", 0,
                                         program.n_outputs), name=f"rtl_perf_t{t_max}_cocotb",
                               opt=opt) if k else
             {"difference": None, "error": None, "cocotb_cycles": 0, "cocotb_wall_s": 0.0})
    rec = report["networks"][0] if report["networks"] else {"samples": []}
    samples = rec["samples"]
    B, steps = x.shape[:2]
    rtl_out = np.zeros((B, steps, program.n_outputs), dtype=np.int64)
    for b, s in enumerate(samples):
        for t, oid in s["outputs"]:
            rtl_out[b, t, oid] += 1
    rtl_class = program.decode(rtl_out)["predicted"]
    agrees = (report["failure"] is None and len(samples) == B
              and cross["difference"] is None and cross["error"] is None
              and np.array_equal(rtl_out, gold.outputs[..., :program.n_outputs])
              and np.array_equal(rtl_class, gold_class))

    def counted(key):
        return int(sum(s["counters"].get(key, 0) for s in samples))

    counters_agree = all(s["counters"] == s["model_counters"] for s in samples)
    agrees = agrees and counters_agree
    cycles, sops = counted("cycles"), counted("sops")
    deliver = counted("host_cycles") + counted("spike_cycles")
    update_phase, updates = counted("update_cycles"), counted("updates")
    used = int(program.config.summary()["compartments_used"])
    per_image = [s["counters"].get("cycles", 0) for s in samples]
    run_cycles = sum(s["run_cycles"] for s in samples)
    run_wall = sum(s["run_wall_s"] for s in samples)
    mean = float(np.mean(per_image)) if per_image else 0.0
    fmax, fmax_source = bitstream_fmax(geometry) if isinstance(geometry, str) else (None, None)
    return {
        "network": f"digits CNN, T={t_max}, {steps} steps per inference, "
                   f"{used} compartments used of {g.n_compartments} (n_active "
                   f"{config.n_active()}), {program.config.summary()['synapses_used']} synapses",
        "geometry": geometry, "build": build_dir_for(g, opt=opt).name, "opt": opt,
        "lanes": f"k_u={g.k_u}, k_s={g.k_s}",
        "mapping": mapping, "synapse_words": sum(
            v for k, v in program.config.summary().items()
            if k in ("synapses_used", "kernel_words_used", "conv_descriptors_used")),
        "images": B, "t_max": t_max, "steps": steps,
        "agrees": bool(agrees), "counters_agree": bool(counters_agree),
        "failure": report["failure"] or cross["error"] or cross["difference"]
        or (None if counters_agree else "hardware counters differ from the cycle model"),
        "accuracy": float((rtl_class == y).mean()) * 100 if len(samples) == B else None,
        "step_cycles": cycles, "sops": sops, "deliver_cycles": deliver,
        "sop_per_cycle": sops / cycles if cycles else 0.0,
        "sop_per_deliver_cycle": sops / deliver if deliver else 0.0,
        "update_cycles": update_phase, "updates": updates,
        "updates_per_update_cycle": updates / update_phase if update_phase else 0.0,
        "update_share": update_phase / cycles if cycles else 0.0,
        "stalls": counted("stalls"), "skipped": counted("skipped"),
        "cycles_per_inference": mean,
        "cycles_per_inference_min": min(per_image, default=0),
        "cycles_per_inference_max": max(per_image, default=0),
        "fmax_mhz": fmax,
        "fmax_source": fmax_source,
        "us_per_inference_at_fmax": mean / fmax if fmax else None,
        "sops_per_inference": sops / B, "events_per_inference":
            sum(s["events"] for s in samples) / B,
        "host_cycles_per_inference": (run_cycles + sum(s["clear_cycles"] for s in samples)) / B
        if B else 0,
        "sim_cycles_per_s": run_cycles / run_wall if run_wall else 0.0,
        "sim_run_cycles": run_cycles, "sim_run_wall_s": run_wall, "sim_harness": "C++",
        "cocotb_images": k, "cocotb_identical": cross["difference"] is None,
        "cocotb_cycles_per_s": cross["cocotb_cycles"] / cross["cocotb_wall_s"]
        if cross["cocotb_wall_s"] else 0.0,
        "cocotb_run_cycles": cross["cocotb_cycles"], "cocotb_run_wall_s": cross["cocotb_wall_s"],
        "build_s": report.get("build_s"), "total_s": total_s,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
    }


def markdown(r: dict) -> str:
    f = r
    return "\n".join([
        f"Command: `python -m neurocore.bench.rtl_perf --images {f['images']} --t {f['t_max']} "
        f"--geometry {f['geometry']} --update-docs` (`make bench-rtl`). Network: "
        f"{f['network']}; geometry `{f['geometry']}` ({f['lanes']}); {f['images']} test "
        f"images, one after another; Verilator builds `sim_build/{f['build']}-cxx` (C++ "
        f"harness) and `sim_build/{f['build']}` (cocotb), C++ profile `{f['opt']}` "
        f"(`CXX_OPT` in sim/verilator.py).",
        "",
        f"Every figure is **counted by the RTL's hardware counters** (read through the "
        f"configuration port after each image), and each counter equals the cycle model's "
        f"prediction. Cross-check: every step's length and output events equal the cycle "
        f"model, u/v of every compartment after each image equal golden, classes equal "
        f"golden, and the "
        f"cocotb harness's records on the first {f['cocotb_images']} images equal the C++ "
        f"harness's: "
        f"**{'yes' if f['agrees'] else 'NO — ' + str(f['failure'])}** "
        f"(accuracy on these images {f['accuracy']:.1f} %).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| sustained SOP/cycle (counted SOPs / counted step cycles) | "
        f"**{f['sop_per_cycle']:.3f}** ({f['sops']:,} / {f['step_cycles']:,}) |",
        f"| SOP per DELIVER cycle (HOST + SPIKE phases) | **{f['sop_per_deliver_cycle']:.3f}** "
        f"({f['sops']:,} / {f['deliver_cycles']:,}) |",
        f"| compartment updates per UPDATE cycle (issues + drain) | "
        f"{f['updates_per_update_cycle']:.3f} ({f['updates']:,} / {f['update_cycles']:,}; "
        f"{f['skipped']:,} idle updates skipped) |",
        f"| share of step cycles spent in UPDATE | {100 * f['update_share']:.1f} % |",
        f"| cycles per inference (mean over images; min … max) | **{f['cycles_per_inference']:,.0f}** "
        f"({f['cycles_per_inference_min']:,} … {f['cycles_per_inference_max']:,}) |",
        f"| output stall cycles | {f['stalls']:,} |",
        fmax_row(f),
        f"| SOPs / output events per inference | {f['sops_per_inference']:,.0f} / "
        f"{f['events_per_inference']:,.1f} |",
        f"| cycles per inference incl. the host's traffic (`ctrl.clear`, pushing host spikes "
        f"between steps, u/v read-back after the last step) | "
        f"{f['host_cycles_per_inference']:,.0f} |",
        f"| Verilator speed, C++ harness (`sim/fast.py`: the whole job in C++) | "
        f"**{f['sim_cycles_per_s']:,.0f} cycles/s** ({f['sim_run_cycles']:,} cycles in "
        f"{f['sim_run_wall_s']:.2f} s) |",
        f"| Verilator speed through cocotb (Python drives every cycle; first "
        f"{f['cocotb_images']} images) | {f['cocotb_cycles_per_s']:,.0f} cycles/s "
        f"({f['cocotb_run_cycles']:,} cycles in {f['cocotb_run_wall_s']:.1f} s) |",
        "",
        f"C++ harness build step {f['build_s']:.1f} s "
        f"({'model up to date' if f['build_s'] < 2 else 'model built'}); whole run "
        f"{f['total_s']:.1f} s. "
        f"Machine: {f['machine']}.",
    ])


def mapping_table(dense: dict, conv: dict) -> str:
    """The same images with both mappings of the convolutions, side by side (one run)."""
    rows = [("synapse-side words (dense words + kernel words + descriptors)", "synapse_words",
             "{:,}"),
            ("cycles per image, counted (mean)", "cycles_per_inference", "{:,.0f}"),
            ("SOPs per image, counted", "sops_per_inference", "{:,.0f}"),
            ("SOP per step cycle, counted", "sop_per_cycle", "{:.3f}"),
            ("SOP per DELIVER cycle, counted", "sop_per_deliver_cycle", "{:.3f}")]
    lines = ["| the digits CNN's convolutions as … | dense synapse lists | conv descriptors | "
             "conv / dense |", "|---|---|---|---|"]
    for label, key, fmt in rows:
        a, b = dense[key], conv[key]
        lines.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | "
                     f"{b / a if a else float('nan'):.3f} |")
    agree = "yes" if conv["agrees"] else "NO — " + str(conv["failure"])
    return "\n".join([
        "", f"Conv descriptors (spec §3.5) on the same core and images, in the same run "
        f"(every figure counted by the RTL, each counter equal to the cycle model, classes and "
        f"output events equal golden: **{agree}**):", ""] + lines)


def main(argv=None) -> int:
    from ..sim.verilator import CXX_OPT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20, help="digits test images (default 20)")
    ap.add_argument("--t", type=int, default=16, dest="t_max", help="Quartz T (default 16)")
    ap.add_argument("--cache", default=None, help="model checkpoint cache (default: the "
                    "package's cache, $NEUROCORE_CACHE)")
    ap.add_argument("--geometry", default="ulx3s", help="core preset (default ulx3s)")
    ap.add_argument("--cocotb-images", type=int, default=2,
                    help="images also run through the cocotb harness (default 2)")
    ap.add_argument("--opt", default="fast", choices=sorted(CXX_OPT),
                    help="C++ profile of the Verilator models (default fast)")
    ap.add_argument("--update-docs", action="store_true",
                    help="write the table into docs/performance.md")
    args = ap.parse_args(argv)
    r = measure(args.images, args.t_max, args.cache, cocotb_images=args.cocotb_images,
                geometry=args.geometry, opt=args.opt)
    results = {"dense": r}
    text = markdown(r)
    if CoreGeometry.preset(args.geometry).n_conv:
        results["conv"] = c = measure(args.images, args.t_max, args.cache,
                                      cocotb_images=args.cocotb_images,
                                      geometry=args.geometry, mapping="conv", opt=args.opt)
        text += "\n" + mapping_table(r, c)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "rtl_perf.json").write_text(json.dumps(results, indent=2))
    print(text)
    ok = all(v["agrees"] for v in results.values())
    if args.update_docs and ok:
        update_doc_section(ROOT / "docs" / "performance.md", "rtl_perf", text)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
