"""Compare two runs and report the first divergence (for golden vs Lava vs RTL checks)."""

from __future__ import annotations

import numpy as np

from .core import RunResult

__all__ = ["first_mismatch"]

#: Fields compared, in the order a divergence is looked for within one step.
FIELDS = ("spikes", "u", "v", "outputs")


def first_mismatch(expected: RunResult, actual: RunResult, *, seed=None,
                   expected_name: str = "golden", actual_name: str = "other",
                   fields=FIELDS) -> str | None:
    """Return a message naming the first divergence, or None when the runs agree.

    The search goes step by step (earliest step first), then batch element, then field in
    ``fields`` order, then compartment/output index, so the message points at the cause
    rather than its consequences.
    """
    present = [f for f in fields
               if getattr(expected, f) is not None and getattr(actual, f) is not None]
    for f in present:
        a, b = np.asarray(getattr(expected, f)), np.asarray(getattr(actual, f))
        if a.shape != b.shape:
            return f"{f}: shape {a.shape} ({expected_name}) != {b.shape} ({actual_name})"
    steps = np.asarray(expected.spikes).shape[-2]
    batch_shape = np.asarray(expected.spikes).shape[:-2]
    for t in range(steps):
        for bidx in np.ndindex(batch_shape):
            for f in present:
                a = np.asarray(getattr(expected, f))[bidx + (t,)]
                b = np.asarray(getattr(actual, f))[bidx + (t,)]
                diff = np.flatnonzero(a != b)
                if diff.size:
                    i = int(diff[0])
                    where = "output" if f == "outputs" else "compartment"
                    sample = f"sample {bidx[0]}, " if bidx else ""
                    return (f"first mismatch at step {t}, {sample}{where} {i}, field {f}: "
                            f"{expected_name} {int(a[i])} != {actual_name} {int(b[i])}"
                            f" ({diff.size} {where}s differ at this step)"
                            + (f"; seed {seed}" if seed is not None else ""))
    return None
