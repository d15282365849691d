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
    """Golden run recording u and v."""
    return GoldenCore(cfg).run(x, record=("u", "v"))
