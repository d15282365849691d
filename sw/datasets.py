"""Image data sets for the converter, all local: nothing is ever downloaded.

* :func:`load_digits_split`: scikit-learn's bundled 8×8 digits as a fixed, stratified, seeded split.
* :func:`load_digits28_split`: the same split upsampled to MNIST's 28×28, a bundled MNIST-shaped
  workload.
* :func:`load_mnist_idx`: MNIST from user-supplied IDX files (optionally gzipped), validated.

Images are float32 tensors ``(N, 1, H, W)`` in [0, 1]; labels are int64 tensors ``(N,)``.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["DatasetSplit", "IdxFormatError", "load_digits_split", "load_digits28_split", "read_idx",
           "load_mnist_idx", "DIGITS_MAX_PIXEL", "MNIST_MAX_PIXEL", "MNIST_FILES", "N_CLASSES",
           "DIGITS_SIDE", "MNIST_SIDE"]

#: Digits pixels are integers 0..16.
DIGITS_MAX_PIXEL = 16.0
#: MNIST pixels are bytes 0..255.
MNIST_MAX_PIXEL = 255.0
N_CLASSES = 10
#: Image sides in pixels: scikit-learn's digits are 8×8, MNIST's 28×28.
DIGITS_SIDE = 8
MNIST_SIDE = 28
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
#: IDX magic numbers: two zero bytes, a type code, the number of dimensions.
IDX_UBYTE = 0x08
IMAGES_MAGIC = (IDX_UBYTE << 8) | 3   # 2051
LABELS_MAGIC = (IDX_UBYTE << 8) | 1   # 2049
IDX_HEADER_BYTES = 4
IDX_DIM_BYTES = 4
#: (split, images file, labels file), file names as published with MNIST.
MNIST_FILES = (("train", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               ("test", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))


class IdxFormatError(ValueError):
    """An IDX file that is not what it should be; the message names the file and the value."""


@dataclass(frozen=True)
class DatasetSplit:
    """A train/test split: images ``(N, 1, H, W)`` float32 in [0, 1], labels ``(N,)`` int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str = ""


def load_digits_split(test_fraction: float = DIGITS_TEST_FRACTION, seed: int = DIGITS_SPLIT_SEED
                      ) -> DatasetSplit:
    """scikit-learn ``load_digits`` (1797 images), split stratified by class with ``seed``.

    The default (20 %, seed 0) gives 1437 training and 360 test images.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / DIGITS_MAX_PIXEL).astype(np.float32)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(images, labels, test_size=test_fraction,
                                              random_state=seed, stratify=labels)
    return DatasetSplit(torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_te),
                        torch.from_numpy(y_te), name=f"digits(test={test_fraction}, seed={seed})")


def load_digits28_split(test_fraction: float = DIGITS_TEST_FRACTION, seed: int = DIGITS_SPLIT_SEED,
                        side: int = MNIST_SIDE) -> DatasetSplit:
    """:func:`load_digits_split` with every image upsampled to ``side``×``side`` (MNIST's 28).

    Bilinear (``torch.nn.functional.interpolate``, ``align_corners=False``) on the CPU, so the
    result is the same on every run; pixels stay in [0, 1], on the 8×8 split's scale (1 = 16).
    Same images, labels and order as :func:`load_digits_split` with the same arguments.
    """
    if side < DIGITS_SIDE:
        raise ValueError(f"side {side} is smaller than the digits' {DIGITS_SIDE}: this only upsamples")
    base = load_digits_split(test_fraction, seed)

    def up(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear",
                                               align_corners=False).clamp_(0.0, 1.0).contiguous()

    return DatasetSplit(up(base.x_train), base.y_train, up(base.x_test), base.y_test,
                        name=f"digits{side}(test={test_fraction}, seed={seed})")


def _read_bytes(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError) as exc:
        raise IdxFormatError(f"{path}: cannot read ({exc})") from exc


def read_idx(path, expected_magic: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (``.gz`` allowed) into a uint8 array of its header's shape."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < IDX_HEADER_BYTES:
        raise IdxFormatError(f"{path}: {len(raw)} bytes, too short for the {IDX_HEADER_BYTES}-byte magic")
    magic = int.from_bytes(raw[:IDX_HEADER_BYTES], "big")
    if magic != expected_magic:
        raise IdxFormatError(f"{path}: magic number {magic:#010x}, expected {expected_magic:#010x}")
    ndim = magic & 0xFF
    header = IDX_HEADER_BYTES + IDX_DIM_BYTES * ndim
    if len(raw) < header:
        raise IdxFormatError(f"{path}: {len(raw)} bytes, too short for a {ndim}-dimension header")
    shape = tuple(int.from_bytes(raw[IDX_HEADER_BYTES + IDX_DIM_BYTES * k:
                                     IDX_HEADER_BYTES + IDX_DIM_BYTES * (k + 1)], "big")
                  for k in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise IdxFormatError(f"{path}: {len(raw)} bytes, but header shape {shape} needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{directory}: neither {name} nor {name}.gz exists")


def load_mnist_idx(directory) -> DatasetSplit:
    """MNIST from the four IDX files in ``directory`` (each optionally ``.gz``); never downloads.

    Checks magic numbers, file sizes against headers, image/label counts, equal image sizes in
    train and test, and labels in 0..9.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory {directory} does not exist")
    arrays = {}
    for split, images_name, labels_name in MNIST_FILES:
        images_path, labels_path = _find(directory, images_name), _find(directory, labels_name)
        images = read_idx(images_path, IMAGES_MAGIC)
        labels = read_idx(labels_path, LABELS_MAGIC)
        if images.shape[0] != labels.shape[0]:
            raise IdxFormatError(f"{images_path}: {images.shape[0]} images but {labels_path} has "
                                 f"{labels.shape[0]} labels")
        if labels.size and labels.max() >= N_CLASSES:
            raise IdxFormatError(f"{labels_path}: label {int(labels.max())} is not in 0..{N_CLASSES - 1}")
        arrays[split] = (images, labels, images_path)
    (train_images, _, train_path), (test_images, _, test_path) = arrays["train"], arrays["test"]
    if train_images.shape[1:] != test_images.shape[1:]:
        raise IdxFormatError(f"{test_path}: images are {test_images.shape[1:]}, but {train_path} "
                             f"has {train_images.shape[1:]}")

    def tensors(split):
        images, labels, _ = arrays[split]
        x = torch.from_numpy((images.astype(np.float32) / MNIST_MAX_PIXEL)[:, None, :, :])
        return x, torch.from_numpy(labels.astype(np.int64))

    return DatasetSplit(*tensors("train"), *tensors("test"), name=f"mnist({directory})")
