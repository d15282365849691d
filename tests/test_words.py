"""Memory word layouts (``neurocore.spec.words``) and configuration checks
(``CoreConfig.validate``, ``to_words``/``from_words``, ``NetworkBuilder`` errors)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.hdl import Shape
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from conftest import base_seed
from neurocore.golden.network import ConfigError, CoreConfig, NetworkBuilder
from neurocore.spec.geometry import PRESETS, CoreGeometry
from neurocore.spec.words import FieldRangeError, RouteKind, SignMode, memories, pack, unpack

TINY = CoreGeometry.preset("tiny")
MEMORY_CASES = [(p, m) for p in sorted(PRESETS) for m in memories(PRESETS[p])]


def field_specs(layout):
    """[(name, offset, width, lo, hi)] from the layout, bounds derived here."""
    out = []
    for name, f in layout:
        s = Shape.cast(f.shape)
        lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else \
            (0, (1 << s.width) - 1)
        out.append((name, f.offset, s.width, lo, hi))
    return out


def reference_word(specs, values: dict, i: int) -> int:
    """Assemble word ``i`` bit by bit from the field offsets (Python ints)."""
    word = 0
    for name, offset, width, _, _ in specs:
        word |= (int(values[name][i]) % (1 << width)) << offset
    return word


# ---------------------------------------------------------------------------------------------
# layouts
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_layouts_fit_64_bits_and_do_not_overlap(preset):
    g = PRESETS[preset]
    for mem in memories(g).values():
        specs = field_specs(mem.layout)
        assert mem.layout.size <= 64, mem.name
        used = 0
        for name, offset, width, _, _ in specs:
            mask = ((1 << width) - 1) << offset
            assert not used & mask, f"{preset}.{mem.name}.{name} overlaps"
            used |= mask
        assert used == (1 << mem.layout.size) - 1, f"{preset}.{mem.name} has holes"


def test_tiny_field_widths():
    """Widths follow from the tiny geometry (64 cx, 128 axons, 2048 synapses, 256 routes,
    4 profiles, 8 delay slots, 64 outputs, fan-out 256, 8 routes, 8 conv descriptors)."""
    want = {
        "synapse_map": [("base", 11), ("length", 9), ("conv", 4), ("ci", 8), ("iy", 6),
                        ("ix", 6)],
        "synapses": [("target", 6), ("weight", 8), ("weight_exp", 3), ("delay", 3),
                     ("sign_mode", 2)],
        "compartments": [("bias_mant", 13), ("bias_exp", 3), ("profile", 2)],
        "profiles": [("du", 12), ("dv", 12), ("du_offset", 1), ("vth", 17)],
        "axon_map": [("base", 8), ("length", 4)],
        "routes": [("target", 7), ("kind", 1)],
        "state": [("u", 24), ("v", 24)],
        "accumulators": [("acc", 18)],
        "conv": [("out_base", 6), ("kernel_base", 11), ("out_c", 8), ("out_h", 6), ("out_w", 6),
                 ("kernel_h", 4), ("kernel_w", 4), ("pad", 3), ("stride_shift", 2), ("kind", 2)],
    }
    mems = memories(TINY)
    assert sorted(mems) == sorted(want)
    for name, fields in want.items():
        assert [(n, w) for n, _, w, _, _ in field_specs(mems[name].layout)] == fields, name
    assert mems["accumulators"].depth == 64 * 8
    assert mems["synapses"].depth == 2048 and mems["synapse_map"].depth == 128


# ---------------------------------------------------------------------------------------------
# pack / unpack round trip
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset, mem_name", MEMORY_CASES)
@hypothesis_seed(base_seed())
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_pack_unpack_round_trip(preset, mem_name, data):
    mem = memories(PRESETS[preset])[mem_name]
    specs = field_specs(mem.layout)
    n = data.draw(st.integers(1, 12), label="n")
    values = {
        name: np.array(data.draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n),
                                 label=name), dtype=np.int64)
        for name, _, _, lo, hi in specs
    }
    words = pack(mem.layout, values, memory=mem_name)
    assert words.dtype == np.uint64 and words.shape == (n,)
    assert [int(w) for w in words] == [reference_word(specs, values, i) for i in range(n)]
    assert all(int(w) < (1 << mem.layout.size) for w in words)
    back = unpack(mem.layout, words)
    assert sorted(back) == sorted(values)
    for name in values:
        np.testing.assert_array_equal(back[name], values[name], err_msg=f"{preset} {name}")


@pytest.mark.parametrize("preset, mem_name", MEMORY_CASES)
def test_pack_unpack_field_extremes(preset, mem_name):
    """All-min, all-max and each field alone at max with the others at min."""
    mem = memories(PRESETS[preset])[mem_name]
    specs = field_specs(mem.layout)
    rows = [{n: lo for n, _, _, lo, _ in specs}, {n: hi for n, _, _, _, hi in specs}]
    for name, _, _, _, hi in specs:
        rows.append({n: (hi if n == name else lo) for n, _, _, lo, _ in specs})
    values = {n: np.array([r[n] for r in rows], dtype=np.int64) for n, *_ in specs}
    words = pack(mem.layout, values, memory=mem_name)
    assert [int(w) for w in words] == [reference_word(specs, values, i) for i in range(len(rows))]
    back = unpack(mem.layout, words)
    for name in values:
        np.testing.assert_array_equal(back[name], values[name], err_msg=f"{preset} {name}")


def test_pack_known_words():
    """Hand-assembled synapse and profile words (tiny)."""
    mems = memories(TINY)
    # synapse: target 5 | weight 0xAB << 6 | exp 3 << 14 | delay 7 << 17 | MIXED(1) << 20
    w = pack(mems["synapses"].layout, dict(target=[5], weight=[0xAB], weight_exp=[3],
                                           delay=[7], sign_mode=[SignMode.MIXED.value]))
    assert int(w[0]) == 5 | 0xAB << 6 | 3 << 14 | 7 << 17 | 1 << 20
    # compartment: bias_mant -1 is 13 ones
    w = pack(mems["compartments"].layout, dict(bias_mant=[-1, -4096], bias_exp=[7, 0],
                                               profile=[3, 0]))
    assert [int(x) for x in w] == [0x1FFF | 7 << 13 | 3 << 16, 0x1000]
    assert unpack(mems["compartments"].layout, w)["bias_mant"].tolist() == [-1, -4096]
    # state: u pattern 0x800000 is stored unsigned; v -1 sign-extends back
    w = pack(mems["state"].layout, dict(u=[0x800000], v=[-1]))
    assert int(w[0]) == 0x800000 | 0xFFFFFF << 24
    back = unpack(mems["state"].layout, w)
    assert back["u"].tolist() == [0x800000] and back["v"].tolist() == [-1]


# ---------------------------------------------------------------------------------------------
# out-of-range values: FieldRangeError names value, field, memory, index
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset, mem_name", MEMORY_CASES)
def test_pack_out_of_range_message(preset, mem_name):
    mem = memories(PRESETS[preset])[mem_name]
    specs = field_specs(mem.layout)
    n = 20
    for name, _, width, lo, hi in specs:
        for bad in (lo - 1, hi + 1):
            values = {f: np.full(n, lo_f, dtype=np.int64) for f, _, _, lo_f, _ in specs}
            values[name][17] = bad
            values[name][19] = bad                          # only the first one is named
            kind = "signed" if lo < 0 else "unsigned"
            with pytest.raises(FieldRangeError) as e:
                pack(mem.layout, values, memory=mem_name)
            assert str(e.value) == f"{name} {bad} of {mem_name}[17] does not fit {kind}({width})"


def test_pack_out_of_range_examples():
    mems = memories(TINY)
    syn = {f: np.zeros(20, dtype=np.int64) for f, _ in mems["synapses"].layout}
    syn["weight"][17] = 300
    with pytest.raises(FieldRangeError,
                       match=r"^weight 300 of synapses\[17\] does not fit unsigned\(8\)$"):
        pack(mems["synapses"].layout, syn, memory="synapses")
    # 2-D arrays name the full index
    cx = {f: np.zeros((2, 3), dtype=np.int64) for f, _ in mems["compartments"].layout}
    cx["bias_mant"][1, 2] = -4097
    with pytest.raises(FieldRangeError, match=re.escape(
            "bias_mant -4097 of compartments[1,2] does not fit signed(13)")):
        pack(mems["compartments"].layout, cx, memory="compartments")
    assert issubclass(FieldRangeError, ValueError)


def test_pack_missing_or_unknown_field():
    layout = memories(TINY)["routes"].layout
    with pytest.raises(KeyError, match="missing fields \\['kind'\\]"):
        pack(layout, dict(target=[0]), memory="routes")
    with pytest.raises(KeyError, match="unknown fields \\['colour'\\]"):
        pack(layout, dict(target=[0], kind=[0], colour=[1]), memory="routes")


# ---------------------------------------------------------------------------------------------
# CoreConfig.validate
# ---------------------------------------------------------------------------------------------
def one_synapse_config(g, **syn):
    """Axon 0 -> one synapse at word 0 (EXCITATORY, target 0 unless given)."""
    cfg = CoreConfig.empty(g)
    cfg.mem["synapse_map"]["length"][0] = 1
    cfg.mem["synapses"]["sign_mode"][0] = SignMode.EXCITATORY.value
    for k, v in syn.items():
        cfg.mem["synapses"][k][0] = v
    return cfg


def test_validate_accepts_empty_and_returns_self():
    cfg = CoreConfig.empty(TINY)
    assert cfg.validate() is cfg
    assert one_synapse_config(TINY).validate() is not None


def test_validate_field_range_names_place():
    cfg = CoreConfig.empty(TINY)
    cfg.mem["synapses"]["weight"][17] = 300
    with pytest.raises(ConfigError, match=re.escape(
            "weight 300 of synapses[17] does not fit unsigned(8)")):
        cfg.validate()
    cfg = CoreConfig.empty(TINY)
    cfg.mem["profiles"]["vth"][3] = 1 << 17
    with pytest.raises(ConfigError, match=re.escape("vth 131072 of profiles[3]")):
        cfg.validate()


@pytest.mark.parametrize("table, target, depth", [
    ("synapse_map", "synapses", TINY.n_synapses),
    ("axon_map", "routes", TINY.n_routes),
])
def test_validate_list_past_memory_end(table, target, depth):
    cfg = CoreConfig.empty(TINY)
    cfg.mem[table]["base"][5] = depth - 2
    cfg.mem[table]["length"][5] = 2                      # ends exactly at the last word: fine
    if table == "synapse_map":
        cfg.mem["synapses"]["sign_mode"][depth - 2:] = SignMode.EXCITATORY.value
    cfg.validate()
    cfg.mem[table]["length"][5] = 3
    with pytest.raises(ConfigError, match=re.escape(
            f"{table}[5] list {target}[{depth - 2}:{depth + 1}] runs past the {depth} words "
            f"of {target}")):
        cfg.validate()


def test_validate_list_length_limits():
    cfg = one_synapse_config(TINY)
    cfg.mem["synapse_map"]["length"][0] = TINY.max_fanout + 1
    cfg.mem["synapses"]["sign_mode"][:] = SignMode.EXCITATORY.value
    with pytest.raises(ConfigError, match=re.escape("length 257 of synapse_map[0] must be <= 256")):
        cfg.validate()
    cfg = CoreConfig.empty(TINY)
    cfg.mem["axon_map"]["length"][9] = TINY.max_routes + 1
    cfg.mem["routes"]["kind"][:] = RouteKind.OUTPUT.value
    with pytest.raises(ConfigError, match=re.escape("length 9 of axon_map[9] must be <= 8")):
        cfg.validate()


def test_validate_synapse_target_out_of_range():
    g = TINY.replace(n_compartments=48)        # target field is still 6 bits wide
    cfg = one_synapse_config(g, target=47)
    cfg.validate()
    cfg.mem["synapses"]["target"][5] = 50      # unused word: not checked
    cfg.validate()
    cfg.mem["synapses"]["target"][0] = 48
    with pytest.raises(ConfigError, match=re.escape(
            "target 48 of synapses[0] must be < n_compartments=48")):
        cfg.validate()


def test_validate_delay_past_max_delay():
    g = TINY.replace(n_delay_slots=6)           # delay field 3 bits, max_delay 5
    cfg = one_synapse_config(g, delay=5)
    cfg.validate()
    cfg.mem["synapses"]["delay"][7] = 7         # unused word
    cfg.validate()
    cfg.mem["synapse_map"]["base"][3] = 7       # now used by axon 3
    cfg.mem["synapse_map"]["length"][3] = 1
    cfg.mem["synapses"]["sign_mode"][7] = SignMode.INHIBITORY.value
    with pytest.raises(ConfigError, match=re.escape(
            "delay 7 of synapses[7] must be <= max_delay=5")):
        cfg.validate()
    cfg.mem["synapses"]["delay"][7] = 6
    with pytest.raises(ConfigError, match=re.escape("delay 6 of synapses[7]")):
        cfg.validate()


def test_validate_sign_mode_of_used_synapse():
    cfg = one_synapse_config(TINY, sign_mode=0)
    with pytest.raises(ConfigError, match=re.escape(
            "sign_mode 0 of synapses[0] must be a SignMode value")):
        cfg.validate()


def test_validate_profile_out_of_range():
    g = TINY.replace(n_profiles=3)              # profile field 2 bits
    cfg = CoreConfig.empty(g)
    cfg.mem["compartments"]["profile"][10] = 2
    cfg.validate()
    cfg.mem["compartments"]["profile"][11] = 3
    with pytest.raises(ConfigError, match=re.escape(
            "profile 3 of compartments[11] must be < n_profiles=3")):
        cfg.validate()


def test_validate_route_target_out_of_range():
    g = TINY.replace(n_axons=100)                # route target field 7 bits
    cfg = CoreConfig.empty(g)
    cfg.mem["axon_map"]["base"][4] = 10
    cfg.mem["axon_map"]["length"][4] = 2
    r = cfg.mem["routes"]
    r["kind"][10:12] = [RouteKind.AXON.value, RouteKind.OUTPUT.value]
    r["target"][10:12] = [99, 63]
    cfg.validate()
    r["target"][10] = 110
    with pytest.raises(ConfigError, match=re.escape(
            "target 110 of routes[10] must be < n_axons=100 for an AXON route")):
        cfg.validate()
    r["target"][10] = 0
    r["target"][11] = 64
    with pytest.raises(ConfigError, match=re.escape(
            "target 64 of routes[11] must be < n_outputs=64 for an OUTPUT route")):
        cfg.validate()
    r["target"][20] = 127                         # unused word
    r["target"][11] = 0
    cfg.validate()


def test_validate_shape_errors():
    cfg = CoreConfig.empty(TINY)
    cfg.mem["routes"]["target"] = np.zeros(10, dtype=np.int64)
    with pytest.raises(ConfigError, match=re.escape("routes.target has shape (10,)")):
        cfg.validate()
    cfg = CoreConfig.empty(TINY)
    del cfg.mem["profiles"]["vth"]
    with pytest.raises(ConfigError, match="memory profiles has no field 'vth'"):
        cfg.validate()


# ---------------------------------------------------------------------------------------------
# to_words / from_words
# ---------------------------------------------------------------------------------------------
def random_config(rng, g):
    b = NetworkBuilder(g)
    for _ in range(g.n_profiles):
        b.add_profile(du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)),
                      du_offset=int(rng.integers(0, 2)), vth=int(rng.integers(0, 1 << 17)))
    n = g.n_compartments
    b.add_compartments(n, profile=int(rng.integers(0, g.n_profiles)),
                       bias_mant=rng.integers(-4096, 4096, n), bias_exp=rng.integers(0, 8, n))
    for axon in rng.choice(g.n_axons, size=min(20, g.n_axons), replace=False):
        k = int(rng.integers(1, 30))
        mode = int(rng.integers(1, 4))
        if mode == SignMode.MIXED.value:
            w = 2 * rng.integers(-128, 128, k)
        elif mode == SignMode.EXCITATORY.value:
            w = rng.integers(0, 256, k)
        else:
            w = -rng.integers(0, 256, k)
        b.connect(int(axon), rng.integers(0, n, k), w, weight_exp=rng.integers(0, 8, k),
                  delay=rng.integers(0, g.n_delay_slots, k), sign_mode=mode)
    for cx in rng.choice(n, size=10, replace=False):
        k = int(rng.integers(1, g.max_routes + 1))
        for _ in range(k):
            if rng.random() < 0.5:
                b.route_to_axon([int(cx)], [int(rng.integers(0, g.n_axons))])
            else:
                b.route_to_output([int(cx)], [int(rng.integers(0, g.n_outputs))])
    return b.build()


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_to_words_from_words_round_trip(preset, rng, seed):
    g = PRESETS[preset]
    cfg = random_config(rng, g)
    words = cfg.to_words()
    mems = memories(g)
    for name, w in words.items():
        assert w.dtype == np.uint64 and w.shape == (mems[name].depth,), name
    back = CoreConfig.from_words(g, words)
    assert back.geometry == g
    assert sorted(back.mem) == sorted(cfg.mem)
    for name in cfg.mem:
        assert sorted(back.mem[name]) == sorted(cfg.mem[name])
        for f in cfg.mem[name]:
            np.testing.assert_array_equal(back.mem[name][f], cfg.mem[name][f],
                                          err_msg=f"{preset} {name}.{f}, seed {seed}")
    again = back.to_words()
    for name in words:
        np.testing.assert_array_equal(again[name], words[name], err_msg=f"{name}, seed {seed}")
    assert cfg.summary() == back.summary()


def test_from_words_wrong_depth_and_invalid_content():
    cfg = CoreConfig.empty(TINY)
    words = cfg.to_words()
    short = dict(words, routes=words["routes"][:-1])
    with pytest.raises(ConfigError, match=re.escape(
            "memory routes has 255 words, geometry 'tiny' needs 256")):
        CoreConfig.from_words(TINY, short)
    # a synapse-map word whose list runs past the synapse memory
    layout = memories(TINY)["synapse_map"].layout
    bad = dict(words)
    bad["synapse_map"] = words["synapse_map"].copy()
    bad["synapse_map"][3] = pack(layout, dict(base=[2047], length=[2], conv=[0], ci=[0], iy=[0],
                                              ix=[0]))[0]
    with pytest.raises(ConfigError, match=re.escape("synapse_map[3] list synapses[2047:2049]")):
        CoreConfig.from_words(TINY, bad)


# ---------------------------------------------------------------------------------------------
# NetworkBuilder errors
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("w, mode, name", [
    (-1, SignMode.EXCITATORY, "EXCITATORY"),
    (256, SignMode.EXCITATORY, "EXCITATORY"),
    (1, SignMode.INHIBITORY, "INHIBITORY"),
    (-256, SignMode.INHIBITORY, "INHIBITORY"),
    (3, SignMode.MIXED, "MIXED"),
    (-1, SignMode.MIXED, "MIXED"),
    (256, SignMode.MIXED, "MIXED"),
    (-258, SignMode.MIXED, "MIXED"),
    (256, None, "EXCITATORY"),               # default mode for w >= 0
    (-256, None, "INHIBITORY"),              # default mode for w < 0
])
def test_builder_rejects_unrepresentable_weight(w, mode, name):
    b = NetworkBuilder(TINY)
    b.add_compartments(2, profile=b.add_profile(vth=1))
    with pytest.raises(ConfigError, match=re.escape(
            f"axon 7: weight {w} (entry 1) cannot be stored as an 8-bit mantissa in sign mode "
            f"{name}")):
        b.connect(7, [0, 1], [0, w], sign_mode=mode)
    assert b.build().summary()["synapses_used"] == 0     # nothing was appended


@pytest.mark.parametrize("w, mode", [
    (0, SignMode.EXCITATORY), (255, SignMode.EXCITATORY), (0, SignMode.INHIBITORY),
    (-255, SignMode.INHIBITORY), (-256, SignMode.MIXED), (254, SignMode.MIXED),
    (0, SignMode.MIXED), (255, None), (-255, None),
])
def test_builder_accepts_representable_weight(w, mode):
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=b.add_profile(vth=1))
    b.connect(0, [0], [w], sign_mode=mode)
    assert b.build().synapse_list().weight.tolist() == [w]


def test_builder_too_many_compartments_and_profiles():
    b = NetworkBuilder(TINY)
    for i in range(TINY.n_profiles):
        assert b.add_profile(vth=1) == i
    with pytest.raises(ConfigError, match=re.escape("profile 4 exceeds n_profiles=4")):
        b.add_profile(vth=1)
    with pytest.raises(ConfigError, match=re.escape("profile 4 has not been added")):
        b.add_compartments(1, profile=4)
    assert b.add_compartments(60, profile=0).tolist() == list(range(60))
    with pytest.raises(ConfigError, match=re.escape("65 compartments exceed n_compartments=64")):
        b.add_compartments(5, profile=0)
    assert b.add_compartments(4, profile=3).tolist() == [60, 61, 62, 63]
    with pytest.raises(ConfigError, match=re.escape("65 compartments exceed n_compartments=64")):
        b.add_compartments(1, profile=0)
    assert b.n_compartments == 64
    b.build()


def test_builder_index_errors():
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=b.add_profile(vth=1))
    with pytest.raises(ConfigError, match=re.escape("axon 128 is out of range 0..127")):
        b.connect(128, [0], [1])
    with pytest.raises(ConfigError, match=re.escape("axon -1 is out of range")):
        b.connect(-1, [0], [1])
    with pytest.raises(ConfigError, match=re.escape("compartment 64 is out of range")):
        b.route_to_output([64], [0])
    with pytest.raises(ConfigError, match=re.escape("synapse target of axon 0: compartment 64 "
                                                    "was not added")):
        b.connect(0, [0, 64], [1, 1])


@pytest.mark.parametrize("setup, msg", [
    (lambda b: b.connect(0, [0], [1], weight_exp=8),
     "weight_exp 8 of synapses[0] does not fit unsigned(3)"),
    (lambda b: b.connect(0, [0], [1], delay=-1), "delay -1 of synapses[0]"),
    (lambda b: b.route_to_output([0], [64]),
     "target 64 of routes[0] must be < n_outputs=64 for an OUTPUT route"),
    (lambda b: b.route_to_axon([0], [128]), "target 128 of routes[0] does not fit unsigned(7)"),
])
def test_builder_build_errors(setup, msg):
    b = NetworkBuilder(TINY)
    b.add_compartments(1, profile=b.add_profile(vth=1))
    setup(b)
    with pytest.raises(ConfigError, match=re.escape(msg)):
        b.build()


def test_builder_layout_is_contiguous():
    b = NetworkBuilder(TINY)
    b.add_compartments(4, profile=b.add_profile(vth=1))
    b.connect(9, [0, 1], [1, 2])
    b.connect(3, [2], [3])
    b.connect(9, [3], [4])                     # appended to axon 9's list
    b.route_to_output([2], [5])
    b.route_to_axon([0, 0], [1, 2])
    cfg = b.build()
    sm = cfg.mem["synapse_map"]
    assert (sm["base"][3], sm["length"][3]) == (0, 1)
    assert (sm["base"][9], sm["length"][9]) == (1, 3)
    assert cfg.mem["synapses"]["target"][:4].tolist() == [2, 0, 1, 3]
    assert cfg.mem["synapses"]["weight"][:4].tolist() == [3, 1, 2, 4]
    am = cfg.mem["axon_map"]
    assert (am["base"][0], am["length"][0]) == (0, 2)
    assert (am["base"][2], am["length"][2]) == (2, 1)
    assert cfg.mem["routes"]["kind"][:3].tolist() == [0, 0, 1]
    assert cfg.mem["routes"]["target"][:3].tolist() == [1, 2, 5]
