"""Quartz on the integer core: closed form, digits accuracy, Lava agreement, conversion errors."""

import os

import numpy as np
import pytest
import torch
from conftest import record_crosscheck
from torch import nn

from neurocore.golden.compare import first_mismatch
from neurocore.golden.core import GoldenCore
from neurocore.golden.quartz import TimeGrid, decode, encode
from neurocore.sw.compiler import MappingError, integer_closed_form, split_amplitude
from neurocore.sw.convert import from_model
from neurocore.sw.layers import UnsupportedLayerError
from neurocore.spec.geometry import CoreGeometry

#: Digits test images in the Lava cross-check: each is its own Lava run (~9 s of process
#: start-up and stepping on a 2-core machine); ``make lava-long`` runs 100.
LAVA_DIGITS_IMAGES = int(os.environ.get("NEUROCORE_LAVA_DIGITS_IMAGES", "12"))


def _decoded(program, spikes, name):
    """Decoded values of one stage's neurons from a golden run (one spike per neuron)."""
    ids = program.neuron_ids[name]
    rep = next(r for r in program.layers if r.name == name)
    s = spikes[:, :, ids]
    assert (s.sum(axis=1) <= 1).all(), f"{name}: a neuron spiked more than once"
    fired = s.any(axis=1)
    tau = s.argmax(axis=1) - rep.window_start
    levels = program.t_max - 1
    return np.where(fired, (3 * levels - tau) / levels, -np.inf)


@pytest.mark.parametrize("t_max", [4, 8, 16, 32])
def test_integer_core_equals_closed_form_on_random_dense_layers(seed, t_max):
    """Every neuron of seeded random Dense layers decodes to floor((T-1)Y/S + 1/2)/(T-1)."""
    rng = np.random.default_rng(seed + t_max)
    checked = 0
    for trial in range(6):
        n_in, n_hidden, n_out = rng.integers(4, 40), rng.integers(4, 40), rng.integers(2, 12)
        model = nn.Sequential(nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_out))
        x = rng.random((16, n_in))
        with torch.no_grad():
            for lin in (model[0], model[2]):
                lin.weight.copy_(torch.from_numpy(rng.uniform(-1, 1, lin.weight.shape)))
                lin.bias.copy_(torch.from_numpy(rng.uniform(-0.3, 0.3, lin.bias.shape)))
            # in-range activations: scale each layer so that its largest net input is 0.8
            h = model[0](torch.from_numpy(x).float())
            model[0].weight.mul_(0.8 / float(h.abs().max()))
            model[0].bias.mul_(0.8 / float(h.abs().max()))
            o = model[2](model[1](model[0](torch.from_numpy(x).float())))
            model[2].weight.mul_(0.8 / float(o.abs().max()))
            model[2].bias.mul_(0.8 / float(o.abs().max()))
        program = from_model(model, t_max, torch.from_numpy(x).float(), normalized=True)
        result = GoldenCore(program.config).run(program.encode(x))
        names = [r.name for r in program.layers]
        k_in = 2 * (t_max - 1) - encode(x, t_max)                     # input grid levels
        hid = program.integers[names[0]]
        z = k_in @ hid["W"].T + (t_max - 1) * hid["B"]
        expect_h = integer_closed_form(z, hid["S"], t_max, rectify=True)
        got_h = _decoded(program, result.spikes, names[0])
        assert np.array_equal(got_h, expect_h), (
            f"seed {seed}, T={t_max}, trial {trial}: hidden layer differs at "
            f"{np.argwhere(got_h != expect_h)[:3].tolist()}")
        k_h = np.rint(expect_h * (t_max - 1)).astype(np.int64)
        out = program.integers[names[1]]
        z = k_h @ out["W"].T + (t_max - 1) * out["B"]
        expect_o = integer_closed_form(z, out["S"], t_max, rectify=False)
        lowest = -1 + 1 / (t_max - 1)                  # below this the window ends first
        expect_o = np.where(expect_o < lowest - 1e-12, -np.inf, expect_o)
        got_o = program.decode(result.outputs)["values"]
        assert np.array_equal(got_o, expect_o), (
            f"seed {seed}, T={t_max}, trial {trial}: output differs at "
            f"{np.argwhere(got_o != expect_o)[:3].tolist()}")
        checked += got_h.size + got_o.size
    print(f"T={t_max}: {checked} neurons equal the closed form (seed {seed})")
    assert checked > 0


def test_split_amplitude_is_exact(rng):
    g = CoreGeometry.preset("small")
    for v in list(rng.integers(-300000, 300000, size=500)) + [0, 1, -1, 255, 32640, -32641]:
        pieces = split_amplitude(int(v), g)
        assert sum(w << e for w, e in pieces) == v, (v, pieces)
        assert all(abs(w) <= 255 and 0 <= e <= 7 for w, e in pieces), (v, pieces)


def test_digits_cnn_accuracy_at_t16(digits_program_t16, digits):
    """Integer golden core within 1.0 point of the ANN, float Quartz within 0.5 (T = 16)."""
    from neurocore.golden.quartz import run_network

    program, model = digits_program_t16
    y = digits.y_test.numpy()
    with torch.no_grad():
        ann = float((model(digits.x_test).argmax(1).numpy() == y).mean()) * 100
    result = GoldenCore(program.config).run(program.encode(digits.x_test))
    core = float((program.decode(result.outputs)["predicted"] == y).mean()) * 100
    flt = run_network(program.normalized_model, digits.x_test, 16).accuracy(y) * 100
    print(f"digits CNN T=16: ANN {ann:.2f} %, float Quartz {flt:.2f} %, core {core:.2f} %")
    assert abs(core - ann) <= 1.0, (ann, core)
    assert abs(flt - ann) <= 0.5, (ann, flt)
    # every compartment spikes at most once per inference (Quartz's one-spike property)
    assert result.spikes.sum(axis=1).max() == 1


@pytest.mark.lava
def test_digits_cnn_on_lava_matches_golden(digits_program_t16, digits):
    """Lava's bit-accurate models give the golden core's spikes, u and v on the first
    ``LAVA_DIGITS_IMAGES`` test images."""
    from neurocore.sim.lava_harness import run_lava

    program, _ = digits_program_t16
    x = program.encode(digits.x_test[:LAVA_DIGITS_IMAGES])
    golden = GoldenCore(program.config).run(x, record=("u", "v"))
    lava = run_lava(program.config, x, record=("u", "v"))
    msg = first_mismatch(golden, lava, actual_name="lava")
    B, T, n = golden.u.shape
    record_crosscheck("golden vs Lava (digits CNN, T=16)", networks=1, samples=B, steps=B * T,
                      compartment_steps=B * T * n, mismatches=int(msg is not None))
    assert msg is None, msg
    assert np.array_equal(program.decode(lava.outputs)["predicted"],
                          program.decode(golden.outputs)["predicted"])


def test_unsupported_layer_names_path_and_type():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2))
    with pytest.raises(UnsupportedLayerError, match=r"model\[2\] \(Sigmoid\).*Sigmoid"):
        from_model(model, 8, torch.rand(8, 4), normalized=True)


def test_out_of_range_weight_is_rejected():
    model = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight.fill_(0.1)
        model[0].weight[1, 2] = 300.0
    with pytest.raises(MappingError, match=r"model\[0\] \(Linear\): weight 300 does not fit 8"):
        from_model(model, 8, torch.rand(8, 4), normalized=True)


def test_input_outside_compiled_range_is_rejected():
    model = nn.Sequential(nn.Linear(4, 3))
    program = from_model(model, 8, torch.rand(8, 4) * 0.5, normalized=True)
    bad = np.full((2, 4), 0.25)
    bad[1, 3] = 0.9
    with pytest.raises(ValueError, match=r"input value 0.9 \(sample 1, input 3\) is outside"):
        program.encode(bad)


def test_decode_matches_float_grid():
    """QuartzProgram.decode of an output spike at each step of the output window equals the
    float reference's decode of the same spike (the core runs T-1 steps behind it)."""
    for T in (4, 8, 16):
        program = _decode_only_program(T, output_window=5)
        for tau in range(T - 1, 4 * (T - 1)):
            outputs = np.zeros((1, program.n_steps, 1), dtype=np.int32)
            outputs[0, program.output_window + tau, 0] = 1
            got = program.decode(outputs)
            assert got["values"][0, 0] == decode(tau - (T - 1), T), (T, tau)
            assert got["first_spike"][0, 0] == program.output_window + tau


def _decode_only_program(T: int, output_window: int):
    """A QuartzProgram with one output and only the fields that decode reads."""
    from neurocore.sw.compiler import QuartzProgram
    grid = TimeGrid(T)
    return QuartzProgram(config=None, t_max=T, input_shape=(1,), input_max=1.0,
                         input_axons=np.zeros(1, dtype=np.int64), clock_axons={},
                         clock_steps={}, first_window=0, output_window=output_window,
                         n_steps=output_window + grid.window, n_outputs=1, layers=[])


def test_round_up_to_piece_is_a_tight_upper_bound(rng):
    from neurocore.sw.compiler import round_up_to_piece
    g = CoreGeometry.preset("small")
    for v in list(rng.integers(0, 200000, size=500)) + [0, 1, 127, 128, 129, 32640, 32641]:
        r = round_up_to_piece(int(v), g)
        pieces = split_amplitude(r, g)
        assert v <= r < v + 128, (v, r)
        assert sum(w << e for w, e in pieces) == r, (v, pieces)
        assert all(e == 7 for _, e in pieces), (v, pieces)
        assert len(pieces) == -(-r // 32640), (v, pieces)
