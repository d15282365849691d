"""Edge cases of the golden core model at the limit of every field ("tiny" preset).

Expected values are computed by hand (arithmetic in the comments) or by the one-line
formulas written in this file; nothing here calls ``golden/arith.py``.

Constants: u wraps modulo 2**24 into (-2**23, 2**23] (+8388608 is kept, -8388608 becomes
+8388608); v saturates at ±8388607; acc wraps at 18 bits into [-131072, 131071]; the largest
threshold is (2**17 - 1) << 6 = 8388544; the largest bias is 4095 << 7 = 524160 and the
smallest -4096 << 7 = -524288; the largest single contribution is 255 << 7 = 32640.
"""

from __future__ import annotations

import re

import numpy as np
from golden_helpers import inputs, run
import pytest

from neurocore.golden.core import GoldenCore
from neurocore.golden.network import ConfigError, NetworkBuilder
from neurocore.spec.geometry import CoreGeometry
from neurocore.spec.words import SignMode

TINY = CoreGeometry.preset("tiny")
D = TINY.n_delay_slots                  # 8
VTH_MAX = (1 << 17) - 1                 # threshold 8388544
U_TOP = 1 << 23                         # 8388608
V_SAT = (1 << 23) - 1                   # 8388607




def if_profile(b, vth=VTH_MAX, dv=0):
    """Non-leaky current (du + du_offset = 0)."""
    return b.add_profile(du=0, du_offset=0, dv=dv, vth=vth)


def connect_sum(b, axon, target, total):
    """Connect ``axon -> target`` with several synapses whose contributions sum to ``total``.

    Uses 255 << 7 = 32640 (or -32640) chunks and then exact mantissa/exponent pieces.
    """
    sign = 1 if total >= 0 else -1
    rest = abs(total)
    ws, es = [], []
    while rest >= 32640:
        ws.append(sign * 255)
        es.append(7)
        rest -= 32640
    e = 7
    while rest:
        m = min(rest >> e, 255)
        if m:
            ws.append(sign * m)
            es.append(e)
            rest -= m << e
        else:
            e -= 1
    assert sum(w << x for w, x in zip(ws, es)) == total
    b.connect(axon, [target] * len(ws), ws, weight_exp=es)
    return len(ws)


def wrap24(x):
    """x mod 2**24 into (-2**23, 2**23]."""
    r = x % (1 << 24)
    return r - (1 << 24) if r > (1 << 23) else r


def wrap18(x):
    """x mod 2**18 into [-2**17, 2**17)."""
    r = x % (1 << 18)
    return r - (1 << 18) if r >= (1 << 17) else r


# ---------------------------------------------------------------------------------------------
# u wrap
# ---------------------------------------------------------------------------------------------
def test_u_wraps_past_plus_and_minus_2_23():
    b = NetworkBuilder(TINY)
    b.add_compartments(3, profile=if_profile(b, dv=4095))
    b.connect(0, [0, 1], [128, -128], weight_exp=7)           # ±16384 -> u ±= 2**20
    connect_sum(b, 1, 2, 131071)                              # u = 8388544 = 2**23 - 64
    b.connect(2, [2], [1])                                    # +64
    x = inputs(11, [(t, 0) for t in range(10)] + [(0, 1), (1, 2), (2, 2)])
    res = run(b.build(), x)
    k = np.arange(11)
    # cx0: u = k * 2**20 up to 8 * 2**20 = 2**23 (kept as +2**23), then 9 * 2**20 - 2**24
    assert res.u[:9, 0].tolist() == (k[:9] << 20).tolist()
    assert res.u[8, 0] == 8388608
    assert res.u[9:, 0].tolist() == [-7340032, -6291456]
    # cx1: u = -k * 2**20; -2**23 is represented as +2**23; -9 * 2**20 + 2**24 = 7340032
    assert res.u[:8, 1].tolist() == (-(k[:8] << 20)).tolist()
    assert res.u[8, 1] == 8388608
    assert res.u[9:, 1].tolist() == [7340032, 6291456]
    # cx2: 8388544, +64 -> 8388608 (kept), +64 -> 8388672 - 2**24 = -8388544
    assert res.u[:4, 2].tolist() == [0, 8388544, 8388608, -8388544]


def test_u_plus_2_23_decays_as_positive():
    """The +2**23 representative is a positive value for the next step's decay."""
    b = NetworkBuilder(TINY)
    p = b.add_profile(du=2047, du_offset=1, dv=4095, vth=VTH_MAX)   # u *= 1/2
    b.add_compartments(1, profile=p)
    b.connect(0, [0] * 8, [-128] * 8, weight_exp=7)   # -131072: acc -2**17, u = -2**23
    res = run(b.build(), inputs(4, [(0, 0)]))
    assert res.u[:, 0].tolist() == [0, 8388608, 4194304, 2097152]


# ---------------------------------------------------------------------------------------------
# accumulator wrap at 18 bits
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("total, acc, u", [
    (131071, 131071, 8388544),           # largest positive entry
    (131072, -131072, 8388608),          # wraps to -2**17; -2**23 is kept as +2**23
    (131073, -131071, -8388544),
    (-131072, -131072, 8388608),         # smallest entry, no wrap; u = -2**23 -> +2**23
    (-131073, 131071, 8388544),
    (262149, 5, 320),                    # 2**18 + 5 -> 5
    (-262144 - 7, -7, -448),
])
def test_accumulator_wraps_at_18_bits(total, acc, u):
    assert wrap18(total) == acc and wrap24(acc << 6) == u == wrap24(total << 6)
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=if_profile(b, dv=4095))
    connect_sum(b, 0, 0, total)
    res = run(b.build(), inputs(3, [(0, 0)]))
    assert res.u[:, 0].tolist() == [0, u, u]


def test_accumulator_wraps_the_slot_total_not_each_spike():
    """Two spikes that land in the same slot (t=0, delay 1 and t=1, delay 0) are summed first."""
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=if_profile(b, dv=4095))
    connect_sum(b, 0, 0, 131071)
    b.connect(0, [0], [0], delay=0)           # harmless zero synapse (delay 0)
    b.connect(1, [0], [1], delay=0)
    cfg = b.build()
    syn = cfg.mem["synapses"]
    n0 = int(cfg.mem["synapse_map"]["length"][0])
    syn["delay"][:n0 - 1] = 1                 # move axon 0's real synapses to delay 1
    res = run(cfg.validate(), inputs(4, [(0, 0), (1, 1)]))
    # slot 2 holds 131071 + 1 = 131072 -> -131072 -> u = -2**23 -> +2**23
    assert res.u[:, 0].tolist() == [0, 0, 8388608, 8388608]


def test_accumulator_wrap_consistent_with_u_wrap(rng, seed):
    """From rest, u(1) = wrap24(wrap18(sum) << 6) = wrap24(sum << 6) for random sums."""
    b = NetworkBuilder(TINY)
    n = TINY.n_compartments
    b.add_compartments(n, profile=if_profile(b, dv=4095))
    totals = np.zeros(n, dtype=np.int64)
    sign = rng.choice([-1, 1], n)             # one sign per compartment: large sums
    for axon in range(4):                     # 4 axons x 64 compartments x 4 synapses
        tgt = np.repeat(np.arange(n), 4)
        mode = rng.integers(0, 2, tgt.size)
        w = sign[tgt] * np.where(mode == 0, rng.integers(0, 256, tgt.size),
                                 2 * rng.integers(0, 128, tgt.size))
        e = rng.integers(4, 8, tgt.size)
        sm = np.where(mode == 1, SignMode.MIXED.value,
                      np.where(w < 0, SignMode.INHIBITORY.value, SignMode.EXCITATORY.value))
        b.connect(axon, tgt, w, weight_exp=e, sign_mode=sm)
        np.add.at(totals, tgt, w << e)
    res = run(b.build(), inputs(2, [(0, a) for a in range(4)]))
    want_acc = [wrap24(wrap18(int(s)) << 6) for s in totals]
    want_unbounded = [wrap24(int(s) << 6) for s in totals]
    assert want_acc == want_unbounded
    assert sum(abs(int(s)) >= (1 << 17) for s in totals) >= 5, f"seed {seed}: too few wraps"
    assert res.u[1].tolist() == want_acc, f"seed {seed}"


# ---------------------------------------------------------------------------------------------
# v saturation, vth maximum, bias extremes
# ---------------------------------------------------------------------------------------------
def test_v_saturates_negative_and_recovers_from_the_limit():
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=if_profile(b), bias_mant=-4096, bias_exp=7)   # -524288
    b.connect(0, [0], [255], weight_exp=7)                                       # u = 2088960
    res = run(b.build(), inputs(23, [(19, 0)]))
    # -524288 (t+1) until -16 * 524288 = -8388608 at t=15, clipped to -8388607
    assert res.v[:15, 0].tolist() == [-524288 * (t + 1) for t in range(15)]
    assert res.v[15:20, 0].tolist() == [-V_SAT] * 5
    # from the clipped value: -8388607 + 2088960 - 524288 = -6823935, then + 1564672 each step
    assert res.v[20:, 0].tolist() == [-6823935, -5259263, -3694591]
    assert res.u[20, 0] == 2088960


def test_v_saturates_positive_and_vth_max_is_strict():
    """u = 8388544 = vth_max << 6: v equal to the threshold does not fire; the next step
    16777088 saturates to 8388607 > 8388544 and fires."""
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=if_profile(b))
    connect_sum(b, 0, 0, 131071)
    res = run(b.build(), inputs(8, [(0, 0)]))
    assert res.u[1:, 0].tolist() == [8388544] * 7
    assert res.v[:, 0].tolist() == [0, 8388544, 0, 8388544, 0, 8388544, 0, 8388544]
    assert np.flatnonzero(res.spikes[:, 0]).tolist() == [2, 4, 6]


def test_u_plus_2_23_saturates_v_and_fires():
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=if_profile(b), bias_mant=-4096, bias_exp=7)
    b.connect(0, [0] * 8, [128] * 8, weight_exp=7)        # acc 2**17 -> u = +2**23
    res = run(b.build(), inputs(4, [(0, 0)]))
    # t=0: v = -524288; t=1: -524288 + 8388608 - 524288 = 7340032 (no clip, no spike);
    # t=2: 7340032 + 7864320 -> 8388607 > 8388544 -> spike; t=3: 0 + 7864320 (no spike)
    assert res.u[1:, 0].tolist() == [8388608] * 3
    assert res.v[:, 0].tolist() == [-524288, 7340032, 0, 7864320]
    assert np.flatnonzero(res.spikes[:, 0]).tolist() == [2]


def test_bias_max_ramp_to_vth_max():
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=if_profile(b), bias_mant=4095, bias_exp=7)   # 524160
    res = run(b.build(), np.zeros((20, TINY.n_axons), dtype=np.uint8))
    # 16 * 524160 = 8386560 <= 8388544; 17 * 524160 = 8910720 -> saturates -> fires at t=16
    assert res.v[:16, 0].tolist() == [524160 * (t + 1) for t in range(16)]
    assert np.flatnonzero(res.spikes[:, 0]).tolist() == [16]
    assert res.v[16:, 0].tolist() == [0, 524160, 1048320, 1572480]


@pytest.mark.parametrize("kw, msg", [
    (dict(bias_mant=4096), "bias_mant 4096 of compartments[0]"),
    (dict(bias_mant=-4097), "bias_mant -4097 of compartments[0]"),
    (dict(bias_mant=1, bias_exp=8), "bias_exp 8 of compartments[0]"),
])
def test_bias_out_of_range_rejected(kw, msg):
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=if_profile(b), **kw)
    with pytest.raises(ConfigError, match=re.escape(msg)):
        b.build()


@pytest.mark.parametrize("kw, msg", [
    (dict(vth=1 << 17), "vth 131072 of profiles[0]"),
    (dict(vth=1, du=4096), "du 4096 of profiles[0]"),
    (dict(vth=1, dv=4096), "dv 4096 of profiles[0]"),
    (dict(vth=1, du_offset=2), "du_offset 2 of profiles[0]"),
    (dict(vth=-1), "vth -1 of profiles[0]"),
])
def test_profile_out_of_range_rejected(kw, msg):
    b = NetworkBuilder(TINY)
    b.add_profile(**kw)
    with pytest.raises(ConfigError, match=re.escape(msg)):
        b.build()


# ---------------------------------------------------------------------------------------------
# decay extremes
# ---------------------------------------------------------------------------------------------
def test_full_current_decay_du_4095_plus_offset():
    """du + du_offset = 4096: u is exactly this step's input."""
    b = NetworkBuilder(TINY)
    p = b.add_profile(du=4095, du_offset=1, dv=0, vth=VTH_MAX)
    b.add_compartments(2, profile=p)
    b.connect(0, [0, 1], [255, -255], weight_exp=7)
    res = run(b.build(), inputs(6, [(0, 0), (2, 0), (3, 0)]))
    s = 2088960                                   # 255 << 7 << 6
    assert res.u[:, 0].tolist() == [0, s, 0, s, s, 0]
    assert res.u[:, 1].tolist() == [0, -s, 0, -s, -s, 0]
    assert res.v[:, 1].tolist() == [0, -s, -s, -2 * s, -3 * s, -3 * s]


def test_du_4095_without_offset_and_dv_4095():
    """du_eff = 4095 and dv = 4095: x -> x / 4096, truncated toward zero."""
    b = NetworkBuilder(TINY)
    p = b.add_profile(du=4095, du_offset=0, dv=4095, vth=VTH_MAX)
    b.add_compartments(2, profile=p)
    connect_sum(b, 0, 0, 32641)                   # u = 32641 * 64 = 2089024
    connect_sum(b, 0, 1, -32641)
    res = run(b.build(), inputs(5, [(0, 0)]))
    # u: 2089024 -> 2089024 / 4096 = 510.02 -> 510 -> 0.12 -> 0
    assert res.u[:, 0].tolist() == [0, 2089024, 510, 0, 0]
    assert res.u[:, 1].tolist() == [0, -2089024, -510, 0, 0]       # floor would give -511, -1
    # v: 2089024, 510 + 510 = 1020, 0 + 0 = 0
    assert res.v[:, 0].tolist() == [0, 2089024, 1020, 0, 0]
    assert res.v[:, 1].tolist() == [0, -2089024, -1020, 0, 0]


# ---------------------------------------------------------------------------------------------
# delays
# ---------------------------------------------------------------------------------------------
def test_max_delay_does_not_collide_with_the_slot_being_read():
    """Delay D-1 = 7 from step t lands in slot (t + 8) mod 8 = t mod 8, the slot read (and
    cleared) at step t itself: it must be integrated at t + 8, not at t and not lost."""
    b = NetworkBuilder(TINY)
    b.add_compartments(3, profile=if_profile(b, dv=4095))
    b.connect(0, [0], [1], delay=D - 1)
    b.connect(1, [1], [1], delay=D - 1)
    b.connect(2, [1], [2], delay=0)
    b.connect(3, [2], [1], delay=D - 1)
    T = 20
    x = inputs(T, [(0, 0), (7, 2)] + [(t, 1) for t in range(T)] + [(t, 3) for t in range(T)])
    res = run(b.build(), x)
    assert res.u[:, 0].tolist() == [0] * 8 + [64] * (T - 8)
    # cx1: one delay-7 spike per step from t = 8 on, plus 2 from axon 2 (t=7, delay 0) at t=8:
    # both land in slot 0 at t=8
    assert res.u[:, 1].tolist() == [0] * 8 + [64 * (t - 7) + 128 for t in range(8, T)]
    assert res.u[:, 2].tolist() == [64 * max(0, t - 7) for t in range(T)]


def test_delay_past_max_rejected():
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=if_profile(b))
    b.connect(0, [0], [1], delay=D)
    with pytest.raises(ConfigError, match=re.escape(f"delay {D} of synapses[0]")):
        b.build()


# ---------------------------------------------------------------------------------------------
# fan-out and routes at their limits
# ---------------------------------------------------------------------------------------------
def test_max_fanout_accepted_and_one_more_rejected():
    g = TINY
    assert g.max_fanout == 256
    b = NetworkBuilder(g)
    b.add_compartments(g.n_compartments, profile=if_profile(b, dv=4095))
    tgt = np.repeat(np.arange(g.n_compartments), 4)           # 256 synapses
    k = np.tile(np.arange(4), g.n_compartments)
    w = tgt + 10 * k                                          # cx c: 4c + 60
    b.connect(g.n_axons - 1, tgt, w)
    cfg = b.build()
    assert cfg.mem["synapse_map"]["length"][g.n_axons - 1] == 256
    res = run(cfg, inputs(2, [(0, g.n_axons - 1)]))
    assert res.u[1].tolist() == [(4 * c + 60) * 64 for c in range(g.n_compartments)]

    b.connect(g.n_axons - 1, [0], [1])                        # 257th
    with pytest.raises(ConfigError,
                       match=re.escape(f"length 257 of synapse_map[{g.n_axons - 1}] must be "
                                       f"<= 256")):
        b.build()


def test_synapse_memory_exactly_full_and_overfull():
    g = TINY
    b = NetworkBuilder(g)
    b.add_compartments(1, profile=if_profile(b))
    per = g.max_fanout
    for a in range(g.n_synapses // per):                      # 8 x 256 = 2048 words
        b.connect(a, [0] * per, 0)
    cfg = b.build()
    assert cfg.summary()["synapses_used"] == g.n_synapses
    b.connect(100, [0], [1])
    with pytest.raises(ConfigError, match="n_synapses=2048"):
        b.build()


def test_max_routes_per_compartment():
    g = TINY
    assert g.max_routes == 8
    b = NetworkBuilder(g)
    b.add_compartments(1, profile=if_profile(b, vth=0), bias_mant=1)   # fires at t=0 (1 > 0)
    b.add_compartments(1, profile=if_profile(b, dv=4095))
    b.route_to_output([0] * 5, [0, 63, 63, 7, 0])
    b.route_to_axon([0] * 3, [127, 127, 5])
    b.connect(127, [1], [3])
    b.connect(5, [1], [-1], delay=1)
    cfg = b.build()
    assert cfg.mem["axon_map"]["length"][0] == 8
    res = run(cfg, np.zeros((4, g.n_axons), dtype=np.uint8))
    assert res.spikes[:, 0].tolist() == [True] * 4
    assert res.outputs[0, [0, 7, 63]].tolist() == [2, 1, 2]
    assert res.outputs.sum(axis=1).tolist() == [5] * 4
    # cx1: 2 x 3 per step from t=1 (delay 0) and -1 per step from t=2 (delay 1)
    assert res.u[:, 1].tolist() == [0, 6 * 64, 11 * 64, 16 * 64]

    b.route_to_output([0], [1])                                   # 9th route
    with pytest.raises(ConfigError, match=re.escape("length 9 of axon_map[0] must be <= 8")):
        b.build()


def test_route_memory_exactly_full_and_overfull():
    g = TINY
    b = NetworkBuilder(g)
    b.add_compartments(g.n_compartments, profile=if_profile(b))
    for c in range(g.n_routes // g.max_routes):                   # 32 x 8 = 256 words
        b.route_to_output([c] * g.max_routes, np.arange(g.max_routes))
    cfg = b.build()
    assert cfg.summary()["routes_used"] == g.n_routes
    b.route_to_output([40], [0])
    with pytest.raises(ConfigError, match="n_routes=256"):
        b.build()


def test_last_index_of_every_memory():
    """Axon 127, compartment 63, profile 3, output 63: the last entry of each memory; also the
    MIXED extremes -256 << 7 = -32768 and 254 << 7 = 32512."""
    g = TINY
    b = NetworkBuilder(g)
    for _ in range(g.n_profiles - 1):
        b.add_profile(vth=1)
    p = b.add_profile(du=4095, du_offset=1, dv=4095, vth=0)
    assert p == g.n_profiles - 1
    b.add_compartments(g.n_compartments - 1, profile=0)
    last = b.add_compartments(1, profile=p)[0]
    assert last == g.n_compartments - 1
    ax = g.n_axons - 1
    b.connect(ax, [last, last], [-256, 254], weight_exp=7, delay=[0, 2],
              sign_mode=SignMode.MIXED)
    b.route_to_output([last], [g.n_outputs - 1])
    cfg = b.build()
    assert cfg.mem["compartments"]["profile"][last] == g.n_profiles - 1
    assert cfg.mem["synapses"]["weight"][:2].tolist() == [128, 127]
    res = run(cfg, inputs(5, [(0, ax)]))
    # t=1: u = -32768 << 6 = -2097152 = v; t=2: u = 0, v = -2097152 / 4096 = -512;
    # t=3: u = 32512 << 6 = 2080768, v = trunc(-512 / 4096) + u = 2080768 > 0 -> spike
    assert res.u[:, last].tolist() == [0, -2097152, 0, 2080768, 0]
    assert res.v[:, last].tolist() == [0, -2097152, -512, 0, 0]
    assert res.outputs[:, g.n_outputs - 1].tolist() == [0, 0, 0, 1, 0]
    assert res.outputs.sum() == 1
