"""Periodic reset per profile (docs/spec.md §11): words, hand-computed golden runs, errors.

Rule: a profile with ``reset_interval = I > 0`` and ``reset_offset = o`` sets u = v = 0 before
the update of every step ``t`` with ``(t − o) mod I = 0``; the step's accumulator slot is still
integrated.  The reset fields exist only on a geometry with ``reset_bits > 0``.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurocore.golden.core import GoldenCore
from neurocore.golden.network import ConfigError, NetworkBuilder
from neurocore.spec.geometry import PRESETS, CoreGeometry
from neurocore.spec.words import memories

TINY = CoreGeometry.preset("tiny")
RESET = TINY.replace(name="tiny-reset", reset_bits=6)


def test_presets_have_no_reset_fields_and_reset_bits_adds_them():
    for g in PRESETS.values():
        assert g.reset_bits == 0
        assert "reset_interval" not in dict(memories(g)["profiles"].layout)
    layout = memories(RESET)["profiles"].layout
    base = memories(TINY)["profiles"].layout
    assert layout.size == base.size + 2 * RESET.reset_bits
    fields = dict(layout)
    assert fields["reset_interval"].shape.width == RESET.reset_bits
    assert fields["reset_offset"].offset == base.size + RESET.reset_bits
    assert RESET.max_reset_interval == (1 << RESET.reset_bits) - 1


def _bias_net(interval: int, offset: int, g=RESET):
    """One non-leaky compartment with bias 3 (current 0) and an input axon of weight 2."""
    b = NetworkBuilder(g)
    p = b.add_profile(du=0, du_offset=0, dv=0, vth=(1 << 17) - 1, reset_interval=interval,
                      reset_offset=offset)
    b.add_compartments(1, profile=p, bias_mant=3)
    b.connect(axon=0, targets=[0], weights=[2])
    return b.build()


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_hand_trajectory(backend):
    # bias 3, no input: v = 3 (t + 1) from reset; I = 5, o = 2: cleared before steps 2, 7, 12.
    # A host spike at step 6 lands at step 7 (weight 2: u = 2 << 6 = 128 from step 7 on).
    cfg = _bias_net(5, 2)
    x = np.zeros((14, TINY.n_axons), dtype=bool)
    x[6, 0] = True
    res = GoldenCore(cfg, backend=backend).run(x, record=("u", "v"))
    u, v = res.u[:, 0].tolist(), res.v[:, 0].tolist()
    #       t:  0  1  2  3  4   5   6   7    8    9   10   11   12   13
    assert v == [3, 6, 3, 6, 9, 12, 15, 131, 262, 393, 524, 655, 3, 6]
    assert u == [0, 0, 0, 0, 0, 0, 0, 128, 128, 128, 128, 128, 0, 0]


def test_interval_zero_never_resets_and_offset_may_exceed_steps():
    x = np.zeros((10, TINY.n_axons), dtype=bool)
    v0 = GoldenCore(_bias_net(0, 0)).run(x, record=("v",)).v[:, 0]
    assert v0.tolist() == [3 * (t + 1) for t in range(10)]
    # o = 7 < I = 9: first reset at step 7 (t − o = 0), none before
    v1 = GoldenCore(_bias_net(9, 7)).run(x, record=("v",)).v[:, 0]
    assert v1.tolist() == [3, 6, 9, 12, 15, 18, 21, 3, 6, 9]


def test_errors_name_value_and_place():
    with pytest.raises(ConfigError, match=r"reset_interval 4 .*reset_bits > 0.*'tiny'"):
        _bias_net(4, 1, g=TINY)
    with pytest.raises(ConfigError, match=r"reset_offset 5 of profiles\[0\] must be < "
                                          r"reset_interval"):
        _bias_net(5, 5)
    with pytest.raises(ConfigError, match=r"reset_offset 1 of profiles\[0\]"):
        _bias_net(0, 1)
    with pytest.raises(ConfigError, match=r"reset_interval 64 of profiles\[0\] does not fit "
                                          r"unsigned\(6\)"):
        _bias_net(64, 0)
    with pytest.raises(ValueError, match="reset_bits=17 exceeds its limit 16"):
        TINY.replace(reset_bits=17)


def test_chip_with_reset_equals_one_core(seed):
    """A random network with random resets partitioned over a chip whose cores have reset
    fields: spikes, u and v equal one core's every step; a chip core without reset fields is
    refused."""
    from test_chip import assert_same, chip_for, random_partition

    from neurocore.golden.chip import GoldenChip, Partition, build_chip
    from neurocore.golden.random_networks import random_network, with_random_resets
    from neurocore.spec.geometry import ChipGeometry
    g = CoreGeometry.preset("small").replace(name="small-reset", reset_bits=5)
    for s in range(seed, seed + 4):
        net = with_random_resets(random_network(s, g, steps=40, batch=2),
                                 np.random.default_rng(s), max_interval=g.max_reset_interval)
        rng = np.random.default_rng(s)
        n_cores = int(rng.integers(2, 6))
        chip_g = chip_for(net.config, n_cores)
        chip = build_chip(net.config, Partition(chip_g, random_partition(rng, net.config,
                                                                         n_cores)))
        ref = GoldenCore(net.config).run(net.inputs, record=("u", "v"))
        assert_same(GoldenChip(chip).run(net.inputs, record=("u", "v")), ref,
                    f"seed {s} on {n_cores} cores")
    cfg = _bias_net(5, 2)
    plain = chip_for(cfg, 2)
    plain = ChipGeometry(name="plain", n_cores=2, mesh=(2, 1),
                         core=plain.core.replace(reset_bits=0))
    with pytest.raises(ConfigError, match=r"core 0: its profiles reset periodically.*"
                                          r"\(reset_bits=0\)"):
        build_chip(cfg, Partition(plain, np.zeros(cfg.geometry.n_compartments, dtype=int)))


def test_board_info_is_unchanged_and_refuses_reset_fields():
    """INFO carries no reset_bits (boards have no periodic reset yet): its payload is what it
    was, reads as reset_bits = 0, and a geometry with reset fields is not the board's."""
    from neurocore.boards.protocol import GEOMETRY_FIELDS, decode_info, encode_info
    assert "reset_bits" not in GEOMETRY_FIELDS
    info = decode_info(encode_info(TINY, max_payload=255, step_bits=32, event_depth=16,
                                   input_depth=16))
    assert info.geometry["reset_bits"] == 0
    assert info.same_geometry(TINY) and not info.same_geometry(RESET)
