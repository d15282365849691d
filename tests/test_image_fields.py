"""Bad program fields and unreadable files: each is an ImageFormatError naming the path and
the field (issue 14, defects 1 and 2).  Images are resealed with a correct checksum, so only
the field checks stand between the bad value and a later crash."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from neurocore.sw.image import (MAX_METADATA_BYTES, ImageFormatError, load_config,
                                load_program, read_hex, save_program, write_hex)

from image_helpers import DOC_HEADER, reseal, small_mlp_program, split


@pytest.fixture(scope="module")
def program():
    return small_mlp_program(7)


@pytest.fixture
def saved(tmp_path, program):
    """(path, metadata dict, payload bytes) of a saved program image."""
    path = save_program(tmp_path / "p.ncimg", program)
    _, _, meta, payload, _ = split(path.read_bytes())
    return path, meta, payload


def resealed(path, meta_text: bytes, payload: bytes):
    path.write_bytes(reseal(meta_text, payload))
    return path


def attacked(saved, edit):
    path, meta, payload = saved
    meta = json.loads(json.dumps(meta))
    edit(meta["program"])
    return resealed(path, json.dumps(meta).encode(), payload)


def set_first(key, value):
    return lambda p: p[key].__setitem__(0, value)


def set_key(key, value):
    return lambda p: p.__setitem__(key, value)


def last_layer_ids(value):
    return lambda p: p["neuron_ids"].__setitem__(list(p["neuron_ids"])[-1], value)


# (case, edit of the program object, field the message must name)
FIELD_ATTACKS = [
    ("input axon beyond n_axons", set_first("input_axons", 999999), "input_axons[0]"),
    ("input axon 2**64", set_first("input_axons", 2 ** 64), "input_axons[0]"),
    ("input axon -1", set_first("input_axons", -1), "input_axons[0]"),
    ("input axon repeated", lambda p: p["input_axons"].__setitem__(1, p["input_axons"][0]),
     "input_axons"),
    ("input axons too few", lambda p: p["input_axons"].pop(), "input_axons"),
    ("negative t_max", set_key("t_max", -7), "t_max"),
    ("t_max true", set_key("t_max", True), "t_max"),
    ("t_max 2.5", set_key("t_max", 2.5), "t_max"),
    ("t_max disagrees with n_steps", lambda p: p.__setitem__("t_max", p["t_max"] + 1),
     "n_steps"),
    ("n_steps off by one", lambda p: p.__setitem__("n_steps", p["n_steps"] + 1), "n_steps"),
    ("clock step off by one", lambda p: p["clock_steps"].__setitem__("sync",
                                                                     p["clock_steps"]["sync"] + 1),
     "clock_steps['sync']"),
    ("clock without rect", lambda p: p["clock_steps"].pop("rect"), "clock_steps"),
    ("clock axon on an input axon", lambda p: p["clock_axons"].__setitem__("one", 0),
     "clock_axons"),
    ("first_window moved", lambda p: p.__setitem__("first_window", p["first_window"] + 1),
     "first_window"),
    ("neuron_ids null", set_key("neuron_ids", None), "neuron_ids"),
    ("neuron_ids of a missing layer", lambda p: p["neuron_ids"].popitem(), "neuron_ids"),
    ("neuron id 2**63", lambda p: p["neuron_ids"][list(p["neuron_ids"])[0]].__setitem__(
        0, 2 ** 63), "neuron_ids['model[1] (Linear)'][0]"),
    ("output neurons swapped", last_layer_ids([2, 1, 0]), "neuron_ids"),
    ("layer neuron count", lambda p: p["layers"][0].__setitem__("neurons", 9), "neuron_ids"),
    ("layers null", set_key("layers", None), "layers"),
    ("max_abs_weight a string", lambda p: p["layers"][0].__setitem__("max_abs_weight", "x"),
     "layers[0].max_abs_weight"),
    ("layer with an extra key", lambda p: p["layers"][0].__setitem__("extra", 1), "layers[0]"),
    ("n_outputs beyond the layer", lambda p: p.__setitem__("n_outputs", 4), "n_outputs"),
    ("input_max NaN-like string", set_key("input_max", "nan"), "input_max"),
    ("input_max above 2", set_key("input_max", 3.0), "input_max"),
    ("input_shape empty", set_key("input_shape", []), "input_shape"),
    ("notes not strings", set_key("notes", [1]), "notes"),
]


@pytest.mark.parametrize("case,edit,field", FIELD_ATTACKS, ids=[a[0] for a in FIELD_ATTACKS])
def test_bad_program_field_names_the_field(saved, case, edit, field):
    path = attacked(saved, edit)
    with pytest.raises(ImageFormatError) as err:
        load_program(path)
    msg = str(err.value)
    named = msg[len(str(path)):].split(": ")[1]
    assert msg.startswith(f"{path}: program field ") and field in named, msg


def test_the_unattacked_image_loads(saved, program):
    """The reseal helper itself produces a loadable image (the attacks are the only change)."""
    path = attacked(saved, lambda p: None)
    assert load_program(path).fit_report() == program.fit_report()


def _raw_metadata_attack(saved, text_edit):
    path, meta, payload = saved
    return resealed(path, text_edit(json.dumps(meta)).encode(), payload)


@pytest.mark.parametrize("case,text_edit,fragment", [
    ("4,400-digit integer", lambda t: t.replace('"t_max": 8', '"t_max": ' + "9" * 4400),
     "metadata JSON invalid"),
    ("deeply nested notes", lambda t: t.replace('"notes": [', '"notes": ' + "[" * 100000)
     .replace('"neuron_ids"', "]" * 100000 + ', "neuron_ids"', 1), "nested too deeply"),
])
def test_hostile_metadata_json(saved, case, text_edit, fragment):
    path = _raw_metadata_attack(saved, text_edit)
    with pytest.raises(ImageFormatError, match=fragment) as err:
        load_program(path)
    assert str(path) in str(err.value)


def test_a_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageFormatError, match="is a directory") as err:
        load_config(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_missing_file_is_an_image_format_error(tmp_path):
    with pytest.raises(ImageFormatError, match="cannot be read"):
        load_config(tmp_path / "nope.ncimg")


def test_dev_zero_is_rejected_without_reading_it():
    with pytest.raises(ImageFormatError, match="not a regular file"):
        load_config("/dev/zero")


def test_huge_metadata_length_is_rejected_from_the_header(tmp_path):
    path = tmp_path / "big.ncimg"
    path.write_bytes(struct.pack(DOC_HEADER, b"NCIMAGE\x00", 1, MAX_METADATA_BYTES + 1) + b"{}")
    with pytest.raises(ImageFormatError, match="exceeds the limit"):
        load_config(path)


def test_header_is_read_before_the_rest(tmp_path, monkeypatch):
    """A wrong magic is reported after reading 16 bytes, however long the file."""
    path = tmp_path / "zeros.bin"
    path.write_bytes(bytes(1 << 20))
    reads = []
    real_open = type(path).open

    def counting_open(self, *a, **k):
        f = real_open(self, *a, **k)
        real_read = f.read
        f_read = lambda n=-1: (reads.append(n), real_read(n))[1]  # noqa: E731
        return type("F", (), {"read": staticmethod(f_read), "fileno": f.fileno,
                              "seek": f.seek, "__enter__": lambda s: s,
                              "__exit__": lambda s, *e: f.close()})()
    monkeypatch.setattr(type(path), "open", counting_open)
    with pytest.raises(ImageFormatError, match="not a neurocore image"):
        load_config(path)
    assert reads == [16], reads


# ---- $readmemh export ----------------------------------------------------------------
def test_read_hex_without_a_manifest(tmp_path, program):
    with pytest.raises(ImageFormatError, match="cannot be read") as err:
        read_hex(tmp_path, program.config.geometry)
    assert "manifest.json" in str(err.value)


@pytest.mark.parametrize("memories", [7, None, "synapses"])
def test_read_hex_with_a_malformed_memories_field(tmp_path, program, memories):
    write_hex(tmp_path, program.config)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["memories"] = memories
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ImageFormatError, match="is not a list"):
        read_hex(tmp_path, program.config.geometry)


def test_read_hex_with_a_missing_hex_file(tmp_path, program):
    write_hex(tmp_path, program.config)
    (tmp_path / "routes.hex").unlink()
    with pytest.raises(ImageFormatError, match="cannot be read") as err:
        read_hex(tmp_path, program.config.geometry)
    assert "routes.hex" in str(err.value)


def test_loaded_fields_are_int64_arrays(saved):
    loaded = load_program(saved[0])
    assert loaded.input_axons.dtype == np.int64
    assert all(v.dtype == np.int64 for v in loaded.neuron_ids.values())
