"""Seeded random networks and input rasters for cross-checking golden, Lava and RTL.

:func:`random_network` draws a network that exercises every field of the core: leaky and
non-leaky profiles (``du_offset = 0``), full decay, biases with exponents, all three sign
modes, weight exponents, every delay, recurrent routes and output routes.  It keeps each
step's true synaptic sum below ``2**(acc_bits - 1)`` in magnitude (:data:`LAVA_SAFE_SUM`), the
range in which Lava's one-shot u wrap agrees with the spec's modular wrap (docs/spec.md §2.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..spec.geometry import CoreGeometry
from ..spec.words import SignMode
from .network import CoreConfig, NetworkBuilder

__all__ = ["RandomNetwork", "random_network", "random_raster", "max_synaptic_sum"]


def max_synaptic_sum(config: CoreConfig) -> int:
    """Return an upper bound on |Σ weight << weight_exp| reaching one compartment in one step.

    Counts every synapse into a compartment once per spike its axon can carry in a step (one
    host spike plus one per route into the axon), as if all delays landed in one slot.
    """
    syn = config.synapse_list()
    R, _ = config.route_matrices()
    per_axon = 1 + R.sum(axis=0)
    total = np.zeros(config.geometry.n_compartments, dtype=np.int64)
    np.add.at(total, syn.target, np.abs(syn.contribution) * per_axon[syn.axon])
    return int(total.max(initial=0))


@dataclass(frozen=True)
class RandomNetwork:
    """A drawn network, the raster to drive it and the seed that reproduces both."""

    seed: int
    config: CoreConfig
    inputs: np.ndarray   # (batch, steps, n_axons) bool

    def describe(self) -> str:
        s = self.config.summary()
        return (f"seed={self.seed} compartments={s['compartments_used']} "
                f"synapses={s['synapses_used']} routes={s['routes_used']} "
                f"steps={self.inputs.shape[1]} batch={self.inputs.shape[0]}")


def random_raster(rng: np.random.Generator, batch: int, steps: int, n_axons: int,
                  n_used: int, rate: float) -> np.ndarray:
    """Return a (batch, steps, n_axons) bool raster with spikes on the first ``n_used`` axons."""
    x = np.zeros((batch, steps, n_axons), dtype=bool)
    x[:, :, :n_used] = rng.random((batch, steps, n_used)) < rate
    return x


def random_network(seed: int, geometry: CoreGeometry | str = "small", *, steps: int = 32,
                   batch: int = 1, max_compartments: int | None = None,
                   max_profiles: int = 2, max_connection_kinds: int = 2,
                   duplicate_rate: float = 0.02) -> RandomNetwork:
    """Draw a random network (and input raster) from ``seed``; see the module docstring.

    ``max_profiles`` and ``max_connection_kinds`` (distinct (sign mode, weight exponent)
    pairs) bound the number of Lava processes the network needs, as does
    ``duplicate_rate``, the fraction of synapses that repeat an (axon, target) pair (drawn
    only in a quarter of the networks).  Three in five networks have recurrent routes.
    """
    g = CoreGeometry.preset(geometry) if isinstance(geometry, str) else geometry
    rng = np.random.default_rng(seed)
    cap = min(g.n_compartments, max_compartments or g.n_compartments)
    n_cx = int(rng.integers(1, cap + 1))
    n_profiles = int(rng.integers(1, min(max_profiles, g.n_profiles) + 1))
    limit = (1 << (g.acc_bits - 1)) - 1
    for shrink in range(8):  # retry with smaller weights until the sum bound holds
        b = NetworkBuilder(g)
        profiles = [_random_profile(b, rng, g) for _ in range(n_profiles)]
        prof_of = rng.choice(profiles, size=n_cx)
        for p in profiles:
            k = int((prof_of == p).sum())
            if k:
                b.add_compartments(k, profile=int(p),
                                   bias_mant=_biases(rng, k, g),
                                   bias_exp=rng.integers(0, 1 << g.bias_exp_bits, size=k))
        n_ext = int(rng.integers(1, min(g.n_axons // 2, 64) + 1))
        n_rec = int(rng.integers(1, min(g.n_axons - n_ext, 16) + 1)) if rng.random() < 0.6 else 0
        dup_rate = duplicate_rate if rng.random() < 0.25 else 0.0
        kinds = _connection_kinds(rng, g, max_connection_kinds, shrink)
        budget = g.n_synapses
        for axon in range(n_ext + n_rec):
            fan = int(rng.integers(0, min(g.max_fanout, n_cx, budget) + 1))
            if fan == 0:
                continue
            targets = rng.choice(n_cx, size=fan, replace=False)
            dup = targets[rng.random(fan) < dup_rate]
            targets = np.concatenate([targets, dup])[:min(g.max_fanout, budget)]
            fan = targets.size
            budget -= fan
            kind = kinds[rng.integers(0, len(kinds), size=fan)]
            for (sm, e) in {tuple(k) for k in kind}:
                sel = (kind[:, 0] == sm) & (kind[:, 1] == e)
                b.connect(axon, targets[sel], _weights(rng, int(sel.sum()), sm, g),
                          weight_exp=e, delay=rng.integers(0, g.n_delay_slots, size=sel.sum()),
                          sign_mode=sm)
        if n_rec:
            senders = rng.choice(n_cx, size=min(n_cx, int(rng.integers(1, 2 * n_rec + 1))),
                                 replace=False)
            for c in senders:
                k = 1 if rng.random() < 0.8 else int(rng.integers(1, min(3, g.max_routes) + 1))
                b.route_to_axon(c, n_ext + rng.integers(0, n_rec, size=k))
        outs = rng.choice(n_cx, size=min(n_cx, g.n_outputs, int(rng.integers(1, 17))),
                          replace=False)
        b.route_to_output(outs, rng.integers(0, g.n_outputs, size=outs.size))
        config = b.build()
        if max_synaptic_sum(config) <= limit:
            break
    else:
        raise RuntimeError(f"seed {seed}: could not draw a network within the sum bound")
    rate = float(rng.uniform(0.02, 0.3))
    inputs = random_raster(rng, batch, steps, g.n_axons, n_ext, rate)
    return RandomNetwork(seed=seed, config=config, inputs=inputs)


def _random_profile(b: NetworkBuilder, rng, g: CoreGeometry) -> int:
    full = (1 << g.decay_bits) - 1
    style = rng.integers(0, 4)
    if style == 0:    # non-leaky integrate-and-fire (Quartz)
        du, off, dv = 0, 0, 0
    elif style == 1:  # pulse current (full decay)
        du, off, dv = full, 1, int(rng.integers(0, full + 1))
    else:             # leaky
        du, off, dv = int(rng.integers(0, full + 1)), int(rng.integers(0, 2)), \
            int(rng.integers(0, full + 1))
    vth = int(rng.choice([rng.integers(0, 64), rng.integers(0, 4096),
                          rng.integers(0, 1 << g.vth_bits)], p=[0.3, 0.5, 0.2]))
    return b.add_profile(du=du, du_offset=off, dv=dv, vth=vth)


def _biases(rng, k, g: CoreGeometry) -> np.ndarray:
    half = 1 << (g.bias_mant_bits - 1)
    b = rng.integers(-half, half, size=k)
    return np.where(rng.random(k) < 0.5, 0, b)


def _connection_kinds(rng, g: CoreGeometry, n_max: int, shrink: int) -> np.ndarray:
    n = 1 if rng.random() < 0.6 else int(rng.integers(1, n_max + 1))
    modes = rng.choice([m.value for m in SignMode], size=n)
    top = max(0, (1 << g.weight_exp_bits) - 1 - 2 * shrink)
    exps = rng.integers(0, top + 1, size=n)
    return np.stack([modes, exps], axis=1)


def _weights(rng, n, sign_mode, g: CoreGeometry) -> np.ndarray:
    full = (1 << g.weight_bits) - 1
    if sign_mode == SignMode.EXCITATORY.value:
        return rng.integers(0, full + 1, size=n)
    if sign_mode == SignMode.INHIBITORY.value:
        return -rng.integers(0, full + 1, size=n)
    half = 1 << (g.weight_bits - 1)
    return 2 * rng.integers(-half, half, size=n)
