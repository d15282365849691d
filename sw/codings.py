"""Quartz against the rate-coded baseline on the same core: accuracy against SynOps.

:func:`evaluate_codings` converts one model with each coding at several ``T``, runs the test
split on the golden core and counts, per inference, compartment spikes and synaptic
operations (synapse-list entries walked, :func:`~neurocore.sw.evaluate.synaptic_ops`).
:func:`synops_ratio` reads off the claim of the paper: rate SynOps / Quartz SynOps at the
cheapest ``T`` of each coding whose accuracy is within ``tolerance`` points of the ANN.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..golden.core import GoldenCore
from .convert import DEFAULT_PERCENTILE, from_model
from .datasets import DatasetSplit
from .evaluate import GOLDEN_BATCH, synaptic_ops
from .rate import RATE_SEED_ENV

__all__ = ["CodingRow", "evaluate_codings", "synops_ratio", "codings_table", "plot_codings",
           "rate_seed", "DEFAULT_RATE_T"]

#: Input steps of the rate baseline evaluated by default.
DEFAULT_RATE_T = (16, 32, 64, 128)


def rate_seed() -> int:
    """The Poisson seed: ``$NEUROCORE_RATE_SEED`` if set, else 0."""
    return int(os.environ.get(RATE_SEED_ENV, "0"), 0)


@dataclass(frozen=True)
class CodingRow:
    """One line of the codings table (accuracy in %, counts per inference)."""

    coding: str
    t_max: int
    accuracy: float
    ann_acc: float
    steps: int
    spikes: float
    synops: float
    n_test: int


def _run(program, x: torch.Tensor, backend: str, device: str, seed: int, bar) -> tuple:
    core = GoldenCore(program.config, backend=backend, device=device)
    preds, spikes, synops = [], 0.0, 0.0
    for k, start in enumerate(range(0, x.shape[0], GOLDEN_BATCH)):
        xb = x[start:start + GOLDEN_BATCH]
        raster = (program.encode(xb, seed=seed + k) if program_coding(program) == "rate"
                  else program.encode(xb))
        r = core.run(raster)
        preds.append(program.decode(r.outputs)["predicted"])
        spikes += float(r.spikes.sum())
        synops += float(synaptic_ops(program.config, raster, r.spikes).sum())
        if bar is not None:
            bar.update(xb.shape[0])
    return np.concatenate(preds), spikes, synops


def program_coding(program) -> str:
    """"rate" for a :class:`~neurocore.sw.rate.RateProgram`, else "quartz"."""
    return getattr(program, "coding", "quartz")


def evaluate_codings(model: torch.nn.Module, data: DatasetSplit, plan: dict, *,
                     percentile: float = DEFAULT_PERCENTILE, input_coding: str = "poisson",
                     seed: int | None = None, backend: str = "torch", device: str = "cpu",
                     limit: int | None = None, progress: bool = True) -> list[CodingRow]:
    """Run ``plan`` ({coding: [T, …]}) on the test split (its first ``limit`` images).

    Poisson batch ``k`` is drawn from ``seed + k`` (default :func:`rate_seed`).
    """
    from tqdm import tqdm

    seed = rate_seed() if seed is None else seed
    x, y = data.x_test[:limit], data.y_test[:limit].numpy()
    with torch.no_grad():
        ann = float((model.eval()(x).argmax(dim=1).numpy() == y).mean()) * 100
    rows = []
    bar = tqdm(total=len(y) * sum(len(ts) for ts in plan.values()), desc="codings", unit="img",
               disable=not progress)
    for coding, t_values in plan.items():
        for T in t_values:
            bar.set_postfix(coding=coding, T=T)
            program = from_model(model, T, data.x_train, percentile=percentile, coding=coding,
                                 input_coding=input_coding)
            pred, spikes, synops = _run(program, x, backend, device, seed, bar)
            rows.append(CodingRow(coding=coding, t_max=T,
                                  accuracy=float((pred == y).mean()) * 100, ann_acc=ann,
                                  steps=program.n_steps, spikes=spikes / len(y),
                                  synops=synops / len(y), n_test=len(y)))
    bar.close()
    return rows


def synops_ratio(rows: list[CodingRow], tolerance: float = 0.5) -> dict:
    """Cheapest row of each coding within ``tolerance`` points of the ANN, and the ratio.

    Returns ``{"quartz": row|None, "rate": row|None, "ratio": float|None}``.
    """
    best = {}
    for coding in ("quartz", "rate"):
        ok = [r for r in rows if r.coding == coding and r.accuracy >= r.ann_acc - tolerance]
        best[coding] = min(ok, key=lambda r: r.synops) if ok else None
    q, r = best["quartz"], best["rate"]
    best["ratio"] = r.synops / q.synops if q and r and q.synops else None
    return best


_HEADERS = {"coding": "coding", "t_max": "T", "accuracy": "core %", "ann_acc": "ANN %",
            "steps": "steps/inf", "spikes": "spikes/inf", "synops": "SynOps/inf",
            "n_test": "images"}


def codings_table(rows: list[CodingRow], tolerance: float = 0.5) -> str:
    """Markdown table of the rows and a line with the SynOps ratio at equal accuracy."""
    keys = [f.name for f in dataclasses.fields(CodingRow)]
    lines = ["| " + " | ".join(_HEADERS[k] for k in keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v)
                                       for v in (getattr(r, k) for k in keys)) + " |")
    best = synops_ratio(rows, tolerance)
    q, r = best["quartz"], best["rate"]
    if best["ratio"] is not None:
        lines += ["", f"At equal accuracy (within {tolerance} pt of the ANN): rate T={r.t_max} "
                  f"({r.accuracy:.2f} %, {r.synops:,.0f} SynOps) against Quartz T={q.t_max} "
                  f"({q.accuracy:.2f} %, {q.synops:,.0f} SynOps): **rate/Quartz SynOps = "
                  f"{best['ratio']:.2f}×**."]
    else:
        missing = [c for c in ("quartz", "rate") if best[c] is None]
        lines += ["", f"No ratio: {' and '.join(missing)} did not come within {tolerance} pt "
                  "of the ANN at the T values run."]
    return "\n".join(lines)


def plot_codings(path: Path, rows: list[CodingRow], title: str) -> None:
    """Accuracy (%) against SynOps per inference (log axis), one line per coding, into a PNG."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for coding, style in (("quartz", "o-"), ("rate", "s-")):
        sel = sorted((r for r in rows if r.coding == coding), key=lambda r: r.synops)
        if sel:
            ax.plot([r.synops for r in sel], [r.accuracy for r in sel], style, label=coding)
            for r in sel:
                ax.annotate(f"T={r.t_max}", (r.synops, r.accuracy), fontsize=7,
                            textcoords="offset points", xytext=(3, -9))
    if rows:
        ax.axhline(rows[0].ann_acc, color="k", ls="--", lw=1, label="ANN")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("SynOps per inference (synapse-list entries walked on the core)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
