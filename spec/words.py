"""Bit layouts of every memory word of the neurocore, defined once.

Each word is an :class:`amaranth.lib.data.StructLayout` built from a
:class:`~neurocore.spec.geometry.CoreGeometry`.  The RTL uses these layouts as the shapes of
its memories and ports; the golden model and the image packer use :func:`pack` and
:func:`unpack`, which read field offsets and widths from the same layout objects.  A field's
width therefore changes in exactly one place (the geometry), and docs/spec.md §4 is generated
from here (:func:`markdown_tables`).

Fields are listed LSB first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

from .geometry import ConfigError, CoreGeometry

__all__ = [
    "SignMode", "RouteKind", "ConvKind", "Memory", "memories", "pack", "unpack",
    "FieldRangeError", "markdown_tables", "conv_layout", "CONV_KERNEL_BITS", "CONV_PAD_BITS",
    "CONV_STRIDE_SHIFT_BITS", "WORD_LIMIT_BITS", "flit_layout", "spare_reset_bits",
]

#: Width of a conv descriptor's ``kernel_h``/``kernel_w`` (kernels up to 15 × 15).
CONV_KERNEL_BITS = 4
#: Width of a conv descriptor's zero ``pad`` (same on all four sides, up to 7).
CONV_PAD_BITS = 3
#: Width of a conv descriptor's ``stride_shift``: strides 1, 2, 4, 8.
CONV_STRIDE_SHIFT_BITS = 2
#: Every memory word is at most this wide (the configuration port and the image packer).
WORD_LIMIT_BITS = 64


class SignMode(enum.Enum, shape=2):
    """How a synapse's 8-bit ``weight`` field is read (numbering as Lava's ``SignMode``)."""

    #: Signed 8-bit mantissa m, weight = 2·m (even values -256..254; Lava's MIXED).
    MIXED = 1
    #: Unsigned mantissa m, weight = +m (0..255).
    EXCITATORY = 2
    #: Unsigned mantissa m, weight = -m (-255..0).
    INHIBITORY = 3


class RouteKind(enum.Enum, shape=1):
    """Where a route (axon-config entry) sends a compartment's spike."""

    #: Into the synapse map of core ``core`` (this core when the geometry has one core), on
    #: axon ``target``.
    AXON = 0
    #: Out of the core, as an output event with id ``target``.
    OUTPUT = 1


class ConvKind(enum.Enum, shape=2):
    """How a conv descriptor scatters one input spike (docs/spec.md §3.5)."""

    #: Full convolution: input channel ``ci`` reaches every output channel.
    CONV = 0
    #: Depthwise: input channel ``ci`` reaches output channel ``ci`` only (``out_c`` = C_in).
    DEPTHWISE = 1
    #: Broadcast: the input (coordinates 0, 0, 0) reaches every output compartment, each
    #: through the ``kernel_h · kernel_w`` words of its channel.
    BROADCAST = 2


def _u(width):
    return unsigned(width)


def _s(width):
    return signed(width)


def synapse_layout(g: CoreGeometry) -> data.StructLayout:
    """One synapse (synapse memory word)."""
    return data.StructLayout({
        "target": _u(g.cx_bits),            # destination compartment
        "weight": _u(g.weight_bits),        # mantissa bit pattern, read per sign_mode
        "weight_exp": _u(g.weight_exp_bits),  # contribution = weight << weight_exp
        "delay": _u(g.delay_bits),          # integrated at step t + 1 + delay
        "sign_mode": SignMode,
    })


def synapse_map_layout(g: CoreGeometry) -> data.StructLayout:
    """Per input axon: its synapse list ``synapses[base : base + length]`` and, on a core with
    conv descriptors, the descriptor it also scatters through and its input coordinates."""
    fields = {
        "base": _u(g.synapse_addr_bits),
        "length": _u(g.fanout_bits),
    }
    if g.n_conv:  # a core without conv memory has no conv fields
        c_bits, s_bits = g.conv_coord_bits
        fields.update({
            "conv": _u(g.conv_bits),        # 0: none, d + 1: also scatter through descriptor d
            "ci": _u(c_bits),               # the axon's input coordinates for that descriptor
            "iy": _u(s_bits),
            "ix": _u(s_bits),
        })
    return data.StructLayout(fields)


def conv_layout(g: CoreGeometry) -> data.StructLayout:
    """One conv descriptor: an output compartment group and a kernel stored once."""
    return data.StructLayout({
        "out_base": _u(g.cx_bits),          # compartment of output (0, 0, 0)
        "kernel_base": _u(g.synapse_addr_bits),  # synapse word of kernel index 0
        "out_c": _u(g.conv_channel_bits),   # output group shape (out_c, out_h, out_w)
        "out_h": _u(g.conv_side_bits),
        "out_w": _u(g.conv_side_bits),
        "kernel_h": _u(CONV_KERNEL_BITS),
        "kernel_w": _u(CONV_KERNEL_BITS),
        "pad": _u(CONV_PAD_BITS),           # zero padding, all four sides
        "stride_shift": _u(CONV_STRIDE_SHIFT_BITS),  # stride = 1 << stride_shift, both axes
        "kind": ConvKind,
    })


def axon_map_layout(g: CoreGeometry) -> data.StructLayout:
    """Per compartment: its route list ``routes[base : base + length]``."""
    return data.StructLayout({
        "base": _u(g.route_addr_bits),
        "length": _u(g.route_len_bits),
    })


def route_layout(g: CoreGeometry) -> data.StructLayout:
    """One destination of a compartment's spike (axon-config word); on a chip core
    (``n_cores > 1``) an AXON route also names the destination core (spec §10)."""
    fields = {
        "target": _u(g.route_target_bits),
        "kind": RouteKind,
    }
    if g.n_cores > 1:  # a single core has no core field: AXON means this core
        fields["core"] = _u(g.core_bits)
    return data.StructLayout(fields)


def flit_layout(g: CoreGeometry) -> data.StructLayout:
    """A flit on a chip (spec §10): one spike through one route word to axon ``axon`` of core
    ``core`` (``n_cores > 1``)."""
    return data.StructLayout({"axon": _u(g.axon_bits), "core": _u(g.core_bits)})


def compartment_layout(g: CoreGeometry) -> data.StructLayout:
    """Per-compartment configuration: bias and profile index."""
    return data.StructLayout({
        "bias_mant": _s(g.bias_mant_bits),
        "bias_exp": _u(g.bias_exp_bits),
        "profile": _u(g.profile_bits),
    })


def profile_layout(g: CoreGeometry, *, reset: bool = True) -> data.StructLayout:
    """Compartment profile, shared by many compartments; on a core with ``reset_bits > 0``
    also its periodic reset (spec §11): u = v = 0 before the update of every step ``t`` with
    ``reset_interval > 0`` and ``(t − reset_offset) mod reset_interval = 0``.  ``reset=False``:
    the decay and threshold fields only (the same offsets; the RTL lanes' profile copies)."""
    fields = {
        "du": _u(g.decay_bits),
        "dv": _u(g.decay_bits),
        "du_offset": _u(1),                 # effective current decay = du + du_offset
        "vth": _u(g.vth_bits),              # threshold = vth << vth_shift
    }
    if g.reset_bits and reset:  # a core without periodic reset has no reset fields
        fields.update({
            "reset_interval": _u(g.reset_bits),  # 0: never reset
            "reset_offset": _u(g.reset_bits),    # < reset_interval
        })
    return data.StructLayout(fields)


def spare_reset_bits(g: CoreGeometry) -> int:
    """The widest reset fields (two of them, spec §11) the profile word of ``g`` has room for
    within :data:`WORD_LIMIT_BITS`, next to its other fields."""
    return (WORD_LIMIT_BITS - profile_layout(g.replace(reset_bits=0)).size) // 2


def state_layout(g: CoreGeometry) -> data.StructLayout:
    """Per-compartment dynamic state.

    ``u`` is stored as a ``state_bits`` pattern whose value range is
    ``(-2**(state_bits-1), 2**(state_bits-1)]``: the pattern ``100…0`` means ``+2**(state_bits-1)``
    (Lava's wrap convention, docs/spec.md §2.3).  ``v`` is plain two's complement.
    """
    return data.StructLayout({
        "u": _u(g.state_bits),
        "v": _s(g.state_bits),
    })


def accumulator_layout(g: CoreGeometry) -> data.StructLayout:
    """One dendritic accumulator entry (per compartment and delay slot); wraps."""
    return data.StructLayout({
        "acc": _s(g.acc_bits),
    })


@dataclass(frozen=True)
class Memory:
    """A memory of the core: its name, word layout and depth (entries)."""

    name: str
    layout: data.StructLayout
    depth: int
    doc: str


def memories(g: CoreGeometry) -> dict[str, Memory]:
    """Return every memory of a core with geometry ``g``, keyed by name."""
    mems = [
        Memory("synapse_map", synapse_map_layout(g), g.n_axons,
               "per input axon: where its synapse list starts and how long it is"),
        Memory("synapses", synapse_layout(g), g.n_synapses, "synapse lists, one synapse per word"),
        Memory("compartments", compartment_layout(g), g.n_compartments,
               "per compartment: bias and profile index"),
        Memory("profiles", profile_layout(g), g.n_profiles, "shared decay/threshold profiles"),
        Memory("axon_map", axon_map_layout(g), g.n_compartments,
               "per compartment: where its route list starts and how long it is"),
        Memory("routes", route_layout(g), g.n_routes,
               "route list entries: axon of this core (or of core `core` on a chip), or output "
               "port"),
        Memory("state", state_layout(g), g.n_compartments, "per compartment: current u, voltage v"),
        Memory("accumulators", accumulator_layout(g), g.n_compartments * g.n_delay_slots,
               "dendritic accumulators, entry (slot * n_compartments + compartment)"),
    ]
    if g.n_conv:
        mems.append(Memory("conv", conv_layout(g), g.n_conv,
                           "conv descriptors: output group, kernel base, shape, stride, pad"))
    for m in mems:
        if m.layout.size > WORD_LIMIT_BITS:
            raise ConfigError(f"geometry {g.name!r}: a {m.name} word needs {m.layout.size} bits, "
                              f"more than {WORD_LIMIT_BITS}; narrow its fields")
    return {m.name: m for m in mems}


class FieldRangeError(ValueError):
    """A value does not fit its field; the message names value, field, memory and entry."""


def _field_bounds(shape) -> tuple[int, int, bool]:
    """Return (lo, hi, signed) of a field shape (an Amaranth shape or enum)."""
    s = shape.as_shape() if hasattr(shape, "as_shape") else shape
    if isinstance(s, type) and issubclass(s, enum.Enum):  # pragma: no cover - as_shape handles
        s = s.as_shape()
    if s.signed:
        return -(1 << (s.width - 1)), (1 << (s.width - 1)) - 1, True
    return 0, (1 << s.width) - 1, False


def _fields(layout: data.StructLayout):
    for name, field in layout:
        shape = field.shape
        width = (shape.as_shape() if hasattr(shape, "as_shape") else shape).width
        yield name, field.offset, width, shape


def pack(layout: data.StructLayout, fields: Mapping[str, np.ndarray], *, memory: str = "word",
         ) -> np.ndarray:
    """Pack per-field integer arrays into words (``uint64``) following ``layout``.

    Every field of the layout must be given; values are checked against the field's range and
    a :class:`FieldRangeError` names the first bad value, e.g. ``"weight 300 of synapses[17]
    does not fit unsigned(8)"``.  Enum fields take the enum's integer values.
    """
    if layout.size > WORD_LIMIT_BITS:
        raise ValueError(f"{memory}: layout of {layout.size} bits does not fit a "
                         f"{WORD_LIMIT_BITS}-bit word")
    missing = [n for n, *_ in _fields(layout) if n not in fields]
    extra = sorted(set(fields) - {n for n, *_ in _fields(layout)})
    if missing or extra:
        raise KeyError(f"{memory}: missing fields {missing}, unknown fields {extra}")
    n = None
    words = None
    for name, offset, width, shape in _fields(layout):
        values = np.asarray(fields[name], dtype=np.int64)
        if n is None:
            n = values.shape
            words = np.zeros(n, dtype=np.uint64)
        elif values.shape != n:
            raise ValueError(f"{memory}: field {name} has shape {values.shape}, expected {n}")
        # Enum fields are range-checked by width only: unused words may hold any pattern;
        # CoreConfig.validate checks the enum values of the words that are in use.
        lo, hi, _ = _field_bounds(shape)
        bad = (values < lo) | (values > hi)
        what = f"{'signed' if lo < 0 else 'unsigned'}({width})"
        if bad.any():
            idx = np.unravel_index(int(np.flatnonzero(bad.ravel())[0]), bad.shape)
            idx_s = ",".join(str(int(i)) for i in idx)
            raise FieldRangeError(
                f"{name} {int(values[idx])} of {memory}[{idx_s}] does not fit {what}")
        mask = np.uint64((1 << width) - 1)
        words |= (values.astype(np.uint64) & mask) << np.uint64(offset)
    return words


def unpack(layout: data.StructLayout, words: np.ndarray) -> dict[str, np.ndarray]:
    """Unpack ``uint64`` words into per-field ``int64`` arrays (signed fields sign-extended)."""
    words = np.asarray(words, dtype=np.uint64)
    out = {}
    for name, offset, width, shape in _fields(layout):
        raw = ((words >> np.uint64(offset)) & np.uint64((1 << width) - 1)).astype(np.int64)
        _, _, is_signed = _field_bounds(shape)
        if is_signed:
            raw = np.where(raw >= (1 << (width - 1)), raw - (1 << width), raw)
        out[name] = raw
    return out


def markdown_tables(g: CoreGeometry, only: tuple[str, ...] | None = None,
                    title: str = "") -> str:
    """Render one bit-field table per memory (for docs/spec.md); ``only``: these memories;
    ``title``: a suffix for each heading (e.g. the chip the core belongs to)."""
    lines = []
    for mem in memories(g).values():
        if only is not None and mem.name not in only:
            continue
        lines.append(f"#### `{mem.name}`{title}: {mem.depth} × {mem.layout.size} bits — "
                     f"{mem.doc}\n")
        lines.append("| bits | field | shape |")
        lines.append("|---|---|---|")
        for name, offset, width, shape in _fields(mem.layout):
            bits = f"{offset}" if width == 1 else f"{offset + width - 1}:{offset}"
            if isinstance(shape, type) and issubclass(shape, enum.Enum):
                kind = shape.__name__ + " (" + ", ".join(f"{m.name}={m.value}" for m in shape) + ")"
            else:
                kind = f"{'signed' if shape.signed else 'unsigned'}({width})"
            lines.append(f"| {bits} | `{name}` | {kind} |")
        lines.append("")
    return "\n".join(lines)
