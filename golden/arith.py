"""Integer arithmetic of one compartment update, exactly as docs/spec.md §2 states it.

All functions are vectorised over NumPy ``int64`` arrays and take the geometry for widths.
They are the single source of the golden model's arithmetic; the RTL implements the same
equations and the tests compare the two.
"""

from __future__ import annotations

import numpy as np

from ..spec.geometry import CoreGeometry
from ..spec.words import SignMode

__all__ = [
    "decay", "wrap_accumulator", "wrap_current", "saturate_voltage", "effective_weight",
    "weight_mantissa", "effective_bias", "current_pattern", "current_from_pattern",
]


def decay(x: np.ndarray, d_eff: np.ndarray, g: CoreGeometry, out: np.ndarray | None = None
          ) -> np.ndarray:
    """Return ``sign(x) * ((|x| * (2**12 - d_eff)) >> 12)``: truncation toward zero.

    Computed as ``(p + ((p >> 63) & 4095)) >> 12`` with ``p = x·(4096 − d_eff)``: adding
    ``4095`` to a negative product turns the flooring shift into truncation toward zero.
    ``x`` must be ``int64``; ``out`` (may be ``x``) receives the result.
    """
    p = np.multiply(x, (1 << g.decay_shift) - d_eff, out=out)
    p += (p >> 63) & ((1 << g.decay_shift) - 1)
    p >>= g.decay_shift
    return p


def wrap_accumulator(acc: np.ndarray, g: CoreGeometry, out: np.ndarray | None = None
                     ) -> np.ndarray:
    """Wrap an accumulator sum to ``acc_bits`` two's complement (``out`` may be ``acc``)."""
    half = 1 << (g.acc_bits - 1)
    r = np.add(acc, half, out=out)
    r &= (1 << g.acc_bits) - 1
    r -= half
    return r


def wrap_current(u: np.ndarray, g: CoreGeometry, out: np.ndarray | None = None) -> np.ndarray:
    """Wrap u modulo ``2**state_bits`` into ``(-2**(state_bits-1), 2**(state_bits-1)]``.

    This is Lava's ``PyLifModelBitAcc`` range: ``+2**23`` stays, ``-2**23`` becomes ``+2**23``.
    ``out`` may be ``u``.
    """
    m = g.state_max
    r = np.subtract(m, u, out=out)
    r &= (m << 1) - 1
    np.subtract(m, r, out=r)
    return r


def saturate_voltage(v: np.ndarray, g: CoreGeometry, out: np.ndarray | None = None
                     ) -> np.ndarray:
    """Saturate v to ``[-(2**(state_bits-1) - 1), 2**(state_bits-1) - 1]``."""
    lim = g.state_max - 1
    return np.clip(v, -lim, lim, out=out)


def effective_weight(mantissa: np.ndarray, sign_mode: np.ndarray, g: CoreGeometry) -> np.ndarray:
    """Return the signed weight of stored ``weight`` bit patterns under ``sign_mode``.

    EXCITATORY: +m; INHIBITORY: -m; MIXED: 2 * (m as signed ``weight_bits``).
    """
    m = np.asarray(mantissa, dtype=np.int64)
    sm = np.asarray(sign_mode, dtype=np.int64)
    half = 1 << (g.weight_bits - 1)
    mixed = 2 * (((m + half) & ((1 << g.weight_bits) - 1)) - half)
    return np.where(sm == SignMode.EXCITATORY.value, m,
                    np.where(sm == SignMode.INHIBITORY.value, -m, mixed))


def weight_mantissa(weight: np.ndarray, sign_mode: np.ndarray, g: CoreGeometry) -> np.ndarray:
    """Inverse of :func:`effective_weight`: the stored bit pattern for a signed weight.

    Raises ``ValueError`` naming the first weight that the sign mode cannot represent.
    """
    w = np.asarray(weight, dtype=np.int64)
    sm = np.broadcast_to(np.asarray(sign_mode, dtype=np.int64), w.shape)
    full = (1 << g.weight_bits) - 1
    half = 1 << (g.weight_bits - 1)
    exc = sm == SignMode.EXCITATORY.value
    inh = sm == SignMode.INHIBITORY.value
    mix = sm == SignMode.MIXED.value
    bad = ((exc & ((w < 0) | (w > full))) | (inh & ((w > 0) | (w < -full)))
           | (mix & ((w % 2 != 0) | (w < -2 * half) | (w > 2 * (half - 1))))
           | ~(exc | inh | mix))
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        mode = int(sm.ravel()[i])
        name = SignMode(mode).name if mode in (1, 2, 3) else f"<invalid sign mode {mode}>"
        raise ValueError(f"weight {int(w.ravel()[i])} (entry {i}) cannot be stored as an "
                         f"{g.weight_bits}-bit mantissa in sign mode {name}")
    return np.where(exc, w, np.where(inh, -w, (w // 2) & full))


def effective_bias(mant: np.ndarray, exp: np.ndarray) -> np.ndarray:
    """Return ``bias_mant << bias_exp``."""
    return np.left_shift(np.asarray(mant, dtype=np.int64), np.asarray(exp, dtype=np.int64))


def current_pattern(u: np.ndarray, g: CoreGeometry) -> np.ndarray:
    """Return the stored ``state_bits`` pattern of a current value (see ``state_layout``)."""
    return np.asarray(u, dtype=np.int64) & ((1 << g.state_bits) - 1)


def current_from_pattern(p: np.ndarray, g: CoreGeometry) -> np.ndarray:
    """Decode a stored u pattern; ``100…0`` decodes to ``+2**(state_bits-1)``."""
    return wrap_current(np.asarray(p, dtype=np.int64), g)
