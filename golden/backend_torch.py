"""The golden model's time loop in torch: the same integer arithmetic (docs/spec.md §2–3).

:class:`TorchRunner` is what ``GoldenCore(config, backend="torch", device=...)`` runs.  It
reuses the NumPy core's decoded configuration (weights per delay, routes, decays, biases)
and returns the same :class:`~neurocore.golden.core.RunResult` of NumPy arrays, bit for bit.

It differs from the NumPy loop only in how the integers are carried, never in their values:

- state is ``int32``: u and v are 24-bit, and one step's ``decay(u) + (acc << 6)`` and
  ``decay(v) + u + bias`` stay below ``2**25``; only a general decay product (37 bits) is
  formed in ``int64``; a decay that is 0 or 4096 for every compartment is a mask;
- the u wrap, the v saturation and the accumulator wrap are applied only when a running
  bound on ``|u|``, ``|v|`` (re-measured when it reaches the limit) or on one step's synaptic
  sum (:func:`~neurocore.golden.random_networks.max_synaptic_sum`) says they can change a
  value; when they cannot, they are the identity;
- sparse networks deliver spikes event by event: the synapse lists of every delay are one
  CSR (:class:`_Csr`), and the host spikes and compartment spikes sent at step ``t`` are
  ``index_add_``-ed into the accumulator ring after step ``t`` (one gather places every
  delay; host spikes are expanded for all steps at once); dense networks use float products
  in the dtype the NumPy core proved exact (:func:`~neurocore.golden.core.exact_dtype`);
- conv descriptors (docs/spec.md §3.5) run as ``torch.nn.functional.conv2d`` in float64, one
  per descriptor and delay, on the same gathered input maps and kernels as the NumPy core's
  :class:`~neurocore.golden.conv.ConvDelivery` (host spikes of all steps at once, routed
  spikes per step); every product and sum is an integer far below ``2**53``, so exact.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import torch
import torch.nn.functional as F

from ..spec.words import ConvKind
from .core import RunResult, exact_dtype
from .random_networks import max_synaptic_sum

__all__ = ["TorchRunner", "torch_device"]


def torch_device(device: str | torch.device) -> torch.device:
    """Return ``torch.device(device)``; raise if it is a CUDA device and CUDA is unavailable."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} was asked for, but torch {torch.__version__} "
                           "sees no CUDA device (use device='cpu')")
    return dev


def _decay_plan(d_eff: np.ndarray, g, dev) -> tuple[str, torch.Tensor | None]:
    """How to apply ``decay(x, d_eff)``: "keep", "clear", "mask" (d ∈ {0, 4096}) or "general"."""
    full = 1 << g.decay_shift
    if not d_eff.any():
        return "keep", None
    if (d_eff == full).all():
        return "clear", None
    if np.isin(d_eff, (0, full)).all():
        return "mask", torch.as_tensor(d_eff == 0, dtype=torch.int32, device=dev)
    return "general", torch.as_tensor(full - d_eff, dtype=torch.int64, device=dev)


def _decay_(x: torch.Tensor, plan, g) -> torch.Tensor:
    """Apply a :func:`_decay_plan` to int32 ``x`` in place where possible; return the result."""
    kind, arg = plan
    if kind == "keep":
        return x
    if kind == "clear":
        return x.zero_()
    if kind == "mask":
        return x.mul_(arg)
    p = x.to(torch.int64) * arg
    p += (p >> 63) & ((1 << g.decay_shift) - 1)
    return (p >> g.decay_shift).to(torch.int32)


#: On the CPU, spike detection and event expansion run in NumPy on the tensors' memory (faster
#: per call than eager torch); False runs the torch code that CUDA devices use (tests).
NUMPY_ON_CPU = True
#: ``_Csr.expand`` packs two per-event terms into one int64: bits of the low half.
_HALF = 32
_LOW = (1 << _HALF) - 1


class _Csr:
    """The synapse matrices of every delay (sources × compartments), merged into one CSR.

    An event (batch row ``b``, source ``src``) sent at step ``t`` adds each synapse's
    contribution to the accumulator ring ``(D, B, n)`` at flat position
    ``((t + 1 + delay) mod D)·B·n + b·n + target``; :meth:`columns` tabulates the part that
    does not depend on ``b`` for each ring slot of ``t + 1``, so one gather places every delay.
    """

    def __init__(self, mats: dict, n: int, D: int, dev, dtype: torch.dtype):
        ds = sorted(mats)
        m = scipy.sparse.hstack([mats[d].tocsr() for d in ds], format="csr")
        which, target = np.divmod(m.indices.astype(np.int64), n)
        self.delays = ds
        self.n, self.D, self.device = n, D, dev
        self.indptr = torch.as_tensor(m.indptr, dtype=torch.int64, device=dev)
        self._delay = np.asarray(ds, dtype=np.int64)[which]
        self._target = target
        self.fan = torch.as_tensor(np.diff(m.indptr), dtype=torch.int64, device=dev)
        # contributions in the ring's dtype (each is at most one step's bound), tiled once per
        # ring slot like the column table (one gather each)
        self.data = torch.as_tensor(np.tile(m.data, D), dtype=dtype, device=dev)
        self.nnz = int(m.nnz)
        self._columns: tuple[int, torch.Tensor] | None = None

    def columns(self, B: int) -> torch.Tensor:
        """Flat (D·nnz) table: entry ``slot·nnz + k`` is synapse k's ring position for an event
        whose step ``t + 1`` falls in ``slot``, batch row 0."""
        if self._columns is None or self._columns[0] != B:
            if self.D * self.nnz > _LOW or B * self.n >= 1 << (63 - _HALF):
                raise OverflowError(f"{self.nnz} synapses × {self.D} slots or a batch of {B} "
                                    "exceeds the packed event index (_Csr.expand)")
            slot = np.arange(self.D)[:, None]
            tab = ((slot + self._delay[None]) % self.D) * (B * self.n) + self._target[None]
            self._columns = B, torch.as_tensor(tab.reshape(-1), device=self.device)
        return self._columns[1]

    def slots(self, t: int) -> list[int]:
        """Ring slots that events sent at step ``t`` can write."""
        return [(t + 1 + d) % self.D for d in self.delays]

    def expand(self, batch: torch.Tensor, src: torch.Tensor, slot, B: int):
        """Return (flat ring index, contribution) of every synapse of the events ``(batch,
        src)``; ``slot`` is the ring slot of step ``t + 1`` (an int, or a tensor per event)."""
        if NUMPY_ON_CPU and src.device.type == "cpu":
            return self._expand_numpy(batch.numpy(), src.numpy(),
                                      slot if isinstance(slot, int) else slot.numpy(), B)
        start = self.indptr[src]
        count = self.fan[src]
        total = int(count.sum())
        # Each synapse event's packed int64: the batch row's offset ``b·n`` (high half) and
        # its position in the slot's column table (low half) — the event's first value plus
        # its rank in the synapse list.  A cumulative sum of ones, with each event's jump from
        # the previous event's last value added at its first position, builds them in one pass.
        key = ((batch * self.n) << _HALF) + (slot * self.nnz + start)
        jump = key.clone()
        jump[1:] -= key[:-1] + count[:-1]
        jump[:1] -= 1
        packed = torch.ones(total + 1, dtype=torch.int64, device=src.device)
        packed.index_add_(0, torch.cumsum(count, 0) - count, jump)   # events without synapses
        packed = torch.cumsum(packed[:total], 0)                     # add up, as they should
        pos = packed & _LOW
        index = (packed >> _HALF).add_(self.columns(B).index_select(0, pos))
        return index, self.data.index_select(0, pos)

    def _expand_numpy(self, batch: np.ndarray, src: np.ndarray, slot, B: int):
        """:meth:`expand` on the CPU in NumPy (same packing; its repeat and take on the
        tensors' memory cost less per call than torch's eager operations)."""
        start = self.indptr.numpy()[src]
        count = self.fan.numpy()[src]
        first = np.cumsum(count) - count
        packed = np.repeat(((batch * self.n) << _HALF) + (slot * self.nnz + start - first),
                           count)
        packed += np.arange(packed.size)
        pos = packed & _LOW
        packed >>= _HALF
        packed += np.take(self.columns(B).numpy(), pos)
        return torch.from_numpy(packed), torch.from_numpy(np.take(self.data.numpy(), pos))


class _TorchConv:
    """One conv descriptor of :class:`~neurocore.golden.conv.ConvDelivery` in torch.

    :meth:`deliver` maps spike counts on the descriptor's axons ``(N, n_axons_of_c)`` to the
    descriptor's output group per delay, ``{d: (N, out_c·out_h·out_w) float64}``: the input map
    is gathered as ConvDelivery gathers it (``index_add_`` of each axon's count at its
    ``(ci, iy, ix)``), zero-padded to the ``(out_h − 1)·s + kernel_h`` rows (and columns) the
    output group reads, and correlated with the kernel by ``conv2d``.
    """

    def __init__(self, c, kernels, in_shape, R, dev):
        self.c = c
        self.kind = c.kind
        self.in_shape = in_shape
        self.axons = torch.as_tensor(c.axons, dtype=torch.int64, device=dev)
        c_in, h_in, w_in = in_shape
        pos = (c.ci * h_in + c.iy) * w_in + c.ix
        self.pos = torch.as_tensor(pos, dtype=torch.int64, device=dev)
        self.lo, self.hi = c.out_base, c.out_base + c.n_outputs
        C, H, W = c.out_shape
        self.weights = {}
        for d, k in kernels.items():                   # k: (c_k, kh, kw, C), int64
            if c.kind == ConvKind.BROADCAST:
                w = k.sum(axis=(0, 1, 2))              # (C,)
            elif c.kind == ConvKind.DEPTHWISE:
                w = np.ascontiguousarray(k[0].transpose(2, 0, 1)[:, None])   # (C, 1, kh, kw)
            else:
                w = np.ascontiguousarray(k.transpose(3, 0, 1, 2))            # (C, c_k, kh, kw)
            self.weights[d] = torch.as_tensor(w, dtype=torch.float64, device=dev)
        # routed spikes: compartment → this descriptor's axons (route counts), if any
        Rc = R[:, c.axons]
        self.R = (torch.as_tensor(Rc.toarray(), dtype=torch.float32, device=dev)
                  if Rc.nnz else None)

    def deliver(self, counts: torch.Tensor) -> dict[int, torch.Tensor]:
        """``{delay: (N, n_outputs) float64}`` for counts ``(N, axons)`` (any real dtype)."""
        c = self.c
        n = counts.shape[0]
        dev = counts.device
        c_in, h_in, w_in = self.in_shape
        x = torch.zeros((n, c_in * h_in * w_in), dtype=torch.float64, device=dev)
        x.index_add_(1, self.pos, counts.to(torch.float64))
        C, H, W = c.out_shape
        out = {}
        if self.kind == ConvKind.BROADCAST:
            first = x[:, 0]                                           # input (0, 0, 0)
            for d, w in self.weights.items():
                y = (first[:, None] * w[None, :])[:, :, None].expand(n, C, H * W)
                out[d] = y.reshape(n, -1)
            return out
        x = x.reshape(n, c_in, h_in, w_in)
        kh, kw = c.kernel_shape
        s, p = c.stride, c.pad
        hp, wp = (H - 1) * s + kh, (W - 1) * s + kw
        h, w = min(h_in, hp - p), min(w_in, wp - p)
        padded = torch.zeros((n, c_in, hp, wp), dtype=torch.float64, device=dev)
        if h > 0 and w > 0:
            padded[:, :, p:p + h, p:p + w] = x[:, :, :h, :w]
        groups = C if self.kind == ConvKind.DEPTHWISE else 1
        for d, k in self.weights.items():
            out[d] = F.conv2d(padded, k, stride=s, groups=groups).reshape(n, -1)
        return out


def _fire(v: torch.Tensor, vth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``v > vth`` (B, n) bool and the flat indices ``b·n + cx`` of its true entries (int64).

    On the CPU NumPy computes both on the same memory: its broadcast comparison and its
    ``flatnonzero`` are several times faster than ``torch.gt`` and ``torch.nonzero`` here."""
    if NUMPY_ON_CPU and v.device.type == "cpu":
        s = np.greater(v.numpy(), vth.numpy())
        return torch.from_numpy(s), torch.from_numpy(np.flatnonzero(s))
    s = torch.gt(v, vth)
    return s, torch.nonzero(s.view(-1)).flatten()


class TorchRunner:
    """Runs one :class:`~neurocore.golden.core.GoldenCore`'s network with torch tensors."""

    def __init__(self, core, device: str | torch.device = "cpu"):
        self.core = core
        self.g = g = core.g
        self.device = dev = torch_device(device)
        self.dense = core.dense
        exact = exact_dtype(core.sum_bound + 1) if core.dense else None
        self.fdtype = torch.float32 if exact == np.float32 else torch.float64
        # |synaptic sum of one step| ≤ step_bound; the accumulator wrap is the identity below
        # 2**(acc_bits-1), and the int32 ring cannot overflow below 2**31.
        self.step_bound = max_synaptic_sum(core.config)
        self.acc_dtype = torch.int32 if self.step_bound < (1 << 31) - 1 else torch.int64
        if self.dense:
            self.W = {d: torch.as_tensor(Wd.toarray(), dtype=self.fdtype, device=dev)
                      for d, Wd in core.W.items()}
            self.RW = {d: torch.as_tensor(m.toarray(), dtype=self.fdtype, device=dev)
                       for d, m in core.RW.items()}
        else:
            n, D = g.n_compartments, g.n_delay_slots
            self.W = _Csr(core.W, n, D, dev, self.acc_dtype) if core.W else None
            self.RW = _Csr(core.RW, n, D, dev, self.acc_dtype) if core.RW else None
        O = core.O.tocsr()
        self.out_cx = torch.as_tensor(np.flatnonzero(np.diff(O.indptr)), device=dev)
        self.O = torch.as_tensor(O[self.out_cx.cpu().numpy()].toarray(), dtype=torch.float32,
                                 device=dev)
        self.vth = torch.as_tensor(core.vth_eff, dtype=torch.int32, device=dev)
        self.bias = torch.as_tensor(core.bias, dtype=torch.int32, device=dev)
        self.bias_max = int(np.abs(core.bias).max(initial=0))
        self.du_plan = _decay_plan(core.du_eff, g, dev)
        self.dv_plan = _decay_plan(core.dv, g, dev)
        # conv descriptors (spec §3.5): the NumPy core's gathered plans, run by conv2d
        self.conv = [_TorchConv(c, kernels, in_shape, core.R, dev)
                     for c, kernels, _gather, in_shape in core.conv._plans]
        self.conv_recurrent = [cv for cv in self.conv if cv.R is not None]

    def _host_conv(self, x: np.ndarray, B: int, T: int) -> dict[int, torch.Tensor]:
        """conv[d] ((T−1−d, B, n) int64): what host spikes of step k add at step k + 1 + d
        through the conv descriptors."""
        n = self.g.n_compartments
        flat = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * B, -1)
        ext: dict[int, torch.Tensor] = {}
        for cv in self.conv:
            counts = torch.as_tensor(flat[:, cv.c.axons], device=self.device)
            if not bool(counts.any()):
                continue
            for d, y in cv.deliver(counts).items():
                if 1 + d >= T:
                    continue
                e = ext.get(d)
                if e is None:
                    e = ext[d] = torch.zeros((T - 1 - d, B, n), dtype=torch.int64,
                                             device=self.device)
                e[:, :, cv.lo:cv.hi] += y[: (T - 1 - d) * B].reshape(T - 1 - d, B, -1).to(
                    torch.int64)
        return ext

    # ---- host spikes: all steps at once ----------------------------------------------
    def _host_events(self, x: np.ndarray, B: int, T: int):
        """Host spikes as ring events: (per-step bounds, flat ring index, contribution).

        Entries are sorted by send step ``k``; ``bounds[k]:bounds[k+1]`` are the synapse events
        of host spikes sent at step ``k``, added to the ring after step ``k`` like that step's
        compartment spikes.
        """
        flat = np.flatnonzero(x)                                 # x is (B, T, n_axons)
        b, rest = np.divmod(flat, x.shape[1] * x.shape[2])
        t, axon = np.divmod(rest, x.shape[2])
        order = np.argsort(t, kind="stable")
        t, b, axon = t[order], b[order], axon[order]
        slot = torch.as_tensor((t + 1) % self.g.n_delay_slots, device=self.device)
        t, b, axon = (torch.as_tensor(a, device=self.device) for a in (t, b, axon))
        idx, val = self.W.expand(b, axon, slot, B)
        per_step = torch.zeros(T + 1, dtype=torch.int64, device=self.device)
        per_step[1:].index_add_(0, t, self.W.fan[axon])      # synapse events sent per step
        bounds = torch.cumsum(per_step, 0).cpu().tolist()
        return bounds, idx, val.to(self.acc_dtype)

    def _host_dense(self, x: np.ndarray, B: int, T: int):
        """ext[d][k] ((T−1−d, B, n)): what host spikes of step k add at step k + 1 + d."""
        xt = torch.as_tensor(np.ascontiguousarray(x.transpose(1, 0, 2)), device=self.device)
        flat = xt.reshape(T * B, -1).to(self.fdtype)
        ext = {}
        for d, Wd in self.W.items():
            if 1 + d < T:
                prod = flat[: (T - 1 - d) * B] @ Wd
                ext[d] = prod.to(torch.int64).reshape(T - 1 - d, B, -1)
        return ext

    # ---- the time loop ----------------------------------------------------------------
    def run(self, x: np.ndarray, record: tuple[str, ...]) -> RunResult:
        """Simulate the validated (B, T, n_axons) raster ``x``; see ``GoldenCore.run``."""
        g, dev = self.g, self.device
        B, T, _ = x.shape
        n, D = g.n_compartments, g.n_delay_slots
        if self.dense:
            ext = self._host_dense(x, B, T)
        elif self.W is not None:
            bounds, h_idx, h_val = self._host_events(x, B, T)
        conv_ext = self._host_conv(x, B, T) if self.conv else {}
        ring = torch.zeros((D, B, n), dtype=self.acc_dtype, device=dev)
        dirty = [False] * D                     # slot written since it was last read
        u = torch.zeros((B, n), dtype=torch.int32, device=dev)
        v = torch.zeros((B, n), dtype=torch.int32, device=dev)
        spikes = torch.zeros((B, T, n), dtype=torch.bool, device=dev)     # the result's layout
        rec = {k: torch.zeros((T, B, n), dtype=torch.int32, device=dev) for k in record}
        half_acc, mask_acc = 1 << (g.acc_bits - 1), (1 << g.acc_bits) - 1
        m = g.state_max
        lim = m - 1
        u_bound = v_bound = 0                   # |u| ≤ u_bound, |v| ≤ v_bound (python ints)
        resets = self.core.resets               # a reset only lowers |u|, |v|: bounds hold
        for t in range(T):
            slot = t % D
            a = ring[slot]
            has_input = dirty[slot]
            if self.dense:
                for d, e in ext.items():
                    if t >= 1 + d:
                        a += e[t - 1 - d].to(a.dtype)
                        has_input = True
            for d, e in conv_ext.items():
                if t >= 1 + d:
                    a += e[t - 1 - d].to(a.dtype)
                    has_input = True
            cleared = resets.at(t) if resets else None
            if cleared is not None:   # periodic reset (spec §11): before this step's update
                idx = torch.as_tensor(cleared, device=dev)
                u[:, idx] = 0
                v[:, idx] = 0
            u = _decay_(u, self.du_plan, g)
            if has_input:
                lo, hi = (int(e) for e in torch.aminmax(a))
                if hi >= half_acc or lo < -half_acc:     # wrap only if it moves a value
                    a = ((a.to(torch.int64) + half_acc) & mask_acc) - half_acc
                    lo, hi = (int(e) for e in torch.aminmax(a))
                u.add_(a.to(torch.int32), alpha=1 << g.act_shift)
                ring[slot] = 0
                dirty[slot] = False
                u_bound += max(hi, -lo) << g.act_shift
                if u_bound >= m:                # wrap into (−2**23, 2**23] only if it moves u
                    lo, hi = (int(e) for e in torch.aminmax(u))
                    if hi > m or lo <= -m:
                        u = m - ((m - u) & ((m << 1) - 1))
                        lo, hi = (int(e) for e in torch.aminmax(u))
                    u_bound = max(hi, -lo)
            v = _decay_(v, self.dv_plan, g)
            v += u
            if self.bias_max:
                v += self.bias
            v_bound += u_bound + self.bias_max
            if v_bound > lim:                   # saturate only if a value is out of range
                lo, hi = (int(e) for e in torch.aminmax(v))
                if hi > lim or lo < -lim:
                    v.clamp_(-lim, lim)
                    lo, hi = max(lo, -lim), min(hi, lim)
                v_bound = max(hi, -lo)
                lo, hi = (int(e) for e in torch.aminmax(u))   # tighten u's bound as well
                u_bound = max(hi, -lo)
            s, fired = _fire(v, self.vth)                       # fired: b·n + cx per spike
            spikes[:, t] = s
            v.view(-1)[fired] = 0
            if "u" in rec:
                rec["u"][t] = u
            if "v" in rec:
                rec["v"][t] = v
            if not self.dense and self.W is not None and bounds[t + 1] > bounds[t]:
                lo, hi = bounds[t], bounds[t + 1]               # host spikes sent at step t
                ring.view(-1).index_add_(0, h_idx[lo:hi], h_val[lo:hi])
                for k in self.W.slots(t):
                    dirty[k] = True
            if self.RW and fired.numel():
                self._deliver(s, fired, ring, dirty, t, n, D)
            if self.conv_recurrent and fired.numel():
                self._deliver_conv(s, ring, dirty, t, D)
        outputs = (spikes[:, :, self.out_cx].to(torch.float32) @ self.O).to(torch.int32)

        def host(a):
            return None if a is None else np.ascontiguousarray(a.transpose(0, 1).cpu().numpy())

        return RunResult(spikes=spikes.cpu().numpy(),
                         outputs=outputs.cpu().numpy(), u=host(rec.get("u")),
                         v=host(rec.get("v")))

    def _deliver_conv(self, s: torch.Tensor, ring, dirty, t: int, D: int) -> None:
        """Add what this step's spikes ``s`` (B, n) send through routes into conv axons."""
        sf = s.to(torch.float32)
        for cv in self.conv_recurrent:
            counts = sf @ cv.R                                  # exact: small route counts
            if not bool(counts.any()):
                continue
            for d, y in cv.deliver(counts).items():
                slot = (t + 1 + d) % D
                ring[slot][:, cv.lo:cv.hi] += y.to(ring.dtype)  # exact: |sum| ≤ step_bound
                dirty[slot] = True

    def _deliver(self, s: torch.Tensor, fired: torch.Tensor, ring, dirty, t: int, n: int,
                 D: int) -> None:
        """Add the synapse lists reached by this step's spikes (``s``, flat ``fired``) to the ring."""
        if self.dense:
            active = torch.nonzero(s.any(dim=0)).flatten()
            if not active.numel():
                return
            sf = s[:, active].to(self.fdtype)
            for d, RWd in self.RW.items():
                slot = (t + 1 + d) % D
                ring[slot] += (sf @ RWd[active]).to(ring.dtype)     # exact: |sum| ≤ step_bound
                dirty[slot] = True
            return
        b, cx = torch.div(fired, n, rounding_mode="floor"), fired % n
        idx, val = self.RW.expand(b, cx, (t + 1) % D, s.shape[0])
        if idx.numel():
            ring.view(-1).index_add_(0, idx, val.to(ring.dtype))
            for k in self.RW.slots(t):
                dirty[k] = True
