"""Seeded random networks and input rasters for cross-checking golden, Lava and RTL.

:func:`random_network` draws a network that exercises every field of the core: leaky and
non-leaky profiles (``du_offset = 0``), full decay, biases with exponents, all three sign
modes, weight exponents, every delay, recurrent routes and output routes.  It keeps each
step's true synaptic sum below ``2**(acc_bits - 1)`` in magnitude (:data:`LAVA_SAFE_SUM`), the
range in which Lava's one-shot u wrap agrees with the spec's modular wrap (docs/spec.md §2.3).

:func:`forwarding_network` draws networks whose synapse lists hit the same accumulator entry
in consecutive cycles (runs of synapses with one target and one delay), which the RTL's
read-modify-write pipeline must forward; :func:`random_network` almost never does that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..spec.geometry import CoreGeometry
from ..spec.words import ConvKind, SignMode
from .network import CoreConfig, NetworkBuilder

__all__ = ["RandomNetwork", "random_network", "forwarding_network", "random_conv_network",
           "with_random_resets",
           "random_raster", "max_synaptic_sum", "GENERATORS"]


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


def forwarding_network(seed: int, geometry: CoreGeometry | str = "tiny", *, steps: int = 24,
                       batch: int = 1) -> RandomNetwork:
    """Draw a network that stresses the accumulator forwarding path (seeded like
    :func:`random_network`).

    A few "hot" compartments receive most synapses.  Every axon's list is made of runs: 1 to 8
    consecutive synapses with the same target and the same delay (back-to-back read-modify-
    writes of one accumulator entry), sometimes alternating between two targets (A B A B: the
    entry written two cycles before, which must *not* be forwarded).  Host axons and recurrent
    axons (routes from compartments) carry such lists; the weights are scaled down until the
    step sums stay within :func:`max_synaptic_sum`'s bound, as in :func:`random_network`.
    """
    g = CoreGeometry.preset(geometry) if isinstance(geometry, str) else geometry
    rng = np.random.default_rng(seed)
    n_cx = int(rng.integers(2, min(g.n_compartments, 24) + 1))
    n_hot = int(rng.integers(1, min(3, n_cx) + 1))
    n_profiles = int(rng.integers(1, min(2, g.n_profiles) + 1))
    n_ext = int(rng.integers(1, min(g.n_axons // 2, 8) + 1))
    n_rec = int(rng.integers(1, min(g.n_axons - n_ext, 4) + 1)) if rng.random() < 0.6 else 0
    limit = (1 << (g.acc_bits - 1)) - 1
    plan = []                                     # per axon: list of runs
    budget = g.n_synapses
    hot = rng.choice(n_cx, size=n_hot, replace=False)
    for axon in range(n_ext + n_rec):
        length = int(rng.integers(2, min(g.max_fanout, 48, budget) + 1))
        budget -= length
        runs, left = [], length
        fixed_delay = int(rng.integers(0, g.n_delay_slots)) if rng.random() < 0.7 else None
        alternate = rng.random() < 0.3 and n_cx > 1
        pair = rng.choice(n_cx, size=2, replace=False)
        k = 0
        while left > 0:
            if alternate:
                target, run = int(pair[k % 2]), 1
            else:
                target = int(rng.choice(hot) if rng.random() < 0.8 else rng.integers(0, n_cx))
                run = int(rng.integers(1, 9))
            run = min(run, left)
            delay = fixed_delay if fixed_delay is not None else int(rng.integers(0, g.n_delay_slots))
            runs.append((target, run, delay))
            left -= run
            k += 1
        plan.append(runs)
    kinds_all = _connection_kinds(rng, g, 2, 0)
    raw = []
    for runs in plan:
        drawn = []
        for t, r, d in runs:
            sm, e = kinds_all[rng.integers(0, len(kinds_all))]
            drawn.append((t, r, d, (int(sm), int(e)), _weights(rng, r, sm, g)))
        raw.append(drawn)
    profiles_seed = int(rng.integers(0, 1 << 31))
    senders = (rng.choice(n_cx, size=min(n_cx, int(rng.integers(1, 2 * n_rec + 1))),
                          replace=False) if n_rec else np.array([], dtype=np.int64))
    sender_axons = [n_ext + int(rng.integers(0, n_rec)) for _ in senders]
    outs = rng.choice(n_cx, size=min(n_cx, g.n_outputs, int(rng.integers(1, 9))), replace=False)
    out_ids = rng.integers(0, g.n_outputs, size=outs.size)
    biases = _biases(rng, n_cx, g)
    bias_exps = rng.integers(0, 1 << g.bias_exp_bits, size=n_cx)
    for shrink in range(12):  # halve the weights until the sum bound holds
        b = NetworkBuilder(g)
        prng = np.random.default_rng(profiles_seed)
        profiles = [_random_profile(b, prng, g) for _ in range(n_profiles)]
        prof_of = prng.choice(profiles, size=n_cx)
        for cx in range(n_cx):
            b.add_compartments(1, profile=int(prof_of[cx]), bias_mant=int(biases[cx]),
                               bias_exp=int(bias_exps[cx]))
        for axon, runs in enumerate(raw):
            for target, run, delay, (sm, e), w in runs:
                w = _rescale(w, int(sm), shrink, g)
                b.connect(axon, [target] * run, w, weight_exp=int(e), delay=delay,
                          sign_mode=int(sm))
        for c, a in zip(senders, sender_axons):
            b.route_to_axon(int(c), a)
        b.route_to_output(outs, out_ids)
        config = b.build()
        if max_synaptic_sum(config) <= limit:
            break
    else:
        raise RuntimeError(f"seed {seed}: could not draw a network within the sum bound")
    rate = float(rng.uniform(0.1, 0.5))
    inputs = random_raster(rng, batch, steps, g.n_axons, n_ext, rate)
    return RandomNetwork(seed=seed, config=config, inputs=inputs)


def _rescale(w: np.ndarray, sign_mode: int, shrink: int, g: CoreGeometry) -> np.ndarray:
    """Weights of ``sign_mode`` divided by ``2**shrink`` (MIXED weights stay even)."""
    if sign_mode == SignMode.MIXED.value:
        return 2 * ((w // 2) >> shrink)
    return np.sign(w) * (np.abs(w) >> shrink)


def random_conv_network(seed: int, geometry: CoreGeometry | str = "small", *, steps: int = 24,
                        batch: int = 1, max_compartments: int | None = None) -> RandomNetwork:
    """Draw a network of conv descriptors (spec §3.5) from ``seed``.

    A host input map (C, H, W) feeds a CONV or DEPTHWISE descriptor with random kernel, stride
    and padding; one host axon broadcasts pieces into the same group; in most networks the
    group's spikes route back through a second descriptor into a second group, and a few
    axons also own dense lists.  Weights reach the field limits (±255, every exponent, every
    delay) and shrink only until the sum bound of :func:`random_network` holds.  The geometry
    needs ``n_conv >= 3``.
    """
    g = CoreGeometry.preset(geometry) if isinstance(geometry, str) else geometry
    if g.n_conv < 3:
        raise ValueError(f"random_conv_network needs n_conv >= 3, geometry {g.name!r} has "
                         f"{g.n_conv}")
    rng = np.random.default_rng(seed)
    cap = min(g.n_compartments, max_compartments or g.n_compartments)
    limit = (1 << (g.acc_bits - 1)) - 1
    c_max, s_max = ((1 << b) - 1 for b in g.conv_coord_bits)
    for shrink in range(8):
        b = NetworkBuilder(g)
        profiles = [_random_profile(b, rng, g) for _ in range(int(rng.integers(1, 3)))]
        # input map on host axons 0.., within the axons left for the recurrent map
        while True:
            c_in = int(rng.integers(1, min(3, c_max) + 1))
            h, w = (int(v) for v in rng.integers(2, min(9, s_max) + 1, size=2))
            if c_in * h * w <= min(g.n_axons // 2, 128):
                break
        groups, descriptors = [], []
        in_axons = np.arange(c_in * h * w).reshape(c_in, h, w)
        next_axon = in_axons.size
        src = in_axons
        for layer in range(1 if rng.random() < 0.3 else 2):
            shape = _conv_shape(rng, src.shape, cap - b.n_compartments, c_max, s_max)
            if shape is None:
                break
            c_out, kh, kw, stride, pad, depthwise, (oh, ow) = shape
            out = b.add_compartments(c_out * oh * ow, profile=int(rng.choice(profiles)),
                                     bias_mant=_biases(rng, c_out * oh * ow, g),
                                     bias_exp=rng.integers(0, 1 << g.bias_exp_bits,
                                                           size=c_out * oh * ow))
            out = out.reshape(c_out, oh, ow)
            sm, e = _connection_kinds(rng, g, 1, shrink)[0]
            k_shape = (c_out, 1 if depthwise else src.shape[0], kh, kw)
            kernel = _weights(rng, int(np.prod(k_shape)), sm, g).reshape(k_shape)
            delay = rng.integers(0, g.n_delay_slots, size=k_shape)
            descriptors.append(b.add_conv(src, out, kernel, stride=stride, padding=pad,
                                          weight_exp=e, delay=delay, depthwise=depthwise,
                                          sign_mode=sm))
            groups.append(out)
            if layer == 0 and next_axon + out.size <= g.n_axons:
                # the group's spikes come back on axons next_axon.. (the next layer's input)
                rec = np.arange(next_axon, next_axon + out.size).reshape(out.shape)
                b.route_to_axon(out.reshape(-1), rec.reshape(-1))
                next_axon += out.size
                src = rec
            else:
                break
        if not groups:
            continue
        clock = next_axon
        pieces = int(rng.integers(1, 4))
        c0 = groups[0].shape[0]
        sm, e = _connection_kinds(rng, g, 1, shrink)[0]
        b.add_broadcast(clock, groups[0], _weights(rng, c0 * pieces, sm, g).reshape(c0, pieces),
                        weight_exp=e, delay=rng.integers(0, g.n_delay_slots, size=(c0, pieces)),
                        sign_mode=sm)
        # dense lists on a few host axons (some of which also scatter through a descriptor)
        n_cx = b.n_compartments
        for axon in rng.choice(clock + 1, size=min(clock + 1, 4), replace=False):
            fan = int(rng.integers(1, min(g.max_fanout, n_cx, 8) + 1))
            sm, e = _connection_kinds(rng, g, 1, shrink)[0]
            b.connect(int(axon), rng.choice(n_cx, size=fan, replace=False),
                      _weights(rng, fan, sm, g), weight_exp=e,
                      delay=rng.integers(0, g.n_delay_slots, size=fan), sign_mode=sm)
        last = groups[-1].reshape(-1)
        outs = rng.choice(last, size=min(last.size, g.n_outputs, 16), replace=False)
        b.route_to_output(outs, rng.integers(0, g.n_outputs, size=outs.size))
        config = b.build()
        if max_synaptic_sum(config) <= limit:
            break
    else:
        raise RuntimeError(f"seed {seed}: could not draw a conv network within the sum bound")
    rate = float(rng.uniform(0.05, 0.3))
    inputs = random_raster(rng, batch, steps, g.n_axons, in_axons.size, rate)
    inputs[:, :, clock] = rng.random((batch, steps)) < 0.2
    return RandomNetwork(seed=seed, config=config, inputs=inputs)


def _conv_shape(rng, in_shape, room, c_max, s_max):
    """Random (c_out, kh, kw, stride, pad, depthwise, (oh, ow)) for an input map, or None."""
    c_in, h, w = in_shape
    for _ in range(20):
        depthwise = rng.random() < 0.3
        c_out = c_in if depthwise else int(rng.integers(1, min(4, c_max) + 1))
        kh, kw = (int(v) for v in rng.integers(1, 5, size=2))
        stride = int(rng.choice([1, 1, 2, 4]))
        pad = int(rng.integers(0, min(kh, kw, 3)))
        oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
        if oh >= 1 and ow >= 1 and oh <= s_max and ow <= s_max and 0 < c_out * oh * ow <= room:
            return c_out, kh, kw, stride, pad, depthwise, (oh, ow)
    return None


#: Network generators by name (the cocotb regression's ``generator`` job key).
GENERATORS = {"random": random_network, "forwarding": forwarding_network,
              "conv": random_conv_network}


def with_random_resets(net: RandomNetwork, rng: np.random.Generator, *, max_interval: int,
                       no_reset: float = 0.2) -> RandomNetwork:
    """``net`` with a random periodic reset (spec §11) on every profile: interval drawn from
    ``1..max_interval`` (0, no reset, with probability ``no_reset``) and offset below it.
    The geometry must have ``reset_bits > 0``."""
    g = net.config.geometry
    if not g.reset_bits or max_interval > g.max_reset_interval:
        raise ValueError(f"max_interval {max_interval} needs reset_bits ≥ "
                         f"{max_interval.bit_length()}; geometry {g.name!r} has {g.reset_bits}")
    cfg = CoreConfig(g, {m: {f: a.copy() for f, a in fs.items()}
                         for m, fs in net.config.mem.items()})
    pr = cfg.mem["profiles"]
    n = pr["reset_interval"].size
    interval = rng.integers(1, max_interval + 1, size=n)
    interval[rng.random(n) < no_reset] = 0
    pr["reset_interval"][:] = interval
    pr["reset_offset"][:] = np.where(interval > 0,
                                     (rng.random(n) * np.maximum(interval, 1)).astype(np.int64),
                                     0)
    return RandomNetwork(seed=net.seed, config=cfg.validate(), inputs=net.inputs)
