"""8-bit pixels for the on-chip TTFS encoder (rtl/encoder.py) and host link v2.

A pixel byte ``b`` (0 … 255) stands for the network input ``x = b / PIXEL_SCALE`` (so 0 → 0.0
and 255 → 1.0); :meth:`~neurocore.sw.compiler.QuartzProgram.encode` of those floats is the
reference the encoder must reproduce bit for bit (docs/rtl.md, "TTFS encoder").

:func:`encoder_tables` turns a program into what the encoder holds:

* ``lut[b]``: the step at which a pixel of value ``b`` spikes,
  ``first_window + encode(b / 255, t_max) − 1``, or :data:`NO_STEP` when that step lies
  outside ``0 … n_steps − 1`` (the input never spikes);
* ``axons[i]``: the axon of input ``i`` (``program.input_axons``);
* ``clocks``: ``(axon, step)`` of each host clock axon (``program.clock_axons`` /
  ``clock_steps``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..golden.quartz import encode

__all__ = ["PIXEL_SCALE", "NO_STEP", "STEP_BITS", "EncoderTables", "encoder_tables",
           "pixel_values", "to_pixels", "check_pixels"]

#: Pixel byte ``b`` is the input ``b / PIXEL_SCALE``.
PIXEL_SCALE = 255
#: Width (bits) of a step in the encoder's tables and on the wire (u16 fields hold it).
STEP_BITS = 10
#: Table value "never spikes" (all ones in :data:`STEP_BITS`).
NO_STEP = (1 << STEP_BITS) - 1


@dataclass(frozen=True)
class EncoderTables:
    """What :class:`~neurocore.rtl.encoder.TTFSEncoder` is loaded with for one program."""

    lut: np.ndarray          # (256,) step per pixel value, NO_STEP: no spike
    axons: np.ndarray        # (n_inputs,) axon id of each input
    clocks: tuple            # ((axon, step), ...) host clock spikes
    n_steps: int
    n_outputs: int           # classes reported per image
    valid: np.ndarray        # (256,) bool: pixel values the program accepts

    @property
    def n_inputs(self) -> int:
        return int(self.axons.size)


def pixel_values(pixels) -> np.ndarray:
    """Float inputs ``pixels / PIXEL_SCALE`` of pixel bytes (any shape)."""
    return np.asarray(pixels, dtype=np.float64) / PIXEL_SCALE


def to_pixels(x) -> np.ndarray:
    """Nearest pixel bytes of float inputs in [0, 1]; ValueError naming the first bad value."""
    x = np.asarray(x, dtype=np.float64)
    bad = np.isnan(x) | (x < 0) | (x > 1)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"input value {float(x[pos])!r} at index {pos} is outside [0, 1], the "
                         f"range 8-bit pixels cover (pixel = round(x * {PIXEL_SCALE}))")
    return np.rint(x * PIXEL_SCALE).astype(np.uint8)


def encoder_tables(program) -> EncoderTables:
    """The encoder tables of ``program`` (a single-core, unpipelined :class:`QuartzProgram`)."""
    if program.stream_period:
        raise ValueError("the on-chip encoder runs one image at a time; this program is "
                         f"pipelined (stream_period = {program.stream_period})")
    if program.n_steps > NO_STEP:
        raise ValueError(f"program has {program.n_steps} steps per image; the encoder's "
                         f"{STEP_BITS}-bit steps hold at most {NO_STEP}")
    x = pixel_values(np.arange(256))
    tau = encode(x, program.t_max)
    tau_min = int(encode(np.array([program.input_max]), program.t_max)[0])
    valid = tau >= tau_min                   # what program.encode accepts (bytes are >= 0)
    steps = program.first_window + np.maximum(tau, tau_min) - 1
    lut = np.where((steps >= 0) & (steps < program.n_steps), steps, NO_STEP).astype(np.int64)
    clocks = tuple((int(program.clock_axons[k]), int(program.clock_steps[k]))
                   for k in program.clock_axons)
    return EncoderTables(lut=lut, axons=np.asarray(program.input_axons, dtype=np.int64),
                         clocks=clocks, n_steps=int(program.n_steps),
                         n_outputs=int(program.n_outputs), valid=valid)


def check_pixels(tables: EncoderTables, pixels, where: str = "pixels") -> np.ndarray:
    """Pixel bytes as a (N, n_inputs) uint8 array; ValueError for a wrong size or a value
    the program does not accept (named with its image and input index and ``where``)."""
    p = np.asarray(pixels)
    if p.ndim == 1:
        p = p[None]
    p = p.reshape(p.shape[0], -1)
    if p.shape[1] != tables.n_inputs:
        raise ValueError(f"{where}: images of {p.shape[1]} pixels; the program takes "
                         f"{tables.n_inputs}")
    if p.size and (p.min() < 0 or p.max() > 255):
        raise ValueError(f"{where}: pixel values must lie in 0..255, found {p.min()}..{p.max()}")
    p = p.astype(np.uint8)
    bad = ~tables.valid[p]
    if bad.any():
        b, i = np.argwhere(bad)[0]
        raise ValueError(f"{where}: pixel {int(p[b, i])} (image {b}, input {i}) is above the "
                         "input range this program was compiled for")
    return p
