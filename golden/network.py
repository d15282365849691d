"""A network mapped onto one neurocore: its memories (:class:`CoreConfig`) and a builder.

:class:`CoreConfig` is the single object that the golden model, the Lava harness, the image
packer and the RTL loader consume.  It holds the geometry and, for every memory of
:func:`neurocore.spec.words.memories`, one ``int64`` array per field.  :meth:`CoreConfig.validate`
checks every value against its field and every pointer against its memory, and names the
first bad value and its place.

:class:`NetworkBuilder` is the convenient way to make one::

    b = NetworkBuilder(CoreGeometry.preset("tiny"))
    p = b.add_profile(du=0, du_offset=0, dv=0, vth=100)   # non-leaky integrate-and-fire
    cx = b.add_compartments(4, profile=p)
    b.connect(axon=0, targets=cx, weights=[10, 20, -5, 255], weight_exp=1, delay=2)
    b.route_to_output(cx, outputs=[0, 1, 2, 3])
    config = b.build()
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse

from ..spec.geometry import ConfigError, CoreGeometry
from ..spec.words import (CONV_KERNEL_BITS, CONV_PAD_BITS, CONV_STRIDE_SHIFT_BITS, ConvKind,
                          FieldRangeError, Memory, RouteKind, SignMode, memories, pack, unpack)
from .arith import effective_weight, weight_mantissa
from .conv import conv_connections, conv_errors, expand

__all__ = ["CoreConfig", "NetworkBuilder", "ConfigError", "Synapses", "config_memory_names"]

#: Memories that describe the network (the dynamic ``state`` and ``accumulators`` are not).
CONFIG_MEMORIES = ("synapse_map", "synapses", "compartments", "profiles", "axon_map", "routes",
                   "conv")


def config_memory_names(geometry: CoreGeometry) -> tuple[str, ...]:
    """The configuration memories a core of ``geometry`` has (``conv`` only with n_conv > 0)."""
    mems = memories(geometry)
    return tuple(name for name in CONFIG_MEMORIES if name in mems)




@dataclass(frozen=True)
class Synapses:
    """The live synapses of a config, flattened: one entry per (axon, synapse) pair.

    ``weight`` is the signed effective weight (sign mode applied, exponent not applied);
    ``contribution = weight << weight_exp`` is what one spike adds to the accumulator.
    """

    axon: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    weight_exp: np.ndarray
    delay: np.ndarray
    sign_mode: np.ndarray
    address: np.ndarray

    @property
    def contribution(self) -> np.ndarray:
        return np.left_shift(self.weight, self.weight_exp)


@dataclass
class CoreConfig:
    """Every configuration memory of one core, as per-field ``int64`` arrays.

    ``mem[name][field]`` has one entry per memory word (depth from the geometry).  Build one
    with :class:`NetworkBuilder`, or from packed words with :meth:`from_words`.
    """

    geometry: CoreGeometry
    mem: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def empty(cls, geometry: CoreGeometry) -> "CoreConfig":
        """Return a config with every word zero: no synapses, no routes, profile 0."""
        mems = memories(geometry)
        return cls(geometry, {
            name: {f: np.zeros(mems[name].depth, dtype=np.int64) for f, _ in mems[name].layout}
            for name in config_memory_names(geometry)
        })

    # ---- packing -------------------------------------------------------------------
    def to_words(self) -> dict[str, np.ndarray]:
        """Pack every configuration memory into ``uint64`` words (validates field ranges)."""
        mems = memories(self.geometry)
        return {name: pack(mems[name].layout, self.mem[name], memory=name)
                for name in config_memory_names(self.geometry)}

    @classmethod
    def from_words(cls, geometry: CoreGeometry, words: dict[str, np.ndarray]) -> "CoreConfig":
        """Unpack memories written by :meth:`to_words`."""
        mems = memories(geometry)
        out = {}
        for name in config_memory_names(geometry):
            if name not in words:
                raise ConfigError(f"memory {name} is missing; geometry {geometry.name!r} has it")
            w = np.asarray(words[name], dtype=np.uint64)
            if w.shape != (mems[name].depth,):
                raise ConfigError(f"memory {name} has {w.shape[0]} words, geometry "
                                  f"{geometry.name!r} needs {mems[name].depth}")
            out[name] = unpack(mems[name].layout, w)
        cfg = cls(geometry, out)
        cfg.validate()
        return cfg

    # ---- validation ----------------------------------------------------------------
    def validate(self) -> "CoreConfig":
        """Check field ranges and cross-memory pointers; raise :class:`ConfigError` if bad."""
        g = self.geometry
        mems = memories(g)
        for name in config_memory_names(g):
            self._check_shape(mems[name])
            try:
                pack(mems[name].layout, self.mem[name], memory=name)
            except FieldRangeError as e:
                raise ConfigError(str(e)) from None
        sm, syn = self.mem["synapse_map"], self.mem["synapses"]
        self._check_lists("synapse_map", sm, g.n_synapses, "synapses", g.max_fanout)
        am = self.mem["axon_map"]
        self._check_lists("axon_map", am, g.n_routes, "routes", g.max_routes)
        used = self._used(sm, g.n_synapses)
        self._first_bad(used & (syn["target"] >= g.n_compartments), "target", syn["target"],
                        "synapses", f"< n_compartments={g.n_compartments}")
        self._first_bad(used & (syn["delay"] > g.max_delay), "delay", syn["delay"], "synapses",
                        f"<= max_delay={g.max_delay}")
        self._first_bad(used & ~np.isin(syn["sign_mode"], [m.value for m in SignMode]),
                        "sign_mode", syn["sign_mode"], "synapses", "a SignMode value")
        err = conv_errors(g, sm, self.mem.get("conv"))
        if err:
            raise ConfigError(err)
        kernel = self.kernel_words_mask()
        self._first_bad(kernel & (syn["delay"] > g.max_delay), "delay", syn["delay"],
                        "synapses", f"<= max_delay={g.max_delay} (a conv kernel word)")
        self._first_bad(kernel & ~np.isin(syn["sign_mode"], [m.value for m in SignMode]),
                        "sign_mode", syn["sign_mode"], "synapses",
                        "a SignMode value (a conv kernel word)")
        pr = self.mem["profiles"]
        if g.reset_bits:
            self._first_bad(pr["reset_offset"] >= np.maximum(pr["reset_interval"], 1),
                            "reset_offset", pr["reset_offset"], "profiles",
                            "< reset_interval (0 when the interval is 0: no reset)")
        cx = self.mem["compartments"]
        self._first_bad(cx["profile"] >= g.n_profiles, "profile", cx["profile"], "compartments",
                        f"< n_profiles={g.n_profiles}")
        r = self.mem["routes"]
        used_r = self._used(am, g.n_routes)
        is_axon = r["kind"] == RouteKind.AXON.value
        self._first_bad(used_r & is_axon & (r["target"] >= g.n_axons), "target", r["target"],
                        "routes", f"< n_axons={g.n_axons} for an AXON route")
        self._first_bad(used_r & ~is_axon & (r["target"] >= g.n_outputs), "target", r["target"],
                        "routes", f"< n_outputs={g.n_outputs} for an OUTPUT route")
        if g.n_cores > 1:
            self._first_bad(used_r & is_axon & (r["core"] >= g.n_cores), "core", r["core"],
                            "routes", f"< n_cores={g.n_cores} for an AXON route")
        return self

    def _check_shape(self, mem: Memory):
        if mem.name not in self.mem:
            raise ConfigError(f"config has no memory {mem.name!r}")
        for f, _ in mem.layout:
            a = self.mem[mem.name].get(f)
            if a is None:
                raise ConfigError(f"memory {mem.name} has no field {f!r}")
            if np.shape(a) != (mem.depth,):
                raise ConfigError(f"{mem.name}.{f} has shape {np.shape(a)}, geometry "
                                  f"{self.geometry.name!r} needs ({mem.depth},)")

    @staticmethod
    def _first_bad(bad, fieldname, values, memname, want):
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise ConfigError(f"{fieldname} {int(values[i])} of {memname}[{i}] must be {want}")

    def _check_lists(self, memname, table, depth, target_mem, max_len):
        end = table["base"] + table["length"]
        bad = (table["length"] > 0) & (end > depth)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ConfigError(f"{memname}[{i}] list {target_mem}[{table['base'][i]}:{end[i]}] "
                              f"runs past the {depth} words of {target_mem}")
        self._first_bad(table["length"] > max_len, "length", table["length"], memname,
                        f"<= {max_len}")

    @staticmethod
    def _used(table, depth) -> np.ndarray:
        """Mark words that some list (base, length) covers."""
        delta = np.zeros(depth + 1, dtype=np.int64)
        nz = table["length"] > 0
        np.add.at(delta, table["base"][nz], 1)
        np.add.at(delta, (table["base"] + table["length"])[nz], -1)
        return np.cumsum(delta[:-1]) > 0

    # ---- views used by the simulators ----------------------------------------------
    def kernel_words_mask(self) -> np.ndarray:
        """Mark the synapse words that some used conv descriptor reads as a kernel word."""
        used = np.zeros(self.geometry.n_synapses, dtype=bool)
        for c in conv_connections(self):
            used[c.kernel_base:c.kernel_base + c.kernel_words] = True
        return used

    def synapse_list(self, conv: bool = True) -> Synapses:
        """Return every live synapse, expanded per axon (a word shared by lists counts twice).

        With ``conv`` (the default) the conv descriptors' (axon, target) pairs follow the dense
        lists (spec §3.5; ``address`` is then the kernel word): the network as synapse lists,
        for the Lava harness and exporters.  The golden model takes ``conv=False`` and runs the
        descriptors directly.
        """
        g = self.geometry
        sm, syn = self.mem["synapse_map"], self.mem["synapses"]
        lengths = sm["length"]
        axon = np.repeat(np.arange(g.n_axons), lengths)
        starts = np.repeat(sm["base"], lengths)
        offs = np.arange(axon.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        addr = starts + offs
        target = syn["target"][addr]
        if conv:
            c_axon, c_target, c_addr = expand(self)
            axon = np.concatenate([axon, c_axon])
            addr = np.concatenate([addr, c_addr])
            target = np.concatenate([target, c_target])
        w = effective_weight(syn["weight"][addr], syn["sign_mode"][addr], g)
        return Synapses(axon=axon, target=target, weight=w,
                        weight_exp=syn["weight_exp"][addr], delay=syn["delay"][addr],
                        sign_mode=syn["sign_mode"][addr], address=addr)

    def route_list(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every live route as arrays (compartment, kind, target, core), in route-list order;
        ``core`` is 0 on a single core (its route words have no core field)."""
        g = self.geometry
        am, r = self.mem["axon_map"], self.mem["routes"]
        lengths = am["length"]
        cx = np.repeat(np.arange(g.n_compartments), lengths)
        addr = np.repeat(am["base"], lengths) + (
            np.arange(cx.size) - np.repeat(np.cumsum(lengths) - lengths, lengths))
        core = r["core"][addr] if g.n_cores > 1 else np.zeros(cx.size, dtype=np.int64)
        return cx, r["kind"][addr], r["target"][addr], core

    def route_matrices(self, sparse: bool = False):
        """Return (R, O): route counts compartment→axon and compartment→output.

        Dense ``int64`` arrays, or ``scipy.sparse`` CSR matrices with ``sparse=True``.  Only
        for a single core: a chip core's AXON routes name other cores (use
        :meth:`route_list`, or :class:`~neurocore.golden.chip.GoldenChip`).
        """
        g = self.geometry
        if g.n_cores > 1:
            raise ConfigError(f"geometry {g.name!r} is a core of a {g.n_cores}-core chip: its "
                              "routes name cores; run it in GoldenChip, not alone")
        cx, kind, target, _ = self.route_list()
        ax = kind == RouteKind.AXON.value
        ones = np.ones(cx.size, dtype=np.int64)
        R = scipy.sparse.csr_matrix((ones[ax], (cx[ax], target[ax])),
                                    shape=(g.n_compartments, g.n_axons), dtype=np.int64)
        O = scipy.sparse.csr_matrix((ones[~ax], (cx[~ax], target[~ax])),
                                    shape=(g.n_compartments, g.n_outputs), dtype=np.int64)
        if sparse:
            return R, O
        return R.toarray(), O.toarray()

    def compartment_params(self) -> dict[str, np.ndarray]:
        """Return per-compartment du_eff, dv, vth (unshifted), bias mantissa/exponent, profile
        and periodic reset (interval, offset; 0, 0 on a core without reset, spec §11)."""
        cx, pr = self.mem["compartments"], self.mem["profiles"]
        p = cx["profile"]
        none = np.zeros(p.size, dtype=np.int64)
        return {
            "reset_interval": pr["reset_interval"][p] if "reset_interval" in pr else none,
            "reset_offset": pr["reset_offset"][p] if "reset_offset" in pr else none.copy(),
            "du_eff": pr["du"][p] + pr["du_offset"][p],
            "dv": pr["dv"][p],
            "vth": pr["vth"][p],
            "bias_mant": cx["bias_mant"].copy(),
            "bias_exp": cx["bias_exp"].copy(),
            "profile": p.copy(),
        }

    def summary(self) -> dict[str, int]:
        """Return how much of each memory the network uses (a quick fit report)."""
        g = self.geometry
        sm = self.mem["synapse_map"]
        has_conv = sm["conv"] > 0 if g.n_conv else np.zeros(g.n_axons, dtype=bool)
        return {
            "compartments_used": int(self._used_compartments().sum()),
            "synapses_used": int(self._used(sm, g.n_synapses).sum()),
            "kernel_words_used": int(self.kernel_words_mask().sum()),
            "conv_descriptors_used": len(conv_connections(self)),
            "routes_used": int(self._used(self.mem["axon_map"], g.n_routes).sum()),
            "axons_used": int(((sm["length"] > 0) | has_conv).sum()),
        }

    def expanded(self) -> "CoreConfig":
        """The same network with every conv descriptor written out as dense synapse lists, on
        a geometry with ``n_conv = 0`` and as many synapse words as that takes (for
        cross-checks: the golden model runs both, bit for bit equal)."""
        g = self.geometry
        s = self.synapse_list(conv=True)
        order = np.argsort(s.axon, kind="stable")
        counts = np.bincount(s.axon, minlength=g.n_axons)
        n_syn = max(1, int(counts.sum()))
        fan = max(1, int(counts.max(initial=0)))
        g2 = g.replace(name=f"{g.name}-expanded", n_conv=0, n_synapses=n_syn,
                       max_fanout=fan, k_s=1)
        out = CoreConfig.empty(g2)
        for name in ("compartments", "profiles", "axon_map", "routes"):
            out.mem[name] = {f: a.copy() for f, a in self.mem[name].items()}
        syn = self.mem["synapses"]
        addr = s.address[order]
        for f in ("weight", "weight_exp", "delay", "sign_mode"):
            out.mem["synapses"][f][:addr.size] = syn[f][addr]
        out.mem["synapses"]["target"][:addr.size] = s.target[order]
        out.mem["synapse_map"]["length"][:] = counts
        out.mem["synapse_map"]["base"][:] = np.where(counts > 0, np.cumsum(counts) - counts, 0)
        return out.validate()

    def synapse_words_end(self) -> int:
        """One past the highest synapse word a dense list or a conv kernel uses (0: none)."""
        used = self._used(self.mem["synapse_map"], self.geometry.n_synapses)
        used |= self.kernel_words_mask()
        idx = np.flatnonzero(used)
        return int(idx[-1]) + 1 if idx.size else 0

    def n_active(self) -> int:
        """Compartments the core must sweep (spec §2.5): one past the highest compartment that
        is a synapse target, has routes or has a non-zero bias.  Every compartment above it
        has no input and no bias, so from the cleared state it never changes."""
        idx = np.flatnonzero(self.live_compartments())
        return int(idx[-1]) + 1 if idx.size else 0

    def live_compartments(self) -> np.ndarray:
        """Mark the compartments that can ever change or act: a synapse (or conv) target, a
        route owner or a non-zero bias.  Every other one stays at rest and never spikes."""
        return self._used_compartments() | (self.mem["compartments"]["bias_mant"] != 0)

    def _used_compartments(self) -> np.ndarray:
        s = self.synapse_list()
        used = np.zeros(self.geometry.n_compartments, dtype=bool)
        used[s.target] = True
        used |= self.mem["axon_map"]["length"] > 0
        return used


def _int_values(name: str, value) -> np.ndarray:
    """``value`` as an int64 array, or :class:`ConfigError` naming ``name``: floats must be
    whole numbers (no truncation), and bools, strings, NaN and inf are rejected."""
    arr = np.asarray(value)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or np.issubdtype(arr.dtype, np.floating)):
        raise ConfigError(f"{name} must be integers, not {value!r:.60}")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (np.abs(arr) >= 2.0 ** 62)
        if bad.any():
            raise ConfigError(f"{name} must be integers, not {arr[bad].ravel()[0]!r}")
    elif arr.dtype == np.uint64 and (arr > np.iinfo(np.int64).max).any():
        raise ConfigError(f"{name} value {arr.max()} is too large")
    return arr.astype(np.int64)


def _int_value(name: str, value) -> int:
    """One integer (see :func:`_int_values`)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    arr = _int_values(name, value)
    if arr.ndim != 0:
        raise ConfigError(f"{name} must be one integer, not an array of shape {arr.shape}")
    return int(arr)


class NetworkBuilder:
    """Lay out a network on one core: profiles, compartments, synapse lists and routes.

    Weights are given as signed integers; the sign mode is chosen per synapse
    (EXCITATORY for w ≥ 0, INHIBITORY for w < 0) unless ``sign_mode`` names one.
    Lists are laid out contiguously at :meth:`build`.
    """

    def __init__(self, geometry: CoreGeometry):
        self.geometry = geometry
        self._profiles: list[dict[str, int]] = []
        self._cx: list[tuple[int, int, int]] = []       # (profile, bias_mant, bias_exp)
        self._syn: dict[int, list[tuple[int, int, int, int, int]]] = defaultdict(list)
        self._routes: dict[int, list[tuple[int, int]]] = defaultdict(list)
        #: conv descriptors: (descriptor fields, kernel word fields) in add order
        self._conv: list[tuple[dict, dict]] = []
        self._conv_of_axon: dict[int, tuple[int, int, int, int]] = {}

    @property
    def n_compartments(self) -> int:
        return len(self._cx)

    def add_profile(self, *, vth: int, du: int = 0, dv: int = 0, du_offset: int = 1,
                    reset_interval: int = 0, reset_offset: int = 0) -> int:
        """Add a profile; return its index.  Current decay is ``du + du_offset`` (of 4096).
        ``reset_interval > 0`` resets u and v before the update of every step ``t`` with
        ``(t − reset_offset) mod reset_interval = 0`` (spec §11; needs ``reset_bits > 0``)."""
        g = self.geometry
        if len(self._profiles) >= g.n_profiles:
            raise ConfigError(f"profile {len(self._profiles)} exceeds n_profiles="
                              f"{g.n_profiles}")
        fields = dict(du=du, dv=dv, du_offset=du_offset, vth=vth)
        reset = dict(reset_interval=_int_value("reset_interval", reset_interval),
                     reset_offset=_int_value("reset_offset", reset_offset))
        if g.reset_bits:
            fields.update(reset)
        elif reset["reset_interval"] or reset["reset_offset"]:
            raise ConfigError(f"profile {len(self._profiles)}: reset_interval "
                              f"{reset['reset_interval']} and reset_offset "
                              f"{reset['reset_offset']} need a geometry with reset_bits > 0; "
                              f"geometry {g.name!r} has none")
        self._profiles.append({k: _int_value(k, v) for k, v in fields.items()})
        return len(self._profiles) - 1

    def add_compartments(self, n: int, *, profile: int, bias_mant=0, bias_exp=0) -> np.ndarray:
        """Add ``n`` compartments; return their indices.  Bias is ``bias_mant << bias_exp``."""
        n, profile = _int_value("n", n), _int_value("profile", profile)
        if n < 0:
            raise ConfigError(f"cannot add {n} compartments")
        if not 0 <= profile < len(self._profiles):
            raise ConfigError(f"profile {profile} has not been added "
                              f"({len(self._profiles)} profiles so far)")
        start = len(self._cx)
        if start + n > self.geometry.n_compartments:
            raise ConfigError(f"{start + n} compartments exceed n_compartments="
                              f"{self.geometry.n_compartments}")
        bm = self._broadcast("bias_mant", bias_mant, (n,))
        be = self._broadcast("bias_exp", bias_exp, (n,))
        for i in range(n):
            self._cx.append((profile, int(bm[i]), int(be[i])))
        return np.arange(start, start + n)

    def connect(self, axon: int, targets: Iterable[int], weights, *, weight_exp=0, delay=0,
                sign_mode=None) -> None:
        """Append synapses ``axon → targets`` to the axon's list.

        ``weights``, ``weight_exp``, ``delay`` and ``sign_mode`` broadcast against ``targets``.
        """
        g = self.geometry
        axon = _int_value("axon", axon)
        if not 0 <= axon < g.n_axons:
            raise ConfigError(f"axon {axon} is out of range 0..{g.n_axons - 1}")
        t = np.atleast_1d(_int_values("targets", targets))
        self._check_created(f"synapse target of axon {axon}", t)
        w = self._broadcast("weights", weights, t.shape)
        e = self._broadcast("weight_exp", weight_exp, t.shape)
        d = self._broadcast("delay", delay, t.shape)
        if sign_mode is None:
            sm = np.where(w < 0, SignMode.INHIBITORY.value, SignMode.EXCITATORY.value)
        else:
            val = sign_mode.value if isinstance(sign_mode, SignMode) else sign_mode
            sm = self._broadcast("sign_mode", val, t.shape)
        try:
            m = weight_mantissa(w, sm, g)
        except ValueError as err:
            raise ConfigError(f"axon {axon}: {err}") from None
        lst = self._syn[axon]
        for i in range(t.size):
            lst.append((int(t[i]), int(m[i]), int(e[i]), int(d[i]), int(sm[i])))

    def add_conv(self, axons, outputs, kernel, *, stride: int = 1, padding: int = 0,
                 weight_exp=0, delay=0, depthwise: bool = False, sign_mode=None) -> int:
        """Connect an input map to an output group through one kernel stored once (spec §3.5).

        ``axons``: axon ids of shape (C_in, H, W); ``outputs``: compartment ids of shape
        (C_out, H', W'), consecutive in that order; ``kernel``: integer weights of shape
        (C_out, C_in, kH, kW) as in ``torch.nn.Conv2d`` — (C, 1, kH, kW) with ``depthwise``.
        ``weight_exp``, ``delay`` and ``sign_mode`` (as in :meth:`connect`) broadcast against
        the kernel.  Output ``(co, y, x)``
        receives ``Σ kernel[co, ci, ky, kx] · in[ci, y·stride + ky − padding, x·stride + kx −
        padding]`` (zero outside the map).  Returns the descriptor index.
        """
        ax = np.asarray(_int_values("axons", axons))
        k = np.asarray(_int_values("kernel", kernel))
        if ax.ndim != 3 or k.ndim != 4:
            raise ConfigError(f"add_conv needs axons of shape (C_in, H, W) and a kernel of shape "
                              f"(C_out, C_in, kH, kW), not {ax.shape} and {k.shape}")
        c_in = ax.shape[0]
        if depthwise and (k.shape[1] != 1 or k.shape[0] != c_in):
            raise ConfigError(f"a depthwise kernel has shape ({c_in}, 1, kH, kW) for {c_in} input "
                              f"channels, not {k.shape}")
        if not depthwise and k.shape[1] != c_in:
            raise ConfigError(f"kernel of shape {k.shape} takes {k.shape[1]} input channels, the "
                              f"axon map has {c_in}")
        kind = ConvKind.DEPTHWISE if depthwise else ConvKind.CONV
        coords = np.indices(ax.shape).reshape(3, -1)
        words = np.transpose(k, (1, 2, 3, 0))            # (c_k, ky, kx, co): co minor
        order = lambda a: np.transpose(  # noqa: E731 - like the kernel, co minor
            np.broadcast_to(_int_values("kernel field", a), k.shape), (1, 2, 3, 0))
        sm = None if sign_mode is None else order(getattr(sign_mode, "value", sign_mode))
        return self._add_descriptor(kind, ax.reshape(-1), coords, outputs, words, stride,
                                    padding, order(weight_exp), order(delay), k.shape[0], sm)

    def add_broadcast(self, axon: int, outputs, weights, *, weight_exp=0, delay=0,
                      sign_mode=None) -> int:
        """Connect one axon to every compartment of an output group (C_out, H', W'): output
        ``(co, y, x)`` receives ``Σ_p weights[co, p]`` (pieces ``p``, each one synapse word of
        mantissa and ``weight_exp``).  ``weights`` has shape (C_out,) or (C_out, P).  Returns
        the descriptor index."""
        w = np.asarray(_int_values("weights", weights))
        if w.ndim == 1:
            w = w[:, None]
        if w.ndim != 2:
            raise ConfigError(f"broadcast weights must have shape (C_out, pieces), not {w.shape}")
        pieces = w.shape[1]
        width = min(pieces, (1 << CONV_KERNEL_BITS) - 1)
        rows = -(-pieces // width)
        e = np.broadcast_to(_int_values("weight_exp", weight_exp), w.shape)
        d = np.broadcast_to(_int_values("delay", delay), w.shape)
        sm = np.where(w < 0, SignMode.INHIBITORY.value, SignMode.EXCITATORY.value)
        if sign_mode is not None:
            sm = np.broadcast_to(_int_values("sign_mode", getattr(sign_mode, "value", sign_mode)),
                                 w.shape)
        pad = rows * width - pieces
        w, e, d = (np.pad(a, ((0, 0), (0, pad))) for a in (w, e, d))
        sm = np.pad(sm, ((0, 0), (0, pad)), constant_values=SignMode.EXCITATORY.value)
        as_kernel = lambda a: a.T.reshape(1, rows, width, -1)    # noqa: E731 - (1, kh, kw, co)
        coords = np.zeros((3, 1), dtype=np.int64)
        return self._add_descriptor(ConvKind.BROADCAST, np.array([_int_value("axon", axon)]),
                                    coords, outputs, as_kernel(w), 1, 0, as_kernel(e),
                                    as_kernel(d), w.shape[0], as_kernel(sm))

    def _add_descriptor(self, kind, axons, coords, outputs, words, stride, padding, weight_exp,
                        delay, out_c, sign_mode=None) -> int:
        g = self.geometry
        where = f"conv descriptor {len(self._conv)}"
        if len(self._conv) >= g.n_conv:
            raise ConfigError(f"{where} exceeds n_conv={g.n_conv} of geometry {g.name!r}")
        out = np.asarray(_int_values("outputs", outputs))
        if out.ndim != 3 or out.shape[0] != out_c:
            raise ConfigError(f"{where}: outputs must have shape ({out_c}, H', W'), not "
                              f"{out.shape}")
        self._check_created(f"{where} output", out.reshape(-1))
        if not np.array_equal(out.reshape(-1), out.flat[0] + np.arange(out.size)):
            raise ConfigError(f"{where}: output compartments must be consecutive in (C, H, W) "
                              "order")
        stride, padding = _int_value("stride", stride), _int_value("padding", padding)
        shift = stride.bit_length() - 1
        if stride < 1 or stride != 1 << shift or shift >= 1 << CONV_STRIDE_SHIFT_BITS:
            raise ConfigError(f"{where}: stride {stride} is not one of "
                              f"{[1 << i for i in range(1 << CONV_STRIDE_SHIFT_BITS)]}")
        if not 0 <= padding < 1 << CONV_PAD_BITS:
            raise ConfigError(f"{where}: padding {padding} is outside 0..{(1 << CONV_PAD_BITS) - 1}")
        kh, kw = words.shape[1:3]
        c_bits, s_bits = g.conv_coord_bits
        limits = {"out_c": (out.shape[0], c_bits), "out_h": (out.shape[1], s_bits),
                  "out_w": (out.shape[2], s_bits), "kernel_h": (kh, CONV_KERNEL_BITS),
                  "kernel_w": (kw, CONV_KERNEL_BITS),
                  "input channels": (int(coords[0].max(initial=0)) + 1, c_bits),
                  "input height": (int(coords[1].max(initial=0)) + 1, s_bits),
                  "input width": (int(coords[2].max(initial=0)) + 1, s_bits)}
        for name, (value, bits) in limits.items():
            if value > (1 << bits) - 1:
                raise ConfigError(f"{where}: {name} {value} exceeds {(1 << bits) - 1} "
                                  f"({bits}-bit field of geometry {g.name!r})")
        for a in axons.tolist():
            if not 0 <= a < g.n_axons:
                raise ConfigError(f"{where}: axon {a} is out of range 0..{g.n_axons - 1}")
            if a in self._conv_of_axon:
                raise ConfigError(f"{where}: axon {a} already scatters through conv descriptor "
                                  f"{self._conv_of_axon[a][0]} (one descriptor per axon)")
        w = words.reshape(-1)
        e = np.broadcast_to(_int_values("weight_exp", weight_exp), words.shape).reshape(-1)
        d = np.broadcast_to(_int_values("delay", delay), words.shape).reshape(-1)
        sm = (np.where(w < 0, SignMode.INHIBITORY.value, SignMode.EXCITATORY.value)
              if sign_mode is None else np.asarray(sign_mode).reshape(-1))
        try:
            m = weight_mantissa(w, sm, g)
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
        index = len(self._conv)
        for j, a in enumerate(axons.tolist()):
            self._conv_of_axon[a] = (index, int(coords[0, j]), int(coords[1, j]),
                                     int(coords[2, j]))
        desc = dict(out_base=int(out.flat[0]), out_c=out.shape[0], out_h=out.shape[1],
                    out_w=out.shape[2], kernel_h=kh, kernel_w=kw, pad=padding,
                    stride_shift=shift, kind=kind.value)
        self._conv.append((desc, dict(weight=m, weight_exp=e.copy(), delay=d.copy(),
                                      sign_mode=sm, target=np.zeros_like(m))))
        return index

    def route_to_axon(self, compartments, axons) -> None:
        """Send each compartment's spikes back into this core on the given axon(s).

        ``compartments`` and ``axons`` broadcast: one compartment may route to many axons.
        """
        self._add_routes(compartments, axons, RouteKind.AXON)

    def route_to_output(self, compartments, outputs) -> None:
        """Send each compartment's spikes out of the core with the given output id(s)."""
        self._add_routes(compartments, outputs, RouteKind.OUTPUT)

    def _add_routes(self, compartments, targets, kind: RouteKind):
        c = np.atleast_1d(_int_values("compartments", compartments))
        t = np.atleast_1d(_int_values(f"{kind.name.lower()} route targets", targets))
        try:
            c, t = np.broadcast_arrays(c, t)
        except ValueError:
            raise ConfigError(f"{c.size} compartments and {t.size} route targets do not "
                              "broadcast") from None
        for ci, ti in zip(c, t):
            if not 0 <= ci < self.geometry.n_compartments:
                raise ConfigError(f"compartment {ci} is out of range")
            self._check_created(f"{kind.name} route", ci)
            self._routes[int(ci)].append((kind.value, int(ti)))

    def _check_created(self, what: str, ids: np.ndarray) -> None:
        """Compartments must exist (:meth:`add_compartments`) before synapses or routes use
        them; otherwise they would silently run with profile 0."""
        ids = np.atleast_1d(ids)
        bad = (ids < 0) | (ids >= len(self._cx))
        if bad.any():
            raise ConfigError(f"{what}: compartment {int(ids[bad][0])} was not added with "
                              f"add_compartments ({len(self._cx)} so far)")

    @staticmethod
    def _broadcast(name: str, value, shape) -> np.ndarray:
        arr = _int_values(name, value)
        try:
            return np.broadcast_to(arr, shape)
        except ValueError:
            raise ConfigError(f"{name} of shape {arr.shape} does not broadcast to "
                              f"{shape}") from None

    def build(self) -> CoreConfig:
        """Lay out all lists and return the validated :class:`CoreConfig`."""
        g = self.geometry
        cfg = CoreConfig.empty(g)
        m = cfg.mem
        for i, p in enumerate(self._profiles):
            for k, v in p.items():
                m["profiles"][k][i] = v
        for i, (p, bm, be) in enumerate(self._cx):
            m["compartments"]["profile"][i] = p
            m["compartments"]["bias_mant"][i] = bm
            m["compartments"]["bias_exp"][i] = be
        addr = 0
        for axon in sorted(self._syn):
            lst = self._syn[axon]
            if addr + len(lst) > g.n_synapses:
                raise ConfigError(f"synapse lists need more than n_synapses={g.n_synapses} "
                                  f"words (axon {axon} ends at {addr + len(lst)})")
            m["synapse_map"]["base"][axon] = addr
            m["synapse_map"]["length"][axon] = len(lst)
            arr = np.array(lst, dtype=np.int64).reshape(-1, 5)
            for j, f in enumerate(("target", "weight", "weight_exp", "delay", "sign_mode")):
                m["synapses"][f][addr:addr + len(lst)] = arr[:, j]
            addr += len(lst)
        for index, (desc, kernel) in enumerate(self._conv):
            n = kernel["weight"].size
            if addr + n > g.n_synapses:
                raise ConfigError(f"synapse lists and conv kernels need more than n_synapses="
                                  f"{g.n_synapses} words (conv descriptor {index} ends at "
                                  f"{addr + n})")
            for f, values in kernel.items():
                m["synapses"][f][addr:addr + n] = values
            for f, value in dict(desc, kernel_base=addr).items():
                m["conv"][f][index] = value
            addr += n
        for a, (index, ci, iy, ix) in self._conv_of_axon.items():
            for f, value in (("conv", index + 1), ("ci", ci), ("iy", iy), ("ix", ix)):
                m["synapse_map"][f][a] = value
        addr = 0
        for cx in sorted(self._routes):
            lst = self._routes[cx]
            if addr + len(lst) > g.n_routes:
                raise ConfigError(f"route lists need more than n_routes={g.n_routes} words")
            m["axon_map"]["base"][cx] = addr
            m["axon_map"]["length"][cx] = len(lst)
            arr = np.array(lst, dtype=np.int64).reshape(-1, 2)
            m["routes"]["kind"][addr:addr + len(lst)] = arr[:, 0]
            m["routes"]["target"][addr:addr + len(lst)] = arr[:, 1]
            addr += len(lst)
        return cfg.validate()
