"""Synapse-side memory of the paper's ConvNet before and after conv descriptors (spec §3.5).

The paper's MNIST ConvNet (``sw.models.mnist_convnet(bias=True)``, 6c5-MP2-12c5-MP2-120c4-FC10,
biases on) is converted at T = 16 twice: with dense synapse lists (``from_model(...,
dense=True)``, the mapping before conv descriptors) and with conv descriptors (the default).
Per layer and in total: compartments, descriptors, kernel words, dense synapse words, and the
bits and block RAMs of those words per board preset (:mod:`neurocore.sw.fit`).  The word counts
do not depend on the training beyond weights that round to zero, so the network has seeded
random weights and is normalised on seeded uniform inputs; before any figure is written the
two programs are run on the golden model and must give the same spikes.

Run ``python -m neurocore.bench.conv_words`` (``make bench-conv``); ``--update-docs`` writes
the table into docs/performance.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..golden.core import GoldenCore
from ..sw.convert import from_model
from ..sw.fit import BOARDS, memory_rows
from ..sw.models import mnist_convnet
from .report import publish

ROOT = Path(__file__).resolve().parent.parent
T_MAX = 16
SEED = 0
SAMPLES = 64
CHECK_IMAGES = 8
#: issue 10's budget for the paper ConvNet's synapse-side words.
BUDGET = 40_000


def measure(seed: int = SEED) -> dict:
    torch.manual_seed(seed)
    model = mnist_convnet(bias=True).eval()
    x = torch.rand(SAMPLES, 1, 28, 28)
    programs = {"dense": from_model(model, T_MAX, x, dense=True),
                "conv": from_model(model, T_MAX, x)}
    check = torch.rand(CHECK_IMAGES, 1, 28, 28)
    runs = {k: GoldenCore(p.config).run(p.encode(check)) for k, p in programs.items()}
    n = programs["dense"].config.summary()["compartments_used"]
    same = bool(np.array_equal(runs["conv"].spikes[:, :, :n], runs["dense"].spikes[:, :, :n])
                and np.array_equal(runs["conv"].outputs, runs["dense"].outputs))
    rows = {k: memory_rows(p.layers, p.config.summary()) for k, p in programs.items()}
    return {"network": "mnist_convnet(bias=True), seeded random weights", "t_max": T_MAX,
            "seed": seed, "same_spikes": same, "check_images": CHECK_IMAGES,
            "geometry": {k: p.config.geometry.name for k, p in programs.items()},
            "rows": rows, "budget": BUDGET,
            "total_words": {k: r[-1]["words"] for k, r in rows.items()}}


def markdown(r: dict) -> str:
    boards = list(BOARDS)
    head = ("| layer | compartments | words before (dense) | descriptors | kernel words | "
            "dense words | words after | "
            + " | ".join(f"{b} {BOARDS[b][0]}s before → after" for b in boards) + " |")
    lines = [f"Command: `python -m neurocore.bench.conv_words --update-docs` (`make bench-conv`). "
             f"Network: the paper's ConvNet `{r['network']}` (seed {r['seed']}), T = {r['t_max']}, "
             f"fitted geometry. *Words* are synapse-side words: dense synapse-list words + conv "
             f"kernel words + descriptors (`CoreConfig.summary()`); block RAMs are those of the "
             f"synapse memory with each board preset's word width (`sw/fit.py`; a layer's count "
             f"is for its words alone).", "", head,
             "|" + "---|" * (7 + len(boards))]
    for before, after in zip(r["rows"]["dense"], r["rows"]["conv"]):
        name = f"**{after['name']}**" if after["name"] == "total" else f"`{after['name']}`"
        lines.append(
            f"| {name} | {after['compartments']:,} | {before['words']:,} | "
            f"{after['descriptors']} | {after['kernel_words']:,} | {after['dense_words']:,} | "
            f"{after['words']:,} | "
            + " | ".join(f"{before[b + '_blocks']} → {after[b + '_blocks']}" for b in boards)
            + " |")
    t = r["total_words"]
    lines += ["", f"Total: {t['dense']:,} → **{t['conv']:,}** words "
                  f"({t['dense'] / t['conv']:.1f}× fewer; budget {r['budget']:,}). Bits: "
              + ", ".join(f"{b} {r['rows']['dense'][-1][b + '_bits']:,} → "
                          f"{r['rows']['conv'][-1][b + '_bits']:,}" for b in boards)
              + f". Both programs give the same spikes on {r['check_images']} random images "
                f"(golden model): {'yes' if r['same_spikes'] else 'NO'}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update-docs", action="store_true",
                    help="write the table into docs/performance.md")
    args = ap.parse_args(argv)
    r = measure()
    ok = r["same_spikes"] and r["total_words"]["conv"] <= BUDGET
    publish(ROOT, "conv_words", r, markdown(r), args.update_docs and ok)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
