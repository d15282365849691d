"""A network spread over the cores of a chip (docs/spec.md §10) and its golden model.

The network stays one logical :class:`CoreConfig` (what :class:`GoldenCore`, the Lava harness,
``encode`` and ``decode`` see).  A :class:`Partition` gives every logical compartment a core;
:func:`build_chip` derives the :class:`ChipConfig`: one :class:`CoreConfig` per core, whose
route words name ``(core, axon)``.  On core ``k``:

- the compartments placed on ``k`` keep their logical order (local id = rank among them);
- logical axon ``a`` has a local axon on every core that holds one of its targets (ranked in
  logical order); a host spike on ``a`` and a route to ``a`` go to every such copy, each
  copy holding the synapses of ``a`` that land on ``k``;
- a conv descriptor whose output channels ``[c0, c1)`` lie whole on ``k`` becomes one
  descriptor of ``k`` over those channels with its kernel columns copied; every other output
  of it on ``k`` becomes dense synapse words (the same integers, so the same sums).

:class:`GoldenChip` runs the cores step by step and exchanges spikes at the step boundary: a
spike of step ``t`` on core A reaches its targets on core B at step ``t + 1 + delay``, as on
one core, so its :class:`RunResult` equals ``GoldenCore(logical).run`` bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from ..spec.geometry import ChipGeometry, ConfigError, CoreGeometry
from ..spec.words import ConvKind, RouteKind
from .arith import decay, effective_bias, saturate_voltage, wrap_accumulator, wrap_current
from .conv import conv_connections, scatter
from .core import ResetPlan, RunResult, spike_raster
from .network import CoreConfig

__all__ = ["Partition", "ChipConfig", "build_chip", "GoldenChip", "ARITHMETIC_FIELDS"]

#: Geometry fields that fix the arithmetic: a chip core must share them with the logical
#: network, or the cores would compute other integers.
ARITHMETIC_FIELDS = ("state_bits", "decay_bits", "vth_bits", "bias_mant_bits", "bias_exp_bits",
                     "weight_bits", "weight_exp_bits", "act_shift", "vth_shift", "decay_shift")


@dataclass(frozen=True)
class Partition:
    """Where each logical compartment sits: ``core_of[cx]`` in ``0..n_cores-1``, or -1 for a
    compartment that never changes (no synapse, no route, no bias; it is not placed)."""

    chip: ChipGeometry
    core_of: np.ndarray

    def cores_used(self) -> int:
        return int(self.core_of.max(initial=-1)) + 1


@dataclass
class ChipConfig:
    """Per-core configs of a partitioned network and how they map to the logical one.

    ``compartments[k]``: logical compartment of each local compartment of core ``k``;
    ``axons[k]``: logical axon of each local axon of core ``k``.  ``logical`` is the network
    as one core (its geometry gives the logical sizes).
    """

    chip: ChipGeometry
    cores: list
    compartments: list
    axons: list
    logical: CoreConfig

    def fanout(self) -> np.ndarray:
        """(n_cores, logical n_axons): synapse operations one delivery on each logical axon
        costs on each core (dense words plus conv pairs)."""
        out = np.zeros((self.chip.n_cores, self.logical.geometry.n_axons), dtype=np.int64)
        for k, cfg in enumerate(self.cores):
            s = cfg.synapse_list(conv=True)
            np.add.at(out[k], self.axons[k][s.axon], 1)
        return out

    def remote_routes(self, hops: bool = False) -> np.ndarray:
        """(logical n_compartments,): route words of each compartment that leave its core
        (one flit per spike each); with ``hops``, the mesh hops of those flits summed."""
        out = np.zeros(self.logical.geometry.n_compartments, dtype=np.int64)
        for k, cfg in enumerate(self.cores):
            cx, kind, _, core = cfg.route_list()
            remote = (kind == RouteKind.AXON.value) & (core != k)
            weight = (np.array([self.chip.hops(k, int(j)) for j in core[remote]], dtype=np.int64)
                      if hops else 1)
            np.add.at(out, self.compartments[k][cx[remote]], weight)
        return out


def _check_arithmetic(logical: CoreGeometry, core: CoreGeometry) -> None:
    for f in ARITHMETIC_FIELDS:
        if getattr(logical, f) != getattr(core, f):
            raise ConfigError(f"chip core {core.name!r} has {f}={getattr(core, f)}, the network "
                              f"({logical.name!r}) {getattr(logical, f)}: the arithmetic must "
                              "be the same")


def _full_run(full: np.ndarray) -> tuple[int, int] | None:
    """The first maximal run ``[c0, c1)`` of True in ``full``, or None."""
    idx = np.flatnonzero(full)
    if not idx.size:
        return None
    c0 = int(idx[0])
    c1 = c0
    while c1 < full.size and full[c1]:
        c1 += 1
    return c0, c1


def build_chip(config: CoreConfig, partition: Partition) -> ChipConfig:
    """Derive the per-core configs of ``config`` placed by ``partition``; each is validated,
    and an error names the core and the memory that overflows."""
    g, chip = config.geometry, partition.chip
    cg = chip.core
    _check_arithmetic(g, cg)
    core_of = np.asarray(partition.core_of, dtype=np.int64)
    if core_of.shape != (g.n_compartments,):
        raise ConfigError(f"partition has {core_of.shape} entries, the network "
                          f"{g.n_compartments} compartments")
    if (core_of >= chip.n_cores).any() or (core_of < -1).any():
        bad = int(core_of[(core_of >= chip.n_cores) | (core_of < -1)][0])
        raise ConfigError(f"partition names core {bad}; chip {chip.name!r} has "
                          f"{chip.n_cores} cores")
    live = config.live_compartments()
    if (live & (core_of < 0)).any():
        raise ConfigError(f"compartment {int(np.flatnonzero(live & (core_of < 0))[0])} is "
                          "live (synapses, routes or bias) but not placed on any core")
    n_cores = chip.n_cores
    cxs = [np.flatnonzero(core_of == k) for k in range(n_cores)]
    local = np.full(g.n_compartments, -1, dtype=np.int64)
    for k in range(n_cores):
        if cxs[k].size > cg.n_compartments:
            raise ConfigError(f"core {k} holds {cxs[k].size} compartments, more than "
                              f"n_compartments={cg.n_compartments} of {cg.name!r}")
        local[cxs[k]] = np.arange(cxs[k].size)
    syn = config.mem["synapses"]
    # dense (axon, target, address) per core: the dense lists, then conv remnants
    s = config.synapse_list(conv=False)
    on = core_of[s.target]
    dense = [[(s.axon[on == k], s.target[on == k], s.address[on == k])] for k in range(n_cores)]
    descs = [[] for _ in range(n_cores)]   # (connection, c0, c1)
    for c in conv_connections(config):
        j, target, addr = scatter(c)
        axon = c.axons[j]
        hw = c.out_shape[1] * c.out_shape[2]
        per_ch = core_of[c.out_base:c.out_base + c.n_outputs].reshape(c.out_shape[0], hw)
        for k in np.unique(per_ch[per_ch >= 0]):
            k = int(k)
            run = _full_run((per_ch == k).all(axis=1))
            if run is not None and len(descs[k]) < cg.n_conv:
                descs[k].append((c, *run))
                lo, hi = c.out_base + run[0] * hw, c.out_base + run[1] * hw
                rest = (core_of[target] == k) & ((target < lo) | (target >= hi))
            else:
                rest = core_of[target] == k
            dense[k].append((axon[rest], target[rest], addr[rest]))
    cores, axons_of = [], []
    for k in range(n_cores):
        d_axon, d_target, d_addr = (np.concatenate([p[i] for p in dense[k]]) for i in range(3))
        conv_axons = [(c.axons if c.kind != ConvKind.DEPTHWISE
                       else c.axons[(c.ci >= c0) & (c.ci < c1)]) for c, c0, c1 in descs[k]]
        ax = np.unique(np.concatenate([d_axon] + conv_axons)).astype(np.int64)
        if ax.size > cg.n_axons:
            raise ConfigError(f"core {k} needs {ax.size} axons, more than n_axons="
                              f"{cg.n_axons} of {cg.name!r}")
        lax = np.full(g.n_axons, -1, dtype=np.int64)
        lax[ax] = np.arange(ax.size)
        cores.append(_core_config(config, k, cg, cxs[k], local, lax, (d_axon, d_target, d_addr),
                                  descs[k], syn))
        axons_of.append(ax)
    _add_routes(config, cores, cxs, axons_of, cg)
    for k, cfg in enumerate(cores):
        try:
            cfg.validate()
        except ConfigError as e:
            raise ConfigError(f"core {k} of chip {chip.name!r}: {e}") from None
    return ChipConfig(chip=chip, cores=cores, compartments=cxs, axons=axons_of, logical=config)


def _core_config(config, k, cg, cxs, local, lax, dense, descs, syn) -> CoreConfig:
    """Core ``k``'s compartments, profiles, synapse map, synapses and conv descriptors."""
    out = CoreConfig.empty(cg)
    m = out.mem
    comp = config.mem["compartments"]
    profiles, prof_local = np.unique(comp["profile"][cxs], return_inverse=True)
    if profiles.size > cg.n_profiles:
        raise ConfigError(f"core {k} needs {profiles.size} profiles, more than n_profiles="
                          f"{cg.n_profiles} of {cg.name!r}")
    n = cxs.size
    m["compartments"]["bias_mant"][:n] = comp["bias_mant"][cxs]
    m["compartments"]["bias_exp"][:n] = comp["bias_exp"][cxs]
    m["compartments"]["profile"][:n] = prof_local
    lost = set(config.mem["profiles"]) - set(m["profiles"])
    if lost and config.mem["profiles"]["reset_interval"][profiles].any():
        raise ConfigError(f"core {k}: its profiles reset periodically (spec §11) but core "
                          f"geometry {cg.name!r} has no reset fields (reset_bits=0)")
    for f in m["profiles"]:   # fields the logical network lacks (reset_*) stay 0: no reset
        if f in config.mem["profiles"]:
            m["profiles"][f][:profiles.size] = config.mem["profiles"][f][profiles]
    d_axon, d_target, d_addr = dense
    order = np.argsort(lax[d_axon], kind="stable")
    la, tgt, addr = lax[d_axon][order], local[d_target][order], d_addr[order]
    end = la.size
    kernel_words = sum(c.in_channels * c.kernel_shape[0] * c.kernel_shape[1] * (c1 - c0)
                       for c, c0, c1 in descs)
    if end + kernel_words > cg.n_synapses:
        raise ConfigError(f"core {k} needs {end} dense and {kernel_words} kernel synapse words, "
                          f"more than n_synapses={cg.n_synapses} of {cg.name!r}")
    for f in ("weight", "weight_exp", "delay", "sign_mode"):
        m["synapses"][f][:end] = syn[f][addr]
    m["synapses"]["target"][:end] = tgt
    counts = np.bincount(la, minlength=cg.n_axons)
    if counts.max(initial=0) > cg.max_fanout:
        a = int(np.argmax(counts))
        raise ConfigError(f"core {k}: axon {a} has {counts[a]} synapses, more than max_fanout="
                          f"{cg.max_fanout} of {cg.name!r}")
    m["synapse_map"]["length"][:] = counts
    m["synapse_map"]["base"][:] = np.where(counts > 0, np.cumsum(counts) - counts, 0)
    for i, (c, c0, c1) in enumerate(descs):
        kh, kw = c.kernel_shape
        n_ck = c.in_channels
        words = c.kernel_base + np.arange(n_ck * kh * kw * c.out_shape[0]).reshape(
            n_ck, kh, kw, c.out_shape[0])[..., c0:c1].reshape(-1)
        for f in ("weight", "weight_exp", "delay", "sign_mode"):
            m["synapses"][f][end:end + words.size] = syn[f][words]
        hw = c.out_shape[1] * c.out_shape[2]
        desc = dict(out_base=local[c.out_base + c0 * hw], kernel_base=end, out_c=c1 - c0,
                    out_h=c.out_shape[1], out_w=c.out_shape[2], kernel_h=kh, kernel_w=kw,
                    pad=c.pad, stride_shift=c.stride.bit_length() - 1, kind=c.kind.value)
        for f, v in desc.items():
            m["conv"][f][i] = v
        end += words.size
        sel = np.ones(c.axons.size, dtype=bool)
        ci = c.ci.copy()
        if c.kind == ConvKind.DEPTHWISE:
            sel = (ci >= c0) & (ci < c1)
            ci = ci - c0
        a = lax[c.axons[sel]]
        m["synapse_map"]["conv"][a] = i + 1
        m["synapse_map"]["ci"][a] = ci[sel]
        m["synapse_map"]["iy"][a] = c.iy[sel]
        m["synapse_map"]["ix"][a] = c.ix[sel]
    return out


def _add_routes(config, cores, cxs, axons_of, cg) -> None:
    """Route words of every core: an OUTPUT route stays; an AXON route to logical axon ``a``
    becomes one route to each core that holds a copy of ``a``."""
    cx, kind, target, _ = config.route_list()
    holders = {}
    for j, ax in enumerate(axons_of):
        for li, a in enumerate(ax.tolist()):
            holders.setdefault(a, []).append((j, li))
    for k, cfg in enumerate(cores):
        lists = []
        for lc, c in enumerate(cxs[k].tolist()):
            words = []
            for kd, t in zip(kind[cx == c].tolist(), target[cx == c].tolist()):
                if kd == RouteKind.OUTPUT.value:
                    words.append((kd, t, 0))
                else:
                    words += [(kd, li, j) for j, li in holders.get(t, [])]
            if len(words) > cg.max_routes:
                raise ConfigError(f"core {k}: compartment {c} needs {len(words)} routes (one per "
                                  f"core that holds a target axon), more than max_routes="
                                  f"{cg.max_routes} of {cg.name!r}")
            lists.append(words)
        total = sum(len(w) for w in lists)
        if total > cg.n_routes:
            raise ConfigError(f"core {k} needs {total} route words, more than n_routes="
                              f"{cg.n_routes} of {cg.name!r}")
        m = cfg.mem
        addr = 0
        for lc, words in enumerate(lists):
            m["axon_map"]["base"][lc] = addr if words else 0
            m["axon_map"]["length"][lc] = len(words)
            for kd, t, j in words:
                m["routes"]["kind"][addr] = kd
                m["routes"]["target"][addr] = t
                if cg.n_cores > 1:
                    m["routes"]["core"][addr] = j
                addr += 1


class GoldenChip:
    """The golden model of a :class:`ChipConfig`: every core's UPDATE, then every spike
    through the router (host spikes to every copy of their axon), then the barrier.

    ``run`` takes the logical host raster and returns the logical :class:`RunResult`
    (compartments in logical order; unplaced ones stay at rest).
    """

    def __init__(self, chip: ChipConfig):
        self.chip = chip
        self.g = chip.chip.core
        cores = chip.cores
        self.offsets = np.cumsum([0] + [ax.size for ax in chip.axons])
        n_chip_axons = int(self.offsets[-1])
        self.n = [c.size for c in chip.compartments]
        lg = chip.logical.geometry
        self.params, self.W, self.R, self.O = [], [], [], []
        for k, cfg in enumerate(cores):
            n = self.n[k]
            p = cfg.compartment_params()
            self.params.append(dict(du=p["du_eff"][:n], dv=p["dv"][:n],
                                    vth=np.left_shift(p["vth"][:n], self.g.vth_shift),
                                    bias=effective_bias(p["bias_mant"], p["bias_exp"])[:n],
                                    reset=ResetPlan(p["reset_interval"][:n],
                                                    p["reset_offset"][:n])))
            s = cfg.synapse_list(conv=True)
            shape = (chip.axons[k].size, n)
            self.W.append({int(d): scipy.sparse.csr_matrix(
                (s.contribution[s.delay == d], (s.axon[s.delay == d], s.target[s.delay == d])),
                shape=shape, dtype=np.int64) for d in np.unique(s.delay)})
            cx, kind, target, core = cfg.route_list()
            ax = kind == RouteKind.AXON.value
            ones = np.ones(cx.size, dtype=np.int64)
            self.R.append(scipy.sparse.csr_matrix(
                (ones[ax], (cx[ax], self.offsets[core[ax]] + target[ax])),
                shape=(n, n_chip_axons), dtype=np.int64))
            self.O.append(scipy.sparse.csr_matrix(
                (ones[~ax], (cx[~ax], target[~ax])), shape=(n, lg.n_outputs), dtype=np.int64))
        rows = np.concatenate([ax for ax in chip.axons]).astype(np.int64)
        cols = np.arange(n_chip_axons)
        self.H = scipy.sparse.csr_matrix((np.ones(n_chip_axons, dtype=np.int64), (rows, cols)),
                                         shape=(lg.n_axons, n_chip_axons), dtype=np.int64)

    def run(self, inputs: np.ndarray, *, record: tuple[str, ...] = ()) -> RunResult:
        """Simulate the logical host raster ``inputs`` (B, T, logical n_axons) or (T, n_axons);
        ``record``: any of "u", "v"."""
        chip, g = self.chip, self.g
        lg = chip.logical.geometry
        x, single = spike_raster(inputs, lg.n_axons, record)
        B, T, _ = x.shape
        D = g.n_delay_slots
        n_cores = chip.chip.n_cores
        acc = [np.zeros((D, B, n), dtype=np.int64) for n in self.n]
        u = [np.zeros((B, n), dtype=np.int64) for n in self.n]
        v = [np.zeros((B, n), dtype=np.int64) for n in self.n]
        N = lg.n_compartments
        spikes = np.zeros((B, T, N), dtype=bool)
        outputs = np.zeros((B, T, lg.n_outputs), dtype=np.int64)
        rec = {r: np.zeros((B, T, N), dtype=np.int32) for r in record}
        for t in range(T):
            counts = np.asarray((scipy.sparse.csr_matrix(x[:, t, :].astype(np.int64))
                                 @ self.H).toarray())
            for k in range(n_cores):
                p, cx = self.params[k], chip.compartments[k]
                a = acc[k][t % D].copy()
                acc[k][t % D] = 0
                wrap_accumulator(a, g, out=a)
                cleared = p["reset"].at(t) if p["reset"] else None
                if cleared is not None:   # periodic reset (spec §11)
                    u[k][:, cleared] = 0
                    v[k][:, cleared] = 0
                decay(u[k], p["du"], g, out=u[k])
                u[k] += a << g.act_shift
                wrap_current(u[k], g, out=u[k])
                decay(v[k], p["dv"], g, out=v[k])
                v[k] += u[k] + p["bias"]
                saturate_voltage(v[k], g, out=v[k])
                s = v[k] > p["vth"]
                v[k][s] = 0
                spikes[:, t, cx] = s
                for r, arr in rec.items():
                    arr[:, t, cx] = (u if r == "u" else v)[k]
                si = s.astype(np.int64)
                counts += si @ self.R[k]
                outputs[:, t] += si @ self.O[k]
            for k in range(n_cores):
                ck = counts[:, self.offsets[k]:self.offsets[k + 1]]
                if ck.any():
                    for d, Wd in self.W[k].items():
                        acc[k][(t + 1 + d) % D] += ck @ Wd
        res = RunResult(spikes=spikes, outputs=outputs.astype(np.int32), u=rec.get("u"),
                        v=rec.get("v"))
        return res.sample(0) if single else res
