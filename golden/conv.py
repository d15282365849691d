"""Convolutional connections (docs/spec.md §3.5): one kernel stored once, scattered per spike.

An axon whose synapse-map word has ``conv = d + 1`` and input coordinates ``(ci, iy, ix)``
scatters every spike through conv descriptor ``d`` (after its dense list):

- ``CONV`` and ``DEPTHWISE``: to every output ``(co, y, x)`` of the group with
  ``ky = iy + pad − y·s`` in ``[0, kernel_h)`` and ``kx = ix + pad − x·s`` in ``[0, kernel_w)``
  (``s = 1 << stride_shift``); ``co`` runs over every channel (CONV) or is ``ci``
  (DEPTHWISE);
- ``BROADCAST``: to every output ``(co, y, x)``, once per kernel position ``(ky, kx)``;

through the synapse word ``kernel_base + ((c_k·kernel_h + ky)·kernel_w + kx)·out_c + co``
(``c_k = ci`` for CONV, 0 otherwise: kernels are stored output-channel minor), onto
compartment ``out_base + (co·out_h + y)·out_w + x``.  The word's ``target`` is ignored; its
weight, exponent, sign mode and delay act as a dense synapse's do.

:func:`conv_connections` reads the descriptors an config uses, :func:`expand` lists every
(axon, synapse) pair they make — in the scatter order above, ``y``, ``x``, kernel position,
``co`` — and :class:`ConvDelivery` is the golden model's direct execution: a correlation of
the step's input spike map with the kernel, never a dense matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from ..spec.geometry import CoreGeometry
from ..spec.words import ConvKind, SignMode
from .arith import effective_weight

__all__ = ["ConvConnection", "conv_connections", "expand", "ConvDelivery", "kernel_extent",
           "conv_errors", "scatter"]


@dataclass(frozen=True)
class ConvConnection:
    """Descriptor ``index`` of a config and the axons that scatter through it."""

    index: int
    kind: ConvKind
    out_base: int
    out_shape: tuple[int, int, int]          # (out_c, out_h, out_w)
    kernel_base: int
    kernel_shape: tuple[int, int]            # (kernel_h, kernel_w)
    pad: int
    stride: int
    axons: np.ndarray
    ci: np.ndarray
    iy: np.ndarray
    ix: np.ndarray

    @property
    def in_channels(self) -> int:
        """Channels of the kernel: the axons' largest ``ci`` + 1 (CONV), else 1."""
        return int(self.ci.max(initial=0)) + 1 if self.kind == ConvKind.CONV else 1

    @property
    def n_outputs(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def kernel_words(self) -> int:
        """Synapse words of the kernel: ``in_channels · kernel_h · kernel_w · out_c``."""
        kh, kw = self.kernel_shape
        return self.in_channels * kh * kw * self.out_shape[0]


def kernel_extent(kind: int, ci, out_c, kernel_h, kernel_w):
    """One past the last kernel word (relative to ``kernel_base``) that coordinate ``ci``
    reads: ``(c_k + 1)·kernel_h·kernel_w·out_c``."""
    c_k = np.where(np.asarray(kind) == ConvKind.CONV.value, ci, 0)
    return (c_k + 1) * kernel_h * kernel_w * out_c


def conv_errors(g: CoreGeometry, smap: dict, conv: dict | None) -> str | None:
    """First rule of spec §3.5 that the conv fields break, as a message, or None."""
    ref = smap["conv"] if g.n_conv else np.zeros(g.n_axons, dtype=np.int64)
    users = np.flatnonzero(ref)
    if not users.size:
        return None
    d = ref[users] - 1
    bad = d >= g.n_conv
    if bad.any():
        a = users[bad][0]
        return f"conv {ref[a]} of synapse_map[{a}] must be <= n_conv={g.n_conv}"
    kinds = [k.value for k in ConvKind]
    for idx in np.unique(d):
        idx = int(idx)
        f = {k: int(v[idx]) for k, v in conv.items()}
        where = f"conv[{idx}]"
        if f["kind"] not in kinds:
            return f"kind {f['kind']} of {where} must be a ConvKind value"
        for k in ("out_c", "out_h", "out_w", "kernel_h", "kernel_w"):
            if f[k] < 1:
                return f"{k} {f[k]} of {where} must be >= 1"
        end = f["out_base"] + f["out_c"] * f["out_h"] * f["out_w"]
        if end > g.n_compartments:
            return (f"{where} output group compartments[{f['out_base']}:{end}] runs past "
                    f"n_compartments={g.n_compartments}")
        ax = users[d == idx]
        ci, iy, ix = smap["ci"][ax], smap["iy"][ax], smap["ix"][ax]
        if f["kind"] == ConvKind.DEPTHWISE.value and (ci >= f["out_c"]).any():
            a = ax[ci >= f["out_c"]][0]
            return (f"ci {smap['ci'][a]} of synapse_map[{a}] must be < out_c={f['out_c']} "
                    f"of depthwise {where}")
        if f["kind"] == ConvKind.BROADCAST.value and ((ci | iy | ix) != 0).any():
            a = ax[(ci | iy | ix) != 0][0]
            return (f"synapse_map[{a}] coordinates ({smap['ci'][a]}, {smap['iy'][a]}, "
                    f"{smap['ix'][a]}) must be (0, 0, 0) for broadcast {where}")
        ext = f["kernel_base"] + kernel_extent(f["kind"], ci, f["out_c"], f["kernel_h"],
                                               f["kernel_w"])
        if (ext > g.n_synapses).any():
            a = ax[ext > g.n_synapses][0]
            return (f"{where} kernel synapses[{f['kernel_base']}:{int(ext.max())}] (read by "
                    f"axon {a}) runs past the {g.n_synapses} words of synapses")
    return None


def conv_connections(config) -> list[ConvConnection]:
    """The conv descriptors that some synapse-map word of ``config`` uses, with their axons."""
    g = config.geometry
    if not g.n_conv:
        return []
    smap, conv = config.mem["synapse_map"], config.mem["conv"]
    out = []
    for idx in np.unique(smap["conv"][smap["conv"] > 0]) - 1:
        idx = int(idx)
        axons = np.flatnonzero(smap["conv"] == idx + 1)
        c = {k: int(v[idx]) for k, v in conv.items()}
        out.append(ConvConnection(
            index=idx, kind=ConvKind(c["kind"]), out_base=c["out_base"],
            out_shape=(c["out_c"], c["out_h"], c["out_w"]), kernel_base=c["kernel_base"],
            kernel_shape=(c["kernel_h"], c["kernel_w"]), pad=c["pad"],
            stride=1 << c["stride_shift"], axons=axons, ci=smap["ci"][axons].copy(),
            iy=smap["iy"][axons].copy(), ix=smap["ix"][axons].copy()))
    return out


def scatter(c: ConvConnection):
    """(axon index into c.axons, target, kernel word) of every pair, in spec scatter order
    per axon (y, x, kernel position, co)."""
    C, H, W = c.out_shape
    kh, kw = c.kernel_shape
    co = np.arange(C)
    rows = []
    for j in range(c.axons.size):
        ci, iy, ix = int(c.ci[j]), int(c.iy[j]), int(c.ix[j])
        if c.kind == ConvKind.BROADCAST:
            ys, xs = np.arange(H), np.arange(W)
            for y in ys:
                for x in xs:
                    for k in range(kh * kw):
                        rows.append((j, (co * H + y) * W + x, k * C + co))
            continue
        c_k = ci if c.kind == ConvKind.CONV else 0
        chans = co if c.kind == ConvKind.CONV else np.array([ci])
        for y in range(H):
            ky = iy + c.pad - y * c.stride
            if not 0 <= ky < kh:
                continue
            for x in range(W):
                kx = ix + c.pad - x * c.stride
                if not 0 <= kx < kw:
                    continue
                rows.append((j, (chans * H + y) * W + x,
                             ((c_k * kh + ky) * kw + kx) * C + chans))
    if not rows:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    j = np.concatenate([np.full(r[1].size, r[0]) for r in rows])
    return (j, np.concatenate([r[1] for r in rows]) + c.out_base,
            np.concatenate([r[2] for r in rows]) + c.kernel_base)


def expand(config):
    """Every (axon, synapse) pair the conv descriptors make, as columns
    ``(axon, target, address)`` (``address``: the kernel word), in scatter order."""
    parts = []
    for c in conv_connections(config):
        j, target, addr = scatter(c)
        parts.append((c.axons[j], target, addr))
    if not parts:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    return tuple(np.concatenate([p[i] for p in parts]).astype(np.int64) for i in range(3))


class ConvDelivery:
    """Direct execution of a config's conv connections (golden model).

    :meth:`deliver` takes the spike counts of one step (or of many steps stacked), ``(N,
    n_axons)``, and returns ``{delay: (N, n_compartments) int64}``: what they add to the
    accumulators of the slot that delay selects.  Each descriptor gathers its axons' counts
    into an input map ``(C_in, H_in, W_in)`` and correlates it with its kernel, one kernel
    position at a time; nothing is expanded to synapse lists.
    """

    def __init__(self, config):
        self.g = g = config.geometry
        self.connections = conv_connections(config)
        syn = config.mem["synapses"]
        self._plans = []
        for c in self.connections:
            C, H, W = c.out_shape
            kh, kw = c.kernel_shape
            ck = c.in_channels
            n_k = c.kernel_words
            addr = c.kernel_base + np.arange(n_k)
            w = effective_weight(syn["weight"][addr], syn["sign_mode"][addr], g)
            contrib = np.left_shift(w, syn["weight_exp"][addr])
            delay = syn["delay"][addr]
            kernels = {int(d): np.where(delay == d, contrib, 0).reshape(ck, kh, kw, C)
                       for d in np.unique(delay)}
            c_in = C if c.kind == ConvKind.DEPTHWISE else ck
            h_in = int(c.iy.max(initial=0)) + 1
            w_in = int(c.ix.max(initial=0)) + 1
            flat = (c.ci * h_in + c.iy) * w_in + c.ix
            gather = scipy.sparse.csr_matrix(
                (np.ones(c.axons.size, dtype=np.int64), (c.axons, flat)),
                shape=(g.n_axons, c_in * h_in * w_in))
            self._plans.append((c, kernels, gather, (c_in, h_in, w_in)))

    def __bool__(self) -> bool:
        return bool(self.connections)

    @property
    def axons(self) -> np.ndarray:
        """Every axon that scatters through a descriptor."""
        if not self.connections:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate([c.axons for c in self.connections]))

    def deliver(self, counts) -> dict[int, np.ndarray]:
        """Contributions of spike ``counts`` (N, n_axons; dense or scipy.sparse) per delay."""
        n = counts.shape[0]
        out: dict[int, np.ndarray] = {}
        for c, kernels, gather, in_shape in self._plans:
            x = counts @ gather
            x = (x.toarray() if scipy.sparse.issparse(x) else np.asarray(x)).astype(np.int64)
            if not x.any():
                continue
            x = x.reshape((n,) + in_shape)
            for d, k in kernels.items():
                y = self._correlate(c, x, k)                      # (N, C, H, W)
                acc = out.setdefault(d, np.zeros((n, self.g.n_compartments), dtype=np.int64))
                acc[:, c.out_base:c.out_base + c.n_outputs] += y.reshape(n, -1)
        return out

    @staticmethod
    def _correlate(c: ConvConnection, x: np.ndarray, k: np.ndarray) -> np.ndarray:
        C, H, W = c.out_shape
        kh, kw = k.shape[1:3]
        n = x.shape[0]
        if c.kind == ConvKind.BROADCAST:
            per_channel = k.sum(axis=(0, 1, 2))                   # (C,)
            y = x[:, 0, 0, 0][:, None] * per_channel[None, :]
            return np.broadcast_to(y[:, :, None, None], (n, C, H, W)).copy()
        s, p = c.stride, c.pad
        hp, wp = (H - 1) * s + kh, (W - 1) * s + kw
        # float64 products and sums are exact integers here: |Σ| ≤ spikes · taps · 2**15 ≪ 2**53
        padded = np.zeros((n, hp, wp, x.shape[1]), dtype=np.float64)   # channels last (BLAS)
        h = min(x.shape[2], hp - p)
        w = min(x.shape[3], wp - p)
        if h > 0 and w > 0:
            padded[:, p:p + h, p:p + w, :] = x[:, :, :h, :w].transpose(0, 2, 3, 1)
        kf = k.astype(np.float64)
        y = np.zeros((n, H, W, C), dtype=np.float64)
        for ky in range(kh):
            for kx in range(kw):
                win = padded[:, ky:ky + (H - 1) * s + 1:s, kx:kx + (W - 1) * s + 1:s, :]
                if c.kind == ConvKind.DEPTHWISE:
                    y += win * kf[0, ky, kx, :]
                else:
                    y += win @ kf[:, ky, kx, :]
        return y.transpose(0, 3, 1, 2).astype(np.int64)
