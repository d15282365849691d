"""Image fuzzer: byte flips, truncation at every boundary, resealed JSON field attacks and
resealed payload flips.  Every case either loads or raises ImageFormatError (anything else is
a failure); a flipped or truncated file never loads; an attacked-and-resealed image that loads
is either the original or a program that still runs end to end (every field valid)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurocore.golden.core import GoldenCore
from neurocore.golden.network import config_memory_names
from neurocore.sw.image import ImageFormatError, load_program, program_metadata, save_program

from fuzzing import count, fuzz
from image_helpers import reseal, small_mlp_program, split

FUZZER = "images"


class Original:
    """A small program image, its parts and one input sample."""

    def __init__(self, directory):
        self.program = small_mlp_program(11, n_in=12, t_max=4, weight_scale=1.0, data_scale=0.8)
        self.path = save_program(directory / "original.ncimg", self.program)
        self.raw = self.path.read_bytes()
        _, _, self.meta, self.payload, _ = split(self.raw)
        self.case = directory / "case.ncimg"
        self.sample = np.full((1, 12), 0.5)
        self.words = self.program.config.to_words()

    def write(self, data: bytes):
        self.case.write_bytes(data)
        return self.case

    def reseal(self, meta_text: bytes, payload: bytes):
        return self.write(reseal(meta_text, payload))

    def boundaries(self) -> list[int]:
        """Every structure boundary of the file (header fields, metadata, each memory,
        checksum), and its neighbours."""
        meta_end = len(self.raw) - 32 - len(self.payload)
        cuts = {0, 8, 12, 16, meta_end, len(self.raw) - 32, len(self.raw)}
        cuts |= {meta_end + m["offset"] for m in self.meta["memories"]}
        return sorted({c + d for c in cuts for d in (-1, 0, 1) if 0 <= c + d < len(self.raw)})


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    return Original(tmp_path_factory.mktemp("fuzz-images"))


def load_or_reject(path):
    """The loaded program, or None for an ImageFormatError (any other exception fails)."""
    try:
        return load_program(path)
    except ImageFormatError as e:
        assert str(path) in str(e)
        return None


def assert_original_or_valid(original: Original, loaded) -> None:
    """An accepted image is the original, or every field is valid: the program runs."""
    same_config = all(np.array_equal(loaded.config.to_words()[m], original.words[m])
                      for m in config_memory_names(loaded.config.geometry))
    same_program = json.dumps(program_metadata(loaded)) == json.dumps(
        original.meta["program"])
    if same_config and same_program:
        return
    loaded.fit_report()
    raster = loaded.encode(original.sample)
    out = GoldenCore(loaded.config).run(raster).outputs
    decoded = loaded.decode(out)
    assert decoded["predicted"].shape == (1,)


def flipped(data, raw: bytes, most: int, masks) -> bytes:
    """``raw`` with 1..``most`` bytes XORed with masks drawn from ``masks``."""
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, most), label="flips")):
        out[data.draw(st.integers(0, len(out) - 1), label="offset")] ^= data.draw(masks,
                                                                                 label="mask")
    return bytes(out)


# ---- byte flips and truncation: never accepted -----------------------------------------------
@fuzz(share=0.3)
@given(data=st.data())
def test_flipped_bytes_never_load(original, data):
    count(FUZZER, "byte flips")
    raw = flipped(data, original.raw, 4, st.integers(1, 255))
    if raw != original.raw:          # two flips of one byte may cancel
        assert load_or_reject(original.write(raw)) is None


def test_truncation_at_every_boundary_never_loads(original):
    for cut in original.boundaries()[:-1]:
        count(FUZZER, "truncation at boundaries")
        assert load_or_reject(original.write(original.raw[:cut])) is None, cut
    assert load_or_reject(original.write(original.raw)) is not None


@fuzz(share=0.1)
@given(data=st.data())
def test_truncated_or_extended_files_never_load(original, data):
    count(FUZZER, "random truncation/extension")
    cut = data.draw(st.integers(0, len(original.raw) - 1), label="cut")
    tail = data.draw(st.binary(max_size=64), label="appended")
    body = original.raw[:cut] + tail
    if body != original.raw:
        assert load_or_reject(original.write(body)) is None


# ---- resealed attacks: rejected, or the original, or valid ------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.integers(-3, 300)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=8)


def paths_of(value, prefix=()):
    """Every (path) to a value inside nested dicts and lists."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths_of(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:6]):
            yield from paths_of(v, prefix + (i,))


def replaced(meta, path, value):
    meta = json.loads(json.dumps(meta))
    if not path:
        return value
    node = meta
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return meta


@fuzz(share=0.4)
@given(data=st.data())
def test_resealed_json_field_attacks(original, data):
    count(FUZZER, "resealed JSON field attacks")
    paths = list(paths_of(original.meta))
    path = data.draw(st.sampled_from(paths), label="path")
    old = original.meta
    for key in path:
        old = old[key]
    near = [old + d for d in (-1, 1, 2 ** 31, -2 ** 31)] if isinstance(old, int) else []
    value = data.draw(JSON_VALUES | st.sampled_from(near or [None]), label="value")
    text = json.dumps(replaced(original.meta, path, value)).encode()
    loaded = load_or_reject(original.reseal(text, original.payload))
    if loaded is not None:
        assert_original_or_valid(original, loaded)


@fuzz(share=0.2)
@given(data=st.data())
def test_resealed_payload_flips(original, data):
    count(FUZZER, "resealed payload flips")
    payload = flipped(data, original.payload, 3, st.integers(0, 7).map(lambda bit: 1 << bit))
    loaded = load_or_reject(original.reseal(json.dumps(original.meta).encode(), payload))
    if loaded is not None:
        assert_original_or_valid(original, loaded)
