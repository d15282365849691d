"""Benchmark: golden-model throughput against Lava on the same network, in one run.

Network: one core with 1024 leaky compartments, 1000 host axons each fanning out densely to
all 1024 compartments (1,024,000 MIXED-sign synapses, delay 0), 256 time steps, batch 64,
Bernoulli input spikes.  Throughput is counted in image·steps per second (one sample
advanced by one time step), in steady state: each side runs once untimed first; the golden
time is the mean of three runs of the batch.  Lava cannot batch, so it runs one sample per ``run()``; its
throughput is measured over ``--lava-samples`` samples (each sample costs the same), and
those samples are checked bit for bit against the golden model.

Run ``python -m neurocore.bench.golden_vs_lava`` (or ``make bench``).  Results go to
``bench/results/golden_vs_lava.json`` and, with ``--update-docs``, into docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from ..golden.compare import first_mismatch
from ..golden.core import GoldenCore
from ..golden.network import CoreConfig, NetworkBuilder
from ..spec.geometry import CoreGeometry
from ..spec.words import SignMode
from .report import update_doc_section

ROOT = Path(__file__).resolve().parent.parent
N_INPUTS = 1000
STEPS = 256
BATCH = 64
INPUT_RATE = 0.05
DECAY_U = 410       # ≈ 0.1 of 4096
DECAY_V = 205       # ≈ 0.05 of 4096
VTH = 20000         # ≈ 3 % of compartments spike per step
GOLDEN_REPEATS = 3  # timed golden runs (mean); Lava's time is the mean over its samples


def build_network(seed: int) -> CoreConfig:
    """Return the benchmark network: 1000 axons → 1024 compartments, dense, MIXED weights."""
    g = CoreGeometry.preset("bench")
    rng = np.random.default_rng(seed)
    b = NetworkBuilder(g)
    p = b.add_profile(du=DECAY_U, dv=DECAY_V, vth=VTH)
    cx = b.add_compartments(g.n_compartments, profile=p)
    half = 1 << (g.weight_bits - 1)
    for axon in range(N_INPUTS):
        w = 2 * rng.integers(-half, half, size=cx.size)        # zero-mean MIXED weights
        b.connect(axon, cx, w, sign_mode=SignMode.MIXED)
    b.route_to_output(cx, cx)
    return b.build()


def measure(seed: int, lava_samples: int, batch: int = BATCH, steps: int = STEPS) -> dict:
    from ..sim.lava_harness import run_lava

    t0 = time.perf_counter()
    config = build_network(seed)
    t_build = time.perf_counter() - t0
    rng = np.random.default_rng(seed + 1)
    x = np.zeros((batch, steps, config.geometry.n_axons), dtype=bool)
    x[:, :, :N_INPUTS] = rng.random((batch, steps, N_INPUTS)) < INPUT_RATE

    t0 = time.perf_counter()
    core = GoldenCore(config)
    t_setup = time.perf_counter() - t0
    # Steady-state throughput: each side first runs once untimed (imports, first compile,
    # page faults), then the timed run.
    core.run(x)
    times = []
    for _ in range(GOLDEN_REPEATS):
        t0 = time.perf_counter()
        golden = core.run(x)
        times.append(time.perf_counter() - t0)
    t_golden = float(np.mean(times))

    run_lava(config, x[:1])
    t0 = time.perf_counter()
    lava = run_lava(config, x[:lava_samples], progress=True)
    t_lava = time.perf_counter() - t0
    mismatch = first_mismatch(
        type(golden)(spikes=golden.spikes[:lava_samples], outputs=golden.outputs[:lava_samples]),
        lava, seed=seed, actual_name="lava")

    golden_tp = batch * steps / t_golden
    lava_tp = lava_samples * steps / t_lava
    return {
        "network": f"1 core, {config.geometry.n_compartments} compartments, {N_INPUTS} inputs, "
                   f"dense fan-out ({N_INPUTS * config.geometry.n_compartments} synapses), "
                   f"input rate {INPUT_RATE}",
        "steps": steps, "batch": batch, "seed": seed, "lava_samples": lava_samples,
        "golden_dtype": np.dtype(core.dtype).name,
        "build_s": round(t_build, 3), "golden_setup_s": round(t_setup, 3),
        "golden_run_s": round(t_golden, 3), "lava_run_s": round(t_lava, 3),
        "golden_image_steps_per_s": round(golden_tp, 1),
        "lava_image_steps_per_s": round(lava_tp, 1),
        "speedup": round(golden_tp / lava_tp, 1),
        "spikes_per_image": round(float(golden.spikes.sum()) / batch, 1),
        "lava_agrees": mismatch is None, "mismatch": mismatch,
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }


def markdown(r: dict) -> str:
    return "\n".join([
        f"Network: {r['network']}; {r['steps']} steps; batch {r['batch']}; seed {r['seed']}.",
        "",
        "| model | wall time | image·steps/s | ratio |",
        "|---|---|---|---|",
        f"| golden (NumPy, {r['golden_dtype']} exact sums) | {r['golden_run_s']} s for "
        f"{r['batch']} samples (mean of {GOLDEN_REPEATS} runs) | {r['golden_image_steps_per_s']:,} | **{r['speedup']}×** |",
        f"| Lava 0.10 `fixed_pt` (one `run` per sample) | {r['lava_run_s']} s for "
        f"{r['lava_samples']} samples | {r['lava_image_steps_per_s']:,} | 1× |",
        "",
        f"Golden setup (dense matrices): {r['golden_setup_s']} s; network build "
        f"{r['build_s']} s. Spikes per image: {r['spikes_per_image']}. "
        f"Lava's spikes equal golden's on the {r['lava_samples']} samples it ran: "
        f"{'yes' if r['lava_agrees'] else 'NO — ' + str(r['mismatch'])}. Machine: {r['machine']}.",
    ])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lava-samples", type=int, default=8)
    ap.add_argument("--update-docs", action="store_true",
                    help="write the table into docs/performance.md")
    args = ap.parse_args(argv)
    r = measure(args.seed, args.lava_samples)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "golden_vs_lava.json").write_text(json.dumps(r, indent=2))
    text = markdown(r)
    print(text)
    if args.update_docs:
        update_doc_section(ROOT / "docs" / "performance.md", "golden_vs_lava", text)
    return 0 if r["lava_agrees"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
