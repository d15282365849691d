"""The paper's MNIST ConvNet (``mnist_convnet_digits``) on the ULX3S RTL chip
(``CHIP_PRESETS["ulx3s"]``) in the C++ harness: every output event, the flits of every step and
u/v after every image equal GoldenChip, and the chip cycle model equals the RTL's chip and
per-core counters on the first image; the same ConvNet pipelined on the '-reset' variant as
one stream of those images, likewise.  Marker ``chip_long`` (``make chip-long``): the chip's
Verilator build alone takes minutes, beyond the suite's budget.  ``NEUROCORE_CHIP_IMAGES``
images (default 2; ``make chip-long`` runs 20); ``make bench-chip`` records the 20-image
figures.
"""

from __future__ import annotations

import os

import pytest

from neurocore.bench.chip_perf import convnet_chip
from neurocore.sim.chipfast import check_chip_fast
from neurocore.spec.chip_cycle_model import chip_schedule, chip_totals
from neurocore.spec.geometry import CHIP_PRESETS

IMAGES = int(os.environ.get("NEUROCORE_CHIP_IMAGES", "2"))


@pytest.mark.chip_long
def test_paper_convnet_on_the_ulx3s_rtl_chip_equals_golden_chip():
    program, chip, data = convnet_chip()
    assert chip.chip is CHIP_PRESETS["ulx3s"] and len(chip.cores) == CHIP_PRESETS["ulx3s"].n_cores
    x = program.encode(data.x_test[:IMAGES])
    assert x.shape[0] == IMAGES, f"only {x.shape[0]} test images"
    run, gold, problem = check_chip_fast(chip, x, label=f"ConvNet, {IMAGES} images",
                                         state_every=0, name="convnet")
    assert problem is None, problem
    assert all(im.totals()["flits"] > 0 for im in run.images)
    totals = chip_totals(chip_schedule(chip, x[0], gold.sample(0)))
    rtl = dict(run.images[0].totals(), cores=run.images[0].core_counters)
    assert rtl == totals, f"image 0: cycle model {totals} != RTL {rtl}"
    print(f"{IMAGES} images: cycles {[im.totals()['cycles'] for im in run.images]}, "
          f"harness {run.wall_s:.1f} s")


@pytest.mark.chip_long
def test_pipelined_convnet_on_the_ulx3s_reset_rtl_chip():
    """The ConvNet pipelined (``from_model(..., pipelined=True)``) on the chip preset's
    '-reset' variant: ``NEUROCORE_CHIP_IMAGES`` images back to back (a new one every
    ``stream_period`` steps, no clear) on the RTL chip equal GoldenChip (every output event,
    the flits of every step, u/v at the end), their predictions and first output spikes equal
    one image at a time, and the chip cycle model equals the RTL's counters."""
    from neurocore.golden.chip import GoldenChip
    from neurocore.sw.convert import from_model
    from neurocore.sw.models import load_or_train
    plain, plain_chip, data = convnet_chip()
    model = load_or_train("mnist_convnet_digits", data=data)
    program = from_model(model, 16, data.x_train, geometry="ulx3s-reset", pipelined=True)
    chip = program.chip_config()
    assert chip.chip.core.reset_bits > 0 and program.stream_period < program.n_steps
    images = data.x_test[:IMAGES]
    x = program.encode_stream(images, 1)
    run, gold, problem = check_chip_fast(chip, x, label=f"pipelined ConvNet, {IMAGES} images",
                                         state_every=0, name="convnet-reset",
                                         max_cycles=10_000_000)
    assert problem is None, problem
    got = program.decode_stream(gold.outputs, IMAGES)
    one = plain.decode(GoldenChip(plain_chip).run(plain.encode(images)).outputs)
    for key in ("predicted", "first_spike"):
        assert (got[key] == one[key]).all(), key
    totals = chip_totals(chip_schedule(chip, x[0], gold.sample(0)))
    rtl = dict(run.images[0].totals(), cores=run.images[0].core_counters)
    assert rtl == totals, f"pipelined stream: cycle model {totals} != RTL {rtl}"
    print(f"pipelined stream of {IMAGES} images: {rtl['cycles']} cycles, "
          f"{rtl['cycles'] / IMAGES:.0f} per image, harness {run.wall_s:.1f} s")
