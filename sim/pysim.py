"""Run the RTL core in Amaranth's simulator through :class:`~neurocore.sim.driver.CoreDriver`.

:func:`run_rtl` loads a :class:`~neurocore.golden.network.CoreConfig` through the
configuration port, drives an input raster step by step and returns what the core did: the
per-step output events with their cycles, the step lengths and ``u``/``v`` of every
compartment after every step.  Set ``NEUROCORE_VCD`` to a file name to write a VCD.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from ..golden.network import CoreConfig
from ..rtl.core import Neurocore
from .driver import INPUT_PORTS, OUTPUT_PORTS, CoreDriver, StepResult

__all__ = ["AmaranthBackend", "RTLRun", "run_rtl", "simulate"]


class AmaranthBackend:
    """Driver backend on an Amaranth testbench context."""

    def __init__(self, ctx, dut: Neurocore):
        self.ctx = ctx
        self.ports = {}
        for name in INPUT_PORTS + OUTPUT_PORTS:
            group, member = name.split(".")
            port = getattr(getattr(dut, group), member)
            self.ports[name] = port.as_value() if hasattr(port, "as_value") else port

    async def tick(self):
        await self.ctx.tick()

    def get(self, name: str) -> int:
        return self.ctx.get(self.ports[name])

    def set(self, name: str, value: int):
        self.ctx.set(self.ports[name], value)


@dataclass
class RTLRun:
    """Per-step results of one RTL run (single sample)."""

    steps: list[StepResult]
    u: np.ndarray          # (T, n_compartments), decoded values
    v: np.ndarray
    outputs: np.ndarray    # (T, n_outputs) event counts
    loaded_words: int
    counters: dict[str, int]   # hardware counters after the run (zeroed after loading)


def simulate(dut: Neurocore, testbench, *, vcd: str | None = None):
    """Run ``testbench(driver)`` (an async function) on ``dut`` in Amaranth's simulator."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    result = {}

    async def tb(ctx):
        drv = CoreDriver(AmaranthBackend(ctx, dut), dut.geometry)
        await drv.tick()
        result["value"] = await testbench(drv)

    sim.add_testbench(tb)
    vcd = vcd if vcd is not None else os.environ.get("NEUROCORE_VCD")
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return result.get("value")


def run_rtl(config: CoreConfig, inputs: np.ndarray, *, out_ready=None, mutate=None,
            overlap: bool = False, dut: Neurocore | None = None) -> RTLRun:
    """Run ``inputs`` (steps, n_axons) on a fresh core holding ``config``.

    ``overlap``: send step ``t+1``'s host spikes while step ``t`` runs (else between steps).

    ``mutate``: optional ``(memory, address, word)`` written after the image (fault injection).
    ``out_ready``: optional ``f(step, cycle) -> bool`` for output backpressure.
    """
    g = config.geometry
    dut = dut or Neurocore(g)
    words = config.to_words()
    zeros = {k: np.zeros_like(v) for k, v in words.items()}
    x = np.asarray(inputs)

    async def tb(drv: CoreDriver):
        n_written = await drv.load(words, previous=zeros)   # a fresh simulation holds zeros
        if mutate is not None:
            await drv.write(*mutate)
        await drv.zero_counters()
        steps, us, vs = [], [], []
        T = x.shape[0]
        for t in range(T):
            if t == 0 or not overlap:
                await drv.send_spikes(np.flatnonzero(x[t]))
            during = np.flatnonzero(x[t + 1]) if overlap and t + 1 < T else ()
            ready = None if out_ready is None else (lambda c, t=t: out_ready(t, c))
            steps.append(await drv.run_step(ready, send_during=during))
            u, v = await drv.read_state()
            us.append(u)
            vs.append(v)
        outputs = np.zeros((x.shape[0], g.n_outputs), dtype=np.int32)
        for t, s in enumerate(steps):
            for oid, _ in s.events:
                outputs[t, oid] += 1
        return RTLRun(steps=steps, u=np.array(us), v=np.array(vs), outputs=outputs,
                      loaded_words=n_written, counters=await drv.read_counters())

    return simulate(dut, tb)
