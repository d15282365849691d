"""Map a Quartz network onto one neurocore (docs/quartz.md §2 states the mapping and its math).

Per weight layer ``l`` with scale ``S`` (an even integer: one unit of value is ``S`` accumulator
units) the core holds:

- one non-leaky IF compartment per neuron (``du = 0, du_offset = 0, dv = 0``) with threshold
  ``vth = S·T − S/2 − 1``, i.e. ``v ≥ S(T − ½)``: the Quartz threshold, which rounds half up;
- data synapses ``W = round(w·S)`` (8-bit magnitude, sign per synapse);
- a bias synapse ``B = round(b·S)`` from the layer's ONE clock, which spikes at layer time
  ``T − 1`` (value 1): the bias is the weight of a constant-1 input;
- counter-weight synapses of total ``C = S − ΣW − B`` from the layer's SYNC clock at readout
  time ``R = 2(T − 1)``, so every neuron's current is exactly ``S`` after ``R``;
- rectifier synapses from the layer's RECT clock at ``Q = 3(T − 1)``, large enough to force a
  spike in every neuron that has not fired (value 0);
- self-inhibition through the neuron's own axon, so it spikes exactly once.

Layer ``l``'s window starts at global step ``W_l``; a spike sent at ``t`` arrives at ``t + 1``,
so ``W_{l+1} = W_l + T (+1 per max-pool relay)``: the synaptic step replaces one step of the
reference's ``T − 1`` shift and the integer core reproduces the float time grid exactly.  With
no early spike the decoded output is ``max(0, floor((T−1)·Y/S + ½))/(T−1)`` for rectified layers,
``Y = Σ W x + B`` (:func:`integer_closed_form`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..golden.network import ConfigError, CoreConfig, NetworkBuilder
from ..golden.quartz import INPUT_MAX, INPUT_MIN, TimeGrid, encode
from ..spec.geometry import CoreGeometry
from ..spec.words import CONV_KERNEL_BITS, CONV_PAD_BITS, SignMode
from .layers import MaxPoolStage, WeightStage
from .pipeline import stream_schedule

__all__ = ["QuartzProgram", "LayerReport", "compile_stages", "split_amplitude", "round_up_to_piece",
           "integer_closed_form", "MappingError", "choose_scale", "host_clock_steps",
           "check_conv_stage"]


class MappingError(ValueError):
    """The network cannot be mapped; the message names the layer and the value."""


def _single_piece(mag: int, g: CoreGeometry):
    """Return ``(m, e)`` with ``m << e == mag``, ``e`` ∈ {0, max_exp}, or None.

    Only the two extreme exponents are used, so a network's synapses share few (sign, exponent)
    kinds (each kind is one connection process in Lava).
    """
    full = (1 << g.weight_bits) - 1
    e_max = (1 << g.weight_exp_bits) - 1
    if mag % (1 << e_max) == 0 and mag >> e_max <= full:
        return mag >> e_max, e_max
    if mag <= full:
        return mag, 0
    return None


def split_amplitude(value: int, g: CoreGeometry) -> list[tuple[int, int]]:
    """Split an integer into synapses ``(w, exp)`` with ``Σ w·2^exp == value`` exactly.

    Uses as few full ``(±255, max_exp)`` pieces as needed, then one piece if the remainder
    is ``m·2^e``, else ``(hi, max_exp)`` and ``(lo, 0)``; all pieces carry ``value``'s sign.
    """
    value = int(value)
    if value == 0:
        return []
    sign = 1 if value > 0 else -1
    mag = abs(value)
    e_max = (1 << g.weight_exp_bits) - 1
    full = ((1 << g.weight_bits) - 1) << e_max
    pieces = [(sign * ((1 << g.weight_bits) - 1), e_max)] * (mag // full)
    r = mag % full
    single = _single_piece(r, g) if r else None
    if single is not None:
        pieces.append((sign * single[0], single[1]))
    elif r:
        hi, lo = r >> e_max, r & ((1 << e_max) - 1)
        pieces += [(sign * hi, e_max), (sign * lo, 0)]
    return pieces


def round_up_to_piece(mag: int, g: CoreGeometry) -> int:
    """Return the least multiple of ``2^max_exp`` that is ≥ ``mag`` (≥ 0).

    For amounts that need only a lower bound (rectifier, self-inhibition): the result is
    stored as full ``(255, max_exp)`` pieces plus one ``(m, max_exp)``.
    """
    step = 1 << ((1 << g.weight_exp_bits) - 1)
    return -(-int(mag) // step) * step


def integer_closed_form(z: np.ndarray, scale: int, t_max: int, rectify: bool = True):
    """Decoded output of an integer-core neuron without early spike, as a multiple of 1/(T−1).

    ``z = Σ_i W_i k_i + (T−1)·B`` is the net input ``Y = Σ W x + B`` times ``T−1``, where the
    inputs ``x_i = k_i/(T−1)`` lie on the time grid; all integers.  The output is
    ``floor(z/S + ½)/(T−1)`` — round half up — clipped at 0 when rectified, computed exactly.
    """
    z = np.asarray(z, dtype=np.int64)
    k = np.floor_divide(2 * z + scale, 2 * scale)
    if rectify:
        k = np.maximum(k, 0)
    return k / (t_max - 1)


@dataclass(frozen=True)
class LayerReport:
    """What the mapping did to one stage (printed by the fit report)."""

    name: str
    kind: str
    neurons: int
    scale: int = 0
    vth: int = 0
    max_abs_weight: float = 0.0
    weights: int = 0
    weights_zeroed: int = 0
    weights_clipped: int = 0
    synapses: int = 0
    counter_synapses: int = 0
    bias_synapses: int = 0
    rect_synapses: int = 0
    inhibit_synapses: int = 0
    window_start: int = 0
    #: Conv descriptors the stage uses and the synapse words of their kernels (spec §3.5);
    #: ``synapses`` counts the stage's dense synapse-list words.
    descriptors: int = 0
    kernel_words: int = 0


@dataclass
class _Layer:
    stage: object
    neurons: np.ndarray = None          # compartment ids
    W: np.ndarray = None                # int weights (n_out, n_in)
    B: np.ndarray = None
    C: np.ndarray = None
    rect: np.ndarray = None
    inhib: np.ndarray = None
    S: int = 0
    vth: int = 0
    window: int = 0                     # W_l (global step of layer time 0)
    clocks: dict = field(default_factory=dict)


def _limits(g: CoreGeometry) -> tuple[int, int]:
    """Largest |u'| and |v'| (in accumulator units, u' = u >> 6) that never wrap or saturate."""
    return (g.state_max >> g.act_shift) - 1, ((g.state_max - 1) >> g.act_shift) - 1


def _channel_max(values: np.ndarray, channels: int) -> np.ndarray:
    """Each neuron's value replaced by the largest of its output channel (C, H·W order)."""
    per = values.reshape(channels, -1).max(axis=1)
    return np.repeat(per, values.size // channels)


def _layer_integers(stage: WeightStage, S: int, x_max: float, T: int, g: CoreGeometry,
                    shared: bool = False):
    """Integer weights and per-neuron synapse totals for scale ``S``; None if out of range.

    ``shared``: the rectifier is one amount per output channel (a broadcast descriptor), the
    largest any neuron of the channel needs.
    """
    u_lim, v_lim = _limits(g)
    W = np.rint(stage.weight * S).astype(np.int64)
    B = np.rint(stage.bias * S).astype(np.int64)
    C = S - W.sum(axis=1) - B
    vth = S * T - S // 2 - 1
    if vth >= 1 << g.vth_bits:
        return None
    Wp, Wn = np.clip(W, 0, None).sum(axis=1), np.clip(W, None, 0).sum(axis=1)
    pos = Wp + np.clip(B, 0, None) + np.clip(C, 0, None)
    neg = -Wn - np.clip(B, None, 0) - np.clip(C, None, 0)
    grid = TimeGrid(T)
    if np.any(vth + pos >= v_lim):
        return None
    if stage.rectify:
        # v' at Q-1 is S(T-1) + (T-1)·Y (closed form); Y is lowest with every negative weight's
        # input at x_max.  The rectifier must lift the lowest v' above vth in one step.
        y_lo = np.floor(x_max * Wn).astype(np.int64) + B
        v_lo = S * grid.levels + grid.levels * y_lo
        rect = np.maximum(1, vth - S - v_lo + 1)
        if np.any(neg * grid.rectify_step >= v_lim) or np.any(S + rect >= u_lim):
            return None
    else:
        rect = np.zeros_like(B)
    if shared:
        rect = _channel_max(rect, stage.conv.out_shape[0])
    # Rectifier and self-inhibition need only lower bounds: round them up to one synapse each.
    rect = np.array([round_up_to_piece(r, g) for r in rect], dtype=np.int64)
    inhib = np.array([round_up_to_piece(v, g) for v in pos + rect + 1], dtype=np.int64)
    if stage.rectify and np.any(S + rect >= u_lim):
        return None
    if np.any(neg + inhib >= u_lim):
        return None
    return W, B, C, rect, inhib, vth


def choose_scale(stage: WeightStage, x_max: float, T: int, g: CoreGeometry,
                 shared: bool = False) -> int:
    """Return the largest even scale ``S`` whose weights fit 8 bits and whose state stays in range.

    Raises :class:`MappingError` if even ``S = 2`` does not fit.
    """
    max_w = float(np.abs(stage.weight).max(initial=0.0))
    full = (1 << g.weight_bits) - 1
    s_hi = int(full / max_w) if max_w > 0 else full
    s_hi -= s_hi % 2
    if s_hi < 2:
        raise MappingError(f"{stage.name}: weight {max_w:.4g} does not fit {g.weight_bits} bits "
                           f"at any scale (normalise the model first)")
    lo, hi = 2, s_hi
    if _layer_integers(stage, lo, x_max, T, g, shared) is None:
        raise MappingError(f"{stage.name}: even scale S=2 overflows the 24-bit state at T={T}; "
                           "the layer's fan-in or T is too large for one core")
    while lo < hi:  # largest even S in [lo, hi] that fits
        mid = (lo + hi + 2) // 4 * 2
        if _layer_integers(stage, mid, x_max, T, g, shared) is not None:
            lo = mid
        else:
            hi = mid - 2
    return lo



def flat_images(images, input_shape) -> np.ndarray:
    """A batch of images (tensor or array) as float64 rows of ``prod(input_shape)`` values."""
    x = np.asarray(images.detach().cpu() if isinstance(images, torch.Tensor) else images,
                   dtype=np.float64)
    x = x.reshape(x.shape[0], -1)
    n_in = int(np.prod(input_shape))
    if x.shape[1] != n_in:
        raise ValueError(f"images have {x.shape[1]} values each, the network takes {n_in}")
    return x


@dataclass
class QuartzProgram:
    """A Quartz network compiled onto one core: the config and how to feed and read it.

    ``input_axons[i]`` is the axon of flattened input ``i``; host clock spikes for the first
    layer are sent on ``clock_axons`` at ``clock_steps``; the class of a sample is its earliest
    output spike (output id = class).  ``n_steps`` steps cover the output layer's window.
    """

    config: CoreConfig
    t_max: int
    input_shape: tuple
    input_max: float
    input_axons: np.ndarray
    clock_axons: dict
    clock_steps: dict
    first_window: int
    output_window: int
    n_steps: int
    n_outputs: int
    layers: list
    notes: list = field(default_factory=list)
    #: Compartment ids of each stage's neurons, keyed by the stage (layer report) name.
    neuron_ids: dict = field(default_factory=dict)
    #: Integer mapping of each weight stage: ``{name: {"W", "B", "C", "S"}}`` (not saved in
    #: images; the memories hold the same numbers).
    integers: dict = field(default_factory=dict)
    #: Set by :func:`~neurocore.sw.convert.from_model` (not saved in images): the folded and
    #: normalised torch model the stages were read from, the BatchNorm fold report (None when
    #: the model came normalised) and the per-layer normalisation factors.
    normalized_model: object = None
    fold_report: object = None
    lambdas: list = field(default_factory=list)
    #: Set when the network is spread over a chip (docs/spec.md §10): the
    #: :class:`~neurocore.golden.chip.Partition` of ``config`` (the logical network) onto the
    #: chip's cores, and the per-core load estimate of :func:`~neurocore.sw.place.chip_load`
    #: (``{"images": N, "sops": [...], "flits": [...]}`` per image).  None and {} on one core.
    partition: object = None
    chip_load: dict = field(default_factory=dict)
    #: Pipelined programs (``from_model(..., pipelined=True)``, docs/quartz.md §3.6): a new
    #: image enters every ``stream_period`` steps and its output spikes are read from step
    #: ``stream_readout`` (relative to its entry) to ``n_steps − 1``.  0 and 0: unpipelined.
    stream_period: int = 0
    stream_readout: int = 0

    def chip_config(self):
        """The per-core configs (:func:`~neurocore.golden.chip.build_chip`) of a chip program;
        None for a single-core program."""
        if self.partition is None:
            return None
        from ..golden.chip import build_chip
        return build_chip(self.config, self.partition)

    # ---- host side ---------------------------------------------------------------
    def encode(self, images) -> np.ndarray:
        """Return the host spike raster (B, n_steps, n_axons) for a batch of images."""
        x = flat_images(images, self.input_shape)
        # Inputs are judged on the time grid: a value may exceed input_max by less than the
        # rounding of its spike time.
        bad = np.isnan(x) | (x < INPUT_MIN) | (x > INPUT_MAX)
        tau = np.where(bad, 0, encode(np.where(bad, 0.0, x), self.t_max))
        bad |= tau < encode(np.array([self.input_max]), self.t_max)[0]
        if bad.any():
            b, i = np.argwhere(bad)[0]
            raise ValueError(f"input value {float(x[b, i])!r} (sample {b}, input {i}) is outside "
                             f"the range [{INPUT_MIN}, {self.input_max:.6g}] this program was "
                             "compiled for")
        steps = self.first_window + tau - 1
        g = self.config.geometry
        raster = np.zeros((x.shape[0], self.n_steps, g.n_axons), dtype=bool)
        ok = (steps >= 0) & (steps < self.n_steps)
        bb, ii = np.nonzero(ok)
        raster[bb, steps[bb, ii], self.input_axons[ii]] = True
        for name, axon in self.clock_axons.items():
            raster[:, self.clock_steps[name], axon] = True
        return raster

    # ---- streams of images (pipelined programs) ----------------------------------------
    def _period(self) -> int:
        """The stream period; ValueError for an unpipelined program."""
        if not self.stream_period:
            raise ValueError("this program is not pipelined (stream_period = 0); compile it "
                             "with from_model(..., pipelined=True) to run a stream")
        return self.stream_period

    def encode_stream(self, images, streams: int = 1) -> np.ndarray:
        """Host raster (streams, (m − 1)·P + n_steps, n_axons) that runs ``images`` back to
        back, ``m = ⌈N / streams⌉`` per stream: stream ``b`` takes images ``b·m …`` and image
        ``k`` of a stream enters at step ``k·P`` (``P = stream_period``), with no clear."""
        P = self._period()
        single = self.encode(images)
        N = single.shape[0]
        if not isinstance(streams, (int, np.integer)) or not 1 <= streams <= max(N, 1):
            raise ValueError(f"streams must be an integer in 1..{N} (the number of images), "
                             f"not {streams!r}")
        m = -(-N // streams)
        steps = (m - 1) * P + self.n_steps
        raster = np.zeros((streams, steps, single.shape[2]), dtype=bool)
        for i in range(N):   # an image's n_steps <= P: the spans of a stream do not overlap
            b, k = divmod(i, m)
            raster[b, k * P:k * P + self.n_steps] = single[i]
        return raster

    def decode_stream(self, outputs: np.ndarray, n_images: int) -> dict[str, np.ndarray]:
        """Decode the output events (streams, steps, n_outputs) of :meth:`encode_stream`'s
        raster into one :meth:`decode` entry per image (in image order): image ``k`` of a
        stream is read from steps ``k·P + stream_readout`` to ``k·P + n_steps − 1``."""
        P = self._period()
        streams = outputs.shape[0]
        m = -(-n_images // streams)
        per = np.zeros((n_images, self.n_steps, outputs.shape[2]), dtype=outputs.dtype)
        r = self.stream_readout
        for i in range(n_images):
            b, k = divmod(i, m)
            per[i, r:] = outputs[b, k * P + r:k * P + self.n_steps]
        return self.decode(per)

    def run_stream(self, images, streams: int = 1, backend: str = "numpy",
                   device: str = "cpu") -> dict[str, np.ndarray]:
        """Run ``images`` through the golden model back to back (:meth:`encode_stream`, no
        clear between images) and return :meth:`decode` per image."""
        from ..golden.core import GoldenCore
        raster = self.encode_stream(images, streams)
        res = GoldenCore(self.config, backend=backend, device=device).run(raster)
        return self.decode_stream(res.outputs, len(flat_images(images, self.input_shape)))

    def decode(self, outputs: np.ndarray) -> dict[str, np.ndarray]:
        """Decode output events (B, n_steps, n_outputs): first spike step, value, class."""
        fired = outputs[:, :, :self.n_outputs] > 0
        any_ = fired.any(axis=1)
        first = np.where(any_, fired.argmax(axis=1), -1)
        levels = self.t_max - 1
        tau = first - self.output_window
        values = np.where(any_, (3 * levels - tau) / levels, -np.inf)
        predicted = np.where(any_.any(axis=1), np.argmax(values, axis=1), -1)
        decision = np.where(any_.any(axis=1), first.max(axis=1, initial=-1), -1)
        earliest = np.where(any_, first, np.iinfo(np.int64).max).min(axis=1)
        return {"first_spike": first, "values": values, "predicted": predicted,
                "decision_step": np.where(any_.any(axis=1), earliest, -1),
                "last_first_spike": decision}

    def fit_report(self) -> str:
        """Return a text table: memory use against capacity, each layer's mapping, and the
        synapse side per layer and in total — compartments, conv descriptors, kernel words,
        dense synapse words, and their bits and block RAMs per board preset
        (:mod:`neurocore.sw.fit`); for a chip program, the same per core with the estimated
        synaptic operations and flits per image (:func:`~neurocore.sw.fit.chip_rows`)."""
        from .fit import BOARDS, memory_rows
        g = self.config.geometry
        s = self.config.summary()
        rows = [
            f"geometry {g.name!r}: T={self.t_max}, {self.n_steps} steps per inference"
            + (f", pipelined: a new image every {self.stream_period} steps"
               if self.stream_period else ""),
            f"  compartments {s['compartments_used']:>8} / {g.n_compartments}",
            f"  synapses     {s['synapses_used'] + s['kernel_words_used']:>8} / {g.n_synapses}"
            f"  ({s['synapses_used']} dense, {s['kernel_words_used']} kernel words)",
            f"  descriptors  {s['conv_descriptors_used']:>8} / {g.n_conv}",
            f"  axons        {s['axons_used']:>8} / {g.n_axons}",
            f"  routes       {s['routes_used']:>8} / {g.n_routes}",
            f"  profiles     {len(set(self.config.mem['compartments']['profile'].tolist())):>8}"
            f" / {g.n_profiles}",
            "  layer                         neurons  scale S    vth  |w|max  weights  zeroed  "
            "clipped  synapses  window",
        ]
        for r in self.layers:
            rows.append(f"  {r.name:<29} {r.neurons:>7} {r.scale:>8} {r.vth:>6} "
                        f"{r.max_abs_weight:>7.3f} {r.weights:>8} {r.weights_zeroed:>7} "
                        f"{r.weights_clipped:>8} {r.synapses:>9} {r.window_start:>7}")
        boards = list(BOARDS)
        rows.append("  synapse side                  compartments  descr  kernel w  dense w   "
                    "words" + "".join(f"  {b + ' bits':>15} {BOARDS[b][0]:>5}" for b in boards))
        for m in memory_rows(self.layers, s):
            rows.append(f"  {m['name']:<29} {m['compartments']:>12} {m['descriptors']:>6} "
                        f"{m['kernel_words']:>9} {m['dense_words']:>8} {m['words']:>7}"
                        + "".join(f"  {m[b + '_bits']:>15} {m[b + '_blocks']:>5}"
                                  for b in boards))
        if self.partition is not None:
            from .fit import chip_rows
            rows += chip_rows(self)
        rows += [f"  note: {n}" for n in self.notes]
        return "\n".join(rows)


# ---- compilation -----------------------------------------------------------------------
def host_clock_steps(first_window: int, t_max: int, rectify: bool) -> dict[str, int]:
    """Global steps of the first weight layer's host clocks ``one``, ``sync`` and, when that
    layer is rectified, ``rect`` (layer times ``T − 2``, ``R − 1`` and ``Q − 1``)."""
    grid = TimeGrid(t_max)
    steps = {"one": first_window + grid.t_max - 2, "sync": first_window + grid.readout - 1}
    if rectify:
        steps["rect"] = first_window + grid.rectify_step - 1
    return steps


def _check_hidden_rectified(weight_stages: list) -> None:
    """Every weight layer but the output must be followed by ReLU: an unrectified hidden
    layer's spike times cannot carry negative values to the next layer."""
    for st in weight_stages[:-1]:
        if not st.rectify:
            raise MappingError(f"{st.name}: a hidden layer must be followed by ReLU "
                               "(rectified); only the output layer may be linear")


#: Pulse relay: full current decay, so it fires in the step its one input arrives, then rests.
_PULSE = dict(du=4095, du_offset=1, dv=0, vth=0)


def _pow2_stride(stride: tuple, what: str, where: str) -> int:
    sy, sx = stride
    if sy != sx or sy not in (1, 2, 4, 8):
        raise MappingError(f"{where}: {what} stride {stride} is not one of 1, 2, 4, 8 on both "
                           "axes (conv descriptor limit, spec §3.5); pass dense=True to map it "
                           "as dense synapses")
    return sy


def _tiles(side: int, kernel: int, stride: int, pad: int, what: str, where: str) -> None:
    if (side + 2 * pad - kernel) % stride:
        raise MappingError(f"{where}: {what} {kernel} with stride {stride} and padding {pad} "
                           f"does not tile an input side of {side} ({side + 2 * pad - kernel} "
                           f"is not a multiple of {stride}); crop the input or pass dense=True")


def check_conv_stage(st, g: CoreGeometry) -> None:
    """Raise :class:`MappingError` naming the layer and the limit if stage ``st`` (a Conv2d
    weight stage or a max-pool) cannot be one conv descriptor of a core of geometry ``g``."""
    where = st.name
    if isinstance(st, WeightStage):
        cp = st.conv
        if cp.folded:
            raise MappingError(f"{where}: {cp.folded}, so its weights are no longer one shared "
                               "kernel; pass dense=True to map it as dense synapses")
        c_out, c_in, kh, kw = cp.kernel.shape
        s = _pow2_stride(cp.stride, "Conv2d", where)
        if cp.padding[0] != cp.padding[1] or cp.padding[0] >= 1 << CONV_PAD_BITS:
            raise MappingError(f"{where}: padding {cp.padding} is not one value <= "
                               f"{(1 << CONV_PAD_BITS) - 1} on both axes (conv descriptor limit); "
                               "pass dense=True")
        pad = cp.padding[0]
        in_shape, out_shape, kernel = cp.in_shape, cp.out_shape, (kh, kw)
    else:
        c_out = c_in = st.in_shape[0]
        s = _pow2_stride(st.stride, "MaxPool2d", where)
        pad, in_shape, out_shape, kernel = 0, st.in_shape, st.out_shape, st.kernel
    for side, k, axis in ((in_shape[1], kernel[0], "kernel height"),
                          (in_shape[2], kernel[1], "kernel width")):
        if k > (1 << CONV_KERNEL_BITS) - 1:
            raise MappingError(f"{where}: {axis} {k} exceeds {(1 << CONV_KERNEL_BITS) - 1} "
                               "(conv descriptor limit); pass dense=True")
        _tiles(side, k, s, pad, axis, where)
    c_bits, s_bits = g.conv_channel_bits, g.conv_side_bits
    for what, value, bits in (("output channels", c_out, c_bits), ("input channels", c_in, c_bits),
                              ("output height", out_shape[1], s_bits),
                              ("output width", out_shape[2], s_bits),
                              ("input height", in_shape[1], s_bits),
                              ("input width", in_shape[2], s_bits)):
        if value > (1 << bits) - 1:
            raise MappingError(f"{where}: {what} {value} exceed {(1 << bits) - 1}, the "
                               f"{bits}-bit conv field of geometry {g.name!r}; pass dense=True")


def _shared_stages(stages: list, g: CoreGeometry, conv: bool) -> set:
    """Names of the stages that become conv descriptors (Conv2d weight stages and max-pools).

    With ``conv`` every Conv2d stage and max-pool must fit a descriptor (else
    :class:`MappingError`); without it, none is shared (dense synapse lists, as before).
    """
    candidates = [st for st in stages if isinstance(st, MaxPoolStage)
                  or (isinstance(st, WeightStage) and st.conv is not None)]
    if not conv or not candidates:
        return set()
    if not g.n_conv:
        raise MappingError(f"{candidates[0].name}: geometry {g.name!r} has no conv descriptors "
                           "(n_conv=0), so this layer's kernel cannot be stored once; pass "
                           "dense=True to map convolutions as dense synapse lists")
    for st in candidates:
        check_conv_stage(st, g)
    return {st.name for st in candidates}


def _pieces(amounts: np.ndarray, g: CoreGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel amounts as broadcast words: (weights, exponents) of shape (C, P), each row's
    pieces summing exactly to its amount (zero words pad short rows)."""
    rows = [split_amplitude(int(a), g) for a in amounts]
    P = max((len(r) for r in rows), default=0)
    w = np.zeros((len(rows), P), dtype=np.int64)
    e = np.zeros((len(rows), P), dtype=np.int64)
    for i, r in enumerate(rows):
        for j, (wi, ei) in enumerate(r):
            w[i, j], e[i, j] = wi, ei
    return w, e


def _descriptor(stage_name: str, add, *args, **kwargs) -> int:
    """Add one conv descriptor; a builder error names the layer."""
    try:
        return add(*args, **kwargs)
    except ConfigError as err:
        raise MappingError(f"{stage_name}: {err}; pass dense=True to map it as dense synapses"
                           ) from None


def compile_stages(stages: list, input_shape: tuple, t_max: int, geometry: CoreGeometry, *,
                   input_max: float = 1.0, hidden_max: float = 2.0,
                   conv: bool = True, pipelined: bool = False) -> QuartzProgram:
    """Lay out ``stages`` (see :mod:`neurocore.sw.layers`) on one core of ``geometry``.

    ``input_max`` bounds the network inputs and ``hidden_max`` the decoded hidden activations
    when the scales are chosen (docs/quartz.md §2.3).  With ``conv`` (the default) every
    Conv2d stage stores its kernel once and every max-pool scatters through a depthwise
    kernel of ones (conv descriptors, spec §3.5; docs/quartz.md §3.5); a stage that cannot
    raises :class:`MappingError`.  ``conv=False`` writes every connection as dense synapse
    lists.  ``pipelined``: every stage's profiles reset periodically at the start of its span
    (:mod:`neurocore.sw.pipeline`) and a new image may enter every ``stream_period`` steps
    (:meth:`QuartzProgram.run_stream`); the geometry needs ``reset_bits`` for that period.
    """
    T = int(t_max)
    grid = TimeGrid(T)
    g = geometry
    weight_stages = [s for s in stages if isinstance(s, WeightStage)]
    _check_hidden_rectified(weight_stages)
    shared = _shared_stages(stages, g, conv)
    layers = [_Layer(s) for s in stages]
    n_in = int(np.prod(input_shape))
    # --- windows: W_0 so that the earliest host spike is sent at step >= 0
    tau_min = int(encode(np.array([input_max]), T)[0])
    w0 = max(2 - T, 1 - tau_min)
    window = w0
    for lay in layers:            # a weight layer takes T steps, a max-pool relay one
        lay.window = window
        window += T if isinstance(lay.stage, WeightStage) else 1
    out_layer = layers[-1]
    n_steps = out_layer.window + grid.window
    # --- scales
    reports = []
    x_max = input_max
    for lay in layers:
        if not isinstance(lay.stage, WeightStage):
            continue
        sh = lay.stage.name in shared
        S = choose_scale(lay.stage, x_max, T, g, sh)
        W, B, C, rect, inhib, vth = _layer_integers(lay.stage, S, x_max, T, g, sh)
        lay.S, lay.vth, lay.W, lay.B, lay.C, lay.rect, lay.inhib = S, vth, W, B, C, rect, inhib
        x_max = hidden_max
    sched = None
    if pipelined:
        first_w = next(lay for lay in layers if isinstance(lay.stage, WeightStage))
        sched = stream_schedule(layers, T, first_w.window, n_steps, input_max, hidden_max,
                                MappingError)
        if sched.period > g.max_reset_interval:
            raise MappingError(f"pipelining needs a reset interval of {sched.period} steps, "
                               f"geometry {g.name!r} holds up to {g.max_reset_interval} "
                               f"(reset_bits={g.reset_bits}; {sched.period.bit_length()} needed)")
    # --- axons: host inputs, three host clocks, then one axon per compartment
    host = {"one": n_in, "sync": n_in + 1, "rect": n_in + 2}
    n_host = n_in + len(host)
    b = NetworkBuilder(g)
    kinds = {"pulse": _PULSE, "pool": dict(du=0, du_offset=0, dv=0, vth=0),
             "timer": dict(du=0, du_offset=0, dv=0, vth=max(0, T - 2))}
    profiles: dict = {}

    def profile(params: dict, stage: str, key=None) -> int:
        """A profile with ``params``; pipelined: one per stage, reset at its span (shared
        ``key`` profiles are added once, in the unpipelined order)."""
        reset = {} if sched is None else dict(reset_interval=sched.period,
                                              reset_offset=sched.offset(stage))
        k = (key, None if sched is None else stage)
        if key is None or k not in profiles:
            try:
                p = b.add_profile(**params, **reset)
            except ConfigError as err:
                raise MappingError(f"{stage}: {err} of geometry {g.name!r}") from None
            if key is None:
                return p
            profiles[k] = p
        return profiles[k]

    if sched is None:
        for kind, params in kinds.items():
            profile(params, "", kind)

    def axon_of(cx) -> int:
        return n_host + int(cx)

    def compartments(n: int, profile: int, where: str) -> np.ndarray:
        try:
            return b.add_compartments(n, profile=profile)
        except ConfigError as err:
            raise MappingError(f"{where}: {err} of geometry {g.name!r}") from None

    # compartments, stage by stage, with their clocks
    for li, lay in enumerate(layers):
        st = lay.stage
        if isinstance(st, WeightStage):
            prof = profile(dict(du=0, du_offset=0, dv=0, vth=lay.vth), st.name)
            lay.neurons = compartments(st.weight.shape[0], prof, st.name)
            if lay is layers[0] or not any(isinstance(x.stage, WeightStage) for x in layers[:li]):
                lay.clocks = dict(host)                  # first layer: host clocks
            else:
                p_pulse = profile(kinds["pulse"], st.name, "pulse")
                lay.clocks = {
                    "one": int(compartments(1, p_pulse, st.name)[0]),
                    "sync": int(compartments(1, p_pulse, st.name)[0]),
                }
                if st.rectify:
                    p_timer = profile(kinds["timer"], st.name, "timer")
                    lay.clocks["rect"] = int(compartments(1, p_timer, st.name)[0])
        else:
            lay.neurons = compartments(st.groups.shape[0], profile(kinds["pool"], st.name, "pool"),
                                       st.name)
    first = next(lay for lay in layers if isinstance(lay.stage, WeightStage))
    # neurons of each stage's input
    prev_neurons = None
    prev_weight: _Layer | None = None
    words: dict[str, int] = {}
    for lay in layers:
        st = lay.stage
        src_axons = (np.arange(n_in) if prev_neurons is None
                     else np.array([axon_of(c) for c in prev_neurons]))
        n_desc, n_kernel = 0, 0
        if isinstance(st, WeightStage):
            syn = {"data": 0, "counter": 0, "bias": 0, "rect": 0, "inhib": 0}
            clk = lay.clocks
            is_host = lay is first
            ax = {k: (v if is_host else axon_of(v)) for k, v in clk.items()}
            sh = st.name in shared
            if sh:
                cp = st.conv
                c_out = cp.out_shape[0]
                kernel = np.rint(cp.kernel * lay.S).astype(np.int64)
                outputs = lay.neurons.reshape(cp.out_shape)
                _descriptor(st.name, b.add_conv, src_axons.reshape(cp.in_shape), outputs, kernel,
                            stride=cp.stride[0], padding=cp.padding[0])
                n_desc += 1
                n_kernel += kernel.size
                per = lay.neurons.size // c_out
                B_ch = lay.B[::per]
                C_ch = lay.S - kernel.sum(axis=(1, 2, 3)) - B_ch   # every tap inside the map
                rect_ch = lay.rect[::per]
                for key, amounts, src in (("bias", B_ch, "one"), ("counter", C_ch, "sync"),
                                          ("rect", rect_ch, "rect")):
                    w, e = _pieces(amounts, g)
                    if w.size:
                        _descriptor(st.name, b.add_broadcast, ax[src], outputs, w, weight_exp=e)
                        n_desc += 1
                        n_kernel += w.size
                # border neurons miss taps: dense corrections from SYNC add up to their C
                extra = lay.C - np.repeat(C_ch, per)
                for j in np.flatnonzero(extra):
                    for w, e in split_amplitude(int(extra[j]), g):
                        b.connect(ax["sync"], int(lay.neurons[j]), w, weight_exp=e)
                        syn["counter"] += 1
            else:
                for i, axon in enumerate(src_axons):
                    col = lay.W[:, i]
                    nz = np.flatnonzero(col)
                    if nz.size:
                        b.connect(int(axon), lay.neurons[nz], col[nz])
                        syn["data"] += nz.size
            for j, cx in enumerate(lay.neurons):
                if not sh:
                    for key, amount, src in (("bias", lay.B[j], "one"),
                                             ("counter", lay.C[j], "sync"),
                                             ("rect", lay.rect[j], "rect")):
                        for w, e in split_amplitude(int(amount), g):
                            b.connect(ax[src], int(cx), w, weight_exp=e)
                            syn[key] += 1
                if sched is not None and lay is out_layer:
                    continue   # pipelined: no self-inhibition in the output layer (pipeline.py)
                b.route_to_axon(int(cx), axon_of(cx))
                for w, e in split_amplitude(-int(lay.inhib[j]), g):
                    b.connect(axon_of(cx), int(cx), w, weight_exp=e)
                    syn["inhib"] += 1
            n_clock = 0
            if not is_host:  # clock chain from the previous weight layer
                delta = lay.window - prev_weight.window - T
                if delta > g.max_delay:
                    raise MappingError(f"{st.name}: clock relay needs delay {delta} > "
                                       f"max_delay {g.max_delay}")
                pc = prev_weight.clocks
                pax = {k: (v if prev_weight is first else axon_of(v)) for k, v in pc.items()}
                b.connect(pax["sync"], clk["one"], 1, delay=delta)
                b.connect(pax["rect"], clk["sync"], 1, delay=delta)
                n_clock += 2
                for name in ("one", "sync"):
                    b.route_to_axon(clk[name], axon_of(clk[name]))
                if "rect" in clk:
                    b.connect(axon_of(clk["sync"]), clk["rect"], 1)        # timer current
                    b.route_to_axon(clk["rect"], axon_of(clk["rect"]))
                    b.connect(axon_of(clk["rect"]), clk["rect"], -2)       # fire once
                    n_clock += 2
            words[st.name] = sum(syn.values()) + n_clock + n_kernel
            reports.append(LayerReport(
                name=st.name, kind="IF" + (" (ReLU)" if st.rectify else " (output)"),
                neurons=lay.neurons.size, scale=lay.S, vth=lay.vth,
                max_abs_weight=float(np.abs(st.weight).max(initial=0)),
                weights=int(np.count_nonzero(st.weight)),
                weights_zeroed=int(np.count_nonzero(st.weight) - np.count_nonzero(lay.W)),
                synapses=sum(syn.values()) + n_clock, counter_synapses=syn["counter"],
                bias_synapses=syn["bias"], rect_synapses=syn["rect"],
                inhibit_synapses=syn["inhib"], window_start=lay.window,
                descriptors=n_desc, kernel_words=n_kernel))
            prev_weight = lay
        else:
            k = st.groups.shape[1]
            if st.name in shared:
                C = st.in_shape[0]
                ones = np.ones((C, 1) + tuple(st.kernel), dtype=np.int64)
                _descriptor(st.name, b.add_conv, src_axons.reshape(st.in_shape),
                            lay.neurons.reshape(st.out_shape), ones, stride=st.stride[0],
                            depthwise=True)
                n_desc, n_kernel = 1, ones.size
            else:
                for p, group in enumerate(st.groups):
                    cx = int(lay.neurons[p])
                    for i in group:
                        b.connect(int(src_axons[i]), cx, 1)
            for cx in lay.neurons:
                b.route_to_axon(int(cx), axon_of(cx))
                b.connect(axon_of(cx), int(cx), -(k + 1))
            dense = (0 if st.name in shared else int(st.groups.size)) + lay.neurons.size
            words[st.name] = dense + n_kernel
            reports.append(LayerReport(name=st.name, kind="max-pool relay",
                                       neurons=lay.neurons.size, synapses=dense,
                                       window_start=lay.window, descriptors=n_desc,
                                       kernel_words=n_kernel))
        prev_neurons = lay.neurons
    n_out = out_layer.neurons.size
    if n_out > g.n_outputs:
        raise MappingError(f"{n_out} outputs exceed n_outputs={g.n_outputs}")
    b.route_to_output(out_layer.neurons, np.arange(n_out))
    try:
        config = b.build()
    except ConfigError as err:
        if "n_synapses" not in str(err):
            raise
        big = max(words, key=words.get)
        raise MappingError(f"the stages need {sum(words.values())} synapse words, more than "
                           f"n_synapses={g.n_synapses} of geometry {g.name!r} (largest: {big}, "
                           f"{words[big]} words); {err}") from None
    clock_steps = host_clock_steps(first.window, T, first.stage.rectify)
    if not first.stage.rectify:
        del host["rect"]
    return QuartzProgram(config=config, t_max=T, input_shape=tuple(input_shape),
                         input_max=float(input_max), input_axons=np.arange(n_in),
                         clock_axons=host, clock_steps=clock_steps, first_window=first.window,
                         output_window=out_layer.window, n_steps=int(n_steps), n_outputs=n_out,
                         layers=reports,
                         stream_period=0 if sched is None else sched.period,
                         stream_readout=0 if sched is None else sched.readout,
                         neuron_ids={lay.stage.name: lay.neurons for lay in layers},
                         integers={lay.stage.name: {"W": lay.W, "B": lay.B, "C": lay.C,
                                                    "S": lay.S}
                                   for lay in layers if isinstance(lay.stage, WeightStage)})
