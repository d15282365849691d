"""Run a :class:`~neurocore.golden.network.CoreConfig` on Lava's bit-accurate CPU models.

The same network object that drives the golden model is built from Lava 0.10 processes:

- host spikes: ``lava.proc.io.source.RingBuffer`` (``n_axons`` channels, int32 ``fixed_pt``);
- compartments: one ``lava.proc.lif.process.LIF`` per profile (Lava's LIF has scalar du, dv
  and vth), run by ``PyLifModelBitAcc`` with ``du = du + du_offset - 1`` (Lava adds its own
  ``ds_offset = 1``; ``du = -1`` is Lava's non-leaky current);
- synapses: one ``Dense`` (all delays 0) or ``DelayDense`` per (source, target profile,
  sign mode, weight exponent) group, with Lava's ``SignMode`` and ``weight_exp``; a pair that
  occurs twice (two routes to one axon, or two synapses to one compartment) goes into a second
  process, because a Lava weight matrix holds one weight per pair;
- recorded spikes: a subclass of ``lava.proc.io.sink.RingBuffer`` that writes its buffer to a
  file on the last step instead of being read element by element with ``Var.get``;
- recorded u and v: the same ``PyLifModelBitAcc`` arithmetic plus a copy of u, v after each
  step, written to a file on the last step;
- a profile with a periodic reset (spec §11): ``LIFReset`` run by ``PyLifResetModelBitAcc``
  (with the same u, v trace), ``reset_offset`` shifted to Lava's 1-based time step
  (:func:`lava_reset_offset`).

Step mapping: golden step ``t`` (0-based) is Lava time step ``t + 1``.  Lava cannot batch, so
a batch runs as one Lava run per sample.

Conv descriptors (docs/spec.md §3.5) reach Lava as ``Dense``/``DelayDense`` processes:
:meth:`CoreConfig.synapse_list` writes every descriptor out as (axon, target, kernel word)
pairs, here only; the golden model runs the descriptors directly.

:func:`merge_configs` lays several networks side by side in one config (disjoint
compartments, axons, synapse words, routes, profiles, outputs and conv descriptors), so that
many small networks share one Lava run (a run costs seconds of process start-up, whatever
its size) and :meth:`MergedConfig.split` cuts the merged result back into one per network.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..golden.core import RunResult
from ..golden.network import CoreConfig, config_memory_names
from ..spec.words import RouteKind, SignMode

__all__ = ["run_lava", "LavaNetwork", "lava_du", "lava_reset_offset", "merge_configs",
           "MergedConfig"]


def lava_du(du: int, du_offset: int) -> int:
    """Return Lava's ``du`` for a profile's (du, du_offset): Lava applies ``du + 1``."""
    return int(du) + int(du_offset) - 1


def lava_reset_offset(interval: int, offset: int) -> int:
    """Lava's ``LIFReset`` ``reset_offset`` for a profile's (reset_interval, reset_offset).

    ``PyLifResetModelBitAcc`` zeroes u and v before the update when
    ``time_step % reset_interval == reset_offset % reset_interval``, with Lava's 1-based
    ``time_step = t + 1`` (golden step ``t``); spec §11 resets at ``(t − offset) mod interval =
    0``, so Lava's offset is ``(offset + 1) mod interval``.
    """
    return (int(offset) + 1) % int(interval)


@dataclass(frozen=True)
class MergedConfig:
    """Several configs side by side (:func:`merge_configs`): network ``i`` owns compartments
    ``cx[i]:cx[i] + n_cx[i]``, axons ``axons[i]:…`` and outputs ``outputs[i]:…`` of
    ``config``."""

    config: CoreConfig
    cx: tuple[int, ...]
    n_cx: tuple[int, ...]
    axons: tuple[int, ...]
    n_axons: tuple[int, ...]
    outputs: tuple[int, ...]
    n_outputs: tuple[int, ...]

    def raster(self, rasters) -> np.ndarray:
        """One (B, T, n_axons) raster from one raster per network (same B and T); spikes on
        an axon a network does not use (no synapses, no descriptor) are dropped."""
        B, T = np.shape(rasters[0])[:2]
        x = np.zeros((B, T, self.config.geometry.n_axons), dtype=bool)
        for i, r in enumerate(rasters):
            x[:, :, self.axons[i]:self.axons[i] + self.n_axons[i]] = \
                np.asarray(r, dtype=bool)[:, :, :self.n_axons[i]]
        return x

    def split(self, result: RunResult, i: int) -> RunResult:
        """Network ``i``'s part of a merged result (its first ``n_cx[i]`` compartments)."""
        cx = slice(self.cx[i], self.cx[i] + self.n_cx[i])
        out = slice(self.outputs[i], self.outputs[i] + self.n_outputs[i])
        return RunResult(spikes=result.spikes[..., cx], outputs=result.outputs[..., out],
                         u=None if result.u is None else result.u[..., cx],
                         v=None if result.v is None else result.v[..., cx])


def merge_configs(configs, name: str = "merged") -> MergedConfig:
    """Lay ``configs`` (one geometry's field widths, delay slots and lanes) side by side in
    one config: each keeps its live compartments (``n_active``), the axons its synapse lists,
    descriptors and routes use, its synapse words up to the last used one, its routes,
    profiles, outputs and conv descriptors; every pointer is shifted by the network's offset.

    The networks do not interact, so each one runs in the merged config exactly as alone
    (the golden model checks that, bit for bit, in tests/test_lava_crosscheck.py).
    """
    configs = list(configs)
    if not configs:
        raise ValueError("merge_configs needs at least one config")
    g0 = configs[0].geometry
    sizes = []
    for cfg in configs:
        g = cfg.geometry
        if g.replace(name=g0.name) != g0:
            raise ValueError(f"merge_configs needs one geometry, not {g0.name!r} and {g.name!r}")
        mem = cfg.mem
        sm, am, rt = mem["synapse_map"], mem["axon_map"], mem["routes"]
        n_cx = max(1, cfg.n_active())
        live = sm["length"] > 0
        if g.n_conv:
            live |= sm["conv"] > 0
        route_end = int((am["base"] + am["length"])[am["length"] > 0].max(initial=0))
        to_axon = rt["target"][:route_end][rt["kind"][:route_end] == RouteKind.AXON.value]
        n_ax = max(1, int(np.flatnonzero(live).max(initial=-1)) + 1,
                   int(to_axon.max(initial=-1)) + 1)
        sizes.append(dict(cx=n_cx, axons=n_ax, synapses=max(1, cfg.synapse_words_end()),
                          routes=max(1, route_end), profiles=g.n_profiles,
                          outputs=g.n_outputs, conv=g.n_conv))
    total = {k: sum(s[k] for s in sizes) for k in sizes[0]}
    g = g0.replace(name=name, n_compartments=total["cx"], n_axons=total["axons"],
                   n_synapses=total["synapses"], n_routes=total["routes"],
                   n_profiles=total["profiles"], n_outputs=total["outputs"],
                   n_conv=total["conv"], k_u=1, k_s=1,
                   max_fanout=min(g0.max_fanout, total["synapses"]),
                   max_routes=min(g0.max_routes, total["routes"]))
    out = CoreConfig.empty(g)
    off = {k: 0 for k in total}
    offsets = []
    for cfg, size in zip(configs, sizes):
        offsets.append(dict(off))
        src, dst = cfg.mem, out.mem

        def put(memory, field, values, key):
            dst[memory][field][off[key]:off[key] + size[key]] = values[:size[key]]

        sm = src["synapse_map"]
        put("synapse_map", "base", np.where(sm["length"] > 0, sm["base"] + off["synapses"], 0),
            "axons")
        put("synapse_map", "length", sm["length"], "axons")
        if g0.n_conv:
            put("synapse_map", "conv", np.where(sm["conv"] > 0, sm["conv"] + off["conv"], 0),
                "axons")
            for f in ("ci", "iy", "ix"):
                put("synapse_map", f, sm[f], "axons")
        syn = src["synapses"]
        for f in ("weight", "weight_exp", "delay", "sign_mode"):
            put("synapses", f, syn[f], "synapses")
        put("synapses", "target", syn["target"] + off["cx"], "synapses")
        cxm = src["compartments"]
        for f in ("bias_mant", "bias_exp"):
            put("compartments", f, cxm[f], "cx")
        put("compartments", "profile", cxm["profile"] + off["profiles"], "cx")
        for f, values in src["profiles"].items():
            put("profiles", f, values, "profiles")
        am = src["axon_map"]
        put("axon_map", "base", np.where(am["length"] > 0, am["base"] + off["routes"], 0), "cx")
        put("axon_map", "length", am["length"], "cx")
        rt = src["routes"]
        put("routes", "kind", rt["kind"], "routes")
        put("routes", "target", rt["target"] + np.where(
            rt["kind"] == RouteKind.AXON.value, off["axons"], off["outputs"]), "routes")
        if g0.n_conv:
            for f, values in src["conv"].items():
                put("conv", f, values, "conv")
            put("conv", "out_base", src["conv"]["out_base"] + off["cx"], "conv")
            put("conv", "kernel_base", src["conv"]["kernel_base"] + off["synapses"], "conv")
        for k in off:
            off[k] += size[k]
    assert set(out.mem) == set(config_memory_names(g))
    out.validate()
    col = lambda key: tuple(o[key] for o in offsets)         # noqa: E731
    n = lambda key: tuple(s[key] for s in sizes)             # noqa: E731
    return MergedConfig(config=out, cx=col("cx"), n_cx=n("cx"), axons=col("axons"),
                        n_axons=n("axons"), outputs=col("outputs"), n_outputs=n("outputs"))


def _import_lava_runtime():
    """Import Lava's runtime, which calls ``multiprocessing.set_start_method('fork')``.

    That call raises if anything (tqdm's lock, for one) already fixed the start method.  If
    the method in force is already 'fork', Lava's call is a no-op and is let through.
    """
    import multiprocessing as mp

    current = mp.get_start_method(allow_none=True)
    if current not in (None, "fork"):
        raise RuntimeError(f"Lava needs the 'fork' start method, but this process already "
                           f"uses {current!r}")
    original = mp.set_start_method

    def tolerant(method, force=False):
        if method == "fork" and mp.get_start_method(allow_none=True) == "fork":
            return
        original(method, force=force)

    mp.set_start_method = tolerant
    try:
        import lava.magma.runtime.runtime  # noqa: F401
    finally:
        mp.set_start_method = original


def _lava():
    """Import Lava lazily (it is large) and define the two recording models once."""
    global _LAVA
    if "_LAVA" in globals():
        return _LAVA
    _import_lava_runtime()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.sink import PyReceiveModelFixed
    from lava.proc.io.sink import RingBuffer as SinkRingBuffer
    from lava.proc.io.source import RingBuffer as SourceRingBuffer
    from lava.proc.lif.models import PyLifModelBitAcc, PyLifResetModelBitAcc
    from lava.proc.lif.process import LIF, LIFReset
    from lava.utils.weightutils import SignMode as LavaSignMode

    class SpikeDump(SinkRingBuffer):
        """Lava's sink RingBuffer that also knows the file its model dumps to."""

        def __init__(self, *, shape, buffer, path):
            super().__init__(shape=shape, buffer=buffer)
            self.proc_params["dump_path"] = str(path)

    class PySpikeDumpModel(PyReceiveModelFixed):
        """Store spikes like ``PyReceiveModelFixed``; save the buffer on the last step."""

        def run_spk(self):
            super().run_spk()
            if self.time_step == self.data.shape[-1]:
                np.save(self.proc_params["dump_path"], self.data)

    class Traced:
        """Mixin: the model's ``run_spk`` unchanged, plus u and v after each step saved at the
        end (when the process has a ``trace_path``)."""

        def run_spk(self):
            super().run_spk()
            path = self.proc_params._parameters.get("trace_path")
            if path is None:
                return
            steps = self.proc_params["trace_steps"]
            if not hasattr(self, "_trace"):
                self._trace = np.zeros((2, steps) + self.u.shape, dtype=np.int64)
            self._trace[0, self.time_step - 1] = self.u
            self._trace[1, self.time_step - 1] = self.v
            if self.time_step == steps:
                np.save(path, self._trace)

    class PyLifModelBitAccTraced(Traced, PyLifModelBitAcc):
        """``PyLifModelBitAcc`` with the u, v trace."""

    class PyLifResetModelBitAccTraced(Traced, PyLifResetModelBitAcc):
        """``PyLifResetModelBitAcc`` (periodic reset, spec §11) with the u, v trace."""

    sign = {SignMode.MIXED.value: LavaSignMode.MIXED,
            SignMode.EXCITATORY.value: LavaSignMode.EXCITATORY,
            SignMode.INHIBITORY.value: LavaSignMode.INHIBITORY}
    _LAVA = dict(RunSteps=RunSteps, Loihi2SimCfg=Loihi2SimCfg, Dense=Dense,
                 DelayDense=DelayDense, Source=SourceRingBuffer, LIF=LIF, SpikeDump=SpikeDump,
                 TracedLif=PyLifModelBitAccTraced, LIFReset=LIFReset,
                 TracedLifReset=PyLifResetModelBitAccTraced, DumpModel=PySpikeDumpModel, sign=sign)
    return _LAVA


class LavaNetwork:
    """The Lava process graph for one config and one input raster (one sample).

    Build with :meth:`build`, then :meth:`run`.  ``workdir`` receives the dump files.
    """

    def __init__(self, config: CoreConfig, workdir: Path, host_axons=None):
        """``host_axons``: the axons the host may spike on (all axons if None); synapses of
        other axons are reached only through routes, so they need no connection from the
        input source."""
        config.validate()
        self.host_axons = (np.arange(config.geometry.n_axons) if host_axons is None
                           else np.asarray(host_axons))
        self.config = config
        self.workdir = Path(workdir)
        g = config.geometry
        p = config.compartment_params()
        self.profile_of = p["profile"]
        self.profiles = sorted(set(int(x) for x in self.profile_of))
        # compartment -> (profile, index within that profile's LIF)
        self.members = {q: np.flatnonzero(self.profile_of == q) for q in self.profiles}
        self.index_in = np.zeros(g.n_compartments, dtype=np.int64)
        for q, cx in self.members.items():
            self.index_in[cx] = np.arange(cx.size)
        self.groups = self._synapse_groups()

    def _synapse_groups(self):
        """Group every (source, target) synapse instance into Lava connection matrices.

        Sources are ``("ext", axon)`` for host spikes and ``(profile, index)`` for routed
        compartment spikes.  Returns ``{(src, tgt_profile, sign, exp, k): [(i, j, w, d)]}``.
        """
        cfg = self.config
        syn = cfg.synapse_list()
        R, _ = cfg.route_matrices()
        by_axon = defaultdict(list)
        for n in range(syn.axon.size):
            by_axon[int(syn.axon[n])].append(n)
        instances = []  # (src_group, src_idx, target_cx, n)
        host = set(int(a) for a in self.host_axons)
        for a, lst in by_axon.items():
            if a not in host:
                continue
            for n in lst:
                instances.append(("ext", a, int(syn.target[n]), n))
        for c, a in zip(*np.nonzero(R)):
            for n in by_axon.get(int(a), ()):
                for _ in range(int(R[c, a])):
                    q = int(self.profile_of[c])
                    instances.append((q, int(self.index_in[c]), int(syn.target[n]), n))
        groups = defaultdict(list)
        seen = defaultdict(int)
        for src, i, tgt, n in instances:
            q = int(self.profile_of[tgt])
            key0 = (src, q, int(syn.sign_mode[n]), int(syn.weight_exp[n]))
            k = seen[key0 + (i, tgt)]
            seen[key0 + (i, tgt)] += 1
            groups[key0 + (k,)].append((i, int(self.index_in[tgt]), int(syn.weight[n]),
                                        int(syn.delay[n])))
        return groups

    def run(self, raster: np.ndarray, record_state: bool) -> RunResult:
        """Run one sample ``raster`` (T, n_axons) and return its :class:`RunResult`."""
        L = _lava()
        cfg, g = self.config, self.config.geometry
        T = raster.shape[0]
        mem = cfg.mem
        prof = mem["profiles"]
        cxm = mem["compartments"]
        lifs, dumps = {}, {}
        for q in self.profiles:
            cx = self.members[q]
            extra = {}
            interval = int(prof["reset_interval"][q]) if g.reset_bits else 0
            if interval:
                extra.update(reset_interval=interval, reset_offset=lava_reset_offset(
                    interval, int(prof["reset_offset"][q])))
            lif = L["LIFReset"] if interval else L["LIF"]
            lifs[q] = lif(shape=(cx.size,), du=lava_du(prof["du"][q], prof["du_offset"][q]),
                          dv=int(prof["dv"][q]), vth=int(prof["vth"][q]),
                          bias_mant=cxm["bias_mant"][cx].astype(np.int64),
                          bias_exp=cxm["bias_exp"][cx].astype(np.int64),
                          u=0, v=0, **extra)
            if record_state:  # LIFReset takes no extra keywords: set the trace parameters
                lifs[q].proc_params["trace_path"] = str(self.workdir / f"uv_{q}.npy")
                lifs[q].proc_params["trace_steps"] = T
            dumps[q] = L["SpikeDump"](shape=(cx.size,), buffer=T,
                                      path=self.workdir / f"spikes_{q}.npy")
            lifs[q].s_out.connect(dumps[q].a_in)
        source = L["Source"](data=np.ascontiguousarray(raster.T.astype(np.int32)))
        fed = set()
        for (src, q, sm, e, _k), syns in self.groups.items():
            n_src = g.n_axons if src == "ext" else self.members[src].size
            W = np.zeros((self.members[q].size, n_src), dtype=np.int64)
            Dl = np.zeros_like(W)
            for i, j, w, d in syns:
                W[j, i] = w
                Dl[j, i] = d
            kw = dict(weights=W, weight_exp=e, num_weight_bits=g.weight_bits,
                      sign_mode=L["sign"][sm])
            conn = (L["DelayDense"](delays=Dl, **kw) if Dl.any() else L["Dense"](**kw))
            (source.s_out if src == "ext" else lifs[src].s_out).connect(conn.s_in)
            conn.a_out.connect(lifs[q].a_in)
            if src == "ext":
                fed.add(q)
        for q in self.profiles:  # keep every LIF in the graph that `run` compiles
            if q not in fed:
                z = L["Dense"](weights=np.zeros((self.members[q].size, g.n_axons), np.int64),
                               sign_mode=L["sign"][SignMode.EXCITATORY.value])
                source.s_out.connect(z.s_in)
                z.a_out.connect(lifs[q].a_in)
        # Lava looks up models for a Process class next to its module before it consults the
        # exception map by class; keying the sinks by instance skips that search.
        models = {L["LIF"]: L["TracedLif"], L["LIFReset"]: L["TracedLifReset"],
                  **{d: L["DumpModel"] for d in dumps.values()}}
        cfg_run = L["Loihi2SimCfg"](select_tag="fixed_pt", exception_proc_model_map=models)
        try:
            source.run(condition=L["RunSteps"](num_steps=T), run_cfg=cfg_run)
        finally:
            source.stop()
        n = g.n_compartments
        spikes = np.zeros((T, n), dtype=bool)
        u = v = None
        if record_state:
            u = np.zeros((T, n), dtype=np.int32)
            v = np.zeros((T, n), dtype=np.int32)
        for q in self.profiles:
            cx = self.members[q]
            spikes[:, cx] = np.load(self.workdir / f"spikes_{q}.npy").T != 0
            if record_state:
                uv = np.load(self.workdir / f"uv_{q}.npy")
                u[:, cx] = uv[0]
                v[:, cx] = uv[1]
        _, O = cfg.route_matrices(sparse=True)
        outputs = (O.T.astype(np.int32) @ spikes.T.astype(np.int32)).T
        return RunResult(spikes=spikes, outputs=np.asarray(outputs), u=u, v=v)


def run_lava(config: CoreConfig, inputs: np.ndarray, *, record: tuple[str, ...] = (),
             progress: bool = False) -> RunResult:
    """Run ``inputs`` (B, T, n_axons) or (T, n_axons) through Lava; same format as golden.

    ``record`` may contain ``"u"`` and ``"v"`` (both are traced together).
    """
    x = np.asarray(inputs)
    single = x.ndim == 2
    if single:
        x = x[None]
    g = config.geometry
    if x.ndim != 3 or x.shape[2] != g.n_axons:
        raise ValueError(f"inputs must have shape (batch, steps, {g.n_axons}), "
                         f"not {np.shape(inputs)}")
    unknown = set(record) - {"u", "v"}
    if unknown:
        raise ValueError(f"cannot record {sorted(unknown)}; choose from 'u', 'v'")
    want = bool(record)
    results = []
    it = range(x.shape[0])
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="lava", unit="sample")
    with tempfile.TemporaryDirectory(prefix="neurocore-lava-") as tmp:
        net = LavaNetwork(config, Path(tmp), host_axons=np.flatnonzero(x.any(axis=(0, 1))))
        for b in it:
            results.append(net.run(x[b], want))
            for f in os.listdir(tmp):
                os.remove(os.path.join(tmp, f))
    def stack(name):
        if name in ("u", "v") and name not in record:
            return None
        return np.stack([getattr(r, name) for r in results])

    res = RunResult(spikes=stack("spikes"), outputs=stack("outputs"), u=stack("u"),
                    v=stack("v"))
    return res.sample(0) if single else res
