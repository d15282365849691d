"""Accuracy and cost of a converted network: ANN vs float Quartz vs the integer golden core.

:func:`evaluate` converts a model for each ``T``, runs the whole test split through the float
Quartz reference and the golden core, and returns one :class:`EvalRow` per ``T``.  Counts are
per inference (one test image).  Synaptic operations on the core are synapse-list entries
walked: every spike, host or compartment, costs its axon's list length per delivery.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..golden import quartz as float_quartz
from ..golden.core import GoldenCore
from .compiler import QuartzProgram
from .convert import DEFAULT_PERCENTILE, from_model
from .datasets import DatasetSplit

__all__ = ["EvalRow", "evaluate", "core_costs", "synaptic_ops", "write_csv", "plot_accuracy",
           "markdown_table"]

#: Samples per golden-model batch (bounds memory: batch × steps × axons booleans).
GOLDEN_BATCH = 128


@dataclass(frozen=True)
class EvalRow:
    """One line of the evaluation table (accuracies in %, counts per inference)."""

    t_max: int
    ann_acc: float
    float_acc: float
    core_acc: float
    agreement: float            # % of samples where core and float Quartz predict the same class
    core_spikes: float          # all compartment spikes (neurons, relays, clocks)
    core_neuron_spikes: float   # spikes of IF neurons only
    core_synops: float
    float_synops: float
    decision_step: float        # mean step of the first output spike (0 = first host step)
    total_steps: int
    core_early_rate: float      # % of IF-neuron spikes before their layer's readout step
    float_early_rate: float
    n_test: int


def synaptic_ops(config, inputs: np.ndarray, spikes: np.ndarray) -> np.ndarray:
    """Per-sample synapse-list entries walked: host (B, T, n_axons) and compartment spikes.

    An axon's fan-out is its dense list plus the (target, kernel word) pairs its conv
    descriptor scatters to (spec §3.5)."""
    fan = np.bincount(config.synapse_list().axon,
                      minlength=config.geometry.n_axons).astype(np.float64)
    R, _ = config.route_matrices()
    host = inputs.sum(axis=1).astype(np.float64)          # (B, n_axons) spikes per axon
    cx = spikes.sum(axis=1).astype(np.float64)            # (B, n_cx)
    return host @ fan + cx @ (R.astype(np.float64) @ fan)


def core_costs(program: QuartzProgram, inputs: np.ndarray, spikes: np.ndarray) -> dict:
    """Per-sample synaptic operations, IF-neuron spikes and early spikes of a golden run."""
    synops = synaptic_ops(program.config, inputs, spikes)
    neuron_spikes = np.zeros(inputs.shape[0])
    early = np.zeros(inputs.shape[0])
    readout = 2 * (program.t_max - 1)
    for lay in program.layers:
        if lay.kind.startswith("IF"):
            ids = program.neuron_ids[lay.name]
            s = spikes[:, :, ids]
            neuron_spikes += s.sum(axis=(1, 2))
            t = np.arange(spikes.shape[1])[None, :, None] - lay.window_start
            early += (s & (t < readout)).sum(axis=(1, 2))
    return {"synops": synops, "neuron_spikes": neuron_spikes, "early": early}


def _run_core(program: QuartzProgram, x: torch.Tensor, progress=None, backend: str = "numpy"):
    core = GoldenCore(program.config, backend=backend)
    preds, decision, totals = [], [], {"synops": 0.0, "neuron_spikes": 0.0, "early": 0.0,
                                       "spikes": 0.0}
    for start in range(0, x.shape[0], GOLDEN_BATCH):
        raster = program.encode(x[start:start + GOLDEN_BATCH])
        r = core.run(raster)
        d = program.decode(r.outputs)
        preds.append(d["predicted"])
        decision.append(d["decision_step"])
        c = core_costs(program, raster, r.spikes)
        for k in ("synops", "neuron_spikes", "early"):
            totals[k] += float(c[k].sum())
        totals["spikes"] += float(r.spikes.sum())
        if progress is not None:
            progress.update(raster.shape[0])
    return np.concatenate(preds), np.concatenate(decision), totals


def evaluate(model: torch.nn.Module, data: DatasetSplit, t_values=(4, 8, 16, 32), *,
             percentile: float = DEFAULT_PERCENTILE, progress: bool = True,
             backend: str = "numpy") -> list[EvalRow]:
    """Evaluate ``model`` on ``data``'s full test split for each ``T`` in ``t_values``.

    ``backend`` is the golden model's ("numpy" or "torch", bit-exact with each other).
    """
    from tqdm import tqdm

    y = data.y_test.numpy()
    with torch.no_grad():
        ann = float((model.eval()(data.x_test).argmax(dim=1).numpy() == y).mean()) * 100
    n = len(y)
    rows = []
    bar = tqdm(total=n * len(t_values), desc="golden core", unit="img", disable=not progress)
    for T in t_values:
        program = from_model(model, T, data.x_train, percentile=percentile)
        bar.set_postfix(T=T)
        fr = float_quartz.run_network(program.normalized_model, data.x_test, T)
        pred, decision, tot = _run_core(program, data.x_test, bar, backend)
        rows.append(EvalRow(
            t_max=T, ann_acc=ann, float_acc=float((fr.predicted == y).mean()) * 100,
            core_acc=float((pred == y).mean()) * 100,
            agreement=float((pred == fr.predicted).mean()) * 100,
            core_spikes=tot["spikes"] / n, core_neuron_spikes=tot["neuron_spikes"] / n,
            core_synops=tot["synops"] / n, float_synops=float(fr.synops.mean()),
            decision_step=float(decision[decision >= 0].mean()) if (decision >= 0).any() else -1,
            total_steps=program.n_steps,
            core_early_rate=100 * tot["early"] / max(tot["neuron_spikes"], 1),
            float_early_rate=100 * float(fr.early_spikes.sum()) / max(float(fr.spikes.sum()), 1),
            n_test=n))
    bar.close()
    return rows


_HEADERS = {
    "t_max": "T", "ann_acc": "ANN %", "float_acc": "float Quartz %", "core_acc": "core %",
    "agreement": "core=float %", "core_spikes": "spikes/inf", "core_neuron_spikes":
    "neuron spikes/inf", "core_synops": "synops/inf", "float_synops": "float synops/inf",
    "decision_step": "steps to decision", "total_steps": "steps total",
    "core_early_rate": "early % (core)", "float_early_rate": "early % (float)", "n_test": "images",
}


def _fmt(v):
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def markdown_table(rows: list[EvalRow]) -> str:
    """Return the rows as a Markdown table."""
    keys = [f.name for f in dataclasses.fields(EvalRow)]
    lines = ["| " + " | ".join(_HEADERS[k] for k in keys) + " |",
             "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(getattr(r, k)) for k in keys) + " |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[EvalRow]) -> None:
    """Write the rows as CSV (one header line with the field names)."""
    keys = [f.name for f in dataclasses.fields(EvalRow)]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(keys)
        for r in rows:
            w.writerow([getattr(r, k) for k in keys])


def plot_accuracy(path: Path, rows: list[EvalRow], title: str) -> None:
    """Plot ANN, float-Quartz and core accuracy against T (log2 axis) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r.t_max for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(t, [r.ann_acc for r in rows], "k--", label="ANN")
    ax.plot(t, [r.float_acc for r in rows], "o-", label="float Quartz")
    ax.plot(t, [r.core_acc for r in rows], "s-", label="integer core (golden)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(t, [str(v) for v in t])
    ax.set_xlabel("T (time steps per layer)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
