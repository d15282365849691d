"""Conv descriptors in the golden model (docs/spec.md §3.5), checked independently:

- one CONV / DEPTHWISE / BROADCAST descriptor's accumulated input is
  ``torch.nn.functional.conv2d`` of the input spike map (stride, padding, groups), read from
  ``u`` of non-leaky compartments that never spike;
- the direct execution (``GoldenCore(config)``) equals the descriptors written out as dense
  lists (``GoldenCore(config.expanded())``) on random conv networks, bit for bit;
- bad descriptors and bad ``NetworkBuilder.add_conv``/``add_broadcast`` calls are
  :class:`ConfigError` that name the value and the place.

Seeds come from ``NEUROCORE_SEED`` (the ``seed`` fixture); ``NEUROCORE_CONV_NETWORKS`` (default
100) sets how many random conv networks the expansion check runs.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neurocore.golden.compare import first_mismatch
from neurocore.golden.core import GoldenCore
from neurocore.golden.network import ConfigError, NetworkBuilder
from neurocore.golden.random_networks import random_conv_network
from neurocore.spec.geometry import CoreGeometry
from neurocore.spec.words import ConvKind

N_CONV_NETWORKS = int(os.environ.get("NEUROCORE_CONV_NETWORKS", "100"))
N_SHAPES = 40
G = CoreGeometry.preset("small")
ACT = G.act_shift


# ---- one descriptor vs torch conv2d ----------------------------------------------------
def _integrator(b: NetworkBuilder, n: int) -> np.ndarray:
    """``n`` non-leaky IF compartments (u keeps every input) with a threshold never reached."""
    p = b.add_profile(du=0, du_offset=0, dv=0, vth=(1 << G.vth_bits) - 1)
    return b.add_compartments(n, profile=p)


def _draw_shape(rng, kind):
    """Random (C_in, H, W, C_out, kh, kw, stride, pad) that fits the small preset."""
    while True:
        c_in = int(rng.integers(1, 4))
        c_out = c_in if kind == "depthwise" else int(rng.integers(1, 5))
        kh, kw = (int(v) for v in rng.integers(1, 16, size=2))
        stride = int(rng.choice([1, 2, 4, 8]))
        pad = int(rng.integers(0, 8))
        h, w = (int(v) for v in rng.integers(1, 24, size=2))
        oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
        if (oh >= 1 and ow >= 1 and c_in * h * w <= G.n_axons
                and c_out * oh * ow <= G.n_compartments
                # |sum| of one output stays inside the accumulator (no wrap)
                and c_in * kh * kw * 255 < 1 << (G.acc_bits - 1)):
            return c_in, h, w, c_out, kh, kw, stride, pad, oh, ow


@pytest.mark.parametrize("kind", ["conv", "depthwise", "broadcast"])
def test_one_descriptor_equals_torch_conv2d(kind, seed):
    rng = np.random.default_rng(seed + {"conv": 0, "depthwise": 1, "broadcast": 2}[kind])
    D = G.n_delay_slots
    cases = 0
    for case in range(N_SHAPES):
        b = NetworkBuilder(G)
        B = 3
        if kind == "broadcast":
            c_out, oh, ow = (int(v) for v in rng.integers(1, 7, size=3))
            pieces = int(rng.integers(1, 40))       # more than 15 pieces take several rows
            weights = rng.integers(-255, 256, size=(c_out, pieces))
            out = _integrator(b, c_out * oh * ow).reshape(c_out, oh, ow)
            delay = rng.integers(0, D, size=weights.shape)
            b.add_broadcast(5, out, weights, delay=delay)
            x_map = np.zeros((B, 1, 1, 1), dtype=bool)
            x_map[:, 0, 0, 0] = [True, False, True]
            # conv2d of the spike map spread over the group with the channel sums as 1×1 kernel
            spread = torch.tensor(x_map, dtype=torch.float64).expand(B, 1, oh, ow)
            kernel = torch.tensor(weights.sum(axis=1), dtype=torch.float64).view(c_out, 1, 1, 1)
            want = F.conv2d(spread, kernel)
            axons = np.array([[[5]]])
            shape = ("broadcast", c_out, oh, ow, pieces)
        else:
            c_in, h, w, c_out, kh, kw, s, p, oh, ow = _draw_shape(rng, kind)
            depthwise = kind == "depthwise"
            k_shape = (c_out, 1 if depthwise else c_in, kh, kw)
            kernel = rng.integers(-255, 256, size=k_shape)
            if case == 0:                                   # the field limits
                kernel[...] = rng.choice([-255, 255], size=k_shape)
            delay = rng.integers(0, D, size=k_shape)
            axons = np.arange(c_in * h * w).reshape(c_in, h, w)
            out = _integrator(b, c_out * oh * ow).reshape(c_out, oh, ow)
            index = b.add_conv(axons, out, kernel, stride=s, padding=p, delay=delay,
                               depthwise=depthwise)
            assert index == 0
            x_map = rng.random((B, c_in, h, w)) < rng.uniform(0.1, 0.9)
            want = F.conv2d(torch.tensor(x_map, dtype=torch.float64),
                            torch.tensor(kernel, dtype=torch.float64), stride=s, padding=p,
                            groups=c_out if depthwise else 1)
            shape = (kind, c_in, h, w, c_out, kh, kw, s, p)
        config = b.build()
        desc = config.mem["conv"]
        assert desc["kind"][0] == ConvKind[kind.upper()].value
        # every spike at step 0; every delay has landed by step D (non-leaky u keeps the sum)
        x = np.zeros((B, D + 1, G.n_axons), dtype=bool)
        x[:, 0, axons.reshape(-1)] = x_map.reshape(B, -1)
        got = {}
        for backend in ("numpy", "torch"):
            r = GoldenCore(config, backend=backend).run(x, record=("u",))
            assert not r.spikes.any()
            got[backend] = r.u[:, -1, out.reshape(-1)].astype(np.int64)
        np.testing.assert_array_equal(got["torch"], got["numpy"], err_msg=f"{shape}")
        want = want.numpy().astype(np.int64).reshape(B, -1)
        np.testing.assert_array_equal(got["numpy"] >> ACT, want,
                                      err_msg=f"seed {seed}, case {case}: {shape}")
        assert (got["numpy"] & ((1 << ACT) - 1) == 0).all()
        cases += int(want.any())
    assert cases >= N_SHAPES // 2, f"seed {seed}: most cases had no input, nothing was proved"


# ---- direct execution vs the expanded config -------------------------------------------
def test_direct_conv_equals_expanded_config(seed):
    """GoldenCore runs descriptors directly; config.expanded() writes them out as dense lists."""
    compared = spikes = 0
    for i in range(N_CONV_NETWORKS):
        net = random_conv_network(seed + i, "small", steps=24, batch=2)
        expanded = net.config.expanded()
        assert expanded.geometry.n_conv == 0
        direct = GoldenCore(net.config).run(net.inputs, record=("u", "v"))
        dense = GoldenCore(expanded).run(net.inputs, record=("u", "v"))
        msg = first_mismatch(dense, direct, seed=seed + i, expected_name="expanded",
                             actual_name="direct")
        assert msg is None, f"{net.describe()}: {msg}"
        compared += direct.u.size
        spikes += int(direct.spikes.sum())
    assert spikes > 1000, f"seed {seed}: {spikes} spikes in {N_CONV_NETWORKS} networks"
    print(f"{N_CONV_NETWORKS} conv networks, {compared} compartment-steps, direct == expanded")


# ---- bad descriptors -----------------------------------------------------------------
def _valid_config():
    """Axons 0..17 (2, 3, 3) → CONV descriptor 0 → group (2, 2, 2) at compartments 0..7;
    axon 20 → BROADCAST descriptor 1 → the same group."""
    b = NetworkBuilder(G)
    out = _integrator(b, 8).reshape(2, 2, 2)
    b.add_conv(np.arange(18).reshape(2, 3, 3), out, np.ones((2, 2, 2, 2), dtype=int))
    b.add_broadcast(20, out, [[3], [4]])
    return b.build()


def _conv(fields, **changes):
    for k, v in changes.items():
        fields[k][0] = v


@pytest.mark.parametrize("bad, match", ids=lambda v: v if "\\" not in v else "", argvalues=[
    ("output_past_end", r"conv\[0\] output group compartments\[250:258\] runs past "
                        r"n_compartments=256"),
    ("kernel_past_end", r"conv\[0\] kernel synapses\[8190:8206\] \(read by axon 0\) runs past "
                        r"the 8192 words of synapses"),
    ("bad_kind", r"kind 3 of conv\[0\] must be a ConvKind value"),
    ("zero_size", r"out_h 0 of conv\[0\] must be >= 1"),
    ("depthwise_ci", r"ci 1 of synapse_map\[9\] must be < out_c=1 of depthwise conv\[0\]"),
    ("broadcast_coords", r"synapse_map\[20\] coordinates \(0, 1, 0\) must be \(0, 0, 0\) for "
                         r"broadcast conv\[1\]"),
    ("index_past_n_conv", r"conv 9 of synapse_map\[3\] must be <= n_conv=8"),
    ("kernel_sign_mode", r"sign_mode 0 of synapses\[\d+\] must be a SignMode value \(a conv "
                         r"kernel word\)"),
])
def test_bad_descriptor_is_a_config_error(bad, match):
    config = _valid_config()
    config.validate()
    conv, sm = config.mem["conv"], config.mem["synapse_map"]
    if bad == "output_past_end":
        _conv(conv, out_base=250)
    elif bad == "kernel_past_end":
        _conv(conv, kernel_base=G.n_synapses - 2)
    elif bad == "bad_kind":
        _conv(conv, kind=3)
    elif bad == "zero_size":
        _conv(conv, out_h=0)
    elif bad == "depthwise_ci":
        _conv(conv, kind=ConvKind.DEPTHWISE.value, out_c=1)
    elif bad == "broadcast_coords":
        sm["iy"][20] = 1
    elif bad == "index_past_n_conv":
        sm["conv"][3] = G.n_conv + 1
    elif bad == "kernel_sign_mode":
        config.mem["synapses"]["sign_mode"][conv["kernel_base"][1]] = 0
    with pytest.raises(ConfigError, match=match):
        config.validate()


@pytest.mark.parametrize("bad, match", ids=lambda v: v if "\\" not in v else "", argvalues=[
    ("outputs_not_consecutive", r"conv descriptor 0: output compartments must be consecutive"),
    ("stride_3", r"conv descriptor 0: stride 3 is not one of \[1, 2, 4, 8\]"),
    ("padding_8", r"conv descriptor 0: padding 8 is outside 0\.\.7"),
    ("two_descriptors_on_one_axon", r"conv descriptor 1: axon 4 already scatters through conv "
                                    r"descriptor 0 \(one descriptor per axon\)"),
    ("broadcast_on_a_conv_axon", r"conv descriptor 1: axon 0 already scatters through conv "
                                 r"descriptor 0"),
    ("too_many_descriptors", r"conv descriptor 8 exceeds n_conv=8 of geometry 'small'"),
    ("kernel_channels", r"kernel of shape \(2, 3, 2, 2\) takes 3 input channels, the axon map "
                        r"has 2"),
    ("depthwise_kernel", r"a depthwise kernel has shape \(2, 1, kH, kW\) for 2 input channels"),
    ("output_shape", r"conv descriptor 0: outputs must have shape \(2, H', W'\)"),
])
def test_bad_add_conv_is_a_config_error(bad, match):
    b = NetworkBuilder(G)
    cx = _integrator(b, 64)
    axons = np.arange(18).reshape(2, 3, 3)
    out = cx[:8].reshape(2, 2, 2)
    k = np.ones((2, 2, 2, 2), dtype=int)
    with pytest.raises(ConfigError, match=match):
        if bad == "outputs_not_consecutive":
            b.add_conv(axons, cx[[0, 1, 2, 3, 5, 6, 7, 8]].reshape(2, 2, 2), k)
        elif bad == "stride_3":
            b.add_conv(axons, out, k, stride=3)
        elif bad == "padding_8":
            b.add_conv(axons, out, k, padding=8)
        elif bad == "two_descriptors_on_one_axon":
            b.add_conv(axons, out, k)
            b.add_conv(np.arange(4, 22).reshape(2, 3, 3), cx[8:16].reshape(2, 2, 2), k)
        elif bad == "broadcast_on_a_conv_axon":
            b.add_conv(axons, out, k)
            b.add_broadcast(0, out, [1, 2])
        elif bad == "too_many_descriptors":
            for i in range(G.n_conv + 1):
                b.add_broadcast(100 + i, out, [1, 2])
        elif bad == "kernel_channels":
            b.add_conv(axons, out, np.ones((2, 3, 2, 2), dtype=int))
        elif bad == "depthwise_kernel":
            b.add_conv(axons, out, k, depthwise=True)
        elif bad == "output_shape":
            b.add_conv(axons, cx[:12].reshape(3, 2, 2), k)
