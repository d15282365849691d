"""Core image files and $readmemh export (``neurocore.sw.image``): round trips, the byte
layout of docs/image_format.md, and every rejection of a bad file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct

import numpy as np
import pytest

from neurocore.golden.network import CONFIG_MEMORIES, config_memory_names
from neurocore.golden.core import GoldenCore
from neurocore.golden.random_networks import random_conv_network, random_network, with_random_resets
from neurocore.spec.geometry import CoreGeometry
from neurocore.spec.words import memories, pack
from neurocore.sw.compiler import LayerReport
from neurocore.sw.image import (
    FORMAT_VERSION, UNSTORED_PROGRAM_ATTRIBUTES, UNSTORED_PROGRAM_FIELDS, V1_GEOMETRY_DEFAULTS,
    ImageFormatError, load_config,
    load_program, read_hex, save_config, save_program, write_hex,
)

from image_helpers import (DOC_DIGEST_BYTES, DOC_HEADER, DOC_HEADER_BYTES, DOC_MAGIC, reseal,
                           small_mlp_program, split)

@pytest.fixture
def config(seed):
    return random_network(seed, "small").config


@pytest.fixture(scope="module")
def program():
    return small_mlp_program(1234)


@pytest.fixture
def image(tmp_path, config):
    """(path, bytes) of a saved config image."""
    path = save_config(tmp_path / "net.ncimg", config)
    return path, path.read_bytes()


def assert_same_config(a, b):
    assert a.geometry == b.geometry
    for name in config_memory_names(a.geometry):
        assert set(a.mem[name]) == set(b.mem[name]), name
        for field, values in a.mem[name].items():
            np.testing.assert_array_equal(b.mem[name][field], values, err_msg=f"{name}.{field}")


def rejected(path, data: bytes, *fragments) -> str:
    path.write_bytes(data)
    with pytest.raises(ImageFormatError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg, msg
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    return msg


# ---- round trips ---------------------------------------------------------------------
def test_config_round_trip(tmp_path, config):
    loaded = load_config(save_config(tmp_path / "a.ncimg", config))
    assert_same_config(config, loaded)
    assert config.summary()["synapses_used"] > 0
    for name, words in config.to_words().items():
        np.testing.assert_array_equal(loaded.to_words()[name], words, err_msg=name)


def test_file_layout_matches_the_documented_byte_table(image, config):
    _, data = image
    magic, version, meta, payload, digest = split(data)
    assert (magic, version) == (DOC_MAGIC, 5)
    assert digest == hashlib.sha256(data[:-DOC_DIGEST_BYTES]).digest()
    assert meta["geometry"] == dataclasses.asdict(config.geometry)
    assert "program" not in meta
    mems = memories(config.geometry)
    assert [m["name"] for m in meta["memories"]] == [n for n in mems if n in CONFIG_MEMORIES]
    words = config.to_words()
    offset = 0
    for m in meta["memories"]:
        mem = mems[m["name"]]
        assert (m["depth"], m["word_bits"], m["offset"], m["length"]) == \
            (mem.depth, mem.layout.size, offset, 8 * mem.depth)
        stored = np.frombuffer(payload[offset:offset + m["length"]], dtype="<u8")
        np.testing.assert_array_equal(stored, words[m["name"]], err_msg=m["name"])
        offset += m["length"]
    assert offset == len(payload)


def test_saving_is_deterministic(tmp_path, config):
    a = save_config(tmp_path / "a.ncimg", config).read_bytes()
    b = save_config(tmp_path / "b.ncimg", config).read_bytes()
    assert a == b


def assert_same_value(got, want, what):
    """Equal values of equal types, arrays compared element-wise (with dtype)."""
    assert type(got) is type(want), f"{what}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype, what
        np.testing.assert_array_equal(got, want, err_msg=what)
    elif isinstance(want, dict):
        assert list(got) == list(want), what
        for k in want:
            assert_same_value(got[k], want[k], f"{what}[{k!r}]")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_value(g, w, f"{what}[{i}]")
    else:
        assert got == want, what


def test_program_round_trip(tmp_path, program):
    loaded = load_program(save_program(tmp_path / "p.ncimg", program))
    assert_same_config(program.config, loaded.config)
    for f in dataclasses.fields(program):
        if f.name == "config":
            continue
        if f.name in UNSTORED_PROGRAM_FIELDS:
            default = (f.default if f.default_factory is dataclasses.MISSING
                       else f.default_factory())
            assert getattr(loaded, f.name) == default, f.name
            continue
        assert_same_value(getattr(loaded, f.name), getattr(program, f.name), f.name)
    assert len(loaded.layers) == 2 and all(isinstance(r, LayerReport) for r in loaded.layers)
    assert loaded.fit_report() == program.fit_report()
    images = np.random.default_rng(0).random((3, 16))
    np.testing.assert_array_equal(loaded.encode(images), program.encode(images))
    assert UNSTORED_PROGRAM_ATTRIBUTES == ()   # from_model fills declared fields only
    declared = {f.name for f in dataclasses.fields(program)}
    assert set(vars(program)) == declared and set(vars(loaded)) == declared


def test_program_image_also_loads_as_config(tmp_path, program):
    assert_same_config(program.config, load_config(save_program(tmp_path / "p.ncimg", program)))


def test_load_program_rejects_a_plain_config_image(image):
    path, _ = image
    with pytest.raises(ImageFormatError, match="no program metadata") as err:
        load_program(path)
    assert str(path) in str(err.value)


def test_conv_config_round_trip(tmp_path, seed):
    """A config with conv descriptors (spec §3.5): the conv memory and the synapse map's conv
    fields come back word for word (image and hex files), and the loaded config runs alike."""
    net = random_conv_network(seed, "small", steps=12)
    config = net.config
    assert config.summary()["conv_descriptors_used"] >= 2
    path = save_config(tmp_path / "conv.ncimg", config)
    _, version, meta, _, _ = split(path.read_bytes())
    assert version == FORMAT_VERSION == 5
    entries = {m["name"]: m for m in meta["memories"]}
    mems = memories(config.geometry)
    assert entries["conv"]["depth"] == config.geometry.n_conv
    assert entries["conv"]["word_bits"] == mems["conv"].layout.size
    assert entries["synapse_map"]["word_bits"] == mems["synapse_map"].layout.size
    assert meta["geometry"]["n_conv"] == config.geometry.n_conv
    for loaded in (load_config(path),
                   read_hex(tmp_path, config.geometry) if write_hex(tmp_path, config) else None):
        assert_same_config(config, loaded)
        for name, words in config.to_words().items():
            np.testing.assert_array_equal(loaded.to_words()[name], words, err_msg=name)
        a = GoldenCore(config).run(net.inputs, record=("u",))
        b = GoldenCore(loaded).run(net.inputs, record=("u",))
        np.testing.assert_array_equal(a.u, b.u)


def _as_version_1(data: bytes, drop_conv_fields: bool) -> bytes:
    """``data`` resealed as version 1: without the fields added in versions 3 and 4 (n_cores,
    reset_bits), and with ``drop_conv_fields`` without the conv fields of version 2."""
    from neurocore.sw.image import V2_GEOMETRY_DEFAULTS, V3_GEOMETRY_DEFAULTS
    _, _, meta, payload, _ = split(data)
    for k in [*V2_GEOMETRY_DEFAULTS, *V3_GEOMETRY_DEFAULTS,
              *(V1_GEOMETRY_DEFAULTS if drop_conv_fields else ())]:
        del meta["geometry"][k]
    return reseal(json.dumps(meta).encode(), payload, version=1)


def test_version_1_images_are_still_read(tmp_path, seed):
    """A version-1 image (before conv descriptors: no conv geometry fields) is read with
    n_conv = 0; its memories and words are exactly what version 1 wrote."""
    g = random_network(seed, "small").config.geometry.replace(n_conv=0)
    config = random_network(seed, g).config
    path = save_config(tmp_path / "v2.ncimg", config)
    old = tmp_path / "v1.ncimg"
    old.write_bytes(_as_version_1(path.read_bytes(), drop_conv_fields=True))
    _, _, meta, _, _ = split(old.read_bytes())
    assert "n_conv" not in meta["geometry"]
    assert [m["name"] for m in meta["memories"]] == list(CONFIG_MEMORIES[:-1])   # no conv
    loaded = load_config(old)
    assert loaded.geometry == g and loaded.geometry.n_conv == 0
    assert_same_config(config, loaded)
    # a version-1 file that already has the conv fields (written between the two) reads too
    old.write_bytes(_as_version_1(path.read_bytes(), drop_conv_fields=False))
    assert_same_config(config, load_config(old))


def test_conv_fields_missing_from_a_version_2_image(tmp_path, seed):
    g = CoreGeometry.preset("small").replace(n_conv=0)
    path = save_config(tmp_path / "v2.ncimg", random_network(seed, g).config)
    _, _, meta, payload, _ = split(path.read_bytes())
    del meta["geometry"]["n_conv"]
    rejected(path, reseal(json.dumps(meta).encode(), payload), "metadata geometry",
             "does not have exactly the fields")
    # version 1 without some (not all) of the conv fields is rejected too
    rejected(path, reseal(json.dumps(meta).encode(), payload, version=1), "metadata geometry",
             "does not have exactly the fields")


def _reads_without(tmp_path, seed, version: int):
    """An image of ``version`` (written before the geometry fields added after it: every field
    of ``V{k}_GEOMETRY_DEFAULTS`` for k >= version) reads with their defaults, word for word;
    a current image without them is the usual geometry error."""
    from neurocore.sw.image import (V1_GEOMETRY_DEFAULTS, V2_GEOMETRY_DEFAULTS,
                                    V3_GEOMETRY_DEFAULTS)
    added = {1: V1_GEOMETRY_DEFAULTS, 2: V2_GEOMETRY_DEFAULTS, 3: V3_GEOMETRY_DEFAULTS}
    fields = [f for k, defaults in added.items() if k >= version for f in defaults]
    config = random_conv_network(seed, "small", steps=12).config
    path = save_config(tmp_path / "current.ncimg", config)
    _, _, meta, payload, _ = split(path.read_bytes())
    for field in fields:
        assert meta["geometry"][field] == getattr(CoreGeometry(name="x"), field), field
        del meta["geometry"][field]
    old = tmp_path / f"v{version}.ncimg"
    old.write_bytes(reseal(json.dumps(meta).encode(), payload, version=version))
    loaded = load_config(old)
    assert loaded.geometry == config.geometry
    assert_same_config(config, loaded)
    rejected(path, reseal(json.dumps(meta).encode(), payload), "metadata geometry",
             "does not have exactly the fields")


def test_version_2_images_are_read_as_one_core(tmp_path, seed):
    """A version-2 image (before chips and periodic reset: no n_cores, no reset_bits) is read
    with n_cores = 1 and reset_bits = 0."""
    _reads_without(tmp_path, seed, 2)


def test_version_4_images_are_read_without_read_registers(tmp_path, seed):
    """A version-4 image (before the read registers: no read_regs) is read with read_regs =
    0, the pipeline its core had; a current image without the field is refused."""
    from neurocore.sw.image import V4_GEOMETRY_DEFAULTS
    g = CoreGeometry.preset("small").replace(read_regs=0)
    config = random_network(seed, g).config
    path = save_config(tmp_path / "current.ncimg", config)
    _, _, meta, payload, _ = split(path.read_bytes())
    assert meta["geometry"]["read_regs"] == 0 == V4_GEOMETRY_DEFAULTS["read_regs"]
    del meta["geometry"]["read_regs"]
    old = tmp_path / "v4.ncimg"
    old.write_bytes(reseal(json.dumps(meta).encode(), payload, version=4))
    loaded = load_config(old)
    assert loaded.geometry == g
    assert_same_config(config, loaded)
    rejected(path, reseal(json.dumps(meta).encode(), payload), "metadata geometry",
             "does not have exactly the fields")


def test_version_3_images_are_read_without_reset(tmp_path, seed):
    """A version-3 image (before periodic reset, spec §11: no reset_bits) is read with
    reset_bits = 0; a version-4 image with reset fields keeps them."""
    _reads_without(tmp_path, seed, 3)
    g = CoreGeometry.preset("small").replace(reset_bits=5)
    net = with_random_resets(random_network(seed, g, steps=12), np.random.default_rng(seed),
                             max_interval=g.max_reset_interval)
    back = load_config(save_config(tmp_path / "reset.ncimg", net.config))
    assert back.geometry.reset_bits == 5
    assert_same_config(net.config, back)


# ---- rejections ----------------------------------------------------------------------
def test_image_format_error_is_a_value_error():
    assert issubclass(ImageFormatError, ValueError)


def test_wrong_magic(image):
    path, data = image
    rejected(path, b"NOTIMAGE" + data[8:], "not a neurocore image", "b'NOTIMAGE'")
    rejected(path, b"PK\x03\x04" + bytes(12), "not a neurocore image", "b'PK\\x03\\x04")


def test_unsupported_version(image):
    path, data = image
    bad = bytearray(data)
    struct.pack_into("<I", bad, 8, 7)
    rejected(path, bytes(bad), "format version 7; this build reads versions 1, 2, 3, 4")


@pytest.mark.parametrize("where", ["empty", "in magic", "in header", "in metadata",
                                   "start of payload", "end of payload", "in checksum"])
def test_truncated(image, where):
    path, data = image
    meta_end = DOC_HEADER_BYTES + struct.unpack_from(DOC_HEADER, data)[2]
    cut, expected = {
        "empty": (0, f"at least {DOC_HEADER_BYTES}"),
        "in magic": (5, f"at least {DOC_HEADER_BYTES}"),
        "in header": (DOC_HEADER_BYTES - 1, f"at least {DOC_HEADER_BYTES}"),
        "in metadata": (meta_end - 10, f"at least {meta_end + DOC_DIGEST_BYTES}"),
        "start of payload": (meta_end + 40, f"expected {len(data)}"),
        "end of payload": (len(data) - DOC_DIGEST_BYTES - 3, f"expected {len(data)}"),
        "in checksum": (len(data) - 1, f"expected {len(data)}"),
    }[where]
    rejected(path, data[:cut], "truncated", f"has {cut} bytes", expected)


def test_trailing_bytes(image):
    path, data = image
    rejected(path, data + b"\x00" * 5, f"has {len(data) + 5} bytes", f"expected {len(data)}",
             "5 trailing bytes")


@pytest.mark.parametrize("where", ["metadata length", "metadata", "payload first",
                                   "payload middle", "checksum"])
def test_flipped_byte_is_a_checksum_mismatch(image, where):
    path, data = image
    meta_end = DOC_HEADER_BYTES + struct.unpack_from(DOC_HEADER, data)[2]
    pos = {"metadata length": 12, "metadata": (DOC_HEADER_BYTES + meta_end) // 2,
           "payload first": meta_end, "payload middle": (meta_end + len(data)) // 2,
           "checksum": len(data) - 1}[where]
    bad = bytearray(data)
    bad[pos] ^= 0xFF
    stored = bytes(bad[-DOC_DIGEST_BYTES:]).hex()
    rejected(path, bytes(bad), "checksum mismatch", "corrupt", stored)


def test_flipped_magic_byte(image):
    path, data = image
    bad = bytearray(data)
    bad[0] ^= 0xFF
    rejected(path, bytes(bad), "not a neurocore image", repr(bytes(bad[:8])))


def test_invalid_metadata_json(image):
    path, data = image
    _, _, _, payload, _ = split(data)
    rejected(path, reseal(b'{"geometry": not json}', payload), "metadata JSON invalid",
             "not json")
    rejected(path, reseal(b"\xff\xfe{}", payload), "metadata JSON invalid", "0xff")
    rejected(path, reseal(b"[1, 2]", payload), "metadata JSON is a list")


def test_memory_depth_not_matching_geometry(image):
    path, data = image
    _, _, meta, payload, _ = split(data)
    entry = next(m for m in meta["memories"] if m["name"] == "synapses")
    entry["depth"] = 100
    rejected(path, reseal(json.dumps(meta).encode(), payload), "'synapses'", "depth 100",
             "geometry 'small' needs 8192")


def test_geometry_change_without_payload_change(image):
    path, data = image
    _, _, meta, payload, _ = split(data)
    meta["geometry"]["n_axons"] = 1024
    rejected(path, reseal(json.dumps(meta).encode(), payload), "'synapse_map'", "depth 512",
             "needs 1024")


def test_missing_geometry_field(image):
    path, data = image
    _, _, meta, payload, _ = split(data)
    del meta["geometry"]["n_routes"]
    rejected(path, reseal(json.dumps(meta).encode(), payload), "geometry", "n_routes")


def test_word_with_bits_above_its_width(image, config):
    path, data = image
    _, _, meta, payload, _ = split(data)
    entry = next(m for m in meta["memories"] if m["name"] == "routes")
    bad = bytearray(payload)
    struct.pack_into("<Q", bad, entry["offset"] + 8 * 3, 1 << 40)
    rejected(path, reseal(json.dumps(meta).encode(), bytes(bad)), "'routes' word 3",
             hex(1 << 40), f"{entry['word_bits']}-bit width")


def test_invalid_configuration_in_a_sealed_image(image, config):
    path, data = image
    _, _, meta, payload, _ = split(data)
    entry = next(m for m in meta["memories"] if m["name"] == "synapse_map")
    n_syn = config.geometry.n_synapses
    layout = memories(config.geometry)["synapse_map"].layout
    word = pack(layout, {f: [0] for f, _ in layout} | {"base": [n_syn - 1], "length": [2]})[0]
    bad = bytearray(payload)
    struct.pack_into("<Q", bad, entry["offset"], int(word))
    rejected(path, reseal(json.dumps(meta).encode(), bytes(bad)), "invalid configuration",
             f"synapse_map[0] list synapses[{n_syn - 1}:{n_syn + 1}]")


# ---- $readmemh export ----------------------------------------------------------------
def test_hex_round_trip(tmp_path, config):
    manifest_path = write_hex(tmp_path / "hex", config)
    assert_same_config(config, read_hex(tmp_path / "hex", config.geometry))
    manifest = json.loads(manifest_path.read_text())
    words = config.to_words()
    mems = memories(config.geometry)
    assert [m["name"] for m in manifest["memories"]] == [n for n in mems if n in CONFIG_MEMORIES]
    for entry in manifest["memories"]:
        mem = mems[entry["name"]]
        raw = (tmp_path / "hex" / entry["file"]).read_bytes()
        assert entry["file"] == f"{mem.name}.hex"
        assert (entry["depth"], entry["width"]) == (mem.depth, mem.layout.size)
        assert entry["sha256"] == hashlib.sha256(raw).hexdigest()
        lines = raw.decode("ascii").splitlines()
        digits = (mem.layout.size + 3) // 4
        assert len(lines) == mem.depth and {len(line) for line in lines} == {digits}
        assert [int(line, 16) for line in lines] == words[mem.name].tolist()


def test_hex_rejects_an_edited_file(tmp_path, config):
    write_hex(tmp_path, config)
    hexfile = tmp_path / "synapses.hex"
    text = hexfile.read_text()
    hexfile.write_text(("f" if text[0] != "f" else "0") + text[1:])
    with pytest.raises(ImageFormatError, match="does not match the manifest") as err:
        read_hex(tmp_path, config.geometry)
    assert str(hexfile) in str(err.value)


def test_hex_rejects_a_bad_line_even_with_a_matching_checksum(tmp_path, config):
    write_hex(tmp_path, config)
    hexfile = tmp_path / "routes.hex"
    lines = hexfile.read_text().splitlines()
    lines[2] = "zz" + lines[2][2:]
    data = ("\n".join(lines) + "\n").encode()
    hexfile.write_bytes(data)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    next(m for m in manifest["memories"] if m["name"] == "routes")["sha256"] = \
        hashlib.sha256(data).hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ImageFormatError, match=f"line 3 '{lines[2]}'") as err:
        read_hex(tmp_path, config.geometry)
    assert str(hexfile) in str(err.value)


def test_hex_manifest_from_before_reset_bits_is_read(tmp_path, config):
    """A manifest written before the periodic reset (no reset_bits) reads as reset_bits = 0;
    against a geometry with reset fields it is another geometry."""
    path = write_hex(tmp_path, config)
    manifest = json.loads(path.read_text())
    del manifest["geometry"]["reset_bits"]
    path.write_text(json.dumps(manifest))
    assert_same_config(config, read_hex(tmp_path, config.geometry))
    with pytest.raises(ImageFormatError, match=r"'reset_bits': \(0, 4\)"):
        read_hex(tmp_path, config.geometry.replace(reset_bits=4))


def test_hex_manifest_from_before_n_cores_is_read(tmp_path, config):
    """A manifest written before chips (no n_cores, no reset_bits) reads as one core."""
    path = write_hex(tmp_path, config)
    manifest = json.loads(path.read_text())
    del manifest["geometry"]["n_cores"], manifest["geometry"]["reset_bits"]
    path.write_text(json.dumps(manifest))
    assert_same_config(config, read_hex(tmp_path, config.geometry))


def test_hex_rejects_another_geometry(tmp_path, config):
    write_hex(tmp_path, config)
    other = config.geometry.replace(n_routes=2048)
    with pytest.raises(ImageFormatError, match=r"'n_routes': \(1024, 2048\)") as err:
        read_hex(tmp_path, other)
    assert "manifest.json" in str(err.value)
