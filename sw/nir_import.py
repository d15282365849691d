"""Read a spiking NIR graph onto one core: :func:`from_nir` (docs/nir.md).

Accepted: a chain ``Input → (linear nodes → neuron node)+ → Output``.  Linear nodes are
``Affine``/``Linear``/``Conv2d``/``SumPool2d``/``AvgPool2d``/``Flatten``; each run of them is
composed into one dense matrix.  Neuron nodes (``IF``, ``LIF``, ``CubaLIF``, with
``dt``) map onto compartments:

- ``IF`` (``v̇ = R·I``, one Euler step ``dt``): ``dv = 0``, ``du`` full (u is this step's
  input); weights × ``r·dt``;
- ``LIF``: ``dv = 4096·dt/tau``, weights × ``r·dt/tau``, ``v_leak·dt/tau`` a per-step bias
  (``tau = r·dt = ∞`` is the IF limit);
- ``CubaLIF``: ``du = 4096·dt/tau_syn``, ``dv = 4096·dt/tau_mem``, weights ×
  ``w_in·dt/tau_syn · r·dt/tau_mem``.

Per layer the float values are quantised with a scale ``S`` (one NIR unit of v is ``S``
accumulator units: ``W = round(w·S)`` in 8 bits, ``vth = round(θ·S)`` with the core's strict
``v > vth``); :attr:`NirProgram.report` gives each layer's errors.  ``v_reset`` must be 0 (the
core resets to 0).  Anything else raises :class:`NirImportError` naming the node and limit.

Timing: the core delivers a spike one step after it is sent, so NIR input step ``t`` is host
step ``t`` and the spikes of the ``k``-th neuron layer appear ``k`` steps later than in a
simulator that propagates within a step (snnTorch, Norse).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..golden.network import CoreConfig, NetworkBuilder
from ..spec.geometry import CoreGeometry
from .layers import _dense_of

__all__ = ["from_nir", "NirProgram", "NirImportError", "LayerError", "NEURON_NODES",
           "LINEAR_NODES"]

NEURON_NODES = ("IF", "LIF", "CubaLIF")
LINEAR_NODES = ("Affine", "Linear", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten")
#: Geometry from_nir lays networks out on when none is given (sized like ``from_model``).
_DEFAULT = CoreGeometry(name="nir", n_compartments=1 << 14, n_axons=1 << 15, n_synapses=1 << 20,
                        n_routes=1 << 15, n_profiles=16, n_delay_slots=8, n_outputs=1 << 10,
                        max_fanout=1 << 14, max_routes=4)


class NirImportError(ValueError):
    """A graph the core cannot run; the message names the node and the limit."""


@dataclass(frozen=True)
class LayerError:
    """Quantisation of one neuron layer: scale and the largest errors (NIR units)."""

    node: str
    kind: str
    neurons: int
    scale: int
    weight_error: float        # max |W/S − w|
    weight_max: float
    threshold_error: float     # max |vth/S − θ|
    du_error: float            # max |du/4096 − dt/tau_syn| (0 for IF/LIF)
    dv_error: float


@dataclass
class NirProgram:
    """A NIR graph on one core: feed ``encode(spikes)``, read ``outputs`` of ``GoldenCore.run``."""

    config: CoreConfig
    input_shape: tuple
    n_inputs: int
    n_outputs: int
    report: list
    neuron_ids: dict = field(default_factory=dict)

    def encode(self, spikes) -> np.ndarray:
        """NIR input spikes (B, T, *input_shape) → host raster (B, T + depth, n_axons)."""
        x = np.asarray(spikes)
        x = x.reshape(x.shape[0], x.shape[1], -1)
        if x.shape[2] != self.n_inputs:
            raise ValueError(f"input spikes have {x.shape[2]} channels, the graph takes "
                             f"{self.n_inputs}")
        depth = len(self.neuron_ids)
        raster = np.zeros((x.shape[0], x.shape[1] + depth, self.config.geometry.n_axons),
                          dtype=bool)
        raster[:, :x.shape[1], :self.n_inputs] = x != 0
        return raster

    def report_text(self) -> str:
        """The per-layer quantisation report as text."""
        rows = ["node            kind     neurons  scale S  |dW|max (of |w|max)  |dθ|   |du|    |dv|"]
        rows += [f"{r.node:<15} {r.kind:<8} {r.neurons:>7} {r.scale:>8} {r.weight_error:>9.3g} "
                 f"({r.weight_max:.3g}) {r.threshold_error:>9.3g} {r.du_error:>7.3g} "
                 f"{r.dv_error:>7.3g}" for r in self.report]
        return "\n".join(rows)


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def _linear_module(name: str, node) -> nn.Module:
    """A torch module computing ``node`` on one sample (batch dim added)."""
    kind = type(node).__name__
    if kind in ("Affine", "Linear"):
        w = torch.as_tensor(np.asarray(node.weight), dtype=torch.float64)
        m = nn.Linear(w.shape[1], w.shape[0], bias=kind == "Affine").double()
        m.weight.data = w
        if kind == "Affine":
            m.bias.data = torch.as_tensor(np.asarray(node.bias), dtype=torch.float64)
        return m
    if kind == "Conv2d":
        w = torch.as_tensor(np.asarray(node.weight), dtype=torch.float64)
        pad = node.padding if isinstance(node.padding, str) else tuple(np.atleast_1d(node.padding))
        m = nn.Conv2d(w.shape[1] * int(node.groups), w.shape[0], tuple(w.shape[2:]),
                      stride=tuple(np.atleast_1d(node.stride)), padding=pad,
                      dilation=tuple(np.atleast_1d(node.dilation)), groups=int(node.groups),
                      bias=True).double()
        m.weight.data = w
        m.bias.data = torch.as_tensor(_arr(node.bias) if node.bias is not None
                                      else np.zeros(w.shape[0]), dtype=torch.float64)
        return m
    if kind in ("SumPool2d", "AvgPool2d"):
        k = tuple(int(v) for v in np.atleast_1d(node.kernel_size))
        k = k * 2 if len(k) == 1 else k
        pool = nn.AvgPool2d(k, tuple(int(v) for v in np.atleast_1d(node.stride)),
                            tuple(int(v) for v in np.atleast_1d(node.padding)))
        if kind == "AvgPool2d":
            return pool
        return nn.Sequential(pool, _Scale(float(k[0] * k[1])))
    if kind == "Flatten":
        return nn.Flatten(1, -1)
    raise NirImportError(f"node {name!r}: {kind} is not supported; supported: "
                         f"{', '.join(LINEAR_NODES + NEURON_NODES)}, Input, Output")


class _Scale(nn.Module):
    def __init__(self, k: float):
        super().__init__()
        self.k = k

    def forward(self, x):
        return x * self.k


def _neuron_terms(name: str, node, dt: float) -> dict:
    """Per-neuron float dynamics: du, dv (fractions of 1), input gain, threshold, bias."""
    kind = type(node).__name__
    theta = _arr(node.v_threshold)
    reset = _arr(node.v_reset) if getattr(node, "v_reset", None) is not None else np.zeros(1)
    if np.any(reset != 0):
        raise NirImportError(f"node {name!r}: v_reset {reset[reset != 0][0]:g} — the core "
                             "resets v to 0 only")
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "IF":
            return dict(du=np.ones(1), dv=np.zeros(1), gain=_arr(node.r) * dt, theta=theta,
                        leak=np.zeros(1))
        if kind == "LIF":
            tau, r = _arr(node.tau), _arr(node.r)
            f = np.where(np.isinf(tau) & np.isinf(r), 1.0, r * dt / tau)
            return dict(du=np.ones(1), dv=dt / tau, gain=f, theta=theta,
                        leak=_arr(node.v_leak) * dt / tau)
        ts, tm, r, w_in = _arr(node.tau_syn), _arr(node.tau_mem), _arr(node.r), _arr(node.w_in)
        f_mem = np.where(np.isinf(tm) & np.isinf(r), 1.0, r * dt / tm)
        f_syn = np.where(np.isinf(ts) & np.isinf(w_in), 1.0, w_in * dt / ts)
        if np.any(_arr(node.v_leak) != 0):
            raise NirImportError(f"node {name!r}: CubaLIF v_leak must be 0")
        return dict(du=dt / ts, dv=dt / tm, gain=f_syn * f_mem, theta=theta, leak=np.zeros(1))


def _decay_int(frac: np.ndarray, name: str, what: str, g: CoreGeometry) -> np.ndarray:
    full = 1 << g.decay_shift
    if np.any(~np.isfinite(frac)) or np.any(frac < 0) or np.any(frac > 1):
        raise NirImportError(f"node {name!r}: {what} = dt/tau must lie in [0, 1] (tau ≥ dt), "
                             f"found {frac[~((frac >= 0) & (frac <= 1))][0]:g}")
    return np.rint(frac * full).astype(np.int64)


def _scale(w: np.ndarray, theta: np.ndarray, name: str, g: CoreGeometry) -> int:
    """Scale with the smaller error of: the largest fitting S, and the largest power of 2."""
    full = (1 << g.weight_bits) - 1
    max_w = float(np.abs(w).max(initial=0.0))
    s_max = int(min(full / max_w if max_w else full, ((1 << g.vth_bits) - 1)
                    / max(float(theta.max(initial=1.0)), 1e-12)))
    if s_max < 1:
        raise NirImportError(f"node {name!r}: weights up to {max_w:.4g} and thresholds up to "
                             f"{float(theta.max()):.4g} fit no scale ≥ 1 ({g.weight_bits}-bit "
                             f"weights, {g.vth_bits}-bit thresholds)")

    def err(S):
        return max(float(np.abs(np.rint(w * S) / S - w).max(initial=0)),
                   float(np.abs(np.rint(theta * S) / S - theta).max(initial=0)))

    pow2 = 1 << (s_max.bit_length() - 1)
    return min((s_max, pow2), key=lambda S: (err(S), -S))


def _chain(graph) -> list[str]:
    """Node names from Input to Output; a graph that is not one chain raises."""
    succ: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    inputs = [k for k, v in graph.nodes.items() if type(v).__name__ == "Input"]
    if len(inputs) != 1:
        raise NirImportError(f"the graph needs exactly one Input node, it has {len(inputs)}")
    order, name = [], inputs[0]
    while True:
        order.append(name)
        nxt = succ.get(name, [])
        if not nxt:
            break
        if len(nxt) > 1 or len(order) > len(graph.nodes):
            raise NirImportError(f"node {name!r}: feeds {nxt}; from_nir maps chains (one "
                                 "successor per node, no recurrence)")
        name = nxt[0]
    if type(graph.nodes[name]).__name__ != "Output":
        raise NirImportError(f"node {name!r}: the chain must end in an Output node")
    return order


def from_nir(graph, *, dt: float = 1e-4, geometry: CoreGeometry | None = None) -> NirProgram:
    """Map a spiking NIR graph (or a path to a .nir file) onto one core; see the module doc."""
    import nir

    if not isinstance(graph, nir.NIRGraph):
        graph = nir.read(graph)
    g = geometry or _DEFAULT
    order = _chain(graph)
    in_node = graph.nodes[order[0]]
    shape = tuple(int(v) for v in np.asarray(next(iter(in_node.input_type.values()))))
    n_in = int(np.prod(shape))
    b = NetworkBuilder(g)
    profiles: dict[tuple, int] = {}
    src_axons, cur_shape = np.arange(n_in), shape
    pending: list[nn.Module] = []
    report, neuron_ids = [], {}
    n_host = n_in
    next_axon = n_host
    last = None
    for name in order[1:-1]:
        node = graph.nodes[name]
        kind = type(node).__name__
        if kind not in NEURON_NODES:
            pending.append(_linear_module(name, node))
            continue
        if not pending:
            raise NirImportError(f"node {name!r}: a neuron node must follow a linear node")
        seq = nn.Sequential(*pending).double()
        with torch.no_grad():
            out_shape = tuple(seq(torch.zeros((1,) + cur_shape, dtype=torch.float64)).shape[1:])
        seq.float()
        W, bias = _dense_of(seq, cur_shape)
        pending = []
        n_out = W.shape[0]
        t = {k: np.broadcast_to(v, (n_out,)).astype(np.float64)
             for k, v in _neuron_terms(name, node, dt).items()}
        w_eff = W * t["gain"][:, None]
        per_step = bias * t["gain"] + t["leak"]            # constant input into v per step
        S = _scale(w_eff, t["theta"], name, g)
        Wq = np.rint(w_eff * S).astype(np.int64)
        vth = np.rint(t["theta"] * S).astype(np.int64)
        du, dv = _decay_int(t["du"], name, "du", g), _decay_int(t["dv"], name, "dv", g)
        bias_v = np.rint(per_step * S * (1 << g.act_shift)).astype(np.int64)
        bias_exp = np.zeros_like(bias_v)
        lim = 1 << (g.bias_mant_bits - 1)
        while np.any(np.abs(bias_v >> bias_exp) >= lim) and bias_exp.max() < (1 << g.bias_exp_bits) - 1:
            bias_exp = np.where(np.abs(bias_v >> bias_exp) >= lim, bias_exp + 1, bias_exp)
        if np.any(np.abs(bias_v >> bias_exp) >= lim):
            raise NirImportError(f"node {name!r}: bias/leak {per_step.max():.4g} exceeds the "
                                 f"core's bias range at scale {S}")
        cx = np.empty(n_out, dtype=np.int64)
        for j in range(n_out):
            key = (int(du[j]), int(dv[j]), int(vth[j]))
            if key not in profiles:
                if len(profiles) >= g.n_profiles:
                    raise NirImportError(f"node {name!r}: more than n_profiles={g.n_profiles} "
                                         "distinct (du, dv, threshold) combinations")
                d_u = key[0]
                profiles[key] = b.add_profile(du=min(d_u, (1 << g.decay_bits) - 1),
                                              du_offset=int(d_u > (1 << g.decay_bits) - 1),
                                              dv=min(key[1], (1 << g.decay_bits) - 1),
                                              vth=key[2])
            cx[j] = b.add_compartments(1, profile=profiles[key],
                                       bias_mant=int(bias_v[j] >> bias_exp[j]),
                                       bias_exp=int(bias_exp[j]))[0]
        for i, axon in enumerate(src_axons):
            nz = np.flatnonzero(Wq[:, i])
            if nz.size:
                b.connect(int(axon), cx[nz], Wq[nz, i])
        axons = np.arange(next_axon, next_axon + n_out)
        next_axon += n_out
        b.route_to_axon(cx, axons)
        report.append(LayerError(
            node=name, kind=kind, neurons=n_out, scale=S,
            weight_error=float(np.abs(Wq / S - w_eff).max(initial=0)),
            weight_max=float(np.abs(w_eff).max(initial=0)),
            threshold_error=float(np.abs(vth / S - t["theta"]).max()),
            du_error=float(np.abs(du / (1 << g.decay_shift) - t["du"]).max()),
            dv_error=float(np.abs(dv / (1 << g.decay_shift) - t["dv"]).max())))
        neuron_ids[name] = cx
        src_axons, cur_shape, last = axons, out_shape, cx
    if pending:
        raise NirImportError(f"node {order[-2]!r}: linear nodes after the last neuron node "
                             "are not supported (the outputs are spikes)")
    if last is None:
        raise NirImportError("the graph has no neuron node (IF, LIF or CubaLIF)")
    if last.size > g.n_outputs:
        raise NirImportError(f"{last.size} outputs exceed n_outputs={g.n_outputs}")
    b.route_to_output(last, np.arange(last.size))
    return NirProgram(config=b.build(), input_shape=shape, n_inputs=n_in, n_outputs=last.size,
                      report=report, neuron_ids=neuron_ids)
