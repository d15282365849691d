"""``from_model`` onto a chip (docs/spec.md §10): placement, fit report, overflow errors,
images, and the Lava harness on a partitioned network's logical config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurocore.golden.chip import GoldenChip, Partition, build_chip
from neurocore.golden.core import GoldenCore
from neurocore.golden.random_networks import random_network
from neurocore.spec.geometry import (CHIP_PRESETS, ULX3S_BOARD_CORE_EBR, ULX3S_CHIP_CORE_EBR,
                                     ULX3S_EBR, ULX3S_EBR_SPARE, ChipGeometry, CoreGeometry)
from neurocore.sw.compiler import MappingError
from neurocore.sw.convert import from_model
from neurocore.sw.fit import BOARDS, blocks
from neurocore.sw.image import load_program, save_program
from neurocore.sw.models import mnist_convnet
from neurocore.spec.words import memories



def ebr_estimate(g: CoreGeometry) -> int:
    """Estimated DP16KD blocks of one core's memories (spec/geometry.py's rationale): per
    memory and bank the best block shape; profiles and conv descriptors sit in LUT RAM."""
    shapes = BOARDS["ulx3s"][1]
    total = 0
    for m in memories(g).values():
        if m.name in ("profiles", "conv"):
            continue
        banks = {"state": g.k_u, "compartments": g.k_u, "axon_map": g.k_u,
                 "synapses": g.k_s, "accumulators": g.k_u * g.k_s}.get(m.name, 1)
        total += banks * blocks(-(-m.depth // banks), m.layout.size, shapes)
    return total


def test_ulx3s_chip_preset_fits_the_ebr_budget_estimate():
    chip = CHIP_PRESETS["ulx3s"]
    per_core = ebr_estimate(chip.core)
    print(f"ulx3s chip: {chip.n_cores} cores x {per_core} EBR (estimate); one board core "
          f"{ebr_estimate(CoreGeometry.preset('ulx3s'))}")
    assert per_core == ULX3S_CHIP_CORE_EBR
    assert ebr_estimate(CoreGeometry.preset("ulx3s")) == ULX3S_BOARD_CORE_EBR
    assert chip.n_cores * per_core <= ULX3S_EBR - ULX3S_EBR_SPARE
    assert (chip.n_cores + 1) * per_core > ULX3S_EBR


@pytest.fixture(scope="module")
def paper_chip():
    torch.manual_seed(0)
    return from_model(mnist_convnet(bias=True).eval(), 16, torch.rand(64, 1, 28, 28),
                      geometry="ulx3s")


def test_paper_convnet_fits_the_ulx3s_chip(paper_chip):
    p = paper_chip
    chip_cfg = p.chip_config()
    assert p.partition.chip is CHIP_PRESETS["ulx3s"] and p.partition.cores_used() > 1
    s = p.config.summary()
    per_core = [c.summary() for c in chip_cfg.cores]
    assert sum(c["compartments_used"] for c in per_core) == s["compartments_used"] == 5418
    # conv stages split by whole channels keep their descriptors: no kernel goes dense
    assert sum(c["kernel_words_used"] for c in per_core) == s["kernel_words_used"]
    assert sum(c["synapses_used"] for c in per_core) == s["synapses_used"]
    text = p.fit_report()
    print(text)
    assert "chip 'ulx3s'" in text and "estimate" in text
    assert "model[0] (Conv2d)             on cores 0, 1, 2, 3, 4, 5" in text   # by channels
    # conv2, the stage with the most SOPs, is spread over every core (each holds a copy of
    # pool1's axons), not left whole on the one core it would fit: the placer balances SOPs
    assert "model[3] (Conv2d)             on cores 0, 1, 2, 3, 4, 5" in text
    assert any("SOPs balanced" in n for n in p.notes), p.notes
    n = CHIP_PRESETS["ulx3s"].n_cores
    assert len(p.chip_load["sops"]) == len(p.chip_load["flits"]) == n
    sops = np.array(p.chip_load["sops"])
    assert sops.max() <= 1.25 * sops.sum() / n, sops
    assert sum(p.chip_load["flits"]) > 0


def test_paper_convnet_on_the_chip_equals_one_core(paper_chip):
    p = paper_chip
    torch.manual_seed(1)
    x = p.encode(torch.rand(2, 1, 28, 28))
    ref = GoldenCore(p.config).run(x, record=("v",))
    res = GoldenChip(p.chip_config()).run(x, record=("v",))
    for name in ("spikes", "outputs", "v"):
        np.testing.assert_array_equal(getattr(res, name), getattr(ref, name), err_msg=name)


def test_a_network_the_chip_cannot_hold_names_the_layer_and_the_shortfall():
    model = nn.Sequential(nn.Linear(64, 300), nn.ReLU(), nn.Linear(300, 10)).eval()
    x = torch.rand(16, 64)
    with pytest.raises(MappingError) as e:
        from_model(model, 8, x, geometry="icebreaker")
    msg = str(e.value)
    assert "model[0] (Linear) overflows chip 'icebreaker'" in msg, msg
    # the network's compartments (300 + 10 neurons and its clock compartments, counted on an
    # unbounded core) against the chip's
    need = from_model(model, 8, x).config.summary()["compartments_used"]
    chip = CHIP_PRESETS["icebreaker"]
    have = chip.n_cores * chip.core.n_compartments
    assert need > 310 and f"short by {need - have} compartments" in msg, (need, have, msg)


def test_a_board_core_that_holds_the_network_stays_one_core():
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)).eval()
    p = from_model(model, 8, torch.rand(16, 16), geometry="ulx3s")
    assert p.partition is None and p.config.geometry is CoreGeometry.preset("ulx3s")


def test_chip_program_image_round_trip(tmp_path):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 10)).eval()
    p = from_model(model, 8, torch.rand(16, 1, 6, 6), geometry=CHIP_PRESETS["chip-test"])
    assert p.partition is not None and p.partition.cores_used() > 1
    loaded = load_program(save_program(tmp_path / "chip.ncimg", p))
    assert loaded.partition.chip == p.partition.chip
    np.testing.assert_array_equal(loaded.partition.core_of, p.partition.core_of)
    assert loaded.chip_load == p.chip_load and loaded.fit_report() == p.fit_report()
    # a chip section that names a core the chip does not have is refused, naming the value
    import json
    from image_helpers import reseal, split
    from neurocore.sw.image import ImageFormatError
    path = tmp_path / "chip.ncimg"
    _, _, meta, payload, _ = split(path.read_bytes())
    live = int(np.flatnonzero(np.asarray(meta["chip"]["core_of"]) >= 0)[0])
    meta["chip"]["core_of"][live] = 9
    path.write_bytes(reseal(json.dumps(meta).encode(), payload))
    with pytest.raises(ImageFormatError, match="chip section is invalid: partition names core 9"):
        load_program(path)


@pytest.mark.lava
def test_partitioned_network_in_lava_equals_the_golden_chip(seed):
    """The Lava harness runs the logical config of a partitioned network (one run) and gives
    the golden chip's spikes, outputs, u and v."""
    from neurocore.sim.lava_harness import run_lava
    net = random_network(seed, "small", steps=16, max_compartments=48)
    cfg = net.config
    n_cores = 3
    core = cfg.geometry.replace(name="lava-chip-core", n_cores=n_cores, max_routes=64,
                                n_routes=cfg.geometry.n_routes * n_cores)
    chip = ChipGeometry(name="lava-chip", core=core, n_cores=n_cores, mesh=(n_cores, 1))
    core_of = np.random.default_rng(seed).integers(0, n_cores, size=cfg.geometry.n_compartments)
    res = GoldenChip(build_chip(cfg, Partition(chip, core_of))).run(net.inputs[0],
                                                                    record=("u", "v"))
    lava = run_lava(cfg, net.inputs[0], record=("u", "v"))
    for name in ("spikes", "outputs", "u", "v"):
        np.testing.assert_array_equal(getattr(lava, name), getattr(res, name),
                                      err_msg=f"{name}, NEUROCORE_SEED={seed}")


def test_placement_balances_sops_when_the_pieces_allow():
    """An MLP over the four chip-test cores: every core within the tightest slack of an even
    share of the static estimate, which the calibration run (every neuron spikes once)
    follows."""
    from neurocore.sw.place import SOP_SLACKS
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 60), nn.ReLU(), nn.Linear(60, 30), nn.ReLU(),
                          nn.Linear(30, 10)).eval()
    p = from_model(model, 8, torch.rand(16, 16), geometry=CHIP_PRESETS["chip-test"])
    assert any(f"SOPs balanced: each core at most {SOP_SLACKS[0]} x" in n for n in p.notes), \
        p.notes
    sops = np.array(p.chip_load["sops"])
    assert p.partition.cores_used() == 4
    assert sops.max() <= SOP_SLACKS[0] * sops.sum() / 4 * 1.05, sops   # measured ≈ static


def test_split_stage_runs_are_sized_after_each_piece_is_placed():
    """Core 0 has room for 50 neurons, cores 1 and 2 for 30 each: a stage of 100 goes in
    runs of 50, 30 and 20 (sized on the room left, not all as large as the first core's)."""
    from neurocore.sw.place import _place_runs
    free = [50, 30, 30]
    placed = []

    def fits(k, ids):
        return ids.size <= free[k]

    def put(k, ids):
        free[k] -= ids.size
        placed.append((k, ids.size))

    def order(prev, ids=None):
        return [prev] + [k for k in range(3) if k != prev]

    last = _place_runs(np.arange(100), fits, put, order, 0)
    assert placed == [(0, 50), (1, 30), (2, 20)] and last == 2 and free == [0, 0, 10]
    assert _place_runs(np.arange(11), fits, put, order, 2) is None   # 10 left: refused


def _route_tight_chip(n_routes: int) -> ChipGeometry:
    core = CHIP_PRESETS["chip-test"].core.replace(name="route-tight-core", n_routes=n_routes)
    return ChipGeometry(name="route-tight", n_cores=4, mesh=(2, 2), core=core)


def test_placement_counts_route_words():
    """Copied axons multiply route words (one per core holding a copy): placement counts
    them, so a chip with few route words still takes the MLP (it packs differently) and one
    with too few names the layer instead of failing in build_chip."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 60), nn.ReLU(), nn.Linear(60, 30), nn.ReLU(),
                          nn.Linear(30, 10)).eval()
    x = torch.rand(16, 16)
    p = from_model(model, 8, x, geometry=_route_tight_chip(144))
    used = [c.summary()["routes_used"] for c in p.chip_config().cores]
    assert max(used) <= 144, used
    with pytest.raises(MappingError) as e:
        from_model(model, 8, x, geometry=_route_tight_chip(64))
    msg = str(e.value)
    assert "model[2] (Linear) overflows chip 'route-tight'" in msg and "route words" in msg, msg


def test_chip_load_section_is_checked(tmp_path):
    """The chip section's load: every key, and one number per core, or the loader names the
    bad value (was: a KeyError in fit_report, lists of any length)."""
    import json
    from image_helpers import reseal, split
    from neurocore.sw.image import ImageFormatError
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(16, 60), nn.ReLU(), nn.Linear(60, 10)).eval()
    p = from_model(model, 8, torch.rand(16, 16), geometry=CHIP_PRESETS["chip-test"])
    path = save_program(tmp_path / "chip.ncimg", p)
    _, _, meta, payload, _ = split(path.read_bytes())
    bad = [(lambda ld: ld.pop("images"), r"keys \['flits', 'hops', 'sops'\]"),
           (lambda ld: ld["sops"].pop(), "chip load sops .* is not 4 non-negative numbers"),
           (lambda ld: ld.__setitem__("flits", "x"), "chip load flits 'x' is not 4"),
           (lambda ld: ld.__setitem__("images", True), "chip load images True")]
    for edit, pattern in bad:
        m = json.loads(json.dumps(meta))
        edit(m["chip"]["load"])
        path.write_bytes(reseal(json.dumps(m).encode(), payload))
        with pytest.raises(ImageFormatError, match=pattern):
            load_program(path)


def test_an_unknown_geometry_name_lists_core_and_chip_presets():
    model = nn.Sequential(nn.Linear(4, 3)).eval()
    with pytest.raises(KeyError) as e:
        from_model(model, 8, torch.rand(4, 4), geometry="ulx4s")
    msg = str(e.value)
    assert "unknown geometry 'ulx4s'" in msg and "'chip-test'" in msg and "'tiny'" in msg, msg


def test_from_model_onto_a_chip_whose_cores_have_reset_fields(tmp_path):
    """A chip core with reset_bits > 0 takes an unpipelined network (reset fields 0), and its
    image reads back (was: KeyError 'reset_interval' in build_chip)."""
    core = CHIP_PRESETS["chip-test"].core.replace(name="reset-chip-core", reset_bits=4)
    chip = ChipGeometry(name="reset-chip", n_cores=4, mesh=(2, 2), core=core)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 60), nn.ReLU(), nn.Linear(60, 10)).eval()
    p = from_model(model, 8, torch.rand(16, 16), geometry=chip)
    assert p.partition.cores_used() > 1
    loaded = load_program(save_program(tmp_path / "reset-chip.ncimg", p))
    assert loaded.fit_report() == p.fit_report()


def test_pipelined_program_on_a_chip_whose_cores_reset():
    """``pipelined=True`` onto a chip preset's '-reset' variant: the stream on GoldenChip gives
    every image's output spikes of an unpipelined run; a chip without reset fields is refused
    with a message that names the variant."""
    chip = ChipGeometry.preset("chip-test-reset")
    assert chip.core.reset_bits > 0 and chip.n_cores == CHIP_PRESETS["chip-test"].n_cores
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 60), nn.ReLU(), nn.Linear(60, 30), nn.ReLU(),
                          nn.Linear(30, 10)).eval()
    x = torch.rand(16, 16)
    p = from_model(model, 8, x, geometry=chip, pipelined=True)
    assert p.partition.chip == chip and p.partition.cores_used() > 1
    assert 0 < p.stream_period < p.n_steps
    images = torch.rand(6, 16)
    got = p.decode_stream(GoldenChip(p.chip_config()).run(p.encode_stream(images, 2)).outputs, 6)
    plain = from_model(model, 8, x, geometry=CHIP_PRESETS["chip-test"])
    one = plain.decode(GoldenCore(plain.config).run(plain.encode(images)).outputs)
    for key in ("first_spike", "predicted"):
        np.testing.assert_array_equal(got[key], one[key], err_msg=key)
    with pytest.raises(ValueError, match="cores of chip 'chip-test' have none"):
        from_model(model, 8, x, geometry=CHIP_PRESETS["chip-test"], pipelined=True)
