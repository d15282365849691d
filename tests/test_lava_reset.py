"""Periodic reset (docs/spec.md §11): golden model vs Lava's ``LIFReset``
(``PyLifResetModelBitAcc``), spikes, u and v at every step.

Random networks and random conv networks from seeds ``NEUROCORE_SEED + i`` get a random
reset interval (1..``MAX_INTERVAL``, or none) and offset on every profile; ``PER_RUN`` of
each kind share one Lava run (:func:`merge_configs`), two Lava runs in all.
"""

import numpy as np
import pytest
from conftest import base_seed
from test_lava_crosscheck import _check_side_by_side

from neurocore.golden.random_networks import (random_conv_network, random_network,
                                              with_random_resets)
from neurocore.sim.lava_harness import lava_reset_offset
from neurocore.spec.geometry import CoreGeometry

pytestmark = pytest.mark.lava

#: The small preset with reset fields wide enough for MAX_INTERVAL.
MAX_INTERVAL = 16
GEOMETRY = CoreGeometry.preset("small").replace(name="small-reset",
                                                reset_bits=MAX_INTERVAL.bit_length())
STEPS = 48
PER_RUN = 10


def _nets(make, offset):
    seeds = [base_seed() + offset + i for i in range(PER_RUN)]
    print(f"seeds {seeds} (NEUROCORE_SEED={base_seed()})")
    nets = [with_random_resets(make(s, GEOMETRY, steps=STEPS), np.random.default_rng(s),
                               max_interval=MAX_INTERVAL) for s in seeds]
    pr = [n.config.mem["profiles"] for n in nets]
    print("(interval, offset) per network:",
          [sorted(set(zip(p["reset_interval"].tolist(), p["reset_offset"].tolist())))
           for p in pr])
    assert any((p["reset_interval"] > 0).any() for p in pr)
    return nets


def test_lava_reset_offset_is_one_based():
    # golden step t resets when (t - o) mod I = 0; Lava when time_step % I == offset, with
    # time_step = t + 1
    for interval in range(1, 9):
        for o in range(interval):
            lava = lava_reset_offset(interval, o)
            for t in range(40):
                assert ((t - o) % interval == 0) == ((t + 1) % interval == lava % interval)


def test_random_networks_with_reset_match_lava():
    _check_side_by_side(_nets(random_network, 0), "golden vs Lava (periodic reset)")


def test_random_conv_networks_with_reset_match_lava():
    _check_side_by_side(_nets(random_conv_network, 1000), "golden vs Lava (reset, conv)")
