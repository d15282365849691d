"""The paper's MNIST ConvNet (``mnist_convnet_digits``) on the ULX3S RTL chip
(``CHIP_PRESETS["ulx3s"]``) in the C++ harness: every output event, the flits of every step and
u/v after every image equal GoldenChip, and the chip cycle model equals the RTL's chip and
per-core counters on the first image.  Marker ``chip_long`` (``make chip-long``): the chip's
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
