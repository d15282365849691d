"""Named models, the seeded trainer and the checkpoint cache (``neurocore.sw.models``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurocore.golden.quartz import run_network
from neurocore.sw import models
from neurocore.sw.datasets import DatasetSplit, load_digits28_split, load_digits_split
from neurocore.sw.models import (
    CACHE_ENV, MODELS, accuracy, checkpoint_path, default_cache_dir, default_data, digits_cnn,
    digits_mlp, load_or_train, mnist_convnet, train,
)

QUICK_EPOCHS = 3


def _shapes(model: nn.Sequential, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes = []
    with torch.no_grad():
        for module in model:
            x = module(x)
            shapes.append(tuple(x.shape[1:]))
    return shapes


def test_mnist_convnet_is_the_papers_architecture():
    shapes = _shapes(mnist_convnet(), torch.zeros(2, 1, 28, 28))
    # 6c5 → 24, MP2 → 12, 12c5 → 8, MP2 → 4, 120c4 → 1, FC10
    assert shapes == [(6, 24, 24), (6, 24, 24), (6, 12, 12), (12, 8, 8), (12, 8, 8), (12, 4, 4),
                      (120, 1, 1), (120, 1, 1), (120,), (10,)]
    assert all(getattr(m, "bias", None) is None for m in mnist_convnet())
    assert mnist_convnet(bias=True)[0].bias is not None


def test_mnist_convnet_runs_as_float_quartz(seed, rng):
    x = torch.from_numpy(rng.uniform(0, 1, (2, 1, 28, 28))).float()
    result = run_network(mnist_convnet().eval(), x, 4)
    # neurons: 6·24·24 + 12·8·8 + 120 + 10 = 4354, as in quartz.md for MNIST
    assert result.n_neurons == 4354, f"seed={seed}"
    assert result.values.shape == (2, 10) and result.input_spikes.tolist() == [784, 784], f"seed={seed}"


def test_digits_models_shapes():
    x = torch.zeros(3, 1, 8, 8)
    assert _shapes(digits_cnn(), x)[-1] == (10,)
    assert _shapes(digits_mlp(), x)[-1] == (10,)


def test_training_is_deterministic_per_seed():
    data = load_digits_split()
    first = train(digits_mlp(), data, seed=3, epochs=QUICK_EPOCHS).state_dict()
    again = train(digits_mlp(), data, seed=3, epochs=QUICK_EPOCHS).state_dict()
    other = train(digits_mlp(), data, seed=4, epochs=QUICK_EPOCHS).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_training_restores_the_callers_thread_count():
    """train() runs on TRAIN_THREADS and gives the caller's thread count back."""
    from neurocore.sw.models import TRAIN_THREADS
    before = torch.get_num_threads()
    caller = TRAIN_THREADS + 1
    torch.set_num_threads(caller)
    try:
        train(digits_mlp(), load_digits_split(), seed=3, epochs=1)
        assert torch.get_num_threads() == caller
    finally:
        torch.set_num_threads(before)


def test_training_does_not_disturb_the_global_rng():
    model, data = digits_mlp(), load_digits_split()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(model, data, seed=0, epochs=1)
    assert torch.equal(torch.rand(3), expected)


def test_digits_mlp_learns():
    data = load_digits_split()
    model = train(digits_mlp(), data, seed=0)
    assert accuracy(model, data.x_test, data.y_test) >= 0.94


def test_load_or_train_caches(tmp_path, monkeypatch):
    path = checkpoint_path("digits_mlp", tmp_path, seed=0)
    assert not path.exists()
    model = load_or_train("digits_mlp", tmp_path)
    assert path.is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("load_or_train retrained despite a cached checkpoint")

    monkeypatch.setattr(models, "train", no_training)
    cached = load_or_train("digits_mlp", tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), cached.state_dict().values()))
    assert not cached.training


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert checkpoint_path("digits_cnn").parent == tmp_path / "c"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "neurocore"


def test_corrupt_checkpoint_is_reported(tmp_path):
    path = checkpoint_path("digits_mlp", tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match=f"checkpoint {path} is unreadable"):
        load_or_train("digits_mlp", tmp_path)


def test_unknown_model_and_missing_mnist_data(tmp_path):
    with pytest.raises(KeyError, match="unknown model 'resnet'"):
        load_or_train("resnet", tmp_path)
    with pytest.raises(ValueError, match="mnist_convnet is trained on mnist: pass data="):
        load_or_train("mnist_convnet", tmp_path)


def test_mnist_convnet_trains_on_supplied_data(tmp_path, seed, rng):
    n = 32
    x = torch.from_numpy(rng.uniform(0, 1, (n, 1, 28, 28))).float()
    y = torch.from_numpy(rng.integers(0, 10, n))
    data = DatasetSplit(x, y, x[:4], y[:4], name="random")
    model = load_or_train("mnist_convnet", tmp_path, data=data)
    assert checkpoint_path("mnist_convnet", tmp_path).is_file(), f"seed={seed}"
    assert model(x[:2]).shape == (2, 10)
    assert np.isfinite(model[0].weight.detach().numpy()).all(), f"seed={seed}"


# ---------------------------------------------------------------------------------------------
# the MNIST ConvNet on the bundled digits at 28×28
# ---------------------------------------------------------------------------------------------
#: The shipped recipe's accuracy on the digits test split is 97.5 % (seed 0).
CONVNET_DIGITS_FLOOR = 0.95


def test_convnet_digits_is_the_mnist_convnet_on_bundled_data():
    build, _, dataset = MODELS["mnist_convnet_digits"]
    assert build is mnist_convnet and MODELS["mnist_convnet"][0] is mnist_convnet
    data = default_data("mnist_convnet_digits")
    assert data.x_train.shape[1:] == (1, 28, 28)
    assert torch.equal(data.x_test, load_digits28_split().x_test)
    assert default_data("digits_cnn").x_train.shape[1:] == (1, 8, 8)
    with pytest.raises(ValueError, match="mnist_convnet is trained on mnist, which does not ship"):
        default_data("mnist_convnet")
    with pytest.raises(KeyError, match="unknown model 'resnet'"):
        default_data("resnet")


def test_convnet_digits_training_is_deterministic_per_seed():
    full = load_digits28_split()
    data = DatasetSplit(full.x_train[:256], full.y_train[:256], full.x_test, full.y_test)
    _, config, _ = MODELS["mnist_convnet_digits"]
    first = train(mnist_convnet(), data, seed=3, config=config, epochs=1).state_dict()
    again = train(mnist_convnet(), data, seed=3, config=config, epochs=1).state_dict()
    other = train(mnist_convnet(), data, seed=4, config=config, epochs=1).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_convnet_digits_learns_and_caches_apart_from_mnist(tmp_path, monkeypatch):
    """The shipped recipe (seconds on one thread) passes the floor; its checkpoint is its own."""
    model = load_or_train("mnist_convnet_digits", tmp_path)
    data = load_digits28_split()
    assert accuracy(model, data.x_test, data.y_test) >= CONVNET_DIGITS_FLOOR
    path = checkpoint_path("mnist_convnet_digits", tmp_path)
    assert path.is_file() and path != checkpoint_path("mnist_convnet", tmp_path)
    # a cached digits ConvNet does not stand in for the MNIST one
    with pytest.raises(ValueError, match="mnist_convnet is trained on mnist: pass data="):
        load_or_train("mnist_convnet", tmp_path)

    def no_training(*args, **kwargs):
        raise AssertionError("load_or_train retrained despite a cached checkpoint")

    monkeypatch.setattr(models, "train", no_training)
    cached = load_or_train("mnist_convnet_digits", tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), cached.state_dict().values()))
    assert not cached.training
