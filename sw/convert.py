"""``from_model``: a trained torch ``nn.Sequential`` → a Quartz program on the neurocore.

Steps: fold BatchNorm, drop Dropout/Identity, percentile-normalise activations on
``sample_data``, flatten into stages (:mod:`neurocore.sw.layers`), choose per-layer scales and
lay everything out on one core (:mod:`neurocore.sw.compiler`).  With ``geometry=None`` the
core is sized to the network (each depth rounded up to a power of two).

Convolutions store their kernel once (conv descriptors, spec §3.5) unless ``dense=True``: a
Conv2d or MaxPool2d that a descriptor cannot express, or a geometry without conv memory,
raises :class:`~neurocore.sw.compiler.MappingError` naming the layer and the limit — nothing
is written out as dense synapses unless asked for.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch
from torch import nn

from ..golden.chip import ARITHMETIC_FIELDS, build_chip
from ..golden.conv import conv_connections
from ..spec.geometry import (CHIP_PRESETS, PRESETS, RESET_SUFFIX, ChipGeometry, ConfigError,
                             CoreGeometry, bits_for)
from ..spec.words import WORD_LIMIT_BITS, conv_layout, spare_reset_bits
from .compiler import MappingError, QuartzProgram, compile_stages
from .layers import stages_of
from .normalize import fold_batchnorm, normalize
from .rate import compile_rate

__all__ = ["from_model", "fitted_geometry", "DEFAULT_PERCENTILE", "CODINGS"]

#: ``from_model(coding=...)``: time-to-first-spike (this project's method) or the rate-coded
#: baseline (:mod:`neurocore.sw.rate`).
CODINGS = ("quartz", "rate")

#: Activation percentile of the normalisation (quartz.md: 98.5–99 was best on MNIST; on the
#: digits CNN 99 beats 99.9 at T = 16 over 10 training seeds).
DEFAULT_PERCENTILE = 99.0
#: Provisional geometry used to measure a network before the core is sized to it.
_UNBOUNDED = CoreGeometry(name="unbounded", n_compartments=1 << 16, n_axons=1 << 17,
                          n_synapses=1 << 22, n_routes=1 << 17, n_profiles=16, n_delay_slots=8,
                          n_outputs=1 << 10, max_fanout=1 << 14, max_routes=8)
#: Descriptors of the provisional geometry of a network with convolutions.
_UNBOUNDED_CONV = 64
#: Sample images whose golden run estimates a chip program's SOPs and flits per core.
CALIBRATION_IMAGES = 16


def _unbounded(stages, conv: bool) -> CoreGeometry:
    """The provisional geometry: with conv descriptors, as deep as the 64-bit descriptor and
    synapse-map words allow (their address fields grow with the depths; spec §3.5)."""
    if not conv or not any(getattr(st, "conv", None) is not None for st in stages):
        return _UNBOUNDED
    neurons = sum(int(st.weight.shape[0]) if hasattr(st, "weight") else int(st.groups.shape[0])
                  for st in stages) + 3 * len(stages)
    g = _UNBOUNDED.replace(n_conv=_UNBOUNDED_CONV)
    cx = max(bits_for(neurons), 8)
    spare = WORD_LIMIT_BITS - conv_layout(g.replace(n_compartments=2, n_synapses=2,
                                                    max_fanout=1)).size
    syn_bits = min(spare - cx + 2, 22)  # the +2: the 2-deep memories above took 1 bit each
    n_syn = 1 << max(syn_bits, 1)
    return g.replace(n_compartments=1 << cx, n_synapses=n_syn, max_fanout=min(1 << 14, n_syn))


def _pow2(n: int, floor: int = 2) -> int:
    return max(floor, 1 << max(0, int(n) - 1).bit_length())


def fitted_geometry(program: QuartzProgram, name: str = "fitted") -> CoreGeometry:
    """Return the smallest power-of-two geometry that holds ``program``'s network."""
    cfg = program.config
    s = cfg.summary()
    conv = conv_connections(cfg)
    if conv:
        channels = max(max(c.out_shape[0], c.in_channels) for c in conv)
        sides = max(max(c.out_shape[1:]) for c in conv)
        sides = max(sides, max(int(max(c.iy.max(initial=0), c.ix.max(initial=0))) + 1
                               for c in conv))
        conv_fields = dict(n_conv=_pow2(len(conv), 1), conv_channel_bits=bits_for(channels + 1),
                           conv_side_bits=bits_for(sides + 1))
    else:
        conv_fields = dict(n_conv=0)
    fan = int(cfg.mem["synapse_map"]["length"].max(initial=1))
    routes = int(cfg.mem["axon_map"]["length"].max(initial=1))
    used_profiles = int(cfg.mem["compartments"]["profile"].max(initial=0)) + 1
    smap = cfg.mem["synapse_map"]
    live = (smap["length"] > 0) | ((smap["conv"] > 0) if "conv" in smap else False)
    n_axons = int(np.flatnonzero(live).max(initial=0)) + 1
    return dataclasses.replace(
        cfg.geometry, name=name,
        n_compartments=_pow2(program.config.summary()["compartments_used"]),
        n_axons=_pow2(n_axons), n_synapses=_pow2(cfg.synapse_words_end()),
        n_routes=_pow2(s["routes_used"]), n_profiles=_pow2(used_profiles),
        n_outputs=_pow2(program.n_outputs), max_fanout=_pow2(fan, 1),
        max_routes=_pow2(routes, 1),
        reset_bits=getattr(program, "stream_period", 0).bit_length(),   # a RateProgram: none
        **conv_fields)


def _core_and_chip(geometry) -> tuple[CoreGeometry | None, ChipGeometry | None]:
    """``from_model``'s ``geometry``: a core geometry, a chip, or a preset name.  A board name
    (``"ulx3s"``, ``"icebreaker"``) is both the board's single core and its chip: the network
    goes onto the single core when it fits there, else onto the chip."""
    if isinstance(geometry, ChipGeometry):
        return None, geometry
    if isinstance(geometry, str):
        try:
            chip = ChipGeometry.preset(geometry)
        except KeyError:
            chip = None
        try:
            core = CoreGeometry.preset(geometry)
        except KeyError:
            if chip is not None:
                return None, chip
            raise KeyError(f"unknown geometry {geometry!r}: core presets {sorted(PRESETS)} "
                           f"(each also with {RESET_SUFFIX!r}), chip presets "
                           f"{sorted(CHIP_PRESETS)}") from None
        return core, chip
    return geometry, None


def _chip_logical(stages, conv: bool, chip: ChipGeometry) -> CoreGeometry:
    """The provisional logical geometry of a chip program: as deep as :func:`_unbounded`, with
    the chip core's arithmetic, delay ring, output ids, conv fields and reset fields."""
    cg = chip.core
    keep = {f: getattr(cg, f) for f in ARITHMETIC_FIELDS + (
        "n_delay_slots", "conv_channel_bits", "conv_side_bits", "n_outputs", "reset_bits")}
    g = _unbounded(stages, conv and cg.n_conv > 0).replace(name=f"{chip.name}-logical", **keep)
    return g if cg.n_conv else g.replace(n_conv=0)


def _compile_for_chip(compile_, stages, shape, t_max, input_max, conv, chip, x,
                      single_error: MappingError):
    """Compile onto a logical geometry, place the stages on ``chip``'s cores
    (:func:`~neurocore.sw.place.place`), check every core and estimate the load.  A layer that
    no core of the chip can express at any size raises ``single_error`` (the single core's
    reason); a network the cores cannot hold raises the placement's error, which names the
    layer that overflows and by how much."""
    from .place import chip_load, place
    try:
        program = compile_(stages, shape, t_max, _chip_logical(stages, conv, chip),
                           input_max=input_max)
        program = compile_(stages, shape, t_max,
                           fitted_geometry(program, f"{chip.name}-logical"),
                           input_max=input_max)
    except MappingError:
        raise single_error from None
    partition, balance = place(program, chip)
    try:
        chip_config = build_chip(program.config, partition)
    except ConfigError as err:
        raise MappingError(f"chip {chip.name!r}: {err}") from None
    load = chip_load(program, chip_config, x[:CALIBRATION_IMAGES])
    program = dataclasses.replace(program, partition=partition, chip_load=load)
    program.notes.append(f"placed on {partition.cores_used()} of the {chip.n_cores} cores of "
                         f"chip {chip.name!r}; {balance}")
    return program


def _check_t_max(t_max) -> None:
    if isinstance(t_max, bool) or not isinstance(t_max, (int, np.integer)) or t_max < 2:
        raise ValueError(f"t_max must be an integer >= 2, not {t_max!r}")


def _check_layers(model: nn.Sequential, x: torch.Tensor) -> None:
    """Run one sample through ``model`` layer by layer; name the first layer that fails or
    holds a NaN or infinite parameter."""
    h = x[:1]
    for pos, module in enumerate(model):
        where = f"model[{pos}] ({type(module).__name__})"
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise ValueError(f"{where}: {name} holds NaN or infinite values")
        try:
            with torch.no_grad():
                h = module(h)
        except RuntimeError as e:
            raise ValueError(f"{where} does not accept inputs of shape {tuple(h.shape[1:])} "
                             f"(sample_data has shape {tuple(x.shape[1:])}): "
                             f"{str(e).splitlines()[0]}") from None


def _checked_sample_data(model: nn.Sequential, sample_data) -> torch.Tensor:
    """``sample_data`` as float32, checked: non-empty, finite, accepted by every layer of
    ``model``, whose parameters are finite.  Errors name the layer."""
    x = torch.as_tensor(sample_data, dtype=torch.float32)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"sample_data must be a non-empty batch (N, ...) of inputs, not a "
                         f"tensor of shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("sample_data holds NaN or infinite values")
    modes = [m.training for m in model.modules()]
    model.eval()  # a forward pass that leaves BatchNorm statistics alone; restored below
    try:
        _check_layers(model, x)
    finally:
        for m, mode in zip(model.modules(), modes):
            m.training = mode
    return x


def from_model(model: nn.Module, t_max: int = 16, sample_data: torch.Tensor | None = None, *,
               percentile: float = DEFAULT_PERCENTILE,
               geometry: CoreGeometry | ChipGeometry | str | None = None,
               normalized: bool = False, coding: str = "quartz",
               input_coding: str = "poisson", dense: bool = False,
               pipelined: bool = False) -> QuartzProgram:
    """Convert ``model`` (an ``nn.Sequential``) to a :class:`QuartzProgram` with ``T = t_max``.

    ``sample_data`` (N, C, H, W) or (N, F) sets the input shape and the normalisation; pass
    ``normalized=True`` for a model that is already folded and normalised.  ``coding="rate"``
    returns a :class:`~neurocore.sw.rate.RateProgram` instead (``t_max`` input steps,
    ``input_coding`` "poisson" or "current"; always dense synapse lists).

    Every Conv2d stores its kernel once and every MaxPool2d scatters through a depthwise
    kernel (conv descriptors, spec §3.5); a layer a descriptor cannot express (stride not 1, 2,
    4 or 8, a kernel or stride that does not tile the input, padding > 7, a kernel side > 15,
    more channels or a larger side than the geometry's conv fields, an AvgPool2d folded into a
    Conv2d, a geometry with ``n_conv = 0``) raises :class:`~neurocore.sw.compiler.MappingError`
    naming the layer and the limit.  ``dense=True`` maps every connection as dense synapse
    lists instead (the mapping before conv descriptors; the same integers, so the same
    spikes).

    ``pipelined=True`` gives every stage a periodic reset (spec §11) so that images can run
    back to back, a new one every ``program.stream_period`` steps
    (:meth:`~neurocore.sw.compiler.QuartzProgram.run_stream`; docs/quartz.md §3.6); it
    needs a core geometry with ``reset_bits`` (``geometry=None`` fits them) or a chip whose
    cores have them (``"ulx3s-reset"``: the board's reset core, else its reset chip).
    """
    if coding not in CODINGS:
        raise ValueError(f"coding {coding!r} is not one of {CODINGS}")
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"from_model takes an nn.Sequential, not {type(model).__name__}")
    if sample_data is None:
        raise ValueError("from_model needs sample_data (a batch of inputs) for the input shape "
                         "and the activation normalisation")
    _check_t_max(t_max)
    x = _checked_sample_data(model, sample_data)
    if normalized:
        net, fold, lambdas = model.eval(), None, []
    else:
        folded, fold = fold_batchnorm(model)
        net, lambdas = normalize(folded, x, percentile)
    stages = stages_of(net, tuple(x.shape[1:]))
    input_max = float(x.max())
    if input_max > 2.0:
        raise ValueError(f"sample_data reaches {input_max:.4g}; Quartz encodes inputs in "
                         "(-2, 2] — scale the data first")
    input_max = max(input_max, 1e-6)
    requested = geometry
    geometry, chip = _core_and_chip(geometry)
    conv = not dense
    compile_ = functools.partial(compile_stages, conv=conv, pipelined=pipelined)
    if pipelined and coding == "rate":
        raise ValueError(f"pipelined=True needs coding='quartz', not coding={coding!r}")
    if pipelined and chip is not None and not chip.core.reset_bits:
        if isinstance(requested, str) and geometry is not None:
            raise ValueError(
                f"pipelined=True needs reset fields, but geometry {requested!r} names a board, "
                f"which also allows its chip {chip.name!r}, whose cores have none: pass "
                f"{requested + RESET_SUFFIX!r} (its core and chip with reset fields), a core "
                "geometry with reset_bits or geometry=None")
        raise ValueError(f"pipelined=True needs reset fields, but the cores of chip "
                         f"{chip.name!r} have none (reset_bits=0): pass a chip whose cores "
                         "have reset_bits (a chip preset's '-reset' variant), a core geometry "
                         "with reset_bits or geometry=None")
    if coding == "rate":
        compile_ = functools.partial(compile_rate, input_coding=input_coding)
        conv = False
        chip = None
    shape = tuple(x.shape[1:])
    single_error = None
    if geometry is None and chip is not None:
        single_error = MappingError(f"chip {chip.name!r} has no single-core preset")
    else:
        try:
            provisional = _unbounded(stages, conv)
            if pipelined:
                provisional = provisional.replace(reset_bits=spare_reset_bits(provisional))
            program = compile_(stages, shape, t_max, geometry or provisional,
                               input_max=input_max)
            if geometry is None:
                program = compile_(stages, shape, t_max, fitted_geometry(program),
                                   input_max=input_max)
        except MappingError as err:
            if chip is None:
                raise
            single_error = err
    if single_error is not None:   # the board's single core cannot hold it: its chip
        program = _compile_for_chip(compile_, stages, shape, t_max, input_max, conv, chip, x,
                                    single_error)
    program = dataclasses.replace(program, normalized_model=net, fold_report=fold,
                                  lambdas=list(lambdas))
    if fold is not None:
        program.notes += [f"folded BatchNorm model[{bn}] into model[{layer}]"
                          for layer, bn in fold.folded]
        program.notes += [f"dropped {name} model[{pos}]" for pos, name in fold.dropped]
    if lambdas:
        program.notes.append(f"normalised at percentile {percentile}: λ = "
                             + ", ".join(f"{v:.4g}" for v in lambdas))
    return program
