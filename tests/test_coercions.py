"""No silent coercion in the builder, the geometry, the golden core, the converter or the
frame encoder: each bad value is an error that names the parameter or the layer (issue 14,
defects 3 and 7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurocore.boards.protocol import encode_frame
from neurocore.golden.core import GoldenCore
from neurocore.golden.network import ConfigError, NetworkBuilder
from neurocore.spec.geometry import CoreGeometry
from neurocore.sw.compiler import MappingError
from neurocore.sw.convert import from_model

TINY = CoreGeometry.preset("tiny")


def builder():
    b = NetworkBuilder(TINY)
    p = b.add_profile(vth=100)
    return b, p, b.add_compartments(2, profile=p)


@pytest.mark.parametrize("kwargs,name", [
    (dict(vth=100.9), "vth"), (dict(vth="100"), "vth"), (dict(vth=True), "vth"),
    (dict(vth=float("nan")), "vth"), (dict(vth=100, du=float("inf")), "du"),
    (dict(vth=100, dv=[1, 2]), "dv"),
])
def test_add_profile_rejects_non_integers(kwargs, name):
    with pytest.raises(ConfigError, match=f"^{name} must be"):
        NetworkBuilder(TINY).add_profile(**kwargs)


def test_whole_floats_are_still_integers():
    b = NetworkBuilder(TINY)
    p = b.add_profile(vth=100.0)
    cx = b.add_compartments(1, profile=p, bias_mant=np.float64(3.0))
    b.connect(0, cx, [10.0], delay=2.0)
    cfg = b.build()
    assert cfg.mem["profiles"]["vth"][p] == 100 and cfg.mem["synapses"]["delay"][0] == 2


@pytest.mark.parametrize("call,name", [
    (lambda b, p, cx: b.connect(0, cx, [10.9, 1]), "weights"),
    (lambda b, p, cx: b.connect(0, cx, 1, delay=2.7), "delay"),
    (lambda b, p, cx: b.connect(0, cx, 1, weight_exp=np.nan), "weight_exp"),
    (lambda b, p, cx: b.connect(1.5, cx, 1), "axon"),
    (lambda b, p, cx: b.connect(0, [0.5], 1), "targets"),
    (lambda b, p, cx: b.connect(0, cx, [True, False]), "weights"),
    (lambda b, p, cx: b.add_compartments(1, profile=p, bias_mant=2.9), "bias_mant"),
    (lambda b, p, cx: b.add_compartments(1, profile=p, bias_exp="1"), "bias_exp"),
    (lambda b, p, cx: b.add_compartments(1.5, profile=p), "n"),
    (lambda b, p, cx: b.add_compartments(1, profile=0.5), "profile"),
])
def test_builder_rejects_non_integers(call, name):
    with pytest.raises(ConfigError, match=f"^{name} must be"):
        call(*builder())


def test_add_compartments_rejects_a_negative_count():
    b, p, _ = builder()
    with pytest.raises(ConfigError, match="cannot add -1 compartments"):
        b.add_compartments(-1, profile=p)


@pytest.mark.parametrize("call", [
    lambda b: b.connect(0, [5], 1),
    lambda b: b.route_to_output([5], [0]),
    lambda b: b.route_to_axon([2], [0]),
])
def test_synapses_and_routes_need_created_compartments(call):
    b, _, _ = builder()          # compartments 0 and 1 exist
    with pytest.raises(ConfigError, match=r"compartment [25] was not added with add_compartments \(2 so far\)"):
        call(b)


@pytest.mark.parametrize("field,value", [("state_bits", 64), ("decay_shift", 70),
                                         ("weight_bits", 40), ("n_axons", 1 << 30)])
def test_geometry_field_bounds(field, value):
    with pytest.raises(ValueError, match=f"CoreGeometry.{field}={value} exceeds its limit"):
        CoreGeometry(**{field: value})


def test_geometry_decay_bits_within_decay_shift():
    with pytest.raises(ValueError, match="decay_bits=13 exceeds decay_shift=12"):
        CoreGeometry(decay_bits=13)


def test_every_preset_is_within_the_bounds():
    for name in ("tiny", "small", "loihi", "icebreaker", "ulx3s", "bench"):
        assert CoreGeometry.preset(name).name == name


@pytest.mark.parametrize("shape", [(0, 4, TINY.n_axons), (2, 0, TINY.n_axons)])
def test_golden_run_rejects_an_empty_batch_or_no_steps(shape):
    b, _, _ = builder()
    with pytest.raises(ValueError, match="no samples or no steps"):
        GoldenCore(b.build()).run(np.zeros(shape, dtype=bool))


def test_encode_frame_rejects_a_command_above_one_byte():
    with pytest.raises(ValueError, match="command 0x110 does not fit one byte"):
        encode_frame(0x110)
    assert encode_frame(0x10)[1] == 0x10


# ---- from_model ------------------------------------------------------------------------
def mlp(*hidden_relu):
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), *hidden_relu, nn.Linear(8, 3))


def test_first_hidden_layer_without_relu_is_rejected():
    with pytest.raises(MappingError, match=r"model\[1\] \(Linear\): a hidden layer must be "
                                           "followed by ReLU"):
        from_model(mlp(), 8, torch.rand(32, 16))


def test_second_hidden_layer_without_relu_is_rejected():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 8),
                          nn.Linear(8, 3))
    with pytest.raises(MappingError, match=r"model\[3\] \(Linear\): a hidden layer must be"):
        from_model(model, 8, torch.rand(32, 16))


@pytest.mark.parametrize("t_max", [2.5, True, "16", 1])
def test_from_model_t_max_must_be_an_integer(t_max):
    with pytest.raises(ValueError, match="t_max must be an integer >= 2"):
        from_model(mlp(nn.ReLU()), t_max, torch.rand(32, 16))


def test_from_model_names_the_layer_a_wrong_input_shape_breaks():
    with pytest.raises(ValueError, match=r"model\[1\] \(Linear\) does not accept inputs of "
                                         r"shape \(20,\)"):
        from_model(mlp(nn.ReLU()), 8, torch.rand(32, 20))


@pytest.mark.parametrize("data", [torch.rand(0, 16), torch.rand(16)])
def test_from_model_needs_a_non_empty_calibration_batch(data):
    with pytest.raises(ValueError, match="sample_data must be a non-empty batch"):
        from_model(mlp(nn.ReLU()), 8, data)


def test_from_model_rejects_nan_calibration_data():
    data = torch.rand(32, 16)
    data[3, 4] = float("nan")
    with pytest.raises(ValueError, match="sample_data holds NaN"):
        from_model(mlp(nn.ReLU()), 8, data)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_from_model_names_the_layer_with_nan_weights(value):
    model = mlp(nn.ReLU())
    with torch.no_grad():
        model[3].bias[1] = value
    with pytest.raises(ValueError, match=r"model\[3\] \(Linear\): bias holds NaN or infinite"):
        from_model(model, 8, torch.rand(32, 16))


@pytest.mark.parametrize("normalized", [False, True])
def test_from_model_names_a_grouped_convolution(normalized):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, groups=2), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    if normalized:
        del model[1]
    with pytest.raises(TypeError, match=r"model\[0\] \(Conv2d\): grouped or dilated"):
        from_model(model, 8, torch.rand(16, 2, 8, 8), normalized=normalized)


def test_from_model_leaves_batchnorm_statistics_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(),
                          nn.Linear(8, 3)).train()
    before = model[2].running_mean.clone()
    from_model(model, 8, torch.rand(32, 16))
    assert torch.equal(model[2].running_mean, before) and model.training
