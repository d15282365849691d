"""Bit-exact, batched NumPy model of one neurocore (docs/spec.md §2–3).

One time step ``t`` (0-based) of every batch element:

1. **update**: each compartment reads and clears accumulator slot ``t mod D``; if its
   profile resets at ``t`` (spec §11), u and v become 0; then
   ``u ← wrap(decay(u, du_eff) + (acc << 6))``, ``v ← sat(decay(v, dv) + u + bias)``,
   spikes if ``v > vth << 6`` and then ``v ← 0``;
2. **deliver**: every spike sent at step ``t`` (host input spikes of step ``t`` and the
   compartment spikes of step ``t``, through their routes) walks its axon's synapse list
   and adds ``weight << weight_exp`` to slot ``(t + 1 + delay) mod D`` of the target.

The synaptic sums are computed as matrix products in floating point and are exact: the
model picks float32 or float64 from a bound on every partial sum (:func:`exact_dtype`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from .arith import decay, effective_bias, saturate_voltage, wrap_accumulator, wrap_current
from .conv import ConvDelivery
from .network import CoreConfig

__all__ = ["GoldenCore", "RunResult", "exact_dtype", "BACKENDS", "ResetPlan"]

#: From this fraction of non-zero (axon, compartment) pairs on, weights are dense matrices.
DENSE_WEIGHT_FRACTION = 0.05
#: Below this fraction of ones, host rasters are multiplied as sparse matrices.
SPARSE_INPUT_DENSITY = 0.02
_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53
#: ``GoldenCore(backend=...)`` choices: this module's NumPy loop, or golden/backend_torch.py.
BACKENDS = ("numpy", "torch")


def spike_raster(inputs, n_axons: int, record=()) -> tuple[np.ndarray, bool]:
    """``inputs`` (B, T, n_axons) or (T, n_axons) of 0/1 host spikes as a (B, T, n_axons)
    array, and whether it was one sample; ValueError naming the bad shape, value or
    ``record`` entry (only "u" and "v" can be recorded)."""
    x = np.asarray(inputs)
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3 or x.shape[2] != n_axons:
        raise ValueError(f"inputs must have shape (batch, steps, {n_axons}), "
                         f"not {np.shape(inputs)}")
    if x.dtype != bool and not ((x == 0) | (x == 1)).all():
        bad = x[(x != 0) & (x != 1)].ravel()[0]
        raise ValueError(f"inputs must be 0/1 spikes, found {bad!r}")
    if 0 in x.shape[:2]:
        raise ValueError(f"inputs of shape {np.shape(inputs)} hold no samples or no steps; "
                         "run needs at least one of each")
    unknown = set(record) - {"u", "v"}
    if unknown:
        raise ValueError(f"cannot record {sorted(unknown)}; choose from 'u', 'v'")
    return x, single


def exact_dtype(bound: int):
    """Return the narrowest float dtype whose integer sums are exact below ``bound``."""
    if bound < _F32_EXACT:
        return np.float32
    if bound < _F64_EXACT:
        return np.float64
    raise OverflowError(f"synaptic sums up to {bound} cannot be computed exactly in float64")


@dataclass
class RunResult:
    """Output of :meth:`GoldenCore.run`; arrays are indexed ``[batch, step, ...]``.

    - ``spikes``: ``bool`` (B, T, n_compartments), compartment spikes at each step.
    - ``outputs``: ``int32`` (B, T, n_outputs), output events per step (route counts).
    - ``u``, ``v``: ``int32`` (B, T, n_compartments) state after each step's update, or None.
    """

    spikes: np.ndarray
    outputs: np.ndarray
    u: np.ndarray | None = None
    v: np.ndarray | None = None

    def sample(self, i: int) -> "RunResult":
        """Return sample ``i`` of a batched result (arrays lose their batch axis)."""
        return RunResult(*(None if a is None else a[i]
                           for a in (self.spikes, self.outputs, self.u, self.v)))

    def first_spike(self, what: str = "outputs") -> np.ndarray:
        """Return the first step at which each output (or compartment) fired, -1 if never.

        Works on batched ``(B, T, n)`` and single-sample ``(T, n)`` results (the step axis is
        the second from last).
        """
        x = getattr(self, what) > 0
        axis = x.ndim - 2
        first = x.argmax(axis=axis)
        return np.where(x.any(axis=axis), first, -1)


class ResetPlan:
    """Which compartments a periodic reset (spec §11) clears at each step.

    ``at(t)`` is the index array of the compartments whose profile has ``reset_interval > 0``
    and ``(t − reset_offset) mod reset_interval = 0`` (their u and v become 0 before the
    update of step ``t``), or None when there is none.
    """

    def __init__(self, interval: np.ndarray, offset: np.ndarray):
        on = interval > 0
        pairs = sorted(set(zip(interval[on].tolist(), offset[on].tolist())))
        self.groups = [(i, o, np.flatnonzero(on & (interval == i) & (offset == o)))
                       for i, o in pairs]

    def __bool__(self) -> bool:
        return bool(self.groups)

    def at(self, t: int) -> np.ndarray | None:
        hit = [cx for i, o, cx in self.groups if (t - o) % i == 0]
        if not hit:
            return None
        return hit[0] if len(hit) == 1 else np.concatenate(hit)


class GoldenCore:
    """The golden model of one core holding ``config``.

    ``run`` simulates a batch from the reset state (u = v = 0, accumulators empty).
    ``backend="torch"`` runs the same integers with torch tensors on ``device`` ("cpu",
    "cuda", "cuda:1", …; :mod:`neurocore.golden.backend_torch`), bit for bit equal.
    """

    def __init__(self, config: CoreConfig, backend: str = "numpy", device: str = "cpu"):
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} is not one of {BACKENDS}")
        if backend == "numpy" and str(device) != "cpu":
            raise ValueError(f"device {device!r} needs backend='torch' (NumPy runs on the CPU)")
        config.validate()
        self.config = config
        g = self.g = config.geometry
        p = config.compartment_params()
        self.du_eff = p["du_eff"]
        self.dv = p["dv"]
        self.vth_eff = np.left_shift(p["vth"], g.vth_shift)
        self.bias = effective_bias(p["bias_mant"], p["bias_exp"])
        self.resets = ResetPlan(p["reset_interval"], p["reset_offset"])
        self.R, self.O = config.route_matrices(sparse=True)
        syn = config.synapse_list(conv=False)
        # Conv descriptors run directly (golden/conv.py): host spikes of all steps at once,
        # routed spikes per step.
        self.conv = ConvDelivery(config)
        self.conv_recurrent = bool(self.conv) and bool(
            np.isin(self.R.indices, self.conv.axons).any())
        shape = (g.n_axons, g.n_compartments)
        # Per delay: contribution matrix axon → compartment (duplicates summed).
        self.W = {}
        for d in np.unique(syn.delay).astype(int):
            sel = syn.delay == d
            self.W[int(d)] = scipy.sparse.csr_matrix(
                (syn.contribution[sel], (syn.axon[sel], syn.target[sel])), shape=shape,
                dtype=np.int64)
        # Recurrent path: compartment spikes → routes → synapses, folded into one matrix.
        self.recurrent = self.R.nnz > 0
        self.RW = {d: (self.R @ Wd).tocsr() for d, Wd in self.W.items()} if self.recurrent else {}
        # Dense networks use float BLAS products, exact below a bound on every partial sum
        # (the largest number of spikes one axon carries in a step times the largest column
        # sum); sparse networks use integer sparse products.
        nnz = sum(Wd.nnz for Wd in self.W.values())
        self.dense = nnz >= DENSE_WEIGHT_FRACTION * shape[0] * shape[1]
        max_count = 1 + int(np.asarray(self.R.sum(axis=0)).max(initial=0))
        col_sums = (np.asarray(abs(Wd).sum(axis=0)) for Wd in self.W.values())
        bound = max((int(c.max(initial=0)) for c in col_sums), default=0) * max_count
        self.dtype = exact_dtype(bound + 1) if self.dense else np.int64
        self.sum_bound = bound
        if self.dense:
            self.Wf = {d: Wd.toarray().astype(self.dtype) for d, Wd in self.W.items()}
            self.RWf = {d: m.toarray().astype(self.dtype) for d, m in self.RW.items()}
        self.backend = backend
        self._torch = None
        if backend == "torch":
            from .backend_torch import TorchRunner
            self._torch = TorchRunner(self, device)

    def _trivial(self, d_eff: np.ndarray) -> str | None:
        """"keep" if every decay is 0, "clear" if every decay is full (4096), else None."""
        if not d_eff.any():
            return "keep"
        if (d_eff == 1 << self.g.decay_shift).all():
            return "clear"
        return None

    def run(self, inputs: np.ndarray, *, record: tuple[str, ...] = ()) -> RunResult:
        """Simulate ``inputs`` and return spikes, outputs and the recorded state.

        ``inputs``: ``bool`` or 0/1 array (B, T, n_axons) (or (T, n_axons) for one sample):
        a 1 at ``[b, t, a]`` is a host spike on axon ``a`` sent at step ``t``.
        ``record``: any of ``"u"``, ``"v"``.
        """
        g = self.g
        x, single = spike_raster(inputs, g.n_axons, record)
        B, T, _ = x.shape
        if self._torch is not None:
            res = self._torch.run(x, tuple(record))
            return res.sample(0) if single else res
        n, D = g.n_compartments, g.n_delay_slots
        # Host spikes do not depend on the state: fold them for all steps at once, as a sparse
        # product when the raster is sparse (Quartz inputs spike once per sample), and sum
        # every delay into the step at which it lands.  Arrays are (step, batch, ...) inside.
        flat = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * B, -1)
        sparse = np.count_nonzero(flat) < SPARSE_INPUT_DENSITY * flat.size
        xs = (scipy.sparse.csr_matrix(flat).astype(self.dtype) if sparse or not self.dense
              else flat.astype(self.dtype))
        # ext[d][k]: what host spikes of step k add at step k + 1 + d (exact integers, kept in
        # the product's dtype and converted per step).
        ext = {}
        for d in self.W:
            if 1 + d < T:
                rows = xs[: (T - 1 - d) * B]
                prod = rows @ self.Wf[d] if self.dense else (rows @ self.W[d]).toarray()
                ext[d] = np.asarray(prod).reshape(T - 1 - d, B, n)
        if self.conv:
            for d, c in self.conv.deliver(xs).items():
                if 1 + d < T:
                    c = c.reshape(T, B, n)[: T - 1 - d]
                    ext[d] = c if d not in ext else ext[d].astype(np.int64) + c
        acc = (np.zeros((D, B, n), dtype=np.int64) if self.recurrent or self.conv_recurrent
               else None)
        u = np.zeros((B, n), dtype=np.int64)
        v = np.zeros((B, n), dtype=np.int64)
        du_trivial = self._trivial(self.du_eff)
        dv_trivial = self._trivial(self.dv)
        spikes = np.zeros((T, B, n), dtype=bool)
        rec_u = np.zeros((T, B, n), dtype=np.int32) if "u" in record else None
        rec_v = np.zeros((T, B, n), dtype=np.int32) if "v" in record else None
        act = g.act_shift
        a = np.empty((B, n), dtype=np.int64)
        for t in range(T):
            a.fill(0)
            for d, e in ext.items():
                if t >= 1 + d:
                    np.add(a, e[t - 1 - d], out=a, casting="unsafe")
            if acc is not None:
                a += acc[t % D]
                acc[t % D] = 0
            wrap_accumulator(a, g, out=a)
            cleared = self.resets.at(t) if self.resets else None
            if cleared is not None:   # periodic reset (spec §11): before this step's update
                u[:, cleared] = 0
                v[:, cleared] = 0
            if du_trivial is None:
                decay(u, self.du_eff, g, out=u)
            elif du_trivial == "clear":
                u.fill(0)
            a <<= act
            u += a
            wrap_current(u, g, out=u)
            if dv_trivial is None:
                decay(v, self.dv, g, out=v)
            elif dv_trivial == "clear":
                v.fill(0)
            v += u
            v += self.bias
            saturate_voltage(v, g, out=v)
            s = np.greater(v, self.vth_eff, out=spikes[t])
            np.putmask(v, s, 0)
            if rec_u is not None:
                rec_u[t] = u
            if rec_v is not None:
                rec_v[t] = v
            if self.conv_recurrent and s.any():
                counts = (self.R.T @ scipy.sparse.csr_matrix(s.T, dtype=np.int64)).T
                for d, c in self.conv.deliver(counts.tocsr()).items():
                    acc[(t + 1 + d) % D] += c
            if self.recurrent and s.any():
                active = np.flatnonzero(s.any(axis=0))
                sf = s[:, active].astype(self.dtype)
                for d, m in self.RW.items():
                    if self.dense:
                        acc[(t + 1 + d) % D] += (sf @ self.RWf[d][active]).astype(np.int64)
                    else:
                        acc[(t + 1 + d) % D] += (m[active].T @ sf.T).T
        spikes = np.ascontiguousarray(spikes.transpose(1, 0, 2))
        rec_u = None if rec_u is None else np.ascontiguousarray(rec_u.transpose(1, 0, 2))
        rec_v = None if rec_v is None else np.ascontiguousarray(rec_v.transpose(1, 0, 2))
        # Output events per id: spike counts through OUTPUT routes (integer sparse product).
        outputs = (scipy.sparse.csr_matrix(spikes.reshape(B * T, n), dtype=np.int32)
                   @ self.O.astype(np.int32)).toarray().reshape(B, T, -1)
        res = RunResult(spikes=spikes, outputs=outputs, u=rec_u, v=rec_v)
        return res.sample(0) if single else res
