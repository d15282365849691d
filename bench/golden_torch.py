"""Benchmark: the golden model's torch backend against its NumPy backend on the digits CNN.

Network: the digits CNN (cached checkpoint, trained on first use) converted at T = 16; a batch
of 256 test images, one ``run`` each side.  Each side runs once untimed, then the two sides
run alternately ``REPEATS`` times and each side's fastest run is taken (the build machine's
cores are shared: alternating exposes both sides to the same load, and the fastest run is the
least disturbed); the two results are compared bit for bit (spikes, outputs) before any
figure is written.  Torch runs with ``--threads`` intra-op threads (default 1, like NumPy's
element-wise loop; the build machine has 2 shared cores).  With CUDA present the GPU figure
is measured too.

Run ``python -m neurocore.bench.golden_torch`` (part of ``make bench``).  Results go to
``bench/results/golden_torch.json`` and, with ``--update-docs``, into docs/performance.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ..golden.core import GoldenCore
from .report import publish

ROOT = Path(__file__).resolve().parent.parent
BATCH = 256
T_MAX = 16
REPEATS = 5


def _time(cores: list[GoldenCore], raster: np.ndarray) -> list[tuple[list[float], object]]:
    """``REPEATS`` run times of each core (the cores alternating run by run) and its result."""
    results = [core.run(raster) for core in cores]             # untimed first runs
    times: list[list[float]] = [[] for _ in cores]
    for _ in range(REPEATS):
        for i, core in enumerate(cores):
            t0 = time.perf_counter()
            results[i] = core.run(raster)
            times[i].append(time.perf_counter() - t0)
    return list(zip(times, results))


def measure(threads: int, batch: int = BATCH) -> dict:
    from ..sw.convert import from_model
    from ..sw.datasets import load_digits_split
    from ..sw.models import load_or_train

    data = load_digits_split()
    model = load_or_train("digits_cnn", data=data)
    # dense synapse lists: the figures are for the dense mapping (the torch backend runs conv
    # descriptors too, tests/test_golden_torch.py)
    program = from_model(model, T_MAX, data.x_train, dense=True)
    x = data.x_test.repeat((batch + len(data.x_test) - 1) // len(data.x_test), 1, 1, 1)[:batch]
    raster = program.encode(x)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        (ts_np, ref), (ts_cpu, got) = _time(
            [GoldenCore(program.config), GoldenCore(program.config, backend="torch")], raster)
        t_np, t_cpu = min(ts_np), min(ts_cpu)
        # the speed-up of each alternating pair of runs: how much the shared machine moves it
        pairs = [a / b for a, b in zip(ts_np, ts_cpu)]
        gpu = None
        if torch.cuda.is_available():
            ((ts_gpu, got_gpu),) = _time(
                [GoldenCore(program.config, backend="torch", device="cuda")], raster)
            t_gpu = min(ts_gpu)
            gpu = {"device": torch.cuda.get_device_name(), "run_s": round(t_gpu, 4),
                   "speedup": round(t_np / t_gpu, 1),
                   "bit_exact": bool(np.array_equal(got_gpu.spikes, ref.spikes))}
    finally:
        torch.set_num_threads(previous)
    exact = bool(np.array_equal(got.spikes, ref.spikes)
                 and np.array_equal(got.outputs, ref.outputs))
    return {
        "network": f"digits CNN, T={T_MAX}, {program.n_steps} steps, "
                   f"{program.config.summary()['compartments_used']} compartments, "
                   f"{program.config.summary()['synapses_used']} synapses",
        "batch": batch, "threads": threads, "numpy_run_s": round(t_np, 4),
        "torch_cpu_run_s": round(t_cpu, 4), "speedup_cpu": round(t_np / t_cpu, 1),
        "speedup_cpu_pairs": [round(min(pairs), 1), round(float(np.median(pairs)), 1),
                              round(max(pairs), 1)],
        "bit_exact": exact, "gpu": gpu,
        "spikes_per_image": round(float(ref.spikes.sum()) / batch, 1),
        "machine": f"{platform.machine()}, Python {platform.python_version()}, "
                   f"torch {torch.__version__}",
    }


def markdown(r: dict) -> str:
    rows = [
        f"Network: {r['network']}; batch {r['batch']} test images; fastest of {REPEATS} runs "
        f"(NumPy and torch alternating) after one untimed run each; torch intra-op threads: "
        f"{r['threads']}.",
        "",
        "| backend | wall time | speed-up |",
        "|---|---|---|",
        f"| NumPy | {r['numpy_run_s']} s | 1× |",
        f"| torch, CPU | {r['torch_cpu_run_s']} s | **{r['speedup_cpu']}×** |",
    ]
    if r["gpu"]:
        rows.append(f"| torch, {r['gpu']['device']} | {r['gpu']['run_s']} s | "
                    f"**{r['gpu']['speedup']}×** |")
    lo, med, hi = r["speedup_cpu_pairs"]
    rows += ["", f"Speed-up of each alternating NumPy/torch pair of runs: min {lo}×, median "
             f"{med}×, max {hi}× (the machine's cores are shared).",
             "", f"Spikes and output events of the two backends identical: "
             f"{'yes' if r['bit_exact'] else 'NO'}. Spikes per image: {r['spikes_per_image']}. "
             f"GPU: {'measured above' if r['gpu'] else 'none on this machine'}. "
             f"Machine: {r['machine']}."]
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--update-docs", action="store_true",
                    help="write the table into docs/performance.md")
    args = ap.parse_args(argv)
    r = measure(args.threads, args.batch)
    publish(ROOT, "golden_torch", r, markdown(r), args.update_docs)
    return 0 if r["bit_exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
