"""Spike plots of a program run on the golden core: a raster per layer, first-spike times.

Both take a program with ``neuron_ids`` and ``layers`` (a
:class:`~neurocore.sw.compiler.QuartzProgram`, a rate program or an image loaded with
``load_program``) and the golden core's spikes (``bool`` (T, n_compartments) for one sample,
(B, T, n_compartments) for the timing histogram).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_raster", "plot_timing", "first_spike_times", "layer_windows"]


def layer_windows(program) -> list[tuple[str, str, np.ndarray, int]]:
    """(name, kind, compartment ids, window start step) of every stage, input to output."""
    info = {r.name: r for r in program.layers}
    return [(name, info[name].kind if name in info else "", ids,
             info[name].window_start if name in info else 0)
            for name, ids in program.neuron_ids.items()]


def first_spike_times(program, spikes: np.ndarray) -> dict[str, np.ndarray]:
    """Per layer, the first-spike step of every (sample, neuron) relative to the layer's
    window start (``-1``: never fired).  ``spikes``: (B, T, n_compartments)."""
    out = {}
    for name, _, ids, w0 in layer_windows(program):
        s = spikes[:, :, ids]
        fired = s.any(axis=1)
        out[name] = np.where(fired, s.argmax(axis=1) - w0, -1).ravel()
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_raster(path: Path, program, spikes: np.ndarray, inputs: np.ndarray | None = None,
                title: str = "") -> None:
    """One panel per layer: a dot at (step, neuron) for every spike of one sample.

    ``spikes``: (T, n_compartments) bool; ``inputs``: the host raster (T, n_axons), drawn
    first (input axons only) when given.
    """
    plt = _pyplot()
    layers = layer_windows(program)
    panels = ([("input", "host spikes", np.asarray(program.input_axons), 0, inputs)]
              if inputs is not None else [])
    panels += [(name, kind, ids, w0, spikes) for name, kind, ids, w0 in layers]
    heights = [max(1.0, np.log2(len(p[2]) + 1)) for p in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.0 + 1.2 * len(panels)), dpi=110,
                             sharex=True, gridspec_kw={"height_ratios": heights})
    axes = np.atleast_1d(axes)
    T = spikes.shape[0]
    for ax, (name, kind, ids, w0, src) in zip(axes, panels):
        t, j = np.nonzero(src[:, ids])
        ax.scatter(t, j, s=4, marker="|", color="C0" if name == "input" else "C3")
        ax.set_ylim(-0.5, len(ids) - 0.5)
        if name != "input" and w0:
            ax.axvline(w0, color="0.6", lw=0.8, ls="--")
        ax.set_ylabel(f"{name}\n{kind}\n({len(ids)})", rotation=0, ha="right", va="center",
                      fontsize=7)
        ax.tick_params(axis="y", labelsize=6)
        ax.text(0.995, 0.9, f"{len(t)} spikes", transform=ax.transAxes, ha="right", va="top",
                fontsize=7)
    axes[-1].set_xlim(-0.5, T - 0.5)
    axes[-1].set_xlabel("time step (dashed: the layer's window start)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path)
    plt.close(fig)


def plot_timing(path: Path, program, spikes: np.ndarray, title: str = "") -> None:
    """Histogram per layer of first-spike steps (relative to the layer window), all samples."""
    plt = _pyplot()
    times = first_spike_times(program, spikes)
    fig, axes = plt.subplots(len(times), 1, figsize=(7, 1.0 + 1.3 * len(times)), dpi=110)
    axes = np.atleast_1d(axes)
    for ax, (name, t) in zip(axes, times.items()):
        fired = t[t >= 0]
        if fired.size:
            ax.hist(fired, bins=np.arange(fired.max() + 2) - 0.5, color="C2")
        ax.set_title(f"{name}: {fired.size} first spikes, {int((t < 0).sum())} neurons silent"
                     + (f", median {np.median(fired):.0f}" if fired.size else ""), fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("first-spike step after the layer's window start")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path)
    plt.close(fig)
