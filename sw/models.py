"""Named ReLU networks for Quartz conversion, a deterministic CPU trainer and a checkpoint cache.

Every model is a flat ``nn.Sequential`` of Conv2d/Linear/ReLU/pooling/Flatten, the modules the
float Quartz runner (:mod:`neurocore.golden.quartz`) accepts.  ``train`` is seeded
(``torch.manual_seed`` inside a forked RNG state, a seeded shuffle generator), so the same seed
gives the same weights on the same torch build.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import datasets
from .datasets import DIGITS_SIDE, MNIST_SIDE, N_CLASSES, DatasetSplit

__all__ = ["digits_cnn", "digits_mlp", "mnist_convnet", "MODELS", "BUNDLED_DATA", "TrainConfig",
           "train", "accuracy", "default_cache_dir", "checkpoint_path", "default_data",
           "load_or_train", "CACHE_ENV", "DIGITS_SIDE", "MNIST_SIDE"]

#: Environment variable that overrides the checkpoint cache directory.
CACHE_ENV = "NEUROCORE_CACHE"
#: Bump when an architecture or training recipe changes, so stale checkpoints are not reused.
RECIPE_VERSION = 2
#: Training threads: these models are tiny, and more threads only stall on a busy machine.
TRAIN_THREADS = 1


def digits_cnn(bias: bool = False) -> nn.Sequential:
    """8×8 digits CNN: Conv(1→8,3,p1)-ReLU-MaxPool2-Conv(8→16,3,p1)-ReLU-MaxPool2-Flatten-Linear(64→10).

    Bias-free by default: quantised biases cost accuracy under Quartz and an extra event per
    neuron on the core; max pooling is exact in the value domain, average pooling re-rounds.
    """
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 2 * 2, N_CLASSES, bias=bias),
    )


def digits_mlp(bias: bool = False) -> nn.Sequential:
    """8×8 digits MLP: Flatten-Linear(64→64)-ReLU-Linear(64→10), bias-free by default."""
    return nn.Sequential(nn.Flatten(), nn.Linear(DIGITS_SIDE * DIGITS_SIDE, 64, bias=bias), nn.ReLU(),
                         nn.Linear(64, N_CLASSES, bias=bias))


def mnist_convnet(bias: bool = False) -> nn.Sequential:
    """The paper's MNIST net 6c5-MP2-12c5-MP2-120c4-FC10 (28→24→12→8→4→1, no padding), bias-free by default."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 12, 5, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(12, 120, 4, bias=bias), nn.ReLU(),
        nn.Flatten(), nn.Linear(120, N_CLASSES, bias=bias),
    )


@dataclass(frozen=True)
class TrainConfig:
    """Adam training recipe; ``epochs`` passes over the training set in shuffled mini-batches."""

    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 1e-2
    weight_decay: float = 1e-4


#: name → (constructor, default recipe, data set name).  ``mnist_convnet`` trains on the
#: user's MNIST files; ``mnist_convnet_digits`` is the same net on the bundled digits at 28×28,
#: under its own name, so the two never share a cached checkpoint.
MODELS: dict[str, tuple[Callable[[], nn.Sequential], TrainConfig, str]] = {
    "digits_cnn": (digits_cnn, TrainConfig(), "digits"),
    "digits_mlp": (digits_mlp, TrainConfig(), "digits"),
    "mnist_convnet": (mnist_convnet, TrainConfig(epochs=5, batch_size=128, learning_rate=1e-3), "mnist"),
    "mnist_convnet_digits": (mnist_convnet, TrainConfig(epochs=30, batch_size=32,
                                                        learning_rate=1e-3), "digits28"),
}
#: data set name → its loader in :mod:`.datasets`, for the data sets that ship with the project
#: (MNIST's files do not).  Looked up by name at call time.
BUNDLED_DATA: dict[str, str] = {
    "digits": "load_digits_split",
    "digits28": "load_digits28_split",
}


def train(model: nn.Module, data: DatasetSplit, seed: int = 0, config: TrainConfig | None = None,
          *, epochs: int | None = None) -> nn.Module:
    """Train ``model`` in place on ``data.x_train``/``y_train`` (CPU, one thread, cross-entropy).

    The parameters are re-initialised from ``seed`` first, so the result depends only on the
    architecture, ``data``, ``seed`` and the recipe (``epochs`` overrides ``config.epochs``).
    Returns ``model`` in eval mode.
    """
    config = config or TrainConfig()
    epochs = config.epochs if epochs is None else epochs
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, not {epochs}")
    threads = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        return _train(model, data, seed, config, epochs)
    finally:
        torch.set_num_threads(threads)


def _train(model, data, seed, config, epochs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        shuffle = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate,
                                     weight_decay=config.weight_decay)
        loss_fn = nn.CrossEntropyLoss()
        n = data.x_train.shape[0]
        model.train()
        for _ in range(epochs):
            order = torch.randperm(n, generator=shuffle)
            for start in range(0, n, config.batch_size):
                batch = order[start:start + config.batch_size]
                optimiser.zero_grad()
                loss_fn(model(data.x_train[batch]), data.y_train[batch]).backward()
                optimiser.step()
    return model.eval()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``argmax(model(x))`` equal to ``y``."""
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def default_cache_dir() -> Path:
    """``$NEUROCORE_CACHE``, else ``$XDG_CACHE_HOME/neurocore``, else ``~/.cache/neurocore``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "neurocore"


def checkpoint_path(name: str, cache_dir=None, seed: int = 0) -> Path:
    """Where :func:`load_or_train` keeps the ``state_dict`` of model ``name`` trained with ``seed``."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return directory / f"{name}-seed{seed}-v{RECIPE_VERSION}.pt"


def default_data(name: str) -> DatasetSplit:
    """The bundled data set model ``name`` trains on (``digits``: :func:`load_digits_split`,
    ``digits28``: :func:`load_digits28_split`); ``ValueError`` for ``mnist_convnet``, whose data
    are the user's files."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    dataset = MODELS[name][2]
    if dataset not in BUNDLED_DATA:
        raise ValueError(f"{name} is trained on {dataset}, which does not ship with neurocore: pass data=")
    return getattr(datasets, BUNDLED_DATA[dataset])()


def load_or_train(name: str, cache_dir=None, *, seed: int = 0, data: DatasetSplit | None = None
                  ) -> nn.Sequential:
    """Model ``name`` with cached weights, training (and caching) it first if needed.

    Without ``data`` a model trains on its bundled data set (:func:`default_data`);
    ``mnist_convnet`` needs ``data`` (e.g. :func:`neurocore.sw.datasets.load_mnist_idx`) the
    first time.  The cache is keyed by name, seed and :data:`RECIPE_VERSION`, not by ``data``.
    """
    path = checkpoint_path(name, cache_dir, seed)
    build, config, dataset = MODELS[name]
    model = build()
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:
            raise RuntimeError(f"checkpoint {path} is unreadable or does not fit {name} ({exc}); "
                               "delete it to retrain") from exc
        return model.eval()
    if data is None:
        if dataset not in BUNDLED_DATA:
            raise ValueError(f"{name} is trained on {dataset}: pass data= (no cached checkpoint at {path})")
        data = default_data(name)
    train(model, data, seed=seed, config=config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model
