"""Hand-computed cases for the golden core model (``neurocore.golden.core.GoldenCore``).

Every expected value here is either written out by hand (with the arithmetic in a comment) or
produced by :func:`scalar_reference`, a deliberately naive per-compartment loop over Python
integers written from the spec text alone.  Nothing here calls ``golden/arith.py``.

Spec (per compartment, step ``t`` 0-based; D = n_delay_slots):

- accumulator slot ``t mod D`` is read and cleared; acc wraps to 18-bit two's complement;
- ``u <- wrap24(decay(u, du + du_offset) + (acc << 6))``, wrap24 into ``(-2**23, 2**23]``;
- ``v <- clip(decay(v, dv) + u + (bias_mant << bias_exp), -(2**23 - 1), 2**23 - 1)``;
- spike iff ``v > vth << 6``; on spike ``v <- 0``;
- a spike sent at step ``t`` adds ``weight << weight_exp`` into slot ``(t + 1 + delay) mod D``.
"""

from __future__ import annotations

import numpy as np
from golden_helpers import inputs, run
import pytest

from neurocore.golden.core import GoldenCore
from neurocore.golden.network import NetworkBuilder
from neurocore.spec.geometry import CoreGeometry
from neurocore.spec.words import SignMode

TINY = CoreGeometry.preset("tiny")
BIG_VTH = (1 << 17) - 1          # threshold (2**17-1) << 6 = 8388544: out of reach in most tests


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def spike_steps(res, cx):
    return [int(t) for t in np.flatnonzero(res.spikes[:, cx])]


# ---- the independent scalar model -----------------------------------------------------------
def _trunc_decay(x: int, d: int) -> int:
    """x * (4096 - d) / 4096 rounded toward zero (Python ints, no shifts on negatives)."""
    mag = (abs(x) * (4096 - d)) // 4096
    return mag if x >= 0 else -mag


def _wrap_u(x: int) -> int:
    r = x % (1 << 24)                       # 0 .. 2**24-1
    return r - (1 << 24) if r > (1 << 23) else r   # (-2**23, 2**23]


def _wrap_acc(x: int) -> int:
    r = x % (1 << 18)
    return r - (1 << 18) if r >= (1 << 17) else r  # [-2**17, 2**17)


def scalar_reference(net: dict, x: np.ndarray, D: int = TINY.n_delay_slots):
    """Simulate ``net`` (plain description, see :func:`build`) on one input sample ``x``.

    Returns (u, v, spikes, outputs) as Python lists of lists indexed [t][compartment/output].
    """
    cxs, syns, routes = net["cx"], net["syn"], net["routes"]
    n = len(cxs)
    T = x.shape[0]
    n_out = TINY.n_outputs
    acc = [[0] * n for _ in range(D)]
    u, v = [0] * n, [0] * n
    U, V, S, O = [], [], [], []
    for t in range(T):
        slot = t % D
        fired = []
        for i, c in enumerate(cxs):
            a = _wrap_acc(acc[slot][i])
            acc[slot][i] = 0
            u[i] = _wrap_u(_trunc_decay(u[i], c["du"] + c["du_offset"]) + a * 64)
            vi = _trunc_decay(v[i], c["dv"]) + u[i] + c["bias_mant"] * 2 ** c["bias_exp"]
            vi = max(-(2 ** 23 - 1), min(2 ** 23 - 1, vi))
            if vi > c["vth"] * 64:
                fired.append(i)
                vi = 0
            v[i] = vi
        out = [0] * n_out
        sent = [int(a) for a in np.flatnonzero(x[t])]
        for i in fired:
            for kind, target in routes.get(i, []):
                if kind == "axon":
                    sent.append(target)
                else:
                    out[target] += 1
        for a in sent:
            for (ax, target, w, e, d, _sm) in syns:
                if ax == a:
                    acc[(t + 1 + d) % D][target] += w * 2 ** e
        U.append(list(u))
        V.append(list(v))
        S.append([i in fired for i in range(n)])
        O.append(out)
    return U, V, S, O


def build(net: dict, g: CoreGeometry = TINY):
    """Build the plain description ``net`` with NetworkBuilder.

    ``net["cx"]``: list of dicts du, du_offset, dv, vth, bias_mant, bias_exp (one profile each
    distinct (du, du_offset, dv, vth)); ``net["syn"]``: (axon, target, signed weight, exp, delay,
    sign_mode or None); ``net["routes"]``: {cx: [("axon"|"out", target), ...]}.
    """
    b = NetworkBuilder(g)
    profiles = {}
    for c in net["cx"]:
        key = (c["du"], c["du_offset"], c["dv"], c["vth"])
        if key not in profiles:
            profiles[key] = b.add_profile(du=c["du"], du_offset=c["du_offset"], dv=c["dv"],
                                          vth=c["vth"])
        b.add_compartments(1, profile=profiles[key], bias_mant=c["bias_mant"],
                           bias_exp=c["bias_exp"])
    for ax, target, w, e, d, sm in net["syn"]:
        b.connect(ax, [target], [w], weight_exp=e, delay=d, sign_mode=sm)
    for cx, lst in sorted(net["routes"].items()):
        for kind, target in lst:
            (b.route_to_axon if kind == "axon" else b.route_to_output)([cx], [target])
    return b.build()


def random_net(rng, n_cx=12, n_ax=10):
    """A random network: leaky and non-leaky profiles, all sign modes, delays, recurrence."""
    prof = []
    for _ in range(TINY.n_profiles):
        prof.append(dict(du=int(rng.choice([0, 0, 1, 410, 2048, 4095])),
                         du_offset=int(rng.integers(0, 2)),
                         dv=int(rng.choice([0, 0, 7, 300, 2048, 4095])),
                         vth=int(rng.integers(1, 400))))
    cx = []
    for _ in range(n_cx):
        p = prof[int(rng.integers(0, len(prof)))]
        cx.append(dict(p, bias_mant=int(rng.integers(-30, 60)), bias_exp=int(rng.integers(0, 4))))
    syn = []
    for _ in range(60):
        mode = [None, SignMode.EXCITATORY, SignMode.INHIBITORY, SignMode.MIXED][
            int(rng.integers(0, 4))]
        if mode is SignMode.MIXED:
            w = 2 * int(rng.integers(-128, 128))
        elif mode is SignMode.EXCITATORY:
            w = int(rng.integers(0, 256))
        elif mode is SignMode.INHIBITORY:
            w = -int(rng.integers(0, 256))
        else:
            w = int(rng.integers(-255, 256))
        syn.append((int(rng.integers(0, n_ax)), int(rng.integers(0, n_cx)), w,
                    int(rng.integers(0, 8)), int(rng.integers(0, TINY.n_delay_slots)), mode))
    routes = {}
    for c in range(n_cx):
        k = int(rng.integers(0, 4))
        routes[c] = [("axon", int(rng.integers(0, n_ax))) if rng.random() < 0.5
                     else ("out", int(rng.integers(0, TINY.n_outputs))) for _ in range(k)]
    return dict(cx=cx, syn=syn, routes=routes)


def assert_matches_reference(res, net, x, msg):
    U, V, S, O = scalar_reference(net, x)
    n = len(net["cx"])
    np.testing.assert_array_equal(res.u[:, :n], np.array(U), err_msg=f"u {msg}")
    np.testing.assert_array_equal(res.v[:, :n], np.array(V), err_msg=f"v {msg}")
    np.testing.assert_array_equal(res.spikes[:, :n], np.array(S), err_msg=f"spikes {msg}")
    np.testing.assert_array_equal(res.outputs, np.array(O), err_msg=f"outputs {msg}")


# ---------------------------------------------------------------------------------------------
# u / v trajectories with leak
# ---------------------------------------------------------------------------------------------
def test_leaky_trajectory_positive_and_negative():
    """du_eff = 1023 + 1 = 1024 (u *= 3/4), dv = 2048 (v *= 1/2), one input of ±100 at t=0."""
    b = NetworkBuilder(TINY)
    p = b.add_profile(du=1023, du_offset=1, dv=2048, vth=1000)
    b.add_compartments(2, profile=p)
    b.connect(0, [0, 1], [100, -100])
    res = run(b.build(), inputs(8, [(0, 0)]))
    # u: 100<<6 = 6400 at t=1, then *3/4 truncated: 4800, 3600, 2700, 2025,
    #    2025*.75 = 1518.75 -> 1518, 1518*.75 = 1138.5 -> 1138
    u = [0, 6400, 4800, 3600, 2700, 2025, 1518, 1138]
    # v: v/2 truncated + u: 6400, 3200+4800, 4000+3600, 3800+2700, 3250+2025,
    #    2637(.5)+1518 = 4155, 2077(.5)+1138 = 3215
    v = [0, 6400, 8000, 7600, 6500, 5275, 4155, 3215]
    assert res.u[:, 0].tolist() == u
    assert res.v[:, 0].tolist() == v
    # Truncation toward zero: the negative trajectory is the exact mirror (floor would give
    # -1519 at t=6 and -2638/-2078 in v).
    assert res.u[:, 1].tolist() == [-x for x in u]
    assert res.v[:, 1].tolist() == [-x for x in v]
    assert not res.spikes.any()


def test_du_zero_with_offset_leaks_one_per_step():
    """Lava's default ds_offset = 1: du = 0 still decays u by 4095/4096 (ref §3.4)."""
    b = NetworkBuilder(TINY)
    p = b.add_profile(du=0, du_offset=1, dv=0, vth=BIG_VTH)
    b.add_compartments(4, profile=p)
    b.connect(0, [0, 1, 2, 3], [1, -1, 100, -100])
    res = run(b.build(), inputs(21, [(0, 0)]))
    # |u| < 4096: |u| * 4095 / 4096 = |u| - 1 (+ a fraction below 1) -> |u| - 1 per step
    assert res.u[1:, 0].tolist() == list(range(64, 44, -1))
    assert res.u[1:, 1].tolist() == list(range(-64, -44, 1))
    # v integrates u (dv = 0): 64, 64+63, ...
    assert res.v[1:, 0].tolist() == list(np.cumsum(range(64, 44, -1)))
    assert res.v[1:, 1].tolist() == list(-np.cumsum(range(64, 44, -1)))
    # 6400 -> 6400*4095/4096 = 6398.44 -> 6398 -> 6398*4095/4096 = 6396.44 -> 6396
    assert res.u[1:4, 2].tolist() == [6400, 6398, 6396]
    assert res.u[1:4, 3].tolist() == [-6400, -6398, -6396]


# ---------------------------------------------------------------------------------------------
# non-leaky integrate-and-fire, strict threshold
# ---------------------------------------------------------------------------------------------
def _if_profile(b, vth):
    return b.add_profile(du=0, du_offset=0, dv=0, vth=vth)


def test_non_leaky_input_ramp_strict_threshold():
    """One input of 5 -> u = 320 forever; v = 320 t reaches 6400 = vth<<6 at t=20: no spike."""
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=_if_profile(b, 100))
    b.connect(0, [0], [5])
    res = run(b.build(), inputs(45, [(0, 0)]))
    assert res.u[:, 0].tolist() == [0] + [320] * 44
    assert res.v[20, 0] == 6400 and not res.spikes[20, 0]
    # t=21: 6720 > 6400 -> spike, v=0; then 320 (t-21) again exceeds at t-21 = 21
    assert spike_steps(res, 0) == [21, 42]
    assert res.v[21, 0] == 0 and res.v[22, 0] == 320 and res.v[41, 0] == 6400


@pytest.mark.parametrize("bias, vth, first", [
    (37, 10, 17),    # floor(640/37) = 17  (Lava 1-based: 18 = floor(640/37) + 1)
    (40, 10, 16),    # v = 640 exactly at t=15 does not spike
    (1, 1, 64),      # v = t+1 > 64
    (64, 1, 1),      # v(0) = 64 == threshold, v(1) = 128
    (4095, 131071, 2048),  # 4095 * 2049 = 8390655 > 8388544 >= 4095 * 2048 = 8386560
])
def test_bias_ramp_first_spike(bias, vth, first):
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=_if_profile(b, vth), bias_mant=bias)
    T = 2 * first + 3
    res = run(b.build(), np.zeros((T, TINY.n_axons), dtype=np.uint8))
    assert first == (vth * 64) // bias            # the formula, cross-checked by hand above
    # v = bias * (t + 1) until the first spike; the ramp restarts from 0 after it
    assert res.v[:first, 0].tolist() == [bias * (t + 1) for t in range(first)]
    assert res.v[first - 1, 0] <= vth * 64 < bias * (first + 1)
    assert spike_steps(res, 0) == [first, 2 * first + 1]
    assert not res.u.any()


def test_bias_ramp_full_train():
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=_if_profile(b, 10), bias_mant=37)
    res = run(b.build(), np.zeros((60, TINY.n_axons), dtype=np.uint8))
    assert spike_steps(res, 0) == [17, 35, 53]
    assert res.v[16, 0] == 629 and res.v[17, 0] == 0 and res.v[18, 0] == 37


# ---------------------------------------------------------------------------------------------
# exponent scaling
# ---------------------------------------------------------------------------------------------
def test_bias_exp_scaling():
    b = NetworkBuilder(TINY)
    p = _if_profile(b, BIG_VTH)
    b.add_compartments(8, profile=p, bias_mant=3, bias_exp=np.arange(8))
    b.add_compartments(1, profile=p, bias_mant=-5, bias_exp=3)
    res = run(b.build(), np.zeros((5, TINY.n_axons), dtype=np.uint8))
    per_step = [3, 6, 12, 24, 48, 96, 192, 384, -40]
    for c, s in enumerate(per_step):
        assert res.v[:, c].tolist() == [s * (t + 1) for t in range(5)], c


def test_weight_exp_scaling():
    b = NetworkBuilder(TINY)
    b.add_compartments(8, profile=_if_profile(b, BIG_VTH))
    b.connect(0, np.arange(8), 3, weight_exp=np.arange(8))
    res = run(b.build(), inputs(3, [(0, 0)]))
    # 3 << e << 6
    assert res.u[1, :8].tolist() == [192, 384, 768, 1536, 3072, 6144, 12288, 24576]
    assert res.u[2, :8].tolist() == res.u[1, :8].tolist()
    assert not res.u[0].any()


# ---------------------------------------------------------------------------------------------
# sign modes
# ---------------------------------------------------------------------------------------------
def test_sign_modes():
    E, I, M = SignMode.EXCITATORY, SignMode.INHIBITORY, SignMode.MIXED
    table = [  # (weight, exp, mode, stored mantissa, contribution)
        (200, 0, E, 200, 200),
        (-200, 0, I, 200, -200),
        (-256, 0, M, 128, -256),
        (254, 0, M, 127, 254),
        (0, 0, M, 0, 0),
        (-2, 3, M, 255, -16),
        (255, 0, E, 255, 255),
        (-255, 0, I, 255, -255),
        (100, 1, None, 100, 200),      # default for w >= 0: EXCITATORY
        (-7, 2, None, 7, -28),         # default for w < 0: INHIBITORY
    ]
    b = NetworkBuilder(TINY)
    b.add_compartments(len(table), profile=_if_profile(b, BIG_VTH))
    for i, (w, e, m, _, _) in enumerate(table):
        b.connect(0, [i], [w], weight_exp=e, sign_mode=m)
    cfg = b.build()
    syn = cfg.mem["synapses"]
    n = len(table)
    assert syn["weight"][:n].tolist() == [r[3] for r in table]
    modes = [(r[2] or (I if r[0] < 0 else E)).value for r in table]
    assert syn["sign_mode"][:n].tolist() == modes
    res = run(cfg, inputs(2, [(0, 0)]))
    assert res.u[1, :n].tolist() == [r[4] * 64 for r in table]


def test_sign_mode_decodes_raw_mantissa():
    """Patterns written straight into the synapse memory are read per sign mode."""
    b = NetworkBuilder(TINY)
    b.add_compartments(3, profile=_if_profile(b, BIG_VTH))
    b.connect(0, [0, 1, 2], [0, 0, 0], sign_mode=SignMode.EXCITATORY)
    cfg = b.build()
    syn = cfg.mem["synapses"]
    syn["weight"][:3] = 129                  # 0b1000_0001
    syn["sign_mode"][:3] = [SignMode.EXCITATORY.value, SignMode.INHIBITORY.value,
                            SignMode.MIXED.value]
    res = run(cfg.validate(), inputs(2, [(0, 0)]))
    # EXCITATORY +129, INHIBITORY -129, MIXED 2 * (129 - 256) = -254
    assert res.u[1, :3].tolist() == [129 * 64, -129 * 64, -254 * 64]


# ---------------------------------------------------------------------------------------------
# delays
# ---------------------------------------------------------------------------------------------
def test_delays_integrate_at_t_plus_1_plus_d():
    b = NetworkBuilder(TINY)
    b.add_compartments(10, profile=_if_profile(b, BIG_VTH))
    b.connect(0, np.arange(8), 1, delay=np.arange(8))      # cx d: delay d
    b.connect(1, [8], [1], delay=6)                          # wraps around the 8-slot ring
    b.connect(2, [9], [1], delay=3)
    T = 24
    x = inputs(T, [(2, 0), (5, 1)] + [(t, 2) for t in range(T)])
    res = run(b.build(), x)
    for d in range(8):
        first = 2 + 1 + d
        assert res.u[:, d].tolist() == [0] * first + [64] * (T - first), d
    assert res.u[:, 8].tolist() == [0] * 12 + [64] * (T - 12)          # 5 + 1 + 6
    # a spike every step with delay 3: u(t) = 64 * #(t' : t' + 4 <= t)
    assert res.u[:, 9].tolist() == [64 * max(0, t - 3) for t in range(T)]


# ---------------------------------------------------------------------------------------------
# routes
# ---------------------------------------------------------------------------------------------
def test_recurrent_route_timing():
    """cx0 (bias 40, vth 10) fires at 16, 33, 50; its spike reaches cx1 via axon 5 with delay 2
    at 16+1+2 = 19, ...; a two-hop chain cx0 -> cx3 -> cx2 adds one step per hop."""
    b = NetworkBuilder(TINY)
    pif = _if_profile(b, BIG_VTH)
    pfull = b.add_profile(du=4095, du_offset=1, dv=4095, vth=1)   # u = this step's input only
    b.add_compartments(1, profile=_if_profile(b, 10), bias_mant=40)    # cx0
    b.add_compartments(2, profile=pif)                                  # cx1, cx2
    b.add_compartments(1, profile=pfull)                                # cx3
    b.route_to_axon([0, 0], [5, 7])
    b.connect(5, [1], [7], delay=2)
    b.connect(7, [3], [255], weight_exp=7)
    b.route_to_axon([3], [6])
    b.connect(6, [2], [1], delay=1)
    T = 56
    res = run(b.build(), np.zeros((T, TINY.n_axons), dtype=np.uint8))
    assert spike_steps(res, 0) == [16, 33, 50]
    assert res.u[:, 1].tolist() == [0] * 19 + [448] * 17 + [896] * 17 + [1344] * 3
    # cx3 gets 255<<7 at 17 (delay 0): u = v = 2088960 > 64 -> fires at 17, 34, 51 only
    assert spike_steps(res, 3) == [17, 34, 51]
    assert res.u[17, 3] == 255 * 128 * 64 and res.u[18, 3] == 0
    # cx2 via axon 6, delay 1: 17 + 1 + 1 = 19
    assert res.u[:, 2].tolist() == [0] * 19 + [64] * 17 + [128] * 17 + [192] * 3


def test_output_route_counts():
    b = NetworkBuilder(TINY)
    p = _if_profile(b, 10)
    b.add_compartments(1, profile=p, bias_mant=40)       # fires at 16, 33
    b.add_compartments(1, profile=p, bias_mant=37)       # fires at 17, 35
    b.add_compartments(1, profile=p, bias_mant=0)        # never fires
    b.route_to_output([0, 0, 0], [3, 3, 4])
    b.route_to_output([1, 1], [3, 63])
    b.route_to_output([2], [5])
    T = 36
    res = run(b.build(), np.zeros((T, TINY.n_axons), dtype=np.uint8))
    assert spike_steps(res, 0) == [16, 33] and spike_steps(res, 1) == [17, 35]
    expected = np.zeros((T, TINY.n_outputs), dtype=np.int64)
    for t in (16, 33):
        expected[t, 3] += 2
        expected[t, 4] += 1
    for t in (17, 35):
        expected[t, 3] += 1
        expected[t, 63] += 1
    np.testing.assert_array_equal(res.outputs, expected)
    assert res.outputs.sum() == 10
    fs = res.first_spike()
    assert fs.shape == (TINY.n_outputs,)
    assert fs[3] == 16 and fs[4] == 16 and fs[63] == 17 and fs[5] == -1
    assert (np.delete(fs, [3, 4, 63]) == -1).all()
    assert res.first_spike("spikes")[:3].tolist() == [16, 17, -1]
    # batched: the same answer per sample, shape (B, n)
    batch = GoldenCore(b.build()).run(np.zeros((2, T, TINY.n_axons), dtype=np.uint8))
    np.testing.assert_array_equal(batch.first_spike(), np.stack([fs, fs]))


def test_multiple_synapses_one_axon_same_target():
    b = NetworkBuilder(TINY)
    b.add_compartments(3, profile=_if_profile(b, BIG_VTH))
    b.connect(0, [0, 0, 0], [10, 20, -5])                     # same slot: 25
    b.connect(0, [1, 1], [10, 20], delay=[0, 2])             # split over slots
    b.connect(0, [2, 2], [7, 7])                              # an identical synapse twice
    b.connect(0, [2], [-4], weight_exp=2, sign_mode=SignMode.MIXED)  # 2*(-2)<<2 = -16
    res = run(b.build(), inputs(5, [(0, 0)]))
    assert res.u[:, 0].tolist() == [0, 1600, 1600, 1600, 1600]
    assert res.u[:, 1].tolist() == [0, 640, 640, 1920, 1920]
    assert res.u[:, 2].tolist() == [0, -128, -128, -128, -128]   # (7 + 7 - 16) * 64


def test_two_host_spikes_same_step_add():
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=_if_profile(b, BIG_VTH))
    b.connect(0, [0], [3])
    b.connect(1, [0], [-10])
    res = run(b.build(), inputs(3, [(0, 0), (0, 1), (1, 0)]))
    assert res.u[:, 0].tolist() == [0, -7 * 64, -4 * 64]


# ---------------------------------------------------------------------------------------------
# batches and the independent scalar reference
# ---------------------------------------------------------------------------------------------
def test_batch_independence(rng, seed):
    net = random_net(rng)
    cfg = build(net)
    core = GoldenCore(cfg)
    B, T = 5, 40
    x = (rng.random((B, T, TINY.n_axons)) < 0.15).astype(np.uint8)
    x[:, :, 10:] = 0
    x[2] = 0                                         # one silent sample
    batch = core.run(x, record=("u", "v"))
    for i in range(B):
        one = core.run(x[i], record=("u", "v"))
        for f in ("spikes", "outputs", "u", "v"):
            np.testing.assert_array_equal(getattr(batch, f)[i], getattr(one, f),
                                          err_msg=f"{f} of sample {i}, seed {seed}")
    assert batch.spikes.any(), f"seed {seed}: the random network never fired"


@pytest.mark.parametrize("k", range(4))
def test_random_network_matches_scalar_reference(rng, seed, k):
    rng = np.random.default_rng([seed, k])
    net = random_net(rng)
    cfg = build(net)
    T = 50
    x = (rng.random((T, TINY.n_axons)) < 0.2).astype(np.uint8)
    x[:, 10:] = 0
    res = run(cfg, x)
    assert_matches_reference(res, net, x, f"(seed {seed}, k {k})")
