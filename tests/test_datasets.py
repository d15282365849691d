"""Local data sets (``neurocore.sw.datasets``): the digits split and the MNIST IDX reader."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from neurocore.sw.datasets import (
    IMAGES_MAGIC, LABELS_MAGIC, IdxFormatError, load_digits28_split, load_digits_split, load_mnist_idx,
    read_idx,
)

DIGITS_TOTAL, DIGITS_TEST = 1797, 360
SIDE = 28


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------
def test_digits_split_shapes_and_ranges():
    data = load_digits_split()
    assert data.x_train.shape == (DIGITS_TOTAL - DIGITS_TEST, 1, 8, 8)
    assert data.x_test.shape == (DIGITS_TEST, 1, 8, 8)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert float(data.x_train.min()) == 0.0 and float(data.x_train.max()) == 1.0
    # pixels are k/16
    assert torch.equal(data.x_test * 16, torch.round(data.x_test * 16))
    assert set(data.y_test.tolist()) == set(range(10))


def test_digits_split_is_stratified_and_fixed():
    first, second = load_digits_split(), load_digits_split()
    assert torch.equal(first.x_test, second.x_test) and torch.equal(first.y_train, second.y_train)
    counts = np.bincount(first.y_test.numpy(), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37, counts       # 20 % of 174..183 per class
    other = load_digits_split(seed=1)
    assert not torch.equal(first.y_test, other.y_test)


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of 1-D linear interpolation, half-pixel centres, edges clamped."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = min(int(np.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        m[i, lo] += 1 - (src - lo)
        m[i, hi] += src - lo
    return m


def test_digits28_split_is_the_digits_split_upsampled():
    small, big = load_digits_split(), load_digits28_split()
    assert big.x_train.shape == (DIGITS_TOTAL - DIGITS_TEST, 1, SIDE, SIDE)
    assert big.x_test.shape == (DIGITS_TEST, 1, SIDE, SIDE)
    assert big.x_train.dtype == torch.float32 and big.x_train.is_contiguous()
    assert torch.equal(big.y_train, small.y_train) and torch.equal(big.y_test, small.y_test)
    assert float(big.x_train.min()) == 0.0 and float(big.x_train.max()) == 1.0
    # separable bilinear interpolation, computed here independently of torch
    m = _bilinear_matrix(8, SIDE)
    for x8, x28 in ((small.x_train, big.x_train), (small.x_test, big.x_test)):
        expected = np.einsum("ij,njk,lk->nil", m, x8[:, 0].double().numpy(), m)
        np.testing.assert_allclose(x28[:, 0].numpy(), expected, atol=1e-6)
    # the corners are the 8x8 corners exactly
    assert torch.equal(big.x_test[..., 0, 0], small.x_test[..., 0, 0])
    assert torch.equal(big.x_test[..., -1, -1], small.x_test[..., -1, -1])


def test_digits28_split_is_fixed_and_takes_the_split_arguments():
    first, second = load_digits28_split(), load_digits28_split()
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.x_test, second.x_test)
    other = load_digits28_split(test_fraction=0.5, seed=1, side=16)
    assert other.x_test.shape == (899, 1, 16, 16)
    assert torch.equal(other.y_test, load_digits_split(test_fraction=0.5, seed=1).y_test)
    assert first.name != other.name
    with pytest.raises(ValueError, match="side 4 is smaller than the digits' 8"):
        load_digits28_split(side=4)


# ---------------------------------------------------------------------------------------------
# MNIST IDX
# ---------------------------------------------------------------------------------------------
def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape) + array.tobytes()


def _write(path, payload: bytes, compress: bool):
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def _write_mnist(directory, rng, n_train=5, n_test=3, compress=False):
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, SIDE, SIDE), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        _write(directory / f"{split}-images-idx3-ubyte", _idx_bytes(images, IMAGES_MAGIC), compress)
        _write(directory / f"{split}-labels-idx1-ubyte", _idx_bytes(labels, LABELS_MAGIC), compress)
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reader_round_trip(tmp_path, seed, rng, compress):
    arrays = _write_mnist(tmp_path, rng, compress=compress)
    data = load_mnist_idx(tmp_path)
    images, labels = arrays["train"]
    assert data.x_train.shape == (5, 1, SIDE, SIDE) and data.x_test.shape == (3, 1, SIDE, SIDE)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert np.array_equal(np.rint(data.x_train.numpy()[:, 0] * 255).astype(np.uint8), images), f"seed={seed}"
    assert data.y_train.tolist() == labels.tolist(), f"seed={seed}"
    assert data.y_test.tolist() == arrays["t10k"][1].tolist(), f"seed={seed}"


def test_read_idx_rejects_bad_magic(tmp_path):
    path = _write(tmp_path / "x", _idx_bytes(np.zeros((2, 3), np.uint8), 0x00000802), False)
    with pytest.raises(IdxFormatError, match=r"x: magic number 0x00000802, expected 0x00000803"):
        read_idx(path, IMAGES_MAGIC)


def test_read_idx_rejects_truncated_file(tmp_path):
    payload = _idx_bytes(np.zeros((4, SIDE, SIDE), np.uint8), IMAGES_MAGIC)[:-7]
    path = _write(tmp_path / "imgs", payload, True)
    with pytest.raises(IdxFormatError, match=r"imgs\.gz: 3145 bytes, but header shape \(4, 28, 28\) needs 3152"):
        read_idx(path, IMAGES_MAGIC)


def test_read_idx_rejects_short_header(tmp_path):
    path = _write(tmp_path / "tiny", b"\x00\x00", False)
    with pytest.raises(IdxFormatError, match=r"tiny: 2 bytes, too short"):
        read_idx(path, LABELS_MAGIC)


def test_read_idx_rejects_corrupt_gzip(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(IdxFormatError, match=r"broken\.gz: cannot read"):
        read_idx(path, LABELS_MAGIC)


def test_mnist_rejects_count_mismatch(tmp_path, rng):
    _write_mnist(tmp_path, rng)
    labels = np.zeros(4, np.uint8)                  # 5 train images, 4 labels
    _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(labels, LABELS_MAGIC), False)
    with pytest.raises(IdxFormatError, match=r"train-images-idx3-ubyte: 5 images but .*train-labels-idx1-ubyte has 4 labels"):
        load_mnist_idx(tmp_path)


def test_mnist_rejects_label_out_of_range(tmp_path, rng):
    _write_mnist(tmp_path, rng)
    _write(tmp_path / "t10k-labels-idx1-ubyte", _idx_bytes(np.array([1, 12, 3], np.uint8), LABELS_MAGIC), False)
    with pytest.raises(IdxFormatError, match=r"t10k-labels-idx1-ubyte: label 12 is not in 0\.\.9"):
        load_mnist_idx(tmp_path)


def test_mnist_rejects_mismatched_image_sizes(tmp_path, rng):
    _write_mnist(tmp_path, rng)
    _write(tmp_path / "t10k-images-idx3-ubyte", _idx_bytes(np.zeros((3, 20, 20), np.uint8), IMAGES_MAGIC), False)
    with pytest.raises(IdxFormatError, match=r"t10k-images-idx3-ubyte: images are \(20, 20\), but .* has \(28, 28\)"):
        load_mnist_idx(tmp_path)


def test_mnist_missing_files_and_directory(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist_idx(tmp_path / "nowhere")
    _write_mnist(tmp_path, rng)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"neither t10k-labels-idx1-ubyte nor t10k-labels-idx1-ubyte\.gz"):
        load_mnist_idx(tmp_path)
