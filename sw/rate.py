"""Rate-coded conversion onto the same core: the classic baseline Quartz is measured against.

A value ``x ∈ [0, 1]`` is a spike rate (spikes per step).  Per weight layer with scale ``S``
(one unit of value is ``S`` accumulator units) the core holds, for ``T`` input steps:

- one IF neuron per unit whose **membrane is the current u** (``du = 0``, non-leaky): the
  synapses ``W = round(w·S)`` add into it, and the voltage only tests it (``dv = 4095``, so
  ``v = u + trunc(v_prev/4096) − 32``, compartment bias ``−32``; ``vth = S − 1``): the neuron
  fires when ``u ≥ S`` units, exact while ``|v| < 2**17`` (docs/performance.md);
- **reset by subtraction**: a self-synapse ``−S`` on the neuron's own axon lands at the next
  step, before the next threshold test;
- a bias ``round(b·S)`` per step from a host axon that spikes at every input step;
- max pooling as a tree of ``max(a, b) = a + relu(b − a)``: per pair one IF (ReLU) neuron
  for ``b − a`` and one for the sum, scale :data:`POOL_SCALE` (two steps per tree level);
- the output layer's spike counts are the class scores (ties: the earlier first spike).

Each stage adds one step of latency; the program runs ``T + depth`` steps.  Inputs are
host spike trains: ``"poisson"`` (Bernoulli per step, seeded) or ``"current"`` (a
constant-current IF encoder on the host: a deterministic, evenly spaced train).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..golden.network import CoreConfig, NetworkBuilder
from ..spec.geometry import CoreGeometry
from .compiler import LayerReport, MappingError, flat_images, split_amplitude
from .layers import MaxPoolStage, WeightStage

__all__ = ["RateProgram", "compile_rate", "INPUT_CODINGS", "RATE_SEED_ENV"]

#: Host input codings of the rate baseline.
INPUT_CODINGS = ("poisson", "current")
#: Environment variable that overrides the Poisson seed of the evaluation.
RATE_SEED_ENV = "NEUROCORE_RATE_SEED"
#: The threshold test sees ``u + carry − 32`` against ``(S − 1)·64``: −32 centres it.
_TEST_BIAS = -32
#: Scale of the max-pool neurons (their weights are ±1).
POOL_SCALE = 64
#: u wraps at 2**23 = 2**17 accumulator units; the worst-case drift must stay below.
_U_LIMIT_ACC = (1 << 17) - 1


@dataclass
class RateProgram:
    """A rate-coded network on one core; ``encode`` images, run them, ``decode`` the outputs."""

    config: CoreConfig
    t_max: int                  # input steps
    input_shape: tuple
    input_max: float
    input_axons: np.ndarray
    bias_axon: int
    n_steps: int
    n_outputs: int
    layers: list
    input_coding: str = "poisson"
    notes: list = field(default_factory=list)
    neuron_ids: dict = field(default_factory=dict)
    integers: dict = field(default_factory=dict)
    coding: str = "rate"
    #: Set by :func:`~neurocore.sw.convert.from_model`, as for a QuartzProgram.
    normalized_model: object = None
    fold_report: object = None
    lambdas: list = field(default_factory=list)

    def encode(self, images, seed: int = 0) -> np.ndarray:
        """Return the host raster (B, n_steps, n_axons): input spike trains and bias clock.

        ``"poisson"`` draws Bernoulli(x / input_max) per step from ``seed``; ``"current"``
        sends a spike whenever the running sum of ``x / input_max`` crosses an integer.
        """
        x = flat_images(images, self.input_shape)
        rate = x / self.input_max
        bad = np.isnan(rate) | (rate < 0) | (rate > 1 + 1e-9)
        if bad.any():
            b, i = np.argwhere(bad)[0]
            raise ValueError(f"input value {float(x[b, i])!r} (sample {b}, input {i}) is outside "
                             f"[0, {self.input_max:.6g}], the rate code's range")
        B, T = x.shape[0], self.t_max
        if self.input_coding == "poisson":
            spikes = np.random.default_rng(seed).random((B, T, x.shape[1])) < rate[:, None, :]
        else:
            k = np.arange(1, T + 1)[None, :, None]
            spikes = np.floor(k * rate[:, None, :] + 0.5) > np.floor((k - 1) * rate[:, None, :]
                                                                     + 0.5)
        raster = np.zeros((B, self.n_steps, self.config.geometry.n_axons), dtype=bool)
        raster[:, :T, self.input_axons] = spikes
        raster[:, :T, self.bias_axon] = True
        return raster

    def decode(self, outputs: np.ndarray) -> dict[str, np.ndarray]:
        """Class = most output spikes, ties to the earlier first spike; -1 if nothing fired."""
        fired = outputs[:, :, :self.n_outputs] > 0
        counts = fired.sum(axis=1)
        first = np.where(fired.any(axis=1), fired.argmax(axis=1), self.n_steps)
        score = counts * (self.n_steps + 1) - first
        predicted = np.where(counts.any(axis=1), score.argmax(axis=1), -1)
        return {"counts": counts, "first_spike": np.where(counts > 0, first, -1),
                "predicted": predicted}

    def fit_report(self) -> str:
        """Return a short text table: memory use and each layer's scale."""
        s = self.config.summary()
        rows = [f"rate code ({self.input_coding} input): T={self.t_max} input steps, "
                f"{self.n_steps} steps per inference, {s['compartments_used']} compartments, "
                f"{s['synapses_used']} synapses",
                "  layer                         kind                neurons  scale S  synapses"]
        rows += [f"  {r.name:<29} {r.kind:<19} {r.neurons:>7} {r.scale:>8} {r.synapses:>9}"
                 for r in self.layers]
        rows += [f"  note: {n}" for n in self.notes]
        return "\n".join(rows)


def _rate_scale(stage: WeightStage, weight: np.ndarray, n_steps: int, g: CoreGeometry) -> int:
    """Largest scale with 8-bit weights whose worst-case u drift over the run cannot wrap."""
    max_w = float(np.abs(weight).max(initial=0.0))
    full = (1 << g.weight_bits) - 1
    s_w = int(full / max_w) if max_w > 0 else full
    row = float((np.abs(weight).sum(axis=1) + np.abs(stage.bias)).max(initial=0.0))
    s_u = int(_U_LIMIT_ACC / (2 + n_steps * row))
    S = min(s_w, s_u, (1 << g.vth_bits) - 1)
    if S < 2:
        raise MappingError(f"{stage.name}: no scale S >= 2 keeps 8-bit weights (|w|max "
                           f"{max_w:.4g}) and u within 24 bits over {n_steps} steps")
    return S


def _if_unit(b: NetworkBuilder, inputs: list, profile: int, n_host: int, g) -> tuple:
    """Add IF neurons ``Σ_k w_k·x_k`` (``inputs``: [(axons, weight)], one axon per neuron).

    Each neuron resets by subtraction through its own axon.  Returns (compartments, synapses).
    """
    n = inputs[0][0].size
    cx = b.add_compartments(n, profile=profile, bias_mant=_TEST_BIAS)
    for j, c in enumerate(cx):
        for axons, w in inputs:
            b.connect(int(axons[j]), int(c), w)
        b.route_to_axon(int(c), int(n_host + c))
        for w, e in split_amplitude(-POOL_SCALE, g):
            b.connect(int(n_host + c), int(c), w, weight_exp=e)
    return cx, n * (len(inputs) + len(split_amplitude(-POOL_SCALE, g)))


def _max_tree(b: NetworkBuilder, cols: list, profile: int, n_host: int) -> tuple:
    """Rate max of ``cols`` (one axon array per pooling-window position); (cx, synapses, levels)."""
    g = b.geometry
    n_syn, levels = 0, 0
    while len(cols) > 1:
        nxt = []
        for a, c in zip(cols[0::2], cols[1::2]):
            d, k1 = _if_unit(b, [(c, POOL_SCALE), (a, -POOL_SCALE)], profile, n_host, g)
            m, k2 = _if_unit(b, [(a, POOL_SCALE), (n_host + d, POOL_SCALE)], profile, n_host, g)
            nxt.append(n_host + m)
            n_syn += k1 + k2
        cols = nxt + cols[len(cols) // 2 * 2:]
        levels += 1
    return cols[0] - n_host, n_syn, levels


def compile_rate(stages: list, input_shape: tuple, t_max: int, geometry: CoreGeometry, *,
                 input_max: float = 1.0, input_coding: str = "poisson") -> RateProgram:
    """Lay out ``stages`` (:mod:`neurocore.sw.layers`) as a rate-coded network on one core."""
    if input_coding not in INPUT_CODINGS:
        raise ValueError(f"input coding {input_coding!r} is not one of {INPUT_CODINGS}")
    T = int(t_max)
    if T < 1:
        raise ValueError(f"T must be at least 1 input step, not {T}")
    g = geometry
    n_in = int(np.prod(input_shape))
    bias_axon = n_in
    n_host = n_in + 1
    b = NetworkBuilder(g)
    p_pool = b.add_profile(du=0, du_offset=0, dv=(1 << g.decay_bits) - 1, vth=POOL_SCALE - 1)
    n_steps = T + sum(1 if isinstance(st, WeightStage)
                      else 2 * int(np.ceil(np.log2(max(st.groups.shape[1], 1))))
                      for st in stages)
    src_axons = np.arange(n_in)
    reports, neuron_ids, integers = [], {}, {}
    first_weight = True
    for st in stages:
        if isinstance(st, WeightStage):
            weight = st.weight * (input_max if first_weight else 1.0)
            S = _rate_scale(st, weight, n_steps, g)
            W = np.rint(weight * S).astype(np.int64)
            B = np.rint(st.bias * S).astype(np.int64)
            prof = b.add_profile(du=0, du_offset=0, dv=(1 << g.decay_bits) - 1, vth=S - 1)
            cx = b.add_compartments(W.shape[0], profile=prof, bias_mant=_TEST_BIAS)
            axons = n_host + cx
            n_syn = 0
            for i, axon in enumerate(src_axons):
                nz = np.flatnonzero(W[:, i])
                if nz.size:
                    b.connect(int(axon), cx[nz], W[nz, i])
                    n_syn += nz.size
            for j, c in enumerate(cx):
                for w, e in split_amplitude(int(B[j]), g):
                    b.connect(bias_axon, int(c), w, weight_exp=e)
                    n_syn += 1
                b.route_to_axon(int(c), int(axons[j]))
                for w, e in split_amplitude(-S, g):
                    b.connect(int(axons[j]), int(c), w, weight_exp=e)   # reset by subtraction
                    n_syn += 1
            kind = "IF rate" + (" (ReLU)" if st.rectify else " (output)")
            integers[st.name] = {"W": W, "B": B, "S": S}
            reports.append(LayerReport(name=st.name, kind=kind, neurons=cx.size, scale=S,
                                       vth=S - 1, max_abs_weight=float(np.abs(st.weight).max()),
                                       weights=int(np.count_nonzero(st.weight)),
                                       weights_zeroed=int(np.count_nonzero(st.weight)
                                                          - np.count_nonzero(W)),
                                       synapses=n_syn))
            first_weight = False
        elif isinstance(st, MaxPoolStage):
            cx, n_syn, _ = _max_tree(b, [src_axons[st.groups[:, j]]
                                              for j in range(st.groups.shape[1])], p_pool, n_host)
            reports.append(LayerReport(name=st.name, kind="max tree (a+relu(b-a))",
                                       neurons=st.groups.shape[0], scale=POOL_SCALE,
                                       synapses=n_syn))
        else:
            raise MappingError(f"{type(st).__name__}: not a stage the rate code maps")
        neuron_ids[st.name] = cx
        src_axons = n_host + cx
    n_out = int(cx.size)
    if n_out > g.n_outputs:
        raise MappingError(f"{n_out} outputs exceed n_outputs={g.n_outputs}")
    b.route_to_output(cx, np.arange(n_out))
    return RateProgram(config=b.build(), t_max=T, input_shape=tuple(input_shape),
                       input_max=float(input_max), input_axons=np.arange(n_in),
                       bias_axon=bias_axon, n_steps=n_steps, n_outputs=n_out, layers=reports,
                       input_coding=input_coding, neuron_ids=neuron_ids, integers=integers)
