"""A network partitioned over the cores of a chip runs exactly as on one core (spec §10).

Partition invariance: random networks (dense, conv, forwarding), each on 2–8 cores under a
random partition, give the single-core golden model's every spike, u, v and output event.
Seeds come from the session seed (``NEUROCORE_SEED``) and are printed on failure.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurocore.golden.chip import GoldenChip, Partition, build_chip
from neurocore.golden.core import GoldenCore
from neurocore.golden.random_networks import (forwarding_network, random_conv_network,
                                              random_network)
from neurocore.spec.geometry import CHIP_PRESETS, ChipGeometry, ConfigError, CoreGeometry
from neurocore.spec.words import memories

#: Networks per generator in the invariance test (≥ 50 in all).
N_RANDOM, N_CONV, N_FORWARDING = 26, 16, 10


def chip_for(config, n_cores: int) -> ChipGeometry:
    """A chip of ``n_cores`` cores of the network's own geometry, with room for the routes a
    partition multiplies (one per core that holds a target axon) and for conv outputs that a
    random partition splits inside a channel (written out as dense synapses)."""
    g = config.geometry
    words = g.n_synapses + config.synapse_list(conv=True).axon.size
    n_syn = 1 << (words - 1).bit_length()
    core = g.replace(name=f"{g.name}-chip", n_cores=n_cores, max_routes=64,
                     n_routes=g.n_routes * n_cores, n_synapses=n_syn, max_fanout=n_syn,
                     k_s=1)
    return ChipGeometry(name=f"test{n_cores}", core=core, n_cores=n_cores, mesh=(n_cores, 1))


def random_partition(rng, config, n_cores: int) -> np.ndarray:
    """Per compartment a core: each compartment alone (half the draws), or random contiguous
    blocks (whole conv channels more often), every live compartment placed."""
    n = config.geometry.n_compartments
    if rng.random() < 0.5:
        return rng.integers(0, n_cores, size=n)
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(n - 1, 2 * n_cores), replace=False))
    block = np.searchsorted(cuts, np.arange(n), side="right")
    return rng.integers(0, n_cores, size=block.max() + 1)[block]


def assert_same(chip_res, ref, where: str):
    for name in ("spikes", "outputs", "u", "v"):
        a, b = getattr(chip_res, name), getattr(ref, name)
        bad = np.argwhere(a != b)
        assert not bad.size, f"{where}: {name} differs first at {bad[0].tolist()} " \
                             f"({a[tuple(bad[0])]} vs {b[tuple(bad[0])]})"


def _cases(seed):
    gens = ([(random_network, {}) for _ in range(N_RANDOM)]
            + [(random_conv_network, {}) for _ in range(N_CONV)]
            + [(forwarding_network, {"geometry": "small"}) for _ in range(N_FORWARDING)])
    return [(gen, kw, seed + i) for i, (gen, kw) in enumerate(gens)]


def test_partition_invariance(seed):
    """≥ 50 random networks on random partitions: 0 mismatches against one core."""
    flits = 0
    for gen, kw, s in _cases(seed):
        net = gen(s, batch=2, **kw)
        rng = np.random.default_rng(s)
        n_cores = int(rng.integers(2, 9))
        part = Partition(chip_for(net.config, n_cores),
                         random_partition(rng, net.config, n_cores))
        chip = build_chip(net.config, part)
        where = f"{gen.__name__} seed {s} on {n_cores} cores (NEUROCORE_SEED={seed})"
        ref = GoldenCore(net.config).run(net.inputs, record=("u", "v"))
        assert_same(GoldenChip(chip).run(net.inputs, record=("u", "v")), ref, where)
        flits += int((ref.spikes.sum(axis=(0, 1)) * chip.remote_routes()).sum())
    assert len(_cases(seed)) >= 50 and flits > 0   # the partitions do cross cores


def test_whole_channels_keep_their_descriptor(seed):
    """A conv group split by whole channels stays conv descriptors on each core (no dense
    expansion), and still runs exactly."""
    from neurocore.golden.conv import conv_connections
    # the first network from ``seed`` on whose largest conv has 2+ output channels to split
    for s in range(seed, seed + 50):
        net = random_conv_network(s, batch=2)
        cfg = net.config
        c = max(conv_connections(cfg), key=lambda c: c.out_shape[0])
        if c.out_shape[0] >= 2:
            break
    assert c.out_shape[0] >= 2, f"no conv with 2+ output channels from seed {seed}"
    core_of = np.zeros(cfg.geometry.n_compartments, dtype=np.int64)
    hw = c.out_shape[1] * c.out_shape[2]
    half = c.out_shape[0] // 2
    core_of[c.out_base + half * hw:] = 1
    chip = build_chip(cfg, Partition(chip_for(cfg, 2), core_of))
    where = f"network seed {s} (NEUROCORE_SEED={seed})"
    assert all(k.summary()["conv_descriptors_used"] >= 1 for k in chip.cores), where
    dense = sum(k.summary()["synapses_used"] for k in chip.cores)
    assert dense == cfg.summary()["synapses_used"], f"{where}: conv outputs went dense"
    ref = GoldenCore(cfg).run(net.inputs, record=("u", "v"))
    assert_same(GoldenChip(chip).run(net.inputs, record=("u", "v")), ref, where)


def test_digits_cnn_program_partitioned_equals_one_core(seed):
    """The digits CNN's program (untrained weights: the structure is what matters) over five
    small cores, split inside its layers, equals the single-core run."""
    from neurocore.sw.convert import from_model
    from neurocore.sw.models import digits_cnn
    torch.manual_seed(seed % (1 << 31))
    program = from_model(digits_cnn().eval(), 8, torch.rand(32, 1, 8, 8))
    cfg = program.config
    rng = np.random.default_rng(seed)
    n_cores = 5
    core_of = random_partition(rng, cfg, n_cores)
    chip = build_chip(cfg, Partition(chip_for(cfg, n_cores), core_of))
    x = program.encode(torch.rand(4, 1, 8, 8))
    ref = GoldenCore(cfg).run(x, record=("u", "v"))
    res = GoldenChip(chip).run(x, record=("u", "v"))
    assert_same(res, ref, f"digits CNN, NEUROCORE_SEED={seed}")
    assert (program.decode(res.outputs)["predicted"] == program.decode(ref.outputs)["predicted"]
            ).all()


def test_route_word_has_a_core_field_only_on_a_chip():
    g = CoreGeometry.preset("small")
    assert "core" not in dict(memories(g)["routes"].layout)
    chip = CHIP_PRESETS["chip-test"]
    width = dict(memories(chip.core)["routes"].layout)["core"].shape.width
    assert width == 2 and chip.core.core_bits == 2


def test_unplaced_live_compartment_and_bad_core_are_named():
    net = random_network(3, "tiny")
    cfg = net.config
    chip = chip_for(cfg, 2)
    core_of = np.full(cfg.geometry.n_compartments, -1)
    with pytest.raises(ConfigError, match="is live .* but not placed"):
        build_chip(cfg, Partition(chip, core_of))
    with pytest.raises(ConfigError, match="names core 5"):
        build_chip(cfg, Partition(chip, np.full(cfg.geometry.n_compartments, 5)))
    with pytest.raises(ConfigError, match="state_bits"):
        other = chip.core.replace(state_bits=20)
        build_chip(cfg, Partition(ChipGeometry(name="x", core=other, n_cores=2, mesh=(2, 1)),
                                  np.zeros(cfg.geometry.n_compartments, dtype=np.int64)))


def test_chip_geometry_checks_its_cores():
    core = CoreGeometry.preset("tiny")
    with pytest.raises(ConfigError, match="n_cores=1"):
        ChipGeometry(name="x", core=core, n_cores=2, mesh=(2, 1))
    with pytest.raises(ConfigError, match="fewer than 4 places"):
        ChipGeometry(name="x", core=core.replace(n_cores=4), n_cores=4, mesh=(3, 1))
    chip = CHIP_PRESETS["chip-test"]
    assert chip.hops(0, 3) == 2 and chip.hops(1, 1) == 0


def test_chip_core_with_reset_fields_takes_a_network_without_them(seed):
    """A chip core with reset_bits > 0 holds a logical network without reset fields: its
    reset fields stay 0 (no periodic reset) and the chip equals one core."""
    net = random_network(seed, batch=2)
    chip = chip_for(net.config, 2)
    chip = ChipGeometry(name=chip.name, core=chip.core.replace(reset_bits=4), n_cores=2,
                        mesh=chip.mesh)
    n = net.config.geometry.n_compartments
    part = Partition(chip, np.random.default_rng(seed).integers(0, 2, n))
    cfg = build_chip(net.config, part)
    assert all(not c.mem["profiles"]["reset_interval"].any() for c in cfg.cores)
    ref = GoldenCore(net.config).run(net.inputs, record=("u", "v"))
    assert_same(GoldenChip(cfg).run(net.inputs, record=("u", "v")), ref,
                f"NEUROCORE_SEED={seed}")
