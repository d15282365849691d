"""Conv descriptors in the Quartz compiler: kernels stored once (spec §3.5, docs/quartz.md §3.5).

The conv mapping and the dense one (``from_model(..., dense=True)``) hold the same integer
weights, so on the golden model they give the same spikes; the conv mapping takes a fraction
of the synapse words.  Layers a descriptor cannot express raise an error naming the layer and
the limit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurocore.golden.core import GoldenCore
from neurocore.spec.geometry import CoreGeometry
from neurocore.sw.compiler import MappingError
from neurocore.sw.convert import from_model
from neurocore.sw.image import load_program, save_program
from neurocore.sw.layers import UnsupportedLayerError
from neurocore.sw.models import mnist_convnet

#: The paper's ConvNet must convert into at most this many synapse-side words (issue 10).
PAPER_NET_WORD_BUDGET = 40_000


def synapse_side_words(config) -> int:
    s = config.summary()
    return s["synapses_used"] + s["kernel_words_used"] + s["conv_descriptors_used"]


def assert_same_run(conv, dense, x):
    """Same spikes of every neuron (compartment ids agree: same layout), same outputs."""
    rc = GoldenCore(conv.config).run(conv.encode(x))
    rd = GoldenCore(dense.config).run(dense.encode(x))
    n = dense.config.summary()["compartments_used"]
    np.testing.assert_array_equal(rc.spikes[:, :, :n], rd.spikes[:, :, :n])
    np.testing.assert_array_equal(rc.outputs, rd.outputs)
    pc, pd = conv.decode(rc.outputs)["predicted"], dense.decode(rd.outputs)["predicted"]
    np.testing.assert_array_equal(pc, pd)
    return pc


def convert_both(model, t_max, x, **kw):
    return from_model(model, t_max, x, **kw), from_model(model, t_max, x, dense=True, **kw)


#: Digits test images the conv/dense comparison runs (the golden conv path is the slower one).
DIGITS_IMAGES = 120


def test_digits_cnn_conv_equals_dense_on_the_test_split(digits_cnn, digits):
    """The digits CNN (padding 1: border counter-weight corrections) on digits test images."""
    conv, dense = convert_both(digits_cnn, 16, digits.x_train)
    assert conv.config.summary()["conv_descriptors_used"] > 0
    assert dense.config.summary()["conv_descriptors_used"] == 0
    for name, ints in dense.integers.items():
        np.testing.assert_array_equal(conv.integers[name]["W"], ints["W"], err_msg=name)
        assert conv.integers[name]["S"] == ints["S"], name
    pred = assert_same_run(conv, dense, digits.x_test[:DIGITS_IMAGES])
    acc = float((pred == digits.y_test[:DIGITS_IMAGES].numpy()).mean())
    words = synapse_side_words(conv.config), synapse_side_words(dense.config)
    print(f"digits CNN T=16: conv {words[0]} words, dense {words[1]}; accuracy {acc:.4f}")
    assert words[0] < words[1] / 4 and acc > 0.9


@pytest.mark.parametrize("conv_kw, side", [
    (dict(kernel_size=3, stride=2, padding=1), 9),     # strided and padded
    (dict(kernel_size=(3, 2), stride=1, padding=2), 5),  # non-square kernel, wide padding
    (dict(kernel_size=4, stride=4, padding=0), 8),     # stride = kernel
])
def test_conv_layers_equal_dense(conv_kw, side):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 5, bias=True, **conv_kw), nn.ReLU(), nn.Flatten())
    with torch.no_grad():
        n = model(torch.zeros(1, 2, side, side)).shape[1]
    model.append(nn.Linear(n, 4))
    x = torch.rand(32, 2, side, side)
    conv, dense = convert_both(model.eval(), 8, x)
    assert conv.layers[0].descriptors == 4 and conv.layers[0].kernel_words > 0
    assert_same_run(conv, dense, torch.rand(24, 2, side, side))


@pytest.fixture(scope="module")
def paper_net():
    torch.manual_seed(0)
    model = mnist_convnet(bias=True).eval()
    x = torch.rand(64, 1, 28, 28)
    return model, x, *convert_both(model, 16, x)


def test_paper_convnet_fits_the_word_budget_and_equals_dense(paper_net):
    model, x, conv, dense = paper_net
    words, before = synapse_side_words(conv.config), synapse_side_words(dense.config)
    print(f"paper ConvNet T=16: {words} synapse-side words with conv descriptors, {before} dense")
    assert words <= PAPER_NET_WORD_BUDGET < before
    torch.manual_seed(2)
    assert_same_run(conv, dense, torch.rand(6, 1, 28, 28))


def test_fit_report_gives_the_synapse_side_per_layer_and_board(paper_net):
    _, _, conv, dense = paper_net
    text = conv.fit_report()
    s = conv.config.summary()
    assert "kernel w" in text and "ulx3s bits" in text and "icebreaker bits" in text
    total = next(line for line in text.splitlines() if line.strip().startswith("total"))
    assert total.split()[1:6] == [str(s["compartments_used"]), str(s["conv_descriptors_used"]),
                                  str(s["kernel_words_used"]), str(s["synapses_used"]),
                                  str(synapse_side_words(conv.config))]
    for r in conv.layers:
        assert r.name in text
    assert sum(r.kernel_words for r in conv.layers) == s["kernel_words_used"]
    assert sum(r.synapses for r in conv.layers) == s["synapses_used"]
    assert sum(r.descriptors for r in conv.layers) == s["conv_descriptors_used"]
    assert sum(r.synapses for r in dense.layers) == dense.config.summary()["synapses_used"]


def test_program_declares_every_field(paper_net):
    model, _, conv, _ = paper_net
    assert conv.normalized_model is not None and len(conv.lambdas) == 4
    assert conv.fold_report is not None
    import dataclasses
    assert set(vars(conv)) == {f.name for f in dataclasses.fields(conv)}


def test_conv_program_image_round_trip(tmp_path):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(3 * 4 * 4, 3)).eval()
    program = from_model(model, 8, torch.rand(16, 1, 8, 8))
    loaded = load_program(save_program(tmp_path / "conv.ncimg", program))
    assert loaded.fit_report() == program.fit_report()
    assert loaded.layers == program.layers
    x = torch.rand(4, 1, 8, 8)
    np.testing.assert_array_equal(GoldenCore(loaded.config).run(loaded.encode(x)).outputs,
                                  GoldenCore(program.config).run(program.encode(x)).outputs)


# ---- what a descriptor cannot express: an error naming the layer and the limit ----------
def _net(*mods, side=8, c_in=1):
    model = nn.Sequential(*mods, nn.Flatten())
    with torch.no_grad():
        n = model(torch.zeros(1, c_in, side, side)).shape[1]
    model.append(nn.Linear(n, 2))
    return model.eval(), torch.rand(8, c_in, side, side)


@pytest.mark.parametrize("mods, side, geometry, match", [
    ((nn.Conv2d(1, 2, 3, stride=3), nn.ReLU()), 9, None, r"model\[0\] \(Conv2d\).*stride.*1, 2, 4, 8"),
    ((nn.Conv2d(1, 2, 3, stride=2), nn.ReLU()), 8, None, r"model\[0\] \(Conv2d\).*does not tile"),
    ((nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2)), 9, None,
     r"model\[2\] \(MaxPool2d\).*does not tile"),
    ((nn.Conv2d(1, 2, 3, padding=(1, 0)), nn.ReLU()), 8, None, r"model\[0\].*padding"),
    ((nn.Conv2d(1, 2, 16), nn.ReLU()), 16, None, r"model\[0\].*kernel height 16 exceeds 15"),
    ((nn.AvgPool2d(2), nn.Conv2d(1, 2, 3), nn.ReLU()), 8, None, r"model\[1\].*AvgPool2d"),
    ((nn.Conv2d(1, 2, 3), nn.ReLU()), 8, "icebreaker",
     r"model\[0\].*'icebreaker'.*n_conv=0.*dense=True"),
    ((nn.Conv2d(1, 8, 3, padding=1), nn.ReLU()), 8, "small",
     r"model\[0\] \(Conv2d\).*n_compartments=256"),
    ((nn.Conv2d(1, 4, 3), nn.ReLU()), 8, CoreGeometry.preset("small").replace(conv_channel_bits=2),
     r"model\[0\].*output channels 4 exceed 3, the 2-bit conv field"),
])
def test_layers_a_descriptor_cannot_express_raise(mods, side, geometry, match):
    model, x = _net(*mods, side=side)
    with pytest.raises(MappingError, match=match):
        from_model(model, 8, x, geometry=geometry, normalized=True)
    if geometry is None:          # the dense mapping takes them
        from_model(model, 8, x, dense=True, normalized=True)


def test_more_descriptors_than_the_geometry_has_name_the_layer():
    g = CoreGeometry.preset("small").replace(n_conv=2)
    model, x = _net(nn.Conv2d(1, 2, 3, padding=1, bias=True), nn.ReLU())
    with pytest.raises(MappingError, match=r"model\[0\] \(Conv2d\).*n_conv=2.*dense=True"):
        from_model(model, 8, x, geometry=g, normalized=True)


@pytest.mark.parametrize("conv", [nn.Conv2d(2, 2, 3, groups=2), nn.Conv2d(1, 2, 3, dilation=2)])
def test_grouped_and_dilated_convs_are_rejected(conv):
    model, x = _net(conv, nn.ReLU(), c_in=conv.in_channels, side=9)
    with pytest.raises(UnsupportedLayerError, match=r"model\[0\] \(Conv2d\).*grouped or dilated"):
        from_model(model, 8, x, normalized=True)


def test_conv_fits_a_core_the_dense_mapping_overflows():
    """The digits CNN on the `loihi` preset (16 K synapse words, 16 descriptors): dense it needs
    more synapse words than the core has (the error names the largest layer), conv fits."""
    from neurocore.sw.models import digits_cnn
    torch.manual_seed(4)
    model = digits_cnn().eval()
    x = torch.rand(32, 1, 8, 8)
    with pytest.raises(MappingError, match=r"n_synapses=16384 of geometry 'loihi' \(largest: "
                                           r"model\[3\] \(Conv2d\)"):
        from_model(model, 16, x, geometry="loihi", dense=True)
    program = from_model(model, 16, x, geometry="loihi")
    assert program.config.geometry.name == "loihi"
    assert synapse_side_words(program.config) < 16384


def test_images_without_the_conv_layer_counts_still_load(tmp_path):
    """Images written before LayerReport had ``descriptors``/``kernel_words`` read them as 0."""
    from neurocore.sw.image import program_metadata, save_config
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    program = from_model(model, 8, torch.rand(16, 1, 4, 4))
    meta = program_metadata(program)
    for layer in meta["layers"]:
        del layer["descriptors"], layer["kernel_words"]
    loaded = load_program(save_config(tmp_path / "old.ncimg", program.config, meta))
    assert loaded.layers == program.layers


@pytest.mark.lava
def test_conv_program_on_lava_matches_golden():
    """Lava runs the descriptors written out as synapse lists: same spikes, u and v."""
    from neurocore.sim.lava_harness import run_lava
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(48, 3)).eval()
    program = from_model(model, 8, torch.rand(16, 1, 8, 8))
    assert program.config.summary()["conv_descriptors_used"] == 5
    x = program.encode(torch.rand(2, 1, 8, 8))
    golden = GoldenCore(program.config).run(x, record=("u", "v"))
    lava = run_lava(program.config, x, record=("u", "v"))
    for what in ("spikes", "u", "v", "outputs"):
        np.testing.assert_array_equal(getattr(lava, what), getattr(golden, what), err_msg=what)


#: Upsampled-digits test images of the trained-paper-ConvNet comparison.
PAPER_TEST_IMAGES = 40


def test_trained_paper_convnet_with_biases_equals_dense_on_the_digits28_test_split():
    """Issue 10 acceptance: the paper's ConvNet with biases, trained on the bundled digits at
    28×28 (a short run of the registered recipe), gives the same spikes and predictions with
    conv descriptors as densely, inside the word budget."""
    from neurocore.sw.datasets import load_digits28_split
    from neurocore.sw.models import MODELS, train
    data = load_digits28_split()
    model = train(mnist_convnet(bias=True), data, seed=0, config=MODELS["mnist_convnet_digits"][1],
                  epochs=2)
    assert any(m.bias is not None and m.bias.abs().sum() > 0 for m in model
               if isinstance(m, (nn.Conv2d, nn.Linear)))
    conv, dense = convert_both(model, 16, data.x_train)
    assert synapse_side_words(conv.config) <= PAPER_NET_WORD_BUDGET
    pred = assert_same_run(conv, dense, data.x_test[:PAPER_TEST_IMAGES])
    with torch.no_grad():
        ann = model(data.x_test[:PAPER_TEST_IMAGES]).argmax(1).numpy()
    print(f"trained paper ConvNet (2 epochs) on {PAPER_TEST_IMAGES} digits28 test images: "
          f"core agrees with the ANN on {np.mean(pred == ann):.1%}")
    assert np.mean(pred == ann) >= 0.9
