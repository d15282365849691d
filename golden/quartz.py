"""Float Quartz TTFS reference: the yardstick between the ANN and the integer core.

Implements the simulator semantics of the project's Quartz notes (quartz.md §1A; Lenz, Orchard,
Sheik, arXiv 2309.16795), written from the method description, not from any Quartz code.

Time contract, per layer, with ``T = t_max``:

* A layer integrates over a window of ``L = 4(T-1)`` steps indexed ``0..L-1``.
* A value ``x`` is one spike at index ``idx(x) = round((T-1)(2-x))``; ``x = 1`` spikes at ``T-1``,
  ``x = 0`` at the readout step ``R = 2(T-1)``.  Values live on the ``1/(T-1)`` grid in ``(-2, 2]``.
* Each IF neuron gets, besides its data synapses, a counter-weight event of amplitude
  ``1 - Σ data`` at ``R`` and, if it has a bias ``b``, an amplitude-1 event at
  ``idx(clip(b, -1.5, 1.5))``.  Per step: ``i += data; v += i``; spike when ``v >= T - 0.5``,
  then ``v = i = 0``.  A rectified (ReLU) neuron that has not spiked by ``Q = 3(T-1)`` (after the
  threshold check at ``Q``) is forced to spike at ``Q`` (the value 0), and the layer stops there.
* Output spike step ``t`` becomes index ``t - (T-1)`` of the next layer's window (latency ``T-1``).

Rules this golden model adds where §1A leaves a choice (stated so the integer core can match):

* **First spike wins.**  A neuron emits at most one spike, its first; later threshold crossings
  are integrated (state resets) but never emitted.
* **Early spike** = a threshold crossing before the neuron's last input event (the counter-weight
  at ``R``, or a later bias / negative-input event).  With inputs and biases >= 0 this is "before
  ``R``", i.e. the value decodes above 1.  Every spike that is not early equals :func:`closed_form`.
* A spike before step ``T-1`` would fall before the next window; it is clamped to index 0
  (value 2, the top of the range).  Only early spikes can do this.
* An index outside ``0..L-1`` (or :data:`NO_SPIKE`) is no event; :func:`decode` maps
  :data:`NO_SPIKE` to ``-inf`` (below the window's range).

Rounding: ``encode`` and ``quantize`` use ``np.rint``, round-half-to-even, because the reference
simulator uses ``torch.round`` (also half-to-even), so encoded indices match it bit for bit.  The
neuron itself rounds half up (see :func:`closed_form`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "NO_SPIKE", "BIAS_CLIP", "INPUT_MIN", "INPUT_MAX", "TimeGrid", "encode", "decode", "quantize",
    "closed_form", "SynapticMap", "dense_synapses", "module_synapses", "LayerSpikes",
    "simulate_if_layer", "simulate_dense_layer", "LayerStats", "QuartzResult", "run_network",
    "run_closed_form",
]

#: Index meaning "no spike in the window".
NO_SPIKE = -1
#: Biases are clipped to ``[-BIAS_CLIP, BIAS_CLIP]`` before encoding (§1A).
BIAS_CLIP = 1.5
#: Network inputs are clamped to ``[INPUT_MIN, INPUT_MAX]`` before encoding (§1A).
INPUT_MIN, INPUT_MAX = -1.9, 2.0
#: The threshold is ``T - THRESHOLD_OFFSET``; the offset turns truncation into rounding.
THRESHOLD_OFFSET = 0.5
#: Window, readout and rectification steps in units of ``T-1``.
WINDOW_UNITS, READOUT_UNITS, RECTIFY_UNITS = 4, 2, 3
#: Modules the network runner passes over (inference no-ops).
_NO_OPS = (nn.Dropout, nn.Identity)


@dataclass(frozen=True)
class TimeGrid:
    """The per-layer time grid for ``t_max = T`` (all fields are step indices or counts)."""

    t_max: int

    def __post_init__(self):
        if isinstance(self.t_max, bool) or not isinstance(self.t_max, (int, np.integer)) \
                or self.t_max < 2:
            raise ValueError(f"t_max must be an integer >= 2, not {self.t_max!r}")

    @property
    def levels(self) -> int:
        """``T-1``: grid steps per unit value, and the per-layer latency in steps."""
        return int(self.t_max) - 1

    @property
    def window(self) -> int:
        """``L = 4(T-1)``: steps per layer window."""
        return WINDOW_UNITS * self.levels

    @property
    def readout(self) -> int:
        """``R = 2(T-1)``: counter-weight step; a value 0 spikes here."""
        return READOUT_UNITS * self.levels

    @property
    def rectify_step(self) -> int:
        """``Q = 3(T-1)``: forced-spike step of rectified layers."""
        return RECTIFY_UNITS * self.levels

    @property
    def threshold(self) -> float:
        """``θ = T - 0.5``."""
        return self.t_max - THRESHOLD_OFFSET


def encode(x, t_max: int) -> np.ndarray:
    """Spike index ``round_half_even((T-1)(2-x))`` (int64) of each value; raises for ``x > 2``."""
    grid = TimeGrid(t_max)
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("encode: input contains NaN")
    if x.size and x.max() > INPUT_MAX:
        raise ValueError(f"encode: value {float(x.max())!r} exceeds {INPUT_MAX}, the top of the encoding range")
    return np.rint(grid.levels * (INPUT_MAX - x)).astype(np.int64)


def decode(idx, t_max: int) -> np.ndarray:
    """Value ``(2T-2-idx)/(T-1)`` of each spike index; :data:`NO_SPIKE` decodes to ``-inf``."""
    grid = TimeGrid(t_max)
    idx = np.asarray(idx, dtype=np.int64)
    values = (grid.readout - idx) / grid.levels
    return np.where(idx == NO_SPIKE, -np.inf, values)


def quantize(x, t_max: int) -> np.ndarray:
    """``round_half_even(x(T-1))/(T-1)``; mathematically ``decode(encode(x))`` for ``x <= 2``."""
    grid = TimeGrid(t_max)
    return np.rint(np.asarray(x, dtype=np.float64) * grid.levels) / grid.levels


def closed_form(y, t_max: int, rectify: bool = True) -> np.ndarray:
    """Decoded output of a neuron with quantised net input ``y = Σ w x + b`` and no early spike.

    ``floor((T-1)y + 0.5)/(T-1)`` (round half up onto the grid), then ``max(0, ·)`` when
    rectified.  Without rectification, levels below the window (``< 2-T``) give ``-inf``.
    """
    grid = TimeGrid(t_max)
    level = np.floor(np.asarray(y, dtype=np.float64) * grid.levels + THRESHOLD_OFFSET)
    if rectify:
        return np.maximum(level, 0.0) / grid.levels
    lowest = grid.readout - (grid.window - 1 - grid.levels)  # level of the last in-window index
    return np.where(level >= lowest, level / grid.levels, -np.inf)


@dataclass(frozen=True)
class SynapticMap:
    """The data synapses of one layer, applied to one time step's spikes.

    ``apply`` maps spike amplitudes ``(B, *in_shape)`` to synaptic currents ``(B, *out_shape)``
    (weights only, no bias); ``count`` maps the same spikes to the number of synapses each target
    receives an event on.  ``bias`` is per output neuron, broadcastable to ``out_shape``, or None.
    """

    apply: Callable[[np.ndarray], np.ndarray]
    count: Callable[[np.ndarray], np.ndarray]
    bias: np.ndarray | None = None


def dense_synapses(weight, bias=None) -> SynapticMap:
    """:class:`SynapticMap` of a dense layer; ``weight`` is ``(n_out, n_in)``, ``bias`` ``(n_out,)``."""
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"dense weight must be 2-D (n_out, n_in), got shape {w.shape}")
    connected = (w != 0).astype(np.float64)
    b = None if bias is None else np.asarray(bias, dtype=np.float64).reshape(w.shape[0])
    return SynapticMap(apply=lambda s: s @ w.T, count=lambda s: s @ connected.T, bias=b)


def module_synapses(module: nn.Module) -> SynapticMap:
    """:class:`SynapticMap` of a torch ``Linear`` or zero-padded ``Conv2d`` (float64)."""
    w = module.weight.detach().to(torch.float64)
    connected = (w != 0).to(torch.float64)
    bias = None if module.bias is None else module.bias.detach().to(torch.float64).numpy()
    if isinstance(module, nn.Linear):
        def run(s, weight):
            return F.linear(torch.from_numpy(s), weight).numpy()
    elif isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise ValueError(f"Conv2d {module}: only numeric zero padding is supported")
        if bias is not None:
            bias = bias.reshape(-1, 1, 1)

        def run(s, weight):
            return F.conv2d(torch.from_numpy(s), weight, None, module.stride, module.padding,
                            module.dilation, module.groups).numpy()
    else:
        raise TypeError(f"module_synapses: expected nn.Linear or nn.Conv2d, got {type(module).__name__}")
    return SynapticMap(apply=lambda s: run(s, w), count=lambda s: run(s, connected), bias=bias)


@dataclass(frozen=True)
class LayerSpikes:
    """Output of one IF layer for a batch (shapes ``(B, *out_shape)`` unless stated).

    ``out_idx``: output spike index in the next layer's window (shifted by ``T-1``), or
    :data:`NO_SPIKE`.  ``early``: the first spike was an early spike.  ``forced``: the spike is the
    rectifier's forced spike at ``Q``.  ``synops`` ``(B,)``: synaptic events delivered (data events +
    one counter-weight event per neuron + bias events + one rectifier event per rectified neuron).
    ``current_events`` ``(B,)``: nonzero (step, neuron) current entries, the reference's SynOps.
    ``trace_v``/``trace_i``: ``(steps, B, *out_shape)`` state after integration, before reset
    (only with ``trace=True``).
    """

    out_idx: np.ndarray
    early: np.ndarray
    forced: np.ndarray
    synops: np.ndarray
    current_events: np.ndarray
    trace_v: np.ndarray | None = None
    trace_i: np.ndarray | None = None


def simulate_if_layer(in_idx, synapses: SynapticMap, t_max: int, *, rectify: bool = True,
                      trace: bool = False) -> LayerSpikes:
    """Run one Quartz IF layer on a batch of input spike indices ``(B, *in_shape)``.

    Indices are steps of this layer's window; :data:`NO_SPIKE` or indices outside ``0..L-1``
    are no event.  Returns :class:`LayerSpikes`; see the module docstring for the semantics.
    """
    grid = TimeGrid(t_max)
    in_idx = np.asarray(in_idx, dtype=np.int64)
    in_window = (in_idx >= 0) & (in_idx < grid.window)
    batch = in_idx.shape[0]
    out_sum = synapses.apply(in_window.astype(np.float64))  # Σ_t data[t] of the data synapses
    shape = out_sum.shape
    neurons_per_sample = int(np.prod(shape[1:]))

    bias_idx = None
    if synapses.bias is not None:
        bias_idx = np.broadcast_to(encode(np.clip(synapses.bias, -BIAS_CLIP, BIAS_CLIP), t_max), shape)
        out_sum = out_sum + (bias_idx < grid.window)
    counter = 1.0 - out_sum

    last_step = grid.rectify_step if rectify else grid.window - 1
    event_steps = set(np.unique(in_idx[in_window]).tolist())
    v, i = np.zeros(shape), np.zeros(shape)
    spike_t = np.full(shape, NO_SPIKE, dtype=np.int64)
    last_event = np.full(shape, grid.readout, dtype=np.int64)  # the counter-weight's step, at least
    synops = np.full(batch, neurons_per_sample * (2 if rectify else 1), dtype=np.int64)
    current_events = np.zeros(batch, dtype=np.int64)
    forced = np.zeros(shape, dtype=bool)
    trace_v, trace_i = [], []

    for t in range(grid.window):
        data = np.zeros(shape)
        if t in event_steps:
            spikes = (in_idx == t).astype(np.float64)
            data += synapses.apply(spikes)
            events = np.rint(synapses.count(spikes)).astype(np.int64)
            last_event[events > 0] = max(t, grid.readout)
            if t <= last_step:
                synops += events.reshape(batch, -1).sum(axis=1)
        if bias_idx is not None:
            hit = bias_idx == t
            data += hit
            last_event[hit] = max(t, grid.readout)
            if t <= last_step:
                synops += hit.reshape(batch, -1).sum(axis=1)
        if t == grid.readout:
            data += counter
        if t > last_step:
            continue
        current_events += np.count_nonzero(data.reshape(batch, -1), axis=1)
        i += data
        v += i
        if trace:
            trace_v.append(v.copy())
            trace_i.append(i.copy())
        crossed = v >= grid.threshold
        spike_t[crossed & (spike_t == NO_SPIKE)] = t
        v[crossed] = 0.0
        i[crossed] = 0.0
        if rectify and t == grid.rectify_step:
            forced = spike_t == NO_SPIKE
            spike_t[forced] = t

    spiked = spike_t != NO_SPIKE
    early = spiked & ~forced & (spike_t < last_event)
    out_idx = np.where(spiked, np.maximum(spike_t - grid.levels, 0), NO_SPIKE)
    return LayerSpikes(out_idx=out_idx, early=early, forced=forced, synops=synops,
                       current_events=current_events,
                       trace_v=np.stack(trace_v) if trace else None,
                       trace_i=np.stack(trace_i) if trace else None)


def simulate_dense_layer(in_idx, weight, bias=None, *, t_max: int, rectify: bool = True,
                         trace: bool = False) -> LayerSpikes:
    """:func:`simulate_if_layer` for a dense ``weight (n_out, n_in)`` on ``in_idx (B, n_in)``."""
    return simulate_if_layer(in_idx, dense_synapses(weight, bias), t_max, rectify=rectify, trace=trace)


@dataclass(frozen=True)
class LayerStats:
    """Per-inference means for one IF layer of a network run."""

    name: str
    n_neurons: int
    spikes: float
    early_spikes: float
    synops: float
    current_events: float


@dataclass(frozen=True)
class QuartzResult:
    """A float Quartz network run on a batch of ``B`` inputs (per-sample arrays have shape ``(B,)``).

    ``out_idx``/``values``: output spike indices and decoded values ``(B, n_out)``.  ``predicted``:
    earliest output spike = argmax of ``values`` (ties go to the lowest class).  ``tied``: the
    earliest output step is shared by several classes.  ``input_spikes``, ``spikes`` (IF neurons,
    forced spikes included), ``early_spikes``, ``synops``, ``current_events``: counts per sample.
    ``decision_step``: step of the earliest output spike on the global pipelined clock
    (``n_if_layers·(T-1) + earliest output index``; 0 = first input step), ``NO_SPIKE`` if silent.
    """

    t_max: int
    out_idx: np.ndarray
    values: np.ndarray
    predicted: np.ndarray
    tied: np.ndarray
    input_spikes: np.ndarray
    spikes: np.ndarray
    early_spikes: np.ndarray
    synops: np.ndarray
    current_events: np.ndarray
    decision_step: np.ndarray
    n_neurons: int
    layers: tuple[LayerStats, ...] = field(default=())

    def per_inference(self) -> dict[str, float]:
        """Batch means of the per-sample counts (``tied``: fraction of samples)."""
        return {
            "input_spikes": float(self.input_spikes.mean()), "spikes": float(self.spikes.mean()),
            "early_spikes": float(self.early_spikes.mean()),
            "early_rate": float(self.early_spikes.mean()) / self.n_neurons,
            "synops": float(self.synops.mean()), "current_events": float(self.current_events.mean()),
            "decision_step": float(self.decision_step[self.decision_step != NO_SPIKE].mean()),
            "tied": float(self.tied.mean()),
        }

    def accuracy(self, labels) -> float:
        """Fraction of ``predicted`` equal to ``labels``."""
        labels = np.asarray(labels)
        if labels.shape != self.predicted.shape:
            raise ValueError(f"labels shape {labels.shape} != predictions shape {self.predicted.shape}")
        return float(np.mean(self.predicted == labels))


def _pool_levels(pool: nn.Module, levels: np.ndarray) -> np.ndarray:
    """Pool integer levels ``(T-1)·value`` and round half to even: exact, so ties are deterministic."""
    with torch.no_grad():
        return np.rint(pool(torch.from_numpy(levels.astype(np.float64))).numpy())


def _pool_spikes(pool: nn.Module, idx: np.ndarray, t_max: int, where: str) -> np.ndarray:
    """decode → pool → re-encode, computed on levels: ``idx' = R - rint(pool(R - idx))``."""
    if (idx == NO_SPIKE).any():
        raise ValueError(f"{where}: pooling a silent neuron (pooling must follow a rectified layer)")
    readout = TimeGrid(t_max).readout
    return (readout - _pool_levels(pool, readout - idx)).astype(np.int64)


def _in_window_values(idx: np.ndarray, t_max: int) -> np.ndarray:
    """Decoded values, with 0 for indices outside the window (no event acts like the value 0)."""
    in_window = (idx >= 0) & (idx < TimeGrid(t_max).window)
    return np.where(in_window, decode(np.where(in_window, idx, 0), t_max), 0.0)


def _spiking_plan(model: nn.Sequential) -> list[tuple[str, nn.Module, bool]]:
    """List of (kind, module, rectify) steps; validates the layer order."""
    modules = list(model)
    plan = []
    for pos, module in enumerate(modules):
        where = f"model[{pos}] ({type(module).__name__})"
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            rectify = pos + 1 < len(modules) and isinstance(modules[pos + 1], nn.ReLU)
            plan.append(("if", module, rectify))
        elif isinstance(module, nn.ReLU):
            if pos == 0 or not isinstance(modules[pos - 1], (nn.Conv2d, nn.Linear)):
                raise ValueError(f"{where}: ReLU must directly follow a Conv2d or Linear layer")
        elif isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
            plan.append(("pool", module, False))
        elif isinstance(module, nn.Flatten):
            if module.start_dim != 1 or module.end_dim != -1:
                raise ValueError(f"{where}: only Flatten(start_dim=1, end_dim=-1) is supported")
            plan.append(("flatten", module, False))
        elif isinstance(module, _NO_OPS):
            continue
        else:
            raise ValueError(f"{where}: unsupported module (fold BatchNorm first; allowed: Conv2d, "
                             "Linear, ReLU, Flatten, AvgPool2d, MaxPool2d, Dropout, Identity)")
    if not any(kind == "if" for kind, _, _ in plan):
        raise ValueError("model has no Conv2d or Linear layer")
    return plan


@contextmanager
def _single_thread():
    """Run torch on one thread: these per-step ops are tiny and extra threads only stall."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _run_layers(model, idx, t_max, totals, stats) -> tuple[np.ndarray, int, int]:
    """Propagate spike indices through the plan; add per-sample counts to ``totals``."""
    batch, n_if, n_neurons = idx.shape[0], 0, 0
    for pos, (kind, module, rectify) in enumerate(_spiking_plan(model)):
        if kind == "pool":
            idx = _pool_spikes(module, idx, t_max, f"step {pos} ({module})")
        elif kind == "flatten":
            idx = idx.reshape(batch, -1)
        else:
            layer = simulate_if_layer(idx, module_synapses(module), t_max, rectify=rectify)
            idx, n_if = layer.out_idx, n_if + 1
            size = int(np.prod(idx.shape[1:]))
            spikes = (idx != NO_SPIKE).reshape(batch, -1).sum(axis=1)
            early = layer.early.reshape(batch, -1).sum(axis=1)
            for key, value in (("spikes", spikes), ("early", early), ("synops", layer.synops),
                               ("current", layer.current_events)):
                totals[key] += value
            n_neurons += size
            stats.append(LayerStats(f"{type(module).__name__}#{n_if}", size, float(spikes.mean()),
                                    float(early.mean()), float(layer.synops.mean()),
                                    float(layer.current_events.mean())))
    return idx, n_if, n_neurons


def run_network(model: nn.Sequential, x, t_max: int) -> QuartzResult:
    """Run ``model`` as a float Quartz network on the batch ``x`` (values clamped to [-1.9, 2]).

    Conv2d/Linear followed by ReLU become rectified IF layers, without ReLU non-rectified ones
    (the output layer).  Pooling is decode → torch pool → re-encode (zero latency), evaluated on
    the integer levels ``(T-1)·value`` so that ties round half to even exactly.
    """
    grid = TimeGrid(t_max)
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    idx = encode(np.clip(x, INPUT_MIN, INPUT_MAX), t_max)
    batch = idx.shape[0]
    input_spikes = ((idx >= 0) & (idx < grid.window)).reshape(batch, -1).sum(axis=1)
    totals = {k: np.zeros(batch, dtype=np.int64) for k in ("spikes", "early", "synops", "current")}
    stats: list[LayerStats] = []
    with _single_thread():
        idx, n_if, n_neurons = _run_layers(model, idx, t_max, totals, stats)
    out_idx = idx.reshape(batch, -1)
    values = decode(out_idx, t_max)
    predicted = np.argmax(values, axis=1)
    top = values.max(axis=1, keepdims=True)
    silent = np.isneginf(top[:, 0])
    tied = ((values == top).sum(axis=1) > 1) & ~silent
    earliest = out_idx[np.arange(batch), predicted]
    decision = np.where(silent, NO_SPIKE, n_if * grid.levels + earliest)
    return QuartzResult(t_max=int(t_max), out_idx=out_idx, values=values, predicted=predicted,
                        tied=tied, input_spikes=input_spikes, spikes=totals["spikes"],
                        early_spikes=totals["early"], synops=totals["synops"],
                        current_events=totals["current"], decision_step=decision,
                        n_neurons=n_neurons, layers=tuple(stats))


def run_closed_form(model: nn.Sequential, x, t_max: int) -> np.ndarray:
    """Decoded outputs ``(B, n_out)`` of the network evaluated with :func:`closed_form` per layer.

    The value-domain twin of :func:`run_network`: inputs and biases encoded and decoded exactly as
    there, each Conv2d/Linear output passed through :func:`closed_form`, pooling re-rounded on
    levels.  A silent neuron (``-inf``) or an out-of-window input feeds the next layer as 0, as a
    missing spike does in the simulation.  Equals ``run_network(...).values`` on every sample
    without early spikes.
    """
    grid = TimeGrid(t_max)
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    values = _in_window_values(encode(np.clip(x, INPUT_MIN, INPUT_MAX), t_max), t_max)
    with _single_thread():
        for kind, module, rectify in _spiking_plan(model):
            values = np.where(np.isneginf(values), 0.0, values)
            if kind == "pool":
                values = _pool_levels(module, np.rint(values * grid.levels)) / grid.levels
            elif kind == "flatten":
                values = values.reshape(values.shape[0], -1)
            else:
                synapses = module_synapses(module)
                net = synapses.apply(values)
                if synapses.bias is not None:
                    clipped = np.clip(synapses.bias, -BIAS_CLIP, BIAS_CLIP)
                    net = net + _in_window_values(encode(clipped, t_max), t_max)
                values = closed_form(net, t_max, rectify=rectify)
    return values.reshape(values.shape[0], -1)
