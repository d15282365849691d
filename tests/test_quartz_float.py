"""Float Quartz reference (``neurocore.golden.quartz``) and the converter front end (``sw.normalize``).

Expected values come from quartz.md §1A/§2 (worked examples at T = 8), from the closed form
``y_out = max(0, floor((T-1)y + 0.5))/(T-1)``, and from hand arithmetic written in comments.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from neurocore.golden.quartz import (
    NO_SPIKE, TimeGrid, closed_form, decode, encode, quantize, run_closed_form, run_network,
    simulate_dense_layer,
)
from neurocore.sw.datasets import load_digits_split
from neurocore.sw.models import accuracy, load_or_train
from neurocore.sw.normalize import fold_batchnorm, normalize

T_VALUES = (4, 8, 16, 32)
EXAMPLE_T = 8                      # quartz.md §2: R = 14, Q = 21, θ = 7.5, window 28
EXAMPLE_X = np.array([[6 / 7, 3 / 7]])
ACCURACY_T = 16
ACCURACY_TOLERANCE = 0.005         # float Quartz within 0.5 points of the ANN
NORMALISATION_PERCENTILE = 99.0
NETWORK_PERCENTILE = 100.0         # random networks: every pre-activation <= 1, few early spikes
NETWORK_SAMPLES = 400
MIN_CLEAN_SAMPLES = 10             # samples without early spikes that must be compared, at least


# ---------------------------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t_max", T_VALUES)
def test_time_grid_and_encoding_anchors(t_max):
    grid = TimeGrid(t_max)
    assert (grid.window, grid.readout, grid.rectify_step) == (4 * (t_max - 1), 2 * (t_max - 1), 3 * (t_max - 1))
    assert grid.threshold == t_max - 0.5
    # x = 2 → 0, x = 1 → T-1, x = 0 → R, x = -1 → Q
    assert encode([2.0, 1.0, 0.0, -1.0], t_max).tolist() == [0, t_max - 1, grid.readout, grid.rectify_step]
    assert decode([0, t_max - 1, grid.readout], t_max).tolist() == [2.0, 1.0, 0.0]
    assert decode([NO_SPIKE], t_max)[0] == -np.inf


def test_encode_rounds_half_to_even():
    # T = 8, x = 0.5: 7 * 1.5 = 10.5 → 10 (even), value 4/7; x = 9/14: 7 * (19/14) = 9.5 → 10
    assert encode([0.5, 9 / 14], 8).tolist() == [10, 10]
    assert quantize([0.5], 8)[0] == 4 / 7          # rint(3.5) = 4


@pytest.mark.parametrize("t_max", T_VALUES)
def test_grid_round_trip(t_max):
    idx = np.arange(TimeGrid(t_max).window)
    assert np.array_equal(encode(decode(idx, t_max), t_max), idx)


@settings(max_examples=300, deadline=None)
@given(x=st.floats(-1.9, 2.0), t_max=st.integers(2, 64))
def test_encoding_error_is_at_most_half_a_step(x, t_max):
    value = decode(encode([x], t_max), t_max)[0]
    assert abs(value - x) <= 0.5 / (t_max - 1) + 1e-12, (x, t_max, value)
    level = value * (t_max - 1)
    assert abs(level - round(level)) < 1e-9, (x, t_max, value)        # on the 1/(T-1) grid


@pytest.mark.parametrize("bad", [1, 0, 2.5, True, "8"])
def test_time_grid_rejects_bad_t_max(bad):
    with pytest.raises(ValueError, match="t_max must be an integer >= 2"):
        TimeGrid(bad)


def test_encode_rejects_values_above_the_range():
    with pytest.raises(ValueError, match=r"value 2\.5 exceeds 2\.0"):
        encode([0.0, 2.5], 8)
    with pytest.raises(ValueError, match="NaN"):
        encode([np.nan], 8)


# ---------------------------------------------------------------------------------------------
# worked examples, quartz.md §2 (T = 8)
# ---------------------------------------------------------------------------------------------
def test_example_inputs_spike_at_8_and_11():
    assert encode(EXAMPLE_X, EXAMPLE_T).tolist() == [[8, 11]]


def test_example_1_trace_and_output():
    layer = simulate_dense_layer(encode(EXAMPLE_X, EXAMPLE_T), [[0.5, 0.75]], t_max=EXAMPLE_T, trace=True)
    i = [0] * 8 + [0.5, 0.5, 0.5, 1.25, 1.25, 1.25, 1.0, 1.0, 1.0]
    v = [0] * 8 + [0.5, 1.0, 1.5, 2.75, 4.0, 5.25, 6.25, 7.25, 8.25]
    assert np.allclose(layer.trace_i[:17, 0, 0], i) and np.allclose(layer.trace_v[:17, 0, 0], v)
    assert np.all(layer.trace_v[17:, 0, 0] == 0)                     # reset at 16, no more input
    assert layer.out_idx.tolist() == [[9]]                           # 16 - 7
    assert np.isclose(decode(layer.out_idx, EXAMPLE_T)[0, 0], 5 / 7)
    assert not layer.early[0, 0] and not layer.forced[0, 0]
    assert np.isclose(closed_form(0.75, EXAMPLE_T), 5 / 7)


def test_example_2_rectified_and_not():
    idx = encode(EXAMPLE_X, EXAMPLE_T)
    relu = simulate_dense_layer(idx, [[0.5, -1.25]], t_max=EXAMPLE_T, trace=True)
    assert np.allclose(relu.trace_v[[8, 11, 12, 13, 14, 21], 0, 0], [0.5, 0.75, 0.0, -0.75, 0.25, 7.25])
    assert relu.out_idx.tolist() == [[14]] and relu.forced[0, 0]    # forced at Q = 21 → value 0
    assert decode(relu.out_idx, EXAMPLE_T)[0, 0] == 0.0
    linear = simulate_dense_layer(idx, [[0.5, -1.25]], t_max=EXAMPLE_T, rectify=False)
    assert linear.out_idx.tolist() == [[15]] and not linear.forced[0, 0]   # spike at 22
    assert np.isclose(decode(linear.out_idx, EXAMPLE_T)[0, 0], -1 / 7)
    y = 0.5 * 6 / 7 - 1.25 * 3 / 7
    assert closed_form(y, EXAMPLE_T) == 0.0 and np.isclose(closed_form(y, EXAMPLE_T, rectify=False), -1 / 7)


def test_example_3_bias_spike():
    layer = simulate_dense_layer(encode(EXAMPLE_X, EXAMPLE_T), [[0.5, 0.75]], [0.125],
                                 t_max=EXAMPLE_T, trace=True)
    assert encode([0.125], EXAMPLE_T).tolist() == [13]               # round(7 * 1.875)
    assert np.allclose(layer.trace_i[[13, 14], 0, 0], [2.25, 1.0])
    assert np.allclose(layer.trace_v[[13, 14, 15], 0, 0], [6.25, 7.25, 8.25])
    assert layer.out_idx.tolist() == [[8]]
    assert np.isclose(decode(layer.out_idx, EXAMPLE_T)[0, 0], 6 / 7)


# ---------------------------------------------------------------------------------------------
# early spikes and first-spike-wins
# ---------------------------------------------------------------------------------------------
def test_first_spike_wins_and_early_spike_is_clamped_to_index_0():
    # T = 8, x = (2, 1) → steps 0 and 7, w = (2, 2).  i = 2 from step 0: v = 2, 4, 6, 8 → spike at 3
    # (early; before step T-1 = 7, so clamped to index 0).  Reset, then w2 at 7: v = 2, 4, 6, 8 → a
    # second crossing at 10, which is not emitted.
    layer = simulate_dense_layer(encode([[2.0, 1.0]], 8), [[2.0, 2.0]], t_max=8, trace=True)
    crossings = np.nonzero(layer.trace_v[:, 0, 0] >= 7.5)[0].tolist()
    assert crossings[:2] == [3, 10]
    assert layer.out_idx.tolist() == [[0]] and layer.early[0, 0]
    assert decode(layer.out_idx, 8)[0, 0] == 2.0


def test_early_spike_partial_sum_race():
    # T = 8, x = (1, 3/7) → steps 7 and 11, w = (2, -3): y = 2 - 9/7 = 5/7, but w1 alone crosses θ
    # at step 10 (v = 2, 4, 6, 8) before w2 arrives: early, decodes (21 - 10)/7 = 11/7, not 5/7.
    layer = simulate_dense_layer(encode([[1.0, 3 / 7]], 8), [[2.0, -3.0]], t_max=8)
    assert layer.early[0, 0]
    assert np.isclose(decode(layer.out_idx, 8)[0, 0], 11 / 7)
    assert np.isclose(closed_form(5 / 7, 8), 5 / 7)


def test_dense_layer_synaptic_event_count():
    # every input spikes once and every weight is nonzero: n_in·n_out data events, plus one
    # counter-weight and one rectifier event per neuron, plus one bias event per neuron.
    n_in, n_out = 5, 3
    weight = np.full((n_out, n_in), 0.1)
    x = np.linspace(0, 1, n_in)[None, :]
    plain = simulate_dense_layer(encode(x, 8), weight, t_max=8)
    assert plain.synops.tolist() == [n_in * n_out + 2 * n_out]
    biased = simulate_dense_layer(encode(x, 8), weight, [0.1] * n_out, t_max=8, rectify=False)
    assert biased.synops.tolist() == [n_in * n_out + 2 * n_out]     # no rectifier, bias instead
    sparse = weight.copy()
    sparse[0, :2] = 0.0
    assert simulate_dense_layer(encode(x, 8), sparse, t_max=8).synops.tolist() == [n_in * n_out - 2 + 2 * n_out]


# ---------------------------------------------------------------------------------------------
# simulation == closed form wherever no early spike happened
# ---------------------------------------------------------------------------------------------
def _random_dense_case(rng, t_max):
    n_in = int(rng.integers(1, 24))
    n_out, batch = 16, 32
    x = quantize(rng.uniform(0, 1, (batch, n_in)), t_max)
    weight = rng.normal(0, 1.2 / np.sqrt(n_in), (n_out, n_in))
    bias = rng.uniform(-0.6, 0.6, n_out) if rng.random() < 0.7 else None
    y = x @ weight.T
    if bias is not None:
        y = y + quantize(np.clip(bias, -1.5, 1.5), t_max)
    return x, weight, bias, y


@pytest.mark.parametrize("rectify", [True, False])
def test_simulation_matches_closed_form(seed, rng, rectify):
    layers = 200
    checked = matched_y_le_1 = 0
    early_total = 0
    for case in range(layers):
        t_max = int(rng.choice(T_VALUES))
        x, weight, bias, y = _random_dense_case(rng, t_max)
        layer = simulate_dense_layer(encode(x, t_max), weight, bias, t_max=t_max, rectify=rectify)
        got = decode(layer.out_idx, t_max)
        want = closed_form(y, t_max, rectify=rectify)
        same = np.isclose(got, want, rtol=0, atol=1e-9) | (np.isneginf(got) & np.isneginf(want))
        where = f"seed={seed} case={case} T={t_max} rectify={rectify}"
        # theorem: a neuron without an early spike spikes exactly where the closed form says
        assert np.all(same | layer.early), f"{where}: non-early mismatch at {np.argwhere(~same & ~layer.early)[:5]}"
        # with inputs and bias >= 0 every event is in by R, so an early spike decodes above 1
        if bias is None or np.all(bias >= 0):
            assert np.all(got[layer.early] > 1), f"{where}: early spike that decodes <= 1"
        in_range = y <= 1.0
        checked += int(in_range.sum())
        matched_y_le_1 += int((same & in_range).sum())
        early_total += int((layer.early & in_range).sum())
    print(f"seed={seed} rectify={rectify}: {checked} neurons with y <= 1 checked, "
          f"{matched_y_le_1} match the closed form, {early_total} early spikes")
    assert checked > 50_000, f"seed={seed}: only {checked} neurons checked"
    assert matched_y_le_1 >= checked - early_total, f"seed={seed}"
    assert early_total < 0.02 * checked, f"seed={seed}: {early_total}/{checked} early spikes"


def _random_network(rng) -> nn.Sequential:
    """Conv(bias)-ReLU-AvgPool-Conv-ReLU-MaxPool-Flatten-Linear(bias) with torch's default init."""
    torch.manual_seed(int(rng.integers(2**31)))
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(24, 5),
    ).eval()


@pytest.mark.parametrize("t_max", T_VALUES)
def test_network_matches_closed_form_network_without_early_spikes(seed, rng, t_max):
    x = torch.from_numpy(rng.uniform(0, 1, (NETWORK_SAMPLES, 1, 8, 8))).float()
    model, _ = normalize(_random_network(rng), x, NETWORK_PERCENTILE)
    result = run_network(model, x, t_max)
    twin = run_closed_form(model, x, t_max)
    clean = result.early_spikes == 0
    same = np.all(np.isclose(result.values, twin, rtol=0, atol=1e-9)
                  | (np.isneginf(result.values) & np.isneginf(twin)), axis=1)
    print(f"seed={seed} T={t_max}: {clean.sum()} of {NETWORK_SAMPLES} samples without early spikes")
    assert clean.sum() >= MIN_CLEAN_SAMPLES, f"seed={seed} T={t_max}: only {clean.sum()} clean samples"
    assert np.all(same[clean]), f"seed={seed} T={t_max}: samples {np.nonzero(clean & ~same)[0][:5]}"
    assert np.array_equal(result.predicted, np.argmax(result.values, axis=1)), f"seed={seed} T={t_max}"
    assert result.n_neurons == 4 * 64 + 6 * 16 + 5
    spiked = result.out_idx != NO_SPIKE
    earliest = np.where(spiked, result.out_idx, np.iinfo(np.int64).max).min(axis=1)
    assert np.array_equal(result.decision_step[spiked.any(axis=1)],
                          (3 * (t_max - 1) + earliest)[spiked.any(axis=1)]), f"seed={seed} T={t_max}"


def test_network_rejects_unsupported_layers():
    with pytest.raises(ValueError, match=r"model\[1\] \(BatchNorm2d\).*fold BatchNorm"):
        run_network(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)), np.zeros((1, 1, 4, 4)), 8)
    with pytest.raises(ValueError, match=r"model\[1\] \(ReLU\).*directly follow"):
        run_network(nn.Sequential(nn.Flatten(), nn.ReLU(), nn.Linear(4, 2)), np.zeros((1, 1, 2, 2)), 8)


# ---------------------------------------------------------------------------------------------
# BatchNorm folding and normalisation
# ---------------------------------------------------------------------------------------------
def _randomise_batchnorm(bn, rng):
    with torch.no_grad():
        n = bn.num_features
        bn.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.5, n)))
        bn.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, n)))
        bn.weight.copy_(torch.from_numpy(rng.normal(1, 0.3, n)))
        bn.bias.copy_(torch.from_numpy(rng.normal(0, 0.3, n)))


def test_fold_batchnorm_preserves_the_function(seed, rng):
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4)), nn.ReLU(), nn.Dropout(0.5),
        nn.Flatten(), nn.Linear(4 * 36, 6), nn.Identity(), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3),
    )
    _randomise_batchnorm(model[0][1], rng)
    _randomise_batchnorm(model[6], rng)
    model.eval()
    before = copy.deepcopy(model.state_dict())
    folded, report = fold_batchnorm(model)
    assert report.folded == ((0, 1), (5, 7)) and report.dropped == ((3, "Dropout"), (6, "Identity"))
    assert [type(m).__name__ for m in folded] == ["Conv2d", "ReLU", "Flatten", "Linear", "ReLU", "Linear"]
    x = torch.from_numpy(rng.normal(0, 1, (16, 1, 8, 8))).float()
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-5), f"seed={seed}"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), f"seed={seed}: input modified"


def test_fold_batchnorm_rejects_orphan_batchnorm():
    with pytest.raises(ValueError, match=r"model\[1\] \(BatchNorm1d\).*found ReLU"):
        fold_batchnorm(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)))


def _pre_activations(model, x):
    out = []
    with torch.no_grad():
        for module in model:
            x = module(x)
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                out.append(x)
    return out


def test_normalize_sets_each_percentile_to_one_and_keeps_predictions(seed, rng):
    model = _random_network(rng)
    data = torch.from_numpy(rng.uniform(0, 1, (300, 1, 8, 8))).float()
    normalised, lambdas = normalize(model, data, percentile=NORMALISATION_PERCENTILE)
    assert len(lambdas) == 3 and all(lam > 0 for lam in lambdas), f"seed={seed}: λ={lambdas}"
    for k, pre in enumerate(_pre_activations(normalised, data)):
        pct = np.percentile(pre.double().numpy(), NORMALISATION_PERCENTILE)
        assert abs(pct - 1.0) < 1e-5, f"seed={seed}: layer {k} percentile {pct}"
    with torch.no_grad():
        scaled = normalised(data) * float(np.prod(lambdas))
        assert torch.allclose(scaled, model(data), atol=1e-4), f"seed={seed}"
    assert normalised[0].weight.data_ptr() != model[0].weight.data_ptr()


@pytest.mark.parametrize("percentile", [0.0, -1.0, 100.5])
def test_normalize_rejects_bad_percentile(percentile):
    with pytest.raises(ValueError, match="percentile must be in"):
        normalize(nn.Sequential(nn.Linear(2, 2)), torch.zeros(4, 2), percentile)


# ---------------------------------------------------------------------------------------------
# end to end: digits CNN, ANN vs float Quartz
# ---------------------------------------------------------------------------------------------
def test_digits_cnn_float_quartz_accuracy(tmp_path):
    training_seed = 0     # the recipe's fixed seed: a regression on one trained network
    data = load_digits_split()
    model = load_or_train("digits_cnn", tmp_path, seed=training_seed)
    ann = accuracy(model, data.x_test, data.y_test)
    normalised, lambdas = normalize(model, data.x_train, NORMALISATION_PERCENTILE)
    labels = data.y_test.numpy()
    report = {}
    for t_max in T_VALUES:
        result = run_network(normalised, data.x_test, t_max)
        report[t_max] = (result.accuracy(labels), float(result.early_spikes.mean()), result.n_neurons)
    lines = ", ".join(f"T={t}: {a:.4f} (early {e:.2f}/{n})" for t, (a, e, n) in report.items())
    message = f"training seed={training_seed}, ANN {ann:.4f}, λ={np.round(lambdas, 3)}; {lines}"
    print(message)
    assert ann >= 0.95, message
    assert report[ACCURACY_T][0] >= ann - ACCURACY_TOLERANCE, message
