"""Golden model vs Lava's bit-accurate LIF/Dense/DelayDense: spikes, u and v at every step.

``NEUROCORE_LAVA_NETWORKS`` (default 200) random networks of up to 256 compartments and
``NEUROCORE_LAVA_CONV_NETWORKS`` (default 100) random conv networks (spec §3.5,
:func:`random_conv_network`) are drawn from seeds ``NEUROCORE_SEED + i``; each failure names
the seed that reproduces it.  They run ``PER_RUN`` at a time, side by side in one Lava run
(:func:`merge_configs`): a Lava run costs seconds of start-up whatever its size.
"""

import os

import numpy as np
import pytest
from conftest import base_seed, record_crosscheck

from neurocore.golden.compare import first_mismatch
from neurocore.golden.core import GoldenCore
from neurocore.golden.network import NetworkBuilder
from neurocore.golden.conv import conv_connections
from neurocore.golden.core import RunResult
from neurocore.golden.random_networks import max_synaptic_sum, random_conv_network, random_network
from neurocore.sim.lava_harness import lava_du, merge_configs, run_lava
from neurocore.spec.geometry import CoreGeometry

N_NETWORKS = int(os.environ.get("NEUROCORE_LAVA_NETWORKS", "200"))
N_CONV_NETWORKS = int(os.environ.get("NEUROCORE_LAVA_CONV_NETWORKS", "100"))
STEPS = 24

pytestmark = pytest.mark.lava


def _check(config, inputs, seed, label="golden vs Lava"):
    golden = GoldenCore(config).run(inputs, record=("u", "v"))
    lava = run_lava(config, inputs, record=("u", "v"))
    msg = first_mismatch(golden, lava, seed=seed, actual_name="lava")
    B, T, n = golden.u.shape
    record_crosscheck(label, networks=1, samples=B, steps=B * T, compartment_steps=B * T * n,
                      mismatches=int(msg is not None))
    assert msg is None, msg
    return golden


#: Random networks per Lava run (side by side, :func:`merge_configs`).
PER_RUN = 10


def _chunk_seeds(chunk: int, total: int) -> list[int]:
    first = chunk * PER_RUN
    return [base_seed() + i for i in range(first, min(first + PER_RUN, total))]


@pytest.mark.parametrize("chunk", range(-(-N_NETWORKS // PER_RUN)))
def test_random_networks_match_lava(chunk):
    """Random networks (every field of the core), PER_RUN side by side in one Lava run."""
    seeds = _chunk_seeds(chunk, N_NETWORKS)
    print(f"random networks, seeds {seeds}")
    _check_side_by_side([random_network(s, "small", steps=STEPS) for s in seeds],
                        "golden vs Lava")


def _first(result: RunResult, n: int) -> RunResult:
    """``result`` restricted to its first ``n`` compartments."""
    return RunResult(spikes=result.spikes[..., :n], outputs=result.outputs,
                     u=result.u[..., :n], v=result.v[..., :n])


@pytest.mark.parametrize("chunk", range(-(-N_CONV_NETWORKS // PER_RUN)))
def test_random_conv_networks_match_lava(chunk):
    """Conv networks, PER_RUN side by side in one Lava run (descriptors expanded to Dense in
    the harness)."""
    seeds = _chunk_seeds(chunk, N_CONV_NETWORKS)
    print(f"conv networks, seeds {seeds}")
    _check_side_by_side([random_conv_network(s, "small", steps=STEPS) for s in seeds],
                        "golden vs Lava (conv)")


def _check_side_by_side(nets, label):
    """Every network's golden run equals its part of the merged golden run and of the merged
    Lava run, per step, in u, v, spikes and outputs."""
    merged = merge_configs([n.config for n in nets])
    x = merged.raster([n.inputs for n in nets])
    golden_merged = GoldenCore(merged.config).run(x, record=("u", "v"))
    lava = run_lava(merged.config, x, record=("u", "v"))
    bad = []
    for i, net in enumerate(nets):
        alone = GoldenCore(net.config).run(net.inputs, record=("u", "v"))
        n = merged.n_cx[i]
        assert not (alone.spikes[..., n:].any() or alone.u[..., n:].any()
                    or alone.v[..., n:].any()), f"seed {net.seed}: idle compartments moved"
        ref = _first(alone, n)
        msg = first_mismatch(ref, merged.split(golden_merged, i), seed=net.seed,
                             actual_name="golden (merged)")
        assert msg is None, msg
        msg = first_mismatch(ref, merged.split(lava, i), seed=net.seed, actual_name="lava")
        B, T, _ = ref.u.shape
        record_crosscheck(label, networks=1, samples=B, steps=B * T,
                          compartment_steps=B * T * n, mismatches=int(msg is not None))
        if msg is not None:
            bad.append(msg)
    assert not bad, "\n".join(bad)


def _conv_edge_network(seed):
    """Conv descriptors at the field limits (small preset): a 15×15 kernel with stride 8 and
    padding 7, a routed depthwise descriptor, a 20-piece broadcast, a 1×1 kernel with stride 4
    and exponent 7, a (2, 15) kernel with padding 7; weights ±255, every delay; u wraps."""
    g = CoreGeometry.preset("small")
    rng = np.random.default_rng(seed)
    b = NetworkBuilder(g)
    D = g.n_delay_slots
    leaky = b.add_profile(du=1024, dv=256, vth=400)
    integ = b.add_profile(du=0, du_offset=0, dv=0, vth=3000)
    limits = lambda shape: rng.choice([-255, 255], size=shape)          # noqa: E731
    delays = lambda shape: rng.integers(0, D, size=shape)               # noqa: E731
    # 15×15 kernel, stride 8, padding 7 on a (2, 15, 15) map → (3, 2, 2)
    a0 = np.arange(450).reshape(2, 15, 15)
    g0 = b.add_compartments(12, profile=leaky).reshape(3, 2, 2)
    b.add_conv(a0, g0, limits((3, 2, 15, 15)), stride=8, padding=7, delay=delays((3, 2, 15, 15)))
    # g0's spikes come back on axons 450..461 → depthwise 3×3, stride 2, padding 1 → (3, 1, 1)
    a1 = np.arange(450, 462).reshape(3, 2, 2)
    b.route_to_axon(g0.reshape(-1), a1.reshape(-1))
    g1 = b.add_compartments(3, profile=integ).reshape(3, 1, 1)
    b.add_conv(a1, g1, limits((3, 1, 3, 3)), stride=2, padding=1, depthwise=True,
               weight_exp=5, delay=delays((3, 1, 3, 3)))
    # broadcast of 20 pieces per channel (two kernel rows) onto g0
    b.add_broadcast(462, g0, limits((3, 20)), weight_exp=2, delay=delays((3, 20)))
    # 1×1 kernel, stride 4, exponent 7 on (1, 6, 6) → (2, 2, 2)
    a3 = np.arange(463, 499).reshape(1, 6, 6)
    g3 = b.add_compartments(8, profile=leaky).reshape(2, 2, 2)
    b.add_conv(a3, g3, limits((2, 1, 1, 1)), stride=4, weight_exp=7, delay=delays((2, 1, 1, 1)))
    # a (2, 15) kernel with padding 7 on a (1, 2, 3) map → (1, 15, 3)
    a4 = np.arange(499, 505).reshape(1, 2, 3)
    g4 = b.add_compartments(45, profile=integ).reshape(1, 15, 3)
    b.add_conv(a4, g4, limits((1, 1, 2, 15)), padding=7, weight_exp=3, delay=delays((1, 1, 2, 15)))
    b.route_to_output(np.concatenate([g1.reshape(-1), g4.reshape(-1)]), np.arange(48))
    config = b.build()
    x = np.zeros((1, 40, g.n_axons), dtype=bool)
    x[0, :, :450] = rng.random((40, 450)) < 0.15
    x[0, :, 462] = rng.random(40) < 0.3
    x[0, :, 463:505] = rng.random((40, 42)) < 0.3
    return config, x

def test_conv_field_limits_match_lava(seed):
    config, x = _conv_edge_network(seed)
    assert max_synaptic_sum(config) < 1 << (config.geometry.acc_bits - 1)
    golden = _check(config, x, seed=seed, label="golden vs Lava (conv field limits)")
    assert golden.spikes.sum() > 100


def test_random_conv_networks_are_not_trivial():
    """The drawn conv networks spike and use every descriptor kind, stride > 1, padding,
    routed (recurrent) conv input, every delay and weight exponent and the weight extremes."""
    seen = dict(spikes=0, conv_recurrent=0, kinds=set(), strides=set(), pads=set(),
                delays=set(), exps=set(), weights=set())
    for i in range(40):
        net = random_conv_network(base_seed() + i, "small", steps=STEPS)
        core = GoldenCore(net.config)
        seen["spikes"] += int(core.run(net.inputs).spikes.sum())
        seen["conv_recurrent"] += int(core.conv_recurrent)
        for c in conv_connections(net.config):
            seen["kinds"].add(c.kind.name)
            seen["strides"].add(c.stride)
            seen["pads"].add(c.pad)
        syn = net.config.synapse_list()
        seen["delays"] |= set(syn.delay.tolist())
        seen["exps"] |= set(syn.weight_exp.tolist())
        seen["weights"] |= set(syn.weight.tolist())
    assert seen["spikes"] > 1000, seen
    assert seen["conv_recurrent"] >= 10, seen
    assert seen["kinds"] == {"CONV", "DEPTHWISE", "BROADCAST"}, seen
    assert {1, 2} <= seen["strides"] and {0, 1} <= seen["pads"], seen
    assert seen["delays"] == set(range(16)) and seen["exps"] == set(range(8)), seen
    assert {255, -255} <= seen["weights"], seen


def test_random_networks_are_not_trivial():
    """The drawn networks spike, wrap u and use every sign mode, delay and recurrence."""
    seen = dict(spikes=0, wraps=0, recurrent=0, sign_modes=set(), delays=set(), du_eff0=0)
    for i in range(40):
        net = random_network(base_seed() + i, "small", steps=STEPS)
        r = GoldenCore(net.config).run(net.inputs, record=("u",))
        seen["spikes"] += int(r.spikes.sum())
        seen["wraps"] += int((np.abs(np.diff(r.u.astype(np.int64), axis=1)) > (1 << 23)).any())
        R, _ = net.config.route_matrices()
        seen["recurrent"] += int(R.any())
        syn = net.config.synapse_list()
        seen["sign_modes"] |= set(syn.sign_mode.tolist())
        seen["delays"] |= set(syn.delay.tolist())
        seen["du_eff0"] += int((net.config.compartment_params()["du_eff"] == 0).any())
    assert seen["spikes"] > 1000, seen
    assert seen["wraps"] >= 1, seen
    assert seen["recurrent"] >= 10, seen
    assert seen["sign_modes"] == {1, 2, 3}, seen
    assert seen["delays"] == set(range(16)), seen
    assert seen["du_eff0"] >= 5, seen


def test_lava_du_mapping():
    assert lava_du(0, 0) == -1      # non-leaky current: Lava's du = -1
    assert lava_du(0, 1) == 0
    assert lava_du(4095, 1) == 4095  # full decay


def test_quartz_style_integrator_matches_lava():
    """Non-leaky IF with a persistent current and a latch: the Quartz building block."""
    g = CoreGeometry.preset("tiny")
    b = NetworkBuilder(g)
    p = b.add_profile(du=0, du_offset=0, dv=0, vth=8 * 254)
    cx = b.add_compartments(3, profile=p)
    b.connect(0, cx, [126, 190, 254])
    b.connect(1, cx, [62, 62, 62])
    for i, c in enumerate(cx):                  # self-inhibition after the first spike
        b.connect(2 + i, c, -255, weight_exp=6)
        b.route_to_axon(c, 2 + i)
    b.route_to_output(cx, [0, 1, 2])
    cfg = b.build()
    x = np.zeros((1, 40, g.n_axons), dtype=bool)
    x[0, 3, 0] = x[0, 9, 1] = True
    golden = _check(cfg, x, seed=None, label="golden vs Lava (hand-built)")
    assert golden.spikes[0, :, :3].sum(axis=0).tolist() == [1, 1, 1]


def _edge_network(kind):
    """Small networks at the limits of u, v, delay and fan-out (small preset)."""
    g = CoreGeometry.preset("small")
    b = NetworkBuilder(g)
    x = np.zeros((1, 40, g.n_axons), dtype=bool)
    if kind == "u_wrap":           # non-leaky current driven past ±2^23 in both directions
        p = b.add_profile(du=0, du_offset=0, dv=4095, vth=(1 << 17) - 1)
        cx = b.add_compartments(2, profile=p)
        b.connect(0, cx[0], 255, weight_exp=7)            # +32640 a_in per spike
        b.connect(0, cx[1], -255, weight_exp=7)
        x[0, 0:12, 0] = True
    elif kind == "v_saturation":   # bias and current drive v into both rails
        p = b.add_profile(du=0, du_offset=0, dv=0, vth=(1 << 17) - 1)
        b.add_compartments(1, profile=p, bias_mant=4095, bias_exp=7)
        b.add_compartments(1, profile=p, bias_mant=-4096, bias_exp=7)
    elif kind == "max_delay":      # every delay 0..D-1 from one axon, and from a routed spike
        p = b.add_profile(du=4095, du_offset=1, dv=0, vth=0)
        cx = b.add_compartments(g.n_delay_slots, profile=p)
        b.connect(0, cx, 1, delay=np.arange(g.n_delay_slots))
        b.route_to_axon(cx[0], 1)
        b.connect(1, cx, 2, delay=np.arange(g.n_delay_slots)[::-1])
        x[0, [0, 17], 0] = True
    elif kind == "max_fanout":     # one axon with max_fanout synapses onto every compartment
        p = b.add_profile(du=2048, du_offset=1, dv=1024, vth=100)
        cx = b.add_compartments(g.n_compartments, profile=p)
        targets = np.resize(cx, g.max_fanout)
        b.connect(0, targets, np.resize(np.arange(-128, 127) * 2, g.max_fanout),
                  sign_mode=1, delay=np.arange(g.max_fanout) % g.n_delay_slots)
        x[0, ::3, 0] = True
    return b.build(), x


@pytest.mark.parametrize("kind", ["u_wrap", "v_saturation", "max_delay", "max_fanout"])
def test_field_limits_match_lava(kind):
    config, x = _edge_network(kind)
    golden = _check(config, x, seed=None, label="golden vs Lava (field limits)")
    if kind == "u_wrap":
        u = golden.u[0, :, :2].astype(np.int64)
        assert (np.abs(np.diff(u, axis=0)) > (1 << 23)).any(), "u never wrapped"
        assert u.max() <= 1 << 23 and u.min() > -(1 << 23)
    if kind == "v_saturation":
        assert golden.v[0, -1, 1] == -((1 << 23) - 1)
