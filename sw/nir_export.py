"""Write a core's network as a NIR graph (docs/nir.md states the mapping and its timing).

The converted network is recurrent (clocks, counters, self-inhibition), so it is written as
the core itself is built: one ``CubaLIF`` population of the used compartments (plus one relay
per step of synaptic delay) and three ``Linear`` maps that mirror the core's memories::

    input ─► host_synapses ─► cx ─► routes ─► synapses ─► cx        (a 3-cycle: one step)
                               └─► output_routes ─► output

Units: a weight is its accumulator contribution ``w << weight_exp`` divided by the target's
threshold ``vth + ½`` (accumulator units), so every neuron's ``v_threshold`` is 1; ``u``
(``I``) and ``v`` are the core's ``u/64`` and ``v/64`` over that threshold.  ``du_eff`` 0 / 4096
is ``tau_syn`` ∞ (:data:`TAU_INF`) / ``dt``; ``dv = 0`` is ``tau_mem`` ∞; ``r = tau_mem/dt`` and
``w_in = tau_syn/dt`` make NIR's Euler step ``I ← αI + x``, ``v ← βv + I`` the core's update.
Only those decays are exact in floating point, so other decays, a compartment bias, or an
axon that a delayed synapse list shares between several senders raise :class:`NirExportError`.

Timing: a host spike sent at core step ``t`` is NIR input at step ``t + 1`` (the core delivers
it one step later); compartment spikes and output events keep their step.

:func:`neurocore.sw.nir_layers.to_nir_layers` writes a program converted from a torch model
layer by layer instead (Conv2d, SumPool2d, Flatten, Linear between per-layer populations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..golden.network import CoreConfig

__all__ = ["NirExport", "to_nir", "NirExportError", "DT", "TAU_INF", "run_imported"]

#: Time step of the exported graph (seconds); snnTorch's NIR import assumes 1e-4.
DT = 1e-4
#: Stands for an infinite time constant (a non-leaky state): ``1 − DT/TAU_INF == 1.0``.
TAU_INF = 1e30
#: Threshold of a relay neuron (it fires on any input spike), before normalisation.
_RELAY_THETA = 0.5


class NirExportError(ValueError):
    """The network uses something NIR cannot express exactly; names the compartment or axon."""


@dataclass
class NirExport:
    """The graph and how to drive it: ``input_axons[i]`` is NIR input ``i``."""

    graph: object
    input_axons: np.ndarray
    compartments: np.ndarray     # core compartment of each of the first len() population neurons
    n_relays: int

    def inputs_from_raster(self, raster: np.ndarray) -> np.ndarray:
        """Core host raster (B, T, n_axons) → NIR input (T, B, n_in), shifted one step later."""
        x = np.asarray(raster)[:, :, self.input_axons].astype(np.float32)
        out = np.zeros((x.shape[1], x.shape[0], x.shape[2]), dtype=np.float32)
        out[1:] = x[:, :-1].transpose(1, 0, 2)
        return out


def _used_compartments(config: CoreConfig, syn) -> np.ndarray:
    used = np.zeros(config.geometry.n_compartments, dtype=bool)
    used[syn.target] = True
    used |= config.mem["axon_map"]["length"] > 0
    return np.flatnonzero(used)


def _check_params(config: CoreConfig, cx: np.ndarray) -> dict:
    p = config.compartment_params()
    full = 1 << config.geometry.decay_shift
    for name, bad in (("du + du_offset (must be 0 or 4096)",
                       ~np.isin(p["du_eff"][cx], (0, full))),
                      ("dv (must be 0)", p["dv"][cx] != 0),
                      ("bias_mant (must be 0)", p["bias_mant"][cx] != 0)):
        if bad.any():
            c = int(cx[np.flatnonzero(bad)[0]])
            key = name.split()[0] if name.startswith(("dv", "bias")) else "du_eff"
            raise NirExportError(f"compartment {c}: {name}; it is {int(p[key][c])}: NIR's "
                                 "float CubaLIF reproduces the core only without leak and bias")
    return p


def to_nir(config: CoreConfig, input_axons=None) -> NirExport:
    """Return the NIR graph of ``config`` (see the module docstring for units and timing).

    ``input_axons``: the host axons to expose as inputs (default: every axon with synapses
    that no compartment routes to).
    """
    import nir

    config.validate()
    syn = config.synapse_list()
    R, O = config.route_matrices()
    cx = _used_compartments(config, syn)
    p = _check_params(config, cx)
    routed = R.sum(axis=0) > 0
    if input_axons is None:
        input_axons = np.unique(syn.axon[~routed[syn.axon]])
    input_axons = np.asarray(input_axons, dtype=np.int64)
    col_of = {int(a): i for i, a in enumerate(input_axons)}
    rec_axons = np.flatnonzero(routed)
    rec_of = {int(a): i for i, a in enumerate(rec_axons)}
    pop_of = {int(c): i for i, c in enumerate(cx)}
    theta = p["vth"][cx] + 0.5
    # delayed synapses: one relay chain per (axon, delay)
    chains: dict[tuple[int, int], list[int]] = {}
    n = cx.size
    for a, d in sorted({(int(a), int(d)) for a, d in zip(syn.axon, syn.delay) if d > 0}):
        senders = int(R[:, a].sum()) + (1 if a in col_of else 0)
        if senders > 1:
            raise NirExportError(f"axon {a}: delayed synapses (delay {d}) on an axon with "
                                 f"{senders} senders; a relay chain would merge their spikes")
        chains[(a, d)] = list(range(n, n + d))
        n += d
    n_pop, n_rec = n, rec_axons.size + (n - cx.size)
    theta = np.concatenate([theta, np.full(n_pop - cx.size, _RELAY_THETA)])
    w_host = np.zeros((n_pop, input_axons.size))
    routes = np.zeros((n_rec, n_pop))
    synapses = np.zeros((n_pop, n_rec))
    relay_axon = {r: rec_axons.size + (r - cx.size) for r in range(cx.size, n_pop)}
    for c in cx:
        for a in np.flatnonzero(R[c]):
            routes[rec_of[int(a)], pop_of[int(c)]] = R[c, a]
    for r, ax in relay_axon.items():
        routes[ax, r] = 1

    def feed(axon: int, target: int, weight: float):
        """Add ``weight`` from core axon ``axon`` (host or recurrent) into ``target``."""
        if axon in col_of:
            w_host[target, col_of[axon]] += weight
        if axon in rec_of:
            synapses[target, rec_of[axon]] += weight

    for a, t, w, d in zip(syn.axon, syn.target, syn.contribution, syn.delay):
        tgt = pop_of[int(t)]
        wn = float(w) / theta[tgt]
        if d == 0:
            feed(int(a), tgt, wn)
            continue
        chain = chains[(int(a), int(d))]
        synapses[tgt, relay_axon[chain[-1]]] += wn
    for (a, d), chain in chains.items():
        feed(a, chain[0], 1 / _RELAY_THETA)
        for src, dst in zip(chain[:-1], chain[1:]):
            synapses[dst, relay_axon[src]] = 1 / _RELAY_THETA
    used_out = np.flatnonzero(O.sum(axis=0) > 0)
    n_out = int(used_out.max(initial=-1)) + 1
    w_out = np.zeros((n_out, n_pop))
    w_out[:, :cx.size] = O[cx, :n_out].T
    tau_syn = np.full(n_pop, DT)
    tau_syn[:cx.size][p["du_eff"][cx] == 0] = TAU_INF
    tau_mem = np.full(n_pop, TAU_INF)
    nodes = {
        "input": nir.Input(input_type=np.array([input_axons.size])),
        "host_synapses": nir.Linear(weight=w_host),
        "cx": nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / DT,
                          v_leak=np.zeros(n_pop), v_threshold=np.ones(n_pop),
                          v_reset=np.zeros(n_pop), w_in=tau_syn / DT),
        "routes": nir.Linear(weight=routes),
        "synapses": nir.Linear(weight=synapses),
        "output_routes": nir.Linear(weight=w_out),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    edges = [("input", "host_synapses"), ("host_synapses", "cx"), ("cx", "routes"),
             ("routes", "synapses"), ("synapses", "cx"), ("cx", "output_routes"),
             ("output_routes", "output")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={
        "producer": "quartz-neurocore", "dt": DT, "input_axons": input_axons,
        "compartments": cx, "relays": n_pop - cx.size,
        "timing": "host spike of core step t is input at step t+1"})
    return NirExport(graph=graph, input_axons=input_axons, compartments=cx,
                     n_relays=n_pop - cx.size)


def run_imported(module, inputs: np.ndarray) -> np.ndarray:
    """Step a NIR-imported torch module (snnTorch's ``import_from_nir``) over ``inputs``.

    ``inputs``: (T, B, n_in) float; returns the output events (B, T, n_out) as int32.
    """
    import torch

    state, outs = None, []
    with torch.no_grad():
        for x in torch.as_tensor(inputs):
            y, state = module(x, state)
            outs.append(y.round().to(torch.int32))
    return torch.stack(outs, dim=1).numpy()
