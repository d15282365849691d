"""Check the host-side fields of a stored :class:`~neurocore.sw.compiler.QuartzProgram`.

An image's ``program`` metadata (docs/image_format.md) is plain JSON; before it becomes a
program, every field is checked on its own (type and range) and against the configuration
it travels with (axon and compartment ids, the output routes, the time grid of the host
clocks).  :func:`decode_program` returns the program's field values or raises
:class:`ProgramFieldError` naming the first bad field and value; the image loader turns that
into an ``ImageFormatError`` with the file's path.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..golden.network import CoreConfig
from ..golden.quartz import INPUT_MAX, TimeGrid
from .compiler import LayerReport, host_clock_steps

__all__ = ["ProgramFieldError", "decode_program", "CLOCK_NAMES"]

#: Host clock names of a program's first layer (``rect`` only when that layer is rectified).
CLOCK_NAMES = ("one", "sync", "rect")
#: Largest ``t_max`` an image may hold: the layer threshold ``S·T`` must fit ``vth_bits``.
MAX_T = 1 << 16


class ProgramFieldError(ValueError):
    """A stored program field that is not valid; ``field`` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"program field {field!r}: {message}")
        self.field = field


# ---- scalar and list checks ------------------------------------------------------------------
def _int(field: str, value, lo: int, hi: int | None = None) -> int:
    """A JSON integer (not a bool) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProgramFieldError(field, f"{_show(value)} is not an integer")
    if value < lo or (hi is not None and value > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ProgramFieldError(field, f"{_show(value)} is outside {bound}")
    return value


def _show(value) -> str:
    """A short repr that cannot fail: huge integers by their size, long values cut."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def _ids(field: str, value, hi: int, length: int | None = None) -> np.ndarray:
    """A list of distinct integers in ``[0, hi)`` (of ``length`` entries if given)."""
    if not isinstance(value, list):
        raise ProgramFieldError(field, f"{_show(value)} is not a list")
    if length is not None and len(value) != length:
        raise ProgramFieldError(field, f"has {len(value)} entries, expected {length}")
    ids = np.array([_int(f"{field}[{i}]", v, 0, hi - 1) for i, v in enumerate(value)],
                   dtype=np.int64)
    if np.unique(ids).size != ids.size:
        raise ProgramFieldError(field, "lists an id twice")
    return ids


def _mapping(field: str, value) -> dict:
    if not isinstance(value, dict):
        raise ProgramFieldError(field, f"{_show(value)} is not an object")
    return value


def _number(field: str, value, lo: float, hi: float) -> float:
    """A finite JSON number in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProgramFieldError(field, f"{_show(value)} is not a number")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ProgramFieldError(field, f"{_show(value)} is outside [{lo}, {hi}]")
    return float(value)


# ---- layer reports ---------------------------------------------------------------------------
_LAYER_FIELDS = {f.name: f.type for f in dataclasses.fields(LayerReport)}
#: LayerReport fields added after images were first written: an image may lack them (0).
_LAYER_FIELDS_ADDED = ("descriptors", "kernel_words")


def _layer(field: str, value) -> LayerReport:
    raw = dict(_mapping(field, value))
    for key in _LAYER_FIELDS_ADDED:
        raw.setdefault(key, 0)
    if sorted(raw) != sorted(_LAYER_FIELDS):
        raise ProgramFieldError(field, f"keys {sorted(raw)} are not the LayerReport fields "
                                       f"{sorted(_LAYER_FIELDS)}")
    for key, kind in _LAYER_FIELDS.items():
        where = f"{field}.{key}"
        if kind == "str" and not isinstance(raw[key], str):
            raise ProgramFieldError(where, f"{_show(raw[key])} is not a string")
        if kind == "int":  # counts are >= 0; a window may start before step 0
            _int(where, raw[key], 2 - MAX_T if key == "window_start" else 0)
        if kind == "float":
            _number(where, raw[key], 0.0, math.inf)
    return LayerReport(**raw)


# ---- the whole program -----------------------------------------------------------------------
def decode_program(stored: dict, config: CoreConfig) -> dict:
    """Check ``stored`` (an image's ``program`` object) against ``config``; return the
    :class:`QuartzProgram` keyword arguments (all but ``config``)."""
    g = config.geometry
    t_max = _int("t_max", stored["t_max"], 2, MAX_T)
    shape = stored["input_shape"]
    if not isinstance(shape, list) or not shape:
        raise ProgramFieldError("input_shape", f"{_show(shape)} is not a non-empty list")
    shape = tuple(_int(f"input_shape[{i}]", n, 1, g.n_axons) for i, n in enumerate(shape))
    n_in = math.prod(shape)
    input_axons = _ids("input_axons", stored["input_axons"], g.n_axons, n_in)
    layers = stored["layers"]
    if not isinstance(layers, list) or not layers:
        raise ProgramFieldError("layers", f"{_show(layers)} is not a non-empty list")
    layers = [_layer(f"layers[{i}]", r) for i, r in enumerate(layers)]
    n_outputs = _int("n_outputs", stored["n_outputs"], 1, g.n_outputs)
    windows = _windows(stored, t_max, layers)
    clock_axons, clock_steps = _clocks(stored, g.n_axons, input_axons, t_max,
                                       windows["first_window"], layers)
    neuron_ids = _neuron_ids(stored.get("neuron_ids", {}), layers, g.n_compartments)
    _check_outputs(config, neuron_ids[layers[-1].name], n_outputs)
    input_max = _number("input_max", stored["input_max"], 0.0, INPUT_MAX)
    if input_max == 0:
        raise ProgramFieldError("input_max", "0 is not a positive input bound")
    notes = stored.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise ProgramFieldError("notes", f"{_show(notes)} is not a list of strings")
    stream = _stream(stored, g, windows)
    _check_reset_period(config, stream["stream_period"])
    return dict(t_max=t_max, input_shape=shape, **stream,
                input_max=input_max,
                input_axons=input_axons, clock_axons=clock_axons, clock_steps=clock_steps,
                n_outputs=n_outputs, layers=layers, notes=list(notes), neuron_ids=neuron_ids,
                **windows)


def _stream(stored: dict, g, windows: dict) -> dict:
    """``stream_period`` and ``stream_readout`` (absent before format 4: 0, unpipelined): a
    period the profiles' reset fields can hold, and a readout from which the output window up
    to ``n_steps`` fits one period."""
    period = _int("stream_period", stored.get("stream_period", 0), 0, g.max_reset_interval)
    readout = _int("stream_readout", stored.get("stream_readout", 0), 0,
                   windows["n_steps"] - 1 if period else 0)
    if period and windows["n_steps"] - readout > period:
        raise ProgramFieldError("stream_readout", f"{readout} leaves {windows['n_steps'] - readout} "
                                f"output steps, more than stream_period {period}")
    return dict(stream_period=period, stream_readout=readout)


def _check_reset_period(config: CoreConfig, period: int) -> None:
    """The profiles of the live compartments reset every ``stream_period`` steps (a pipelined
    program) or never (an unpipelined one): another period would mix images silently."""
    prof = config.mem["profiles"]
    if "reset_interval" not in prof:
        intervals = set()
    else:
        used = np.unique(config.mem["compartments"]["profile"][config.live_compartments()])
        intervals = {int(v) for v in prof["reset_interval"][used]} - {0}
    if intervals != ({period} if period else set()):
        raise ProgramFieldError("stream_period", f"{period} does not match the profiles' reset "
                                f"intervals {sorted(intervals)} (a pipelined program's profiles "
                                "reset every stream_period steps, an unpipelined one's never)")


def _windows(stored: dict, t_max: int, layers: list[LayerReport]) -> dict:
    """``first_window``, ``output_window`` and ``n_steps``, checked against the layers."""
    weight = [r for r in layers if r.kind.startswith("IF")]
    if not weight or weight[-1] is not layers[-1]:
        raise ProgramFieldError("layers", "the last layer must be an IF (output) layer")
    first = _int("first_window", stored["first_window"], 2 - t_max, weight[0].window_start)
    if first != weight[0].window_start:
        raise ProgramFieldError("first_window", f"{first} is not the first IF layer's window "
                                                f"start {weight[0].window_start}")
    out = _int("output_window", stored["output_window"], first)
    if out != layers[-1].window_start:
        raise ProgramFieldError("output_window", f"{out} is not the output layer's window "
                                                 f"start {layers[-1].window_start}")
    n_steps = _int("n_steps", stored["n_steps"], 1)
    if n_steps != out + TimeGrid(t_max).window:
        raise ProgramFieldError("n_steps", f"{n_steps} is not output_window + 4(T-1) = "
                                           f"{out + TimeGrid(t_max).window}")
    return dict(first_window=first, output_window=out, n_steps=n_steps)


def _clocks(stored: dict, n_axons: int, input_axons: np.ndarray, t_max: int, first_window: int,
            layers: list[LayerReport]) -> tuple[dict, dict]:
    """Host clock axons (distinct, not input axons) and steps (the time grid's)."""
    first = next(r for r in layers if r.kind.startswith("IF"))
    want = host_clock_steps(first_window, t_max, "ReLU" in first.kind)
    axons = _mapping("clock_axons", stored["clock_axons"])
    steps = _mapping("clock_steps", stored["clock_steps"])
    for field, names in (("clock_axons", axons), ("clock_steps", steps)):
        if sorted(names) != sorted(want):
            raise ProgramFieldError(field, f"names {sorted(names)} are not {sorted(want)}, the "
                                           f"clocks of first layer {first.name!r}")
    ids = np.array([_int(f"clock_axons[{k!r}]", axons[k], 0, n_axons - 1) for k in want])
    if np.unique(ids).size != ids.size or np.isin(ids, input_axons).any():
        raise ProgramFieldError("clock_axons", f"{axons} shares an axon with another clock or "
                                               "with input_axons")
    for name, step in want.items():
        if steps[name] != step:
            raise ProgramFieldError(f"clock_steps[{name!r}]", f"{_show(steps[name])} is not the "
                                    f"time grid's step {step} (T={t_max}, first_window "
                                    f"{first_window})")
    return dict(zip(want, ids.tolist())), want


def _neuron_ids(value, layers: list[LayerReport], n_compartments: int) -> dict:
    """One list of compartment ids per layer, named and sized as the layer reports say."""
    value = _mapping("neuron_ids", value)
    names = [r.name for r in layers]
    if list(value) != names:
        raise ProgramFieldError("neuron_ids", f"keys {list(value)[:8]} are not the layer names "
                                              f"{names[:8]}")
    return {r.name: _ids(f"neuron_ids[{r.name!r}]", value[r.name], n_compartments, r.neurons)
            for r in layers}


def _check_outputs(config: CoreConfig, output_ids: np.ndarray, n_outputs: int) -> None:
    """Output neuron ``i`` must route to output id ``i`` in the configuration."""
    if output_ids.size != n_outputs:
        raise ProgramFieldError("n_outputs", f"{n_outputs}, but the output layer has "
                                             f"{output_ids.size} neurons")
    _, out = config.route_matrices(sparse=True)
    routed = np.asarray(out[output_ids, np.arange(n_outputs)]).ravel()
    if not routed.all():
        i = int(np.flatnonzero(routed == 0)[0])
        raise ProgramFieldError("neuron_ids", f"output neuron {i} (compartment "
                                              f"{int(output_ids[i])}) has no route to output {i}")
