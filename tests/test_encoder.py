"""On-chip TTFS encoder (rtl/encoder.py) against ``QuartzProgram.encode`` bit for bit.

Programs: the digits CNN (8×8 inputs) and the MNIST ConvNet (28×28) with seeded random
weights (conversion needs no training), T = 16.  Random pixel arrays (seed printed,
``NEUROCORE_SEED`` to change) go through the encoder in Amaranth's simulator; the raster of
axon ids it emits per step must equal ``program.encode(pixels / 255)``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from amaranth.sim import Simulator

from neurocore.rtl.encoder import (TABLE_AXONS, TABLE_CLOCK_AXON, TABLE_CLOCK_STEP, TABLE_LUT,
                                   TTFSEncoder)
from neurocore.spec.geometry import bits_for
from neurocore.sw.compiler import QuartzProgram
from neurocore.sw.convert import from_model
from neurocore.sw.models import digits_cnn, mnist_convnet
from neurocore.sw.pixels import (NO_STEP, check_pixels, encoder_tables, pixel_values,
                                 to_pixels)

T = 16


def random_program(arch, side: int, seed: int) -> QuartzProgram:
    torch.manual_seed(seed)
    model = arch().eval()
    x = torch.rand(32, 1, side, side, generator=torch.Generator().manual_seed(seed))
    return from_model(model, T, x)


@pytest.fixture(scope="module")
def programs():
    return {"digits_cnn": random_program(digits_cnn, 8, 1),
            "mnist_convnet": random_program(mnist_convnet, 28, 2)}


def encoder_raster(program: QuartzProgram, pixels: np.ndarray) -> np.ndarray:
    """Run ``pixels`` (N, n_inputs) through the RTL encoder; return the (N, steps, axons)
    raster it emits and check that no step emits an axon twice."""
    tab = encoder_tables(program)
    g = program.config.geometry
    dut = TTFSEncoder(max_inputs=tab.n_inputs, max_steps=tab.n_steps,
                      axon_bits=bits_for(g.n_axons))
    out = np.zeros((pixels.shape[0], tab.n_steps, g.n_axons), dtype=bool)

    async def tb(ctx):
        async def write(table, addr, data):
            ctx.set(dut.wr_en, 1)
            ctx.set(dut.wr_table, table)
            ctx.set(dut.wr_addr, addr)
            ctx.set(dut.wr_data, data)
            await ctx.tick()
            ctx.set(dut.wr_en, 0)

        for v, st in enumerate(tab.lut):
            await write(TABLE_LUT, v, int(st))
        for i, a in enumerate(tab.axons):
            await write(TABLE_AXONS, i, int(a))
        for k, (a, st) in enumerate(tab.clocks):
            await write(TABLE_CLOCK_AXON, k, a)
            await write(TABLE_CLOCK_STEP, k, st)
        for n, img in enumerate(pixels):
            ctx.set(dut.begin, 1)
            await ctx.tick()
            ctx.set(dut.begin, 0)
            for p in img:
                ctx.set(dut.pixels.valid, 1)
                ctx.set(dut.pixels.payload, int(p))
                await ctx.tick().until(dut.pixels.ready)
            ctx.set(dut.pixels.valid, 0)
            for t in range(tab.n_steps):
                await ctx.tick().until(dut.ready)
                ctx.set(dut.emit, 1)
                ctx.set(dut.step, t)
                await ctx.tick()
                ctx.set(dut.emit, 0)
                ctx.set(dut.spikes.ready, 1)
                while True:
                    _, _, ready, valid, axon = await ctx.tick().sample(
                        dut.ready, dut.spikes.valid, dut.spikes.payload)
                    if valid:
                        assert not out[n, t, axon], f"image {n} step {t}: axon {axon} twice"
                        out[n, t, axon] = True
                    if ready:
                        break
                ctx.set(dut.spikes.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return out


@pytest.mark.parametrize("name, n_images", [("digits_cnn", 6), ("mnist_convnet", 2)])
def test_encoder_raster_equals_program_encode(programs, name, n_images, seed):
    program = programs[name]
    rng = np.random.default_rng(seed)
    tab = encoder_tables(program)
    valid = np.flatnonzero(tab.valid)
    pixels = rng.choice(valid, size=(n_images, tab.n_inputs)).astype(np.uint8)
    pixels[0, :] = valid[-1]                      # every input at the earliest spike
    pixels[-1, :min(256, tab.n_inputs)] = valid[:tab.n_inputs][:256]  # every byte value
    print(f"\nencoder {name}: seed {seed} (NEUROCORE_SEED), {n_images} images, "
          f"{tab.n_inputs} inputs, {tab.n_steps} steps")
    want = program.encode(pixel_values(pixels))
    got = encoder_raster(program, pixels)
    assert want[:, :, tab.axons].sum() > n_images * tab.n_inputs // 2   # inputs do spike
    for n in range(n_images):
        diff = np.argwhere(got[n] != want[n])
        assert diff.size == 0, (f"seed {seed}, image {n}: (step, axon) differs at "
                                f"{diff[:5].tolist()}")


def test_encoder_tables_and_pixel_checks(programs):
    program = programs["digits_cnn"]
    tab = encoder_tables(program)
    x = pixel_values(np.arange(256))
    # the LUT is program.encode's step of every byte value (inputs the program accepts)
    raster = program.encode(x[tab.valid][:, None].repeat(tab.n_inputs, axis=1))
    for b, r in zip(np.flatnonzero(tab.valid), raster):
        steps = np.flatnonzero(r[:, tab.axons[0]])
        assert list(steps) == ([] if tab.lut[b] == NO_STEP else [tab.lut[b]]), b
    assert to_pixels([0.0, 1.0, 0.5]).tolist() == [0, 255, 128]
    with pytest.raises(ValueError, match=r"1\.5 at index \(1,\)"):
        to_pixels([0.0, 1.5])
    with pytest.raises(ValueError, match="images of 3 pixels; the program takes 64"):
        check_pixels(tab, np.zeros((2, 3)), "batch")
    with pytest.raises(ValueError, match="0..255"):
        check_pixels(tab, np.full((1, 64), 300), "batch")
