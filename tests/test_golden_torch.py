"""The torch backend of the golden model equals the NumPy backend bit for bit (u, v, spikes).

Random networks come from ``golden.random_networks`` (seeded from ``NEUROCORE_SEED``); the
digits CNN is the converted T = 16 program on a slice of the test split, once with dense
synapse lists and once with conv descriptors.
"""

import numpy as np
import pytest
import torch

from neurocore.golden.compare import first_mismatch
from neurocore.golden.core import GoldenCore
from neurocore.golden.random_networks import GENERATORS

N_RANDOM = 12


def _assert_same(config, x, what, seed=None):
    ref = GoldenCore(config).run(x, record=("u", "v"))
    got = GoldenCore(config, backend="torch", device="cpu").run(x, record=("u", "v"))
    for name in ("spikes", "outputs", "u", "v"):
        a, b = getattr(ref, name), getattr(got, name)
        assert a.dtype == b.dtype and a.shape == b.shape, (what, name, a.dtype, b.dtype)
        if not np.array_equal(a, b):
            idx = tuple(int(i) for i in np.argwhere(a != b)[0])
            pytest.fail(f"{what} (seed {seed}): torch {name}{list(idx)} = {b[idx]}, "
                        f"numpy {a[idx]}")
    return ref


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_torch_backend_equals_numpy_on_random_networks(kind, seed):
    spikes = 0
    for k in range(N_RANDOM):
        net = GENERATORS[kind](seed + k, "tiny" if kind == "forwarding" else "small", steps=24,
                               batch=3)
        ref = _assert_same(net.config, net.inputs, f"{kind} network {net.describe()}", seed + k)
        spikes += int(ref.spikes.sum())
    assert spikes > 0, f"seed {seed}: no network spiked, the comparison proves nothing"


def test_torch_backend_equals_numpy_on_a_dense_network(seed):
    from neurocore.bench.golden_vs_lava import build_network
    config = build_network(seed)
    rng = np.random.default_rng(seed)
    x = np.zeros((2, 12, config.geometry.n_axons), dtype=bool)
    x[:, :, :1000] = rng.random((2, 12, 1000)) < 0.05
    assert GoldenCore(config).dense
    ref = _assert_same(config, x, "dense bench network", seed)
    assert ref.spikes.any()


def test_torch_backend_equals_numpy_on_digits_cnn(digits_program_t16, digits):
    program, _ = digits_program_t16
    raster = program.encode(digits.x_test[:48])
    ref = _assert_same(program.config, raster, "digits CNN, T=16")
    assert program.decode(ref.outputs)["predicted"].tolist() \
        == program.decode(GoldenCore(program.config, backend="torch").run(raster).outputs
                          )["predicted"].tolist()


def test_torch_backend_device_code_path_equals_numpy(digits_program_t16, digits, monkeypatch,
                                                     seed):
    """The torch-only spike detection and event expansion (what CUDA runs; the CPU uses NumPy
    for them) on the digits CNN and a delayed random network."""
    from neurocore.golden import backend_torch
    monkeypatch.setattr(backend_torch, "NUMPY_ON_CPU", False)
    program, _ = digits_program_t16
    assert _assert_same(program.config, program.encode(digits.x_test[:16]),
                        "digits CNN, torch-only path").spikes.any()
    for kind in sorted(GENERATORS):
        net = GENERATORS[kind](seed, "tiny" if kind == "forwarding" else "small", steps=24,
                               batch=3)
        _assert_same(net.config, net.inputs, f"{kind} network, torch-only path", seed)


def test_torch_backend_equals_numpy_on_conv_digits_cnn(digits_cnn, digits):
    """The digits CNN mapped to conv descriptors (the compiler's default mapping)."""
    from neurocore.sw.convert import from_model
    program = from_model(digits_cnn, 16, digits.x_train)
    assert program.config.summary()["conv_descriptors_used"] > 0
    raster = program.encode(digits.x_test[:24])
    ref = _assert_same(program.config, raster, "digits CNN (conv descriptors), T=16")
    assert ref.spikes.any()


def test_torch_backend_single_sample_and_input_checks(digits_program_t16, digits):
    program, _ = digits_program_t16
    raster = program.encode(digits.x_test[:1])[0]
    core = GoldenCore(program.config, backend="torch")
    one = core.run(raster)
    assert one.spikes.ndim == 2
    assert np.array_equal(one.spikes, GoldenCore(program.config).run(raster).spikes)
    with pytest.raises(ValueError, match="0/1 spikes"):
        core.run(raster.astype(np.int64) * 2)


def test_torch_backend_rejects_unknown_backend_and_device(digits_program_t16):
    config = digits_program_t16[0].config
    with pytest.raises(ValueError, match="'jax'"):
        GoldenCore(config, backend="jax")
    with pytest.raises(ValueError, match="needs backend='torch'"):
        GoldenCore(config, device="cuda")
    if torch.cuda.is_available():
        assert GoldenCore(config, backend="torch", device="cuda")._torch.device.type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="'cuda'.*no CUDA device"):
            GoldenCore(config, backend="torch", device="cuda")
