"""RTL compartment datapath (rtl/compartment.py) against golden/arith.py, in Amaranth's simulator.

Thousands of seeded random vectors plus the corners of every field: u patterns around the
wrap point (0x800000 = +2**23), v at and beyond saturation, accumulator extremes, full and
zero decay, the largest threshold and the extreme biases.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from amaranth.sim import Simulator

from neurocore.golden.arith import (current_from_pattern, current_pattern, decay, effective_bias,
                                    saturate_voltage, wrap_current)
from neurocore.rtl.compartment import STAGES, CompartmentUpdate
from neurocore.spec.geometry import CoreGeometry

FIELDS = ("acc", "u", "v", "du", "dv", "du_offset", "vth", "bias_mant", "bias_exp")


def reference(vec: dict[str, np.ndarray], g: CoreGeometry):
    """Golden update of stored (u pattern, v): returns (u pattern, v, spike)."""
    u = current_from_pattern(vec["u"], g)
    u = wrap_current(decay(u, vec["du"] + vec["du_offset"], g) + (vec["acc"] << g.act_shift), g)
    v = saturate_voltage(decay(vec["v"], vec["dv"], g) + u
                         + effective_bias(vec["bias_mant"], vec["bias_exp"]), g)
    spike = v > (vec["vth"] << g.vth_shift)
    v = np.where(spike, 0, v)
    return current_pattern(u, g), v, spike


def ranges(g: CoreGeometry) -> dict[str, tuple[int, int]]:
    """Inclusive value range of each input (v covers its full 24-bit pattern range)."""
    half_s = 1 << (g.state_bits - 1)
    return {
        "acc": (-(1 << (g.acc_bits - 1)), (1 << (g.acc_bits - 1)) - 1),
        "u": (0, (1 << g.state_bits) - 1),
        "v": (-half_s, half_s - 1),
        "du": (0, (1 << g.decay_bits) - 1),
        "dv": (0, (1 << g.decay_bits) - 1),
        "du_offset": (0, 1),
        "vth": (0, (1 << g.vth_bits) - 1),
        "bias_mant": (-(1 << (g.bias_mant_bits - 1)), (1 << (g.bias_mant_bits - 1)) - 1),
        "bias_exp": (0, (1 << g.bias_exp_bits) - 1),
    }


def random_vectors(rng: np.random.Generator, n: int, g: CoreGeometry) -> dict[str, np.ndarray]:
    vec = {k: rng.integers(lo, hi + 1, size=n) for k, (lo, hi) in ranges(g).items()}
    # Half the vectors: small thresholds and u/v near zero so that spikes and resets happen.
    small = rng.random(n) < 0.5
    vec["vth"] = np.where(small, rng.integers(0, 64, size=n), vec["vth"])
    vec["u"] = np.where(rng.random(n) < 0.25, rng.integers(0, 1 << 12, size=n), vec["u"])
    return vec


def edge_vectors(g: CoreGeometry) -> dict[str, np.ndarray]:
    """Cartesian product of per-field corner values (sub-sampled to stay small)."""
    r = ranges(g)
    top = 1 << (g.state_bits - 1)
    corners = {
        "acc": [r["acc"][0], -1, 0, 1, r["acc"][1]],
        "u": [0, 1, top - 1, top, top + 1, (1 << g.state_bits) - 1],
        "v": [r["v"][0], -(top - 1), -1, 0, 1, top - 1],
        "du": [0, (1 << g.decay_bits) - 1],
        "dv": [0, 1, (1 << g.decay_bits) - 1],
        "du_offset": [0, 1],
        "vth": [0, r["vth"][1]],
        "bias_mant": [r["bias_mant"][0], 0, r["bias_mant"][1]],
        "bias_exp": [0, r["bias_exp"][1]],
    }
    rows = np.array(list(itertools.product(*(corners[k] for k in FIELDS))), dtype=np.int64)
    return {k: rows[:, i] for i, k in enumerate(FIELDS)}


LATENCIES = range(len(STAGES) + 1)


def run_rtl(vec: dict[str, np.ndarray], g: CoreGeometry, latency: int = 0):
    """Apply every vector to the datapath; return (u pattern, v, spike).

    A pipelined form gets one vector per clock cycle (back to back, so that every stage holds
    a different vector) and each vector's outputs are read ``latency`` cycles after it was
    applied.
    """
    dut = CompartmentUpdate(g, latency=latency)
    assert dut.latency == latency
    n = len(vec["acc"])
    out = np.zeros((3, n), dtype=np.int64)
    ports = {"acc": dut.acc, "u": dut.state.u, "v": dut.state.v, "du": dut.profile.du,
             "dv": dut.profile.dv, "du_offset": dut.profile.du_offset, "vth": dut.profile.vth,
             "bias_mant": dut.config.bias_mant, "bias_exp": dut.config.bias_exp}
    cols = {k: vec[k].tolist() for k in FIELDS}

    async def tb(ctx):
        for i in range(n + latency):
            for k in FIELDS:              # past the last vector: zeros, never read back
                ctx.set(ports[k], cols[k][i] if i < n else 0)
            j = i - latency               # the vector whose outputs are due now
            if j >= 0:
                out[0, j] = ctx.get(dut.next_state.u)
                out[1, j] = ctx.get(dut.next_state.v)
                out[2, j] = ctx.get(dut.spike)
            if latency:
                await ctx.tick()

    sim = Simulator(dut)
    if latency:
        sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return out[0], out[1], out[2].astype(bool)


def check(vec, g, seed=None, latency=0):
    exp = reference(vec, g)
    got = run_rtl(vec, g, latency)
    for name, e, a in zip(("u", "v", "spike"), exp, got):
        bad = np.flatnonzero(np.asarray(e) != np.asarray(a))
        if bad.size:
            i = int(bad[0])
            inputs = ", ".join(f"{k}={int(vec[k][i])}" for k in FIELDS)
            pytest.fail(f"vector {i} ({inputs}): {name} golden {int(e[i])} != rtl {int(a[i])} "
                        f"({bad.size} vectors differ; seed {seed}, latency {latency})")


@pytest.mark.parametrize("latency", LATENCIES)
def test_random_vectors(latency, seed):
    g = CoreGeometry.preset("tiny")
    rng = np.random.default_rng(seed + latency)
    check(random_vectors(rng, 4000 if not latency else 1500, g), g, seed + latency, latency)


@pytest.mark.parametrize("latency", LATENCIES)
def test_edge_vectors(latency):
    g = CoreGeometry.preset("tiny")
    vec = edge_vectors(g)
    # 5*6*6*2*3*2*2*3*2 = 25920 combinations: keep every 5th (offset by the variant), plus
    # all with u at the wrap point.
    keep = ((np.arange(vec["acc"].size) + latency) % 5 == 0) | \
        (vec["u"] == 1 << (g.state_bits - 1))
    check({k: v[keep] for k, v in vec.items()}, g, latency=latency)


@pytest.mark.parametrize("latency", [0, len(STAGES)])
def test_narrow_geometry(latency, seed):
    """Widths come from the geometry: a 16-bit state core (one partial product per decay)
    agrees with the golden arithmetic."""
    g = CoreGeometry.preset("tiny").replace(state_bits=16, vth_bits=9, decay_bits=12)
    rng = np.random.default_rng(seed + 1)
    check(random_vectors(rng, 1000, g), g, seed + 1, latency)


def test_spec_examples():
    """Hand-worked cases of docs/spec.md §2: decay truncation toward zero, u wrap, strict >."""
    g = CoreGeometry.preset("tiny")
    top = 1 << 23
    cases = [
        # decay(-3, 2048) = -(3*2048 >> 12) = -1 (toward zero, not -2)
        dict(acc=0, u=(-3) & 0xFFFFFF, v=0, du=2047, dv=0, du_offset=1, vth=100,
             bias_mant=0, bias_exp=0),
        # u = 2**23 - 64 + (1 << 6) = 2**23 is kept as +2**23 (pattern 0x800000); v saturates
        # at 2**23 - 1 > 8388544 and spikes
        dict(acc=1, u=top - 64, v=0, du=0, dv=4095, du_offset=0, vth=(1 << 17) - 1,
             bias_mant=0, bias_exp=0),
        # u = 2**23 + 64 wraps to -2**23 + 64; v = u is negative: no spike at vth = 0
        dict(acc=1, u=top, v=0, du=0, dv=0, du_offset=0, vth=0, bias_mant=0, bias_exp=0),
        # v == threshold does not spike (strict >): v = 64 = 1 << 6
        dict(acc=0, u=0, v=0, du=0, dv=0, du_offset=0, vth=1, bias_mant=1, bias_exp=6),
        # v == threshold + 1 spikes
        dict(acc=0, u=0, v=1, du=0, dv=0, du_offset=0, vth=1, bias_mant=1, bias_exp=6),
    ]
    vec = {k: np.array([c[k] for c in cases], dtype=np.int64) for k in FIELDS}
    u, v, s = run_rtl(vec, g)
    assert u.tolist() == [(-1) & 0xFFFFFF, top, (-top + 64) & 0xFFFFFF, 0, 0]
    assert v.tolist() == [-1, 0, -top + 64, 64, 0]
    assert s.tolist() == [False, True, False, False, True]
    check(vec, g)


def test_rejects_non_geometry():
    with pytest.raises(TypeError, match="geometry must be a CoreGeometry, not 'tiny'"):
        CompartmentUpdate("tiny")


@pytest.mark.parametrize("latency", [-1, len(STAGES) + 1, 1.0])
def test_rejects_bad_latency(latency):
    with pytest.raises(ValueError, match="latency must be an integer in 0"):
        CompartmentUpdate(CoreGeometry.preset("tiny"), latency=latency)

