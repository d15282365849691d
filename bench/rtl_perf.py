"""Benchmark: the RTL core's throughput on the digits CNN, measured in Verilator through cocotb.

The digits CNN (trained with seed 0, converted at ``--t``) runs on the Verilog core, one test
image after another (``ctrl.clear`` between images).  Every step's length and output events
are checked against golden/cycle_model.py (fed with the golden model's spikes), u and v of
every compartment after each image's last step against the golden model, and the decoded
classes against golden's; the figures are only reported when everything agrees.

The network has no monitor routes; it is laid onto the monitor geometry of
tests/test_rtl_digits.py (:func:`neurocore.golden.monitor.monitored` with ``monitor=False``)
so that one Verilator build serves both.  Step lengths depend only on ``n_compartments`` and
the lists, so they are those of the program's own fitted geometry.

Figures (cycles are core clock cycles, counted from the cycle ``ctrl.start`` is accepted to
``ctrl.done``; the host's loading, spike pushing and read-back between steps are excluded):

* SOP/cycle: synapse read-modify-writes over all step cycles, and over the DELIVER cycles
  (host-spike and spike phases);
* compartment updates per cycle during UPDATE (``n`` issues + pipeline drain);
* cycles per inference (mean over the images), and that time at the Fmax of the ULX3S
  bitstream report (``make bitstream BOARD=ulx3s``); none when no bitstream was built;
* Verilator speed: simulated cycles per wall-clock second with cocotb driving every cycle.

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
from ..golden.cycle_model import FIXED_CYCLES, UPDATE_DRAIN
from ..golden.monitor import monitored
from .report import update_doc_section

ROOT = Path(__file__).resolve().parent.parent
#: Board whose bitstream report (``make bitstream BOARD=ulx3s``) gives the ECP5-85F Fmax for
#: the time per inference; without that report no time is given.
FMAX_BOARD = "ulx3s"


def bitstream_fmax(board: str = FMAX_BOARD, build_dir=None) -> float | None:
    """Fmax (MHz) from ``build/<board>/<board>.report.json``; None when no bitstream was built."""
    from ..boards.build import load_report

    try:
        return float(load_report(board, build_dir)["fmax_mhz"])
    except FileNotFoundError:
        return None


def measure(images: int, t_max: int, cache=None, *, program=None, data=None) -> dict:
    """Run the benchmark; ``program``/``data`` (a QuartzProgram at ``t_max`` and the digits
    split) skip the training/conversion (tests pass their session fixtures)."""
    from ..sim.verilator import geometry_key, run_stored
    from ..sw.convert import from_model
    from ..sw.datasets import load_digits_split
    from ..sw.models import load_or_train

    data = load_digits_split() if data is None else data
    if program is None:
        model = load_or_train("digits_cnn", cache, data=data)
        program = from_model(model, t_max, data.x_train)
    if program.t_max != t_max:
        raise ValueError(f"program has T={program.t_max}, not {t_max}")
    config = monitored(program.config, monitor=False)
    g = config.geometry
    x = program.encode(data.x_test[:images])
    y = data.y_test[:images].numpy()
    gold = GoldenCore(program.config).run(x)
    gold_class = program.decode(gold.outputs)["predicted"]

    t0 = time.perf_counter()
    report = run_stored(config, x, name=f"rtl_perf_t{t_max}", label=f"digits T={t_max}",
                        keep_outputs=program.n_outputs)
    total_s = time.perf_counter() - t0
    rec = report["networks"][0] if report["networks"] else {"samples": []}
    samples = rec["samples"]
    B, steps = x.shape[:2]
    rtl_out = np.zeros((B, steps, program.n_outputs), dtype=np.int64)
    for b, s in enumerate(samples):
        for t, oid in s["outputs"]:
            rtl_out[b, t, oid] += 1
    rtl_class = program.decode(rtl_out)["predicted"]
    agrees = (report["failure"] is None and len(samples) == B
              and np.array_equal(rtl_out, gold.outputs[..., :program.n_outputs])
              and np.array_equal(rtl_class, gold_class))

    def total(key):
        return int(sum(sum(s[key]) for s in samples))

    cycles, sops = total("cycles"), total("sops")
    deliver = total("host_cycles") + total("spike_cycles")
    n_steps = sum(len(s["cycles"]) for s in samples)
    update_phase = n_steps * (g.n_compartments + UPDATE_DRAIN)
    used = int(program.config.summary()["compartments_used"])
    per_image = [sum(s["cycles"]) for s in samples]
    run_cycles = sum(s["run_cycles"] for s in samples)
    run_wall = sum(s["run_wall_s"] for s in samples)
    mean = float(np.mean(per_image)) if per_image else 0.0
    fmax = bitstream_fmax()
    return {
        "network": f"digits CNN, T={t_max}, {steps} steps per inference, "
                   f"{used} compartments used of {g.n_compartments}, "
                   f"{program.config.summary()['synapses_used']} synapses",
        "geometry": geometry_key(g), "images": B, "t_max": t_max, "steps": steps,
        "agrees": bool(agrees), "failure": report["failure"],
        "accuracy": float((rtl_class == y).mean()) * 100 if len(samples) == B else None,
        "step_cycles": cycles, "sops": sops, "deliver_cycles": deliver,
        "sop_per_cycle": sops / cycles if cycles else 0.0,
        "sop_per_deliver_cycle": sops / deliver if deliver else 0.0,
        "update_cycles": update_phase,
        "updates_per_update_cycle": n_steps * g.n_compartments / update_phase if n_steps else 0,
        "used_updates_per_update_cycle": n_steps * used / update_phase if n_steps else 0,
        "update_share": update_phase / cycles if cycles else 0.0,
        "fixed_cycles_per_step": FIXED_CYCLES,
        "cycles_per_inference": mean,
        "cycles_per_inference_min": min(per_image, default=0),
        "cycles_per_inference_max": max(per_image, default=0),
        "us_per_inference_at_fmax": mean / fmax if fmax else None,
        "fmax_mhz": fmax,
        "sops_per_inference": sops / B, "events_per_inference":
            sum(s["events"] for s in samples) / B,
        "host_cycles_per_inference": (run_cycles + sum(s["clear_cycles"] for s in samples)) / B
        if B else 0,
        "sim_cycles_per_s": run_cycles / run_wall if run_wall else 0.0,
        "sim_run_cycles": run_cycles, "sim_run_wall_s": run_wall,
        "build_s": report.get("build_s"), "total_s": total_s,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
    }


def fmax_row(f: dict) -> str:
    """The time-per-inference row: at the Fmax of the built bitstream, or none."""
    if f.get("fmax_mhz") is None:
        return (f"| time per inference at the ECP5-85 Fmax | no bitstream built (`make "
                f"bitstream BOARD={FMAX_BOARD}`), so no time is given |")
    return (f"| time per inference at the ECP5-85 Fmax of the built bitstream "
            f"({f['fmax_mhz']:g} MHz, build/{FMAX_BOARD}/{FMAX_BOARD}.report.json) | "
            f"{f['us_per_inference_at_fmax']:,.0f} µs |")


def markdown(r: dict) -> str:
    f = r
    return "\n".join([
        f"Command: `python -m neurocore.bench.rtl_perf --images {f['images']} --t {f['t_max']} "
        f"--update-docs` (`make bench-rtl`). Network: {f['network']}; {f['images']} test "
        f"images, one after another; Verilator build `sim_build/{f['geometry']}`.",
        "",
        f"Cross-check: every step's length and output events equal the cycle model, u/v of "
        f"every compartment after each image equal golden, classes equal golden: "
        f"**{'yes' if f['agrees'] else 'NO — ' + str(f['failure'])}** "
        f"(accuracy on these images {f['accuracy']:.1f} %).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| sustained SOP/cycle (synapse RMWs / all step cycles) | **{f['sop_per_cycle']:.3f}** "
        f"({f['sops']:,} / {f['step_cycles']:,}) |",
        f"| SOP per DELIVER cycle (host-spike + spike phases) | **{f['sop_per_deliver_cycle']:.3f}** "
        f"({f['sops']:,} / {f['deliver_cycles']:,}) |",
        f"| compartment updates per UPDATE cycle (n issues + {UPDATE_DRAIN} drain) | "
        f"{f['updates_per_update_cycle']:.3f} (used compartments only: "
        f"{f['used_updates_per_update_cycle']:.3f}) |",
        f"| share of step cycles spent in UPDATE | {100 * f['update_share']:.1f} % |",
        f"| cycles per inference (mean over images; min … max) | **{f['cycles_per_inference']:,.0f}** "
        f"({f['cycles_per_inference_min']:,} … {f['cycles_per_inference_max']:,}) |",
        fmax_row(f),
        f"| SOPs / output events per inference | {f['sops_per_inference']:,.0f} / "
        f"{f['events_per_inference']:,.1f} |",
        f"| cycles per inference incl. the host's traffic (`ctrl.clear`, pushing host spikes "
        f"between steps, u/v read-back after the last step) | "
        f"{f['host_cycles_per_inference']:,.0f} |",
        f"| Verilator speed through cocotb (Python drives every cycle) | "
        f"**{f['sim_cycles_per_s']:,.0f} cycles/s** ({f['sim_run_cycles']:,} cycles in "
        f"{f['sim_run_wall_s']:.1f} s) |",
        "",
        f"Verilator build step {f['build_s']:.1f} s "
        f"({'model up to date' if f['build_s'] < 2 else 'model built'}); whole run "
        f"{f['total_s']:.1f} s. "
        f"Machine: {f['machine']}.",
    ])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20, help="digits test images (default 20)")
    ap.add_argument("--t", type=int, default=16, dest="t_max", help="Quartz T (default 16)")
    ap.add_argument("--cache", default=None, help="model checkpoint cache (default: the "
                    "package's cache, $NEUROCORE_CACHE)")
    ap.add_argument("--update-docs", action="store_true",
                    help="write the table into docs/performance.md")
    args = ap.parse_args(argv)
    r = measure(args.images, args.t_max, args.cache)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "rtl_perf.json").write_text(json.dumps(r, indent=2))
    text = markdown(r)
    print(text)
    if args.update_docs and r["agrees"]:
        update_doc_section(ROOT / "docs" / "performance.md", "rtl_perf", text)
    return 0 if r["agrees"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
