"""Small helpers shared by the hand-computed and edge-case golden tests."""

import numpy as np

from neurocore.golden.core import GoldenCore
from neurocore.spec.geometry import CoreGeometry

TINY = CoreGeometry.preset("tiny")


def inputs(T, spikes, g=TINY):
    """(T, n_axons) 0/1 array with a 1 at every (t, axon) of ``spikes``."""
    x = np.zeros((T, g.n_axons), dtype=np.uint8)
    for t, a in spikes:
        x[t, a] = 1
    return x


def run(cfg, x):
    """Golden run recording u and v; the torch backend must give the same arrays."""
    res = GoldenCore(cfg).run(x, record=("u", "v"))
    other = GoldenCore(cfg, backend="torch").run(x, record=("u", "v"))
    for name in ("spikes", "outputs", "u", "v"):
        np.testing.assert_array_equal(getattr(other, name), getattr(res, name),
                                      err_msg=f"torch backend differs from NumPy in {name}")
    return res
