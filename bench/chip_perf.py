"""Benchmark: the paper's MNIST ConvNet on the ULX3S RTL chip, counted by the RTL's counters.

``mnist_convnet_digits`` (sw/models.py: the paper's ConvNet trained on the bundled digits
upsampled to 28×28, cached) is converted at T = 16 with ``from_model(..., geometry="ulx3s")``
(``CHIP_PRESETS["ulx3s"]``, sw/place.py) and its first ``--images`` test images run one after
another (``ctrl.clear`` between) on the Verilog chip (rtl/chip.py) in Verilator through the C++
harness (sim/chipfast.py, ``fast`` C++ profile).  Before anything is reported: every output
event, the flits of every step and ``u``/``v`` of every compartment after each image equal
:class:`GoldenChip`, and for the first ``--model-images`` images the chip cycle model
(spec/chip_cycle_model.py) equals the RTL's chip counters (cycles, flits, flit_waits) and
every core's counters exactly.  Figures: cycles per inference (the chip's ``cycles``
counter), latency and images/s at the chip's target clock, SOPs and busy cycles per core.

Run ``python -m neurocore.bench.chip_perf`` (``make bench-chip``); results go to
``bench/results/chip_perf.json`` and, with ``--update-docs``, into docs/boards.md (section
``chip_perf``, which ``make boards-report`` keeps) and docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from .report import update_doc_section

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "bench" / "results" / "chip_perf.json"
T_MAX = 16
MODEL = "mnist_convnet_digits"
CHIP = "ulx3s"
#: The ULX3S core clock target (boards/presets.py runs the single board core at it); the chip
#: has no bitstream yet, so no post-route figure exists for it.
TARGET_MHZ = 100.0
#: Loihi on the paper's MNIST ConvNet (ms per image and images/s), for comparison.
LOIHI_MS, LOIHI_IPS = 4.91, 204
#: The pipelined target (images/s) and the most images of the pipelined stream
#: (``pipelined``): the first period only fills the pipeline, so the throughput is taken over
#: the others.
PIPELINED_TARGET_IPS, STREAM_IMAGES = 5000, 20


def pipelined(data, predicted, cache=None, images: int = STREAM_IMAGES,
              opt: str = "fast") -> dict:
    """The ConvNet pipelined (``from_model(..., pipelined=True)``) on the chip preset's
    '-reset' variant: ``images`` test images back to back (no clear) on the Verilog chip in
    the C++ harness, which must equal :class:`GoldenChip` (every output event, the flits of
    every step, u/v at the end), whose predictions and first output spikes must equal
    ``predicted`` (the unpipelined run's, per image); the chip cycle model must equal the
    RTL's ``cycles`` counter step by step and every counter in total.  Cycles per image =
    the mean RTL cycles of one stream period once the pipeline is full (periods 1 …
    images − 1)."""
    from ..sim.chipfast import check_chip_fast
    from ..spec.chip_cycle_model import chip_schedule, chip_totals
    from ..sw.convert import from_model
    from ..sw.models import load_or_train
    model = load_or_train(MODEL, cache, data=data)
    program = from_model(model, T_MAX, data.x_train, geometry=CHIP + "-reset", pipelined=True)
    chip = program.chip_config()
    x = program.encode_stream(data.x_test[:images], 1)
    run, gold, problem = check_chip_fast(chip, x, label=f"pipelined {MODEL} on {CHIP}-reset",
                                         state_every=0, opt=opt, name="convnet-reset",
                                         max_cycles=10_000_000)
    assert problem is None, problem
    got = program.decode_stream(gold.outputs, images)
    for key, want in predicted.items():
        assert (got[key] == want[:images]).all(), f"pipelined {key} != unpipelined"
    img = run.images[0]
    per_step = [c["cycles"] for c in img.chip_counters]
    steps = chip_schedule(chip, x[0], gold.sample(0))
    assert [s.cycles for s in steps] == per_step, "chip cycle model != RTL, step by step"
    totals, rtl = chip_totals(steps), dict(img.totals(), cores=img.core_counters)
    assert totals == rtl, f"pipelined stream: cycle model {totals} != RTL {rtl}"
    P = program.stream_period
    periods = [sum(per_step[k * P:(k + 1) * P]) for k in range(1, images)]
    cycles = float(np.mean(periods))
    return {"geometry": chip.chip.name, "stream_period": P, "stream_images": images,
            "cycles_per_image": cycles, "period_cycles_min": int(min(periods)),
            "period_cycles_max": int(max(periods)),
            "images_per_s": TARGET_MHZ * 1e6 / cycles, "identical": True}


def convnet_chip(cache=None):
    """(program, chip config, digits28 split) of the ConvNet on the ULX3S chip."""
    from ..sw.convert import from_model
    from ..sw.datasets import load_digits28_split
    from ..sw.models import load_or_train
    data = load_digits28_split()
    model = load_or_train(MODEL, cache, data=data)
    program = from_model(model, T_MAX, data.x_train, geometry=CHIP)
    return program, program.chip_config(), data


def measure(images: int = 20, *, model_images: int | None = None, cache=None,
            opt: str = "fast") -> dict:
    """Run the benchmark (module docstring); raises AssertionError on any mismatch."""
    from ..sim.chipfast import check_chip_fast
    from ..spec.chip_cycle_model import chip_schedule, chip_totals
    program, chip, data = convnet_chip(cache)
    x = program.encode(data.x_test[:images])
    if x.shape[0] < images:
        raise ValueError(f"only {x.shape[0]} test images, {images} asked for")
    run, gold, problem = check_chip_fast(chip, x, label=f"{MODEL} on {CHIP}", state_every=0,
                                         opt=opt, name="convnet",
                                         max_cycles=10_000_000)
    assert problem is None, problem
    model_images = images if model_images is None else min(model_images, images)
    t0 = time.perf_counter()
    for b in range(model_images):
        img = run.images[b]
        totals = chip_totals(chip_schedule(chip, x[b], gold.sample(b)))
        rtl = dict(img.totals(), cores=img.core_counters)
        assert rtl == totals, f"image {b}: cycle model {totals} != RTL {rtl}"
    model_s = time.perf_counter() - t0
    cycles = np.array([im.totals()["cycles"] for im in run.images])
    flits = np.array([im.totals()["flits"] for im in run.images])
    waits = np.array([im.totals()["flit_waits"] for im in run.images])
    cores = len(chip.cores)
    per_core = {k: np.array([[im.core_counters[c][k] for c in range(cores)]
                             for im in run.images]) for k in ("sops", "update_cycles",
                                                                "host_cycles", "updates")}
    decoded = program.decode(gold.outputs)
    predicted = decoded["predicted"]
    stream = min(images, STREAM_IMAGES)
    piped = pipelined(data, {k: decoded[k] for k in ("predicted", "first_spike")}, cache,
                      stream, opt) if stream >= 2 else None
    y = data.y_test[:images].numpy()
    mean = float(cycles.mean())
    return {
        "model": MODEL, "chip": CHIP, "t_max": T_MAX, "steps": int(x.shape[1]),
        "images": images, "model_checked_images": model_images, "cores": cores,
        "compartments_per_core": [int(c.size) for c in chip.compartments],
        "k_u": chip.chip.core.k_u, "k_s": chip.chip.core.k_s,
        "cycles_mean": mean, "cycles_min": int(cycles.min()), "cycles_max": int(cycles.max()),
        "flits_mean": float(flits.mean()), "flit_waits_mean": float(waits.mean()),
        "sops_per_core": per_core["sops"].mean(axis=0).tolist(),
        "update_cycles_per_core": per_core["update_cycles"].mean(axis=0).tolist(),
        "host_cycles_per_core": per_core["host_cycles"].mean(axis=0).tolist(),
        "clock_mhz": TARGET_MHZ, "ms_per_image": mean / (TARGET_MHZ * 1e3),
        "images_per_s": TARGET_MHZ * 1e6 / mean,
        "accuracy": float((predicted == y).mean() * 100),
        "pipelined": piped,
        "harness_wall_s": run.wall_s, "sim_cycles": run.sim_cycles, "model_s": model_s,
        "opt": opt, "host": platform.node(),
    }


def markdown(r: dict) -> str:
    """The generated section (docs/boards.md, docs/performance.md)."""
    sops = np.array(r["sops_per_core"])
    cyc = r["cycles_mean"]
    busy = [f"{k}: {s:,.0f} SOPs ({100 * s / sops.sum():.0f} %), UPDATE {u / cyc * 100:.0f} %"
            for k, (s, u) in enumerate(zip(sops, r["update_cycles_per_core"]))]
    heavy = int(np.argmax(sops))
    upd = np.array(r["update_cycles_per_core"])

    def lanes(k, what):
        return f"one {what}" if k == 1 else f"{k} {what}s"
    ms = r["ms_per_image"]
    lines = [
        "<!-- Generated by bench/chip_perf.py (make bench-chip); do not edit. -->",
        f"### The paper's MNIST ConvNet on the ULX3S RTL chip",
        "",
        f"`{r['model']}` (T={r['t_max']}, {r['steps']} steps per image) converted with "
        f"`from_model(..., geometry=\"{r['chip']}\")` onto {r['cores']} cores "
        f"({', '.join(map(str, r['compartments_per_core']))} compartments); {r['images']} test "
        f"images on the Verilog chip in Verilator (C++ harness, `{r['opt']}` profile). Every "
        f"output event, the flits of every step and u/v after every image equal GoldenChip; "
        f"the chip cycle model equals the RTL's counters (chip and every core's) on "
        f"{r['model_checked_images']} of them. Golden accuracy on these images: "
        f"{r['accuracy']:.0f} %.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| cycles per inference (RTL `cycles` counter; mean, min–max) | {cyc:,.0f} "
        f"({r['cycles_min']:,}–{r['cycles_max']:,}) |",
        f"| latency per image at the {r['clock_mhz']:.0f} MHz target clock (timing not yet "
        f"closed: no chip bitstream) | {ms:.2f} ms |",
        f"| images/s, core-bound | {r['images_per_s']:,.0f} |",
        f"| Loihi (paper) | {LOIHI_MS} ms/image, ~{LOIHI_IPS} images/s |",
        f"| target ≤ 0.5 ms, ≥ 2000 images/s | "
        + ("met" if ms <= 0.5 else f"missed by {ms / 0.5:.1f}× ({ms:.2f} ms)") + " |",
        *pipelined_rows(r),
        f"| flits per image / flit_waits (core-cycles a flit waited for the router) | "
        f"{r['flits_mean']:,.0f} / {r['flit_waits_mean']:,.0f} |",
        "",
        "Per core (mean per image): " + "; ".join(busy) + ".",
        "",
        f"Why: every step is as long as its slowest core. Every core's UPDATE pass issues "
        f"{lanes(r['k_u'], 'compartment')} per cycle over all its compartments in every one of "
        f"the {r['steps']} steps (Quartz neurons keep u ≠ 0 after spiking, so the idle skip "
        f"rarely applies): up to {100 * upd.max() / cyc:.0f} % of a core's cycles. "
        f"Core {heavy}, the busiest, does {100 * sops[heavy] / sops.sum():.0f} % of the SOPs "
        f"(an even share: {100 / sops.size:.0f} %"
        + (", so the others wait for it" if sops[heavy] > 1.25 * sops.mean() else "")
        + f"), each core delivering {lanes(r['k_s'], 'synapse')} per "
        f"cycle; a core waits at the barrier for the slowest, and flits wait for their "
        f"target's walker (flit_waits). Figures from `bench/results/chip_perf.json`.",
    ]
    return "\n".join(lines)


def pipelined_rows(r: dict) -> list[str]:
    """The pipelined rows of the table (none in a result without them)."""
    p = r.get("pipelined")
    if not p:
        return []
    ips = p["images_per_s"]
    return [
        f"| pipelined on `{p['geometry']}` (a new image every {p['stream_period']} steps; RTL "
        f"`cycles` per stream period once full, a stream of {p['stream_images']} images equal "
        f"to GoldenChip and the chip cycle model; predictions equal one image at a time) | "
        f"{p['cycles_per_image']:,.0f} cycles per image "
        f"({p['period_cycles_min']:,}–{p['period_cycles_max']:,}), "
        f"{ips:,.0f} images/s |",
        f"| target ≥ {PIPELINED_TARGET_IPS:,} images/s pipelined | "
        + ("met" if ips >= PIPELINED_TARGET_IPS else
           f"missed by {PIPELINED_TARGET_IPS / ips:.1f}× ({ips:,.0f} images/s)") + " |",
    ]


def write_docs(r: dict) -> None:
    text = markdown(r)
    update_doc_section(ROOT / "docs" / "boards.md", "chip_perf", text)
    update_doc_section(ROOT / "docs" / "performance.md", "chip_perf", text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--model-images", type=int, default=None,
                    help="images whose counters the cycle model checks (default: all)")
    ap.add_argument("--opt", default="fast")
    ap.add_argument("--update-docs", action="store_true")
    a = ap.parse_args(argv)
    r = measure(a.images, model_images=a.model_images, opt=a.opt)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(r, indent=2))
    print(markdown(r))
    if a.update_docs:
        write_docs(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
