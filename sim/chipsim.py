"""Run the RTL chip (:class:`~neurocore.rtl.chip.Chip`) in Amaranth's simulator.

:func:`run_chip_rtl` loads a :class:`~neurocore.golden.chip.ChipConfig` core by core through
the chip's configuration port (``addr = Cat(word, core)``), sends the logical host raster as
host spikes ``(axon, core)`` to every copy of each axon, runs the steps and returns the
logical output events and ``u``/``v`` after every step, in the logical compartment order of
:class:`~neurocore.golden.chip.GoldenChip`.  The chip's ports carry the core's port names, so
the single core's :class:`~neurocore.sim.driver.CoreDriver` drives it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from ..golden.chip import ChipConfig
from ..golden.network import config_memory_names
from ..rtl.chip import Chip, chip_config_addr
from ..rtl.router import RouterFault
from ..spec.schedule import register_index
from .driver import CoreDriver, StepResult, decode_state
from .pysim import AmaranthBackend

__all__ = ["ChipRun", "run_chip_rtl", "host_copies"]


@dataclass
class ChipRun:
    """Per-step results of one chip run (single sample), logical order."""

    steps: list[StepResult]
    u: np.ndarray          # (T, logical n_compartments)
    v: np.ndarray
    outputs: np.ndarray    # (T, n_outputs) event counts
    cycles: int            # the chip's cycle counter after the run
    flits: int             # the chip's flit counter after the run
    flit_waits: int        # the chip's flit_waits counter after the run


def host_copies(chip: ChipConfig) -> dict[int, list[int]]:
    """Logical axon -> the chip's host-spike payloads ``Cat(local axon, core)``."""
    g = chip.chip.core
    out: dict[int, list[int]] = {}
    for k, ax in enumerate(chip.axons):
        for li, a in enumerate(ax.tolist()):
            out.setdefault(a, []).append((k << g.axon_bits) | li)
    return out


def run_chip_rtl(chip: ChipConfig, inputs: np.ndarray, *, out_ready=None,
                 overlap: bool = False, fault: RouterFault | None = None,
                 **chip_args) -> ChipRun:
    """Run ``inputs`` (steps, logical n_axons) on a fresh :class:`Chip` holding ``chip``.

    ``out_ready``: optional ``f(step, cycle) -> bool`` for output backpressure; ``overlap``:
    send step ``t+1``'s host spikes while step ``t`` runs (else between steps); ``fault``: a
    router mutant (tests only); ``chip_args``: more :class:`Chip` arguments (FIFO depths).
    """
    g = chip.chip.core
    dut = Chip(g, fault=fault, **chip_args)
    x = np.asarray(inputs)
    T = x.shape[0]
    lg = chip.logical.geometry
    copies = host_copies(chip)
    result = {}

    async def tb(ctx):
        drv = CoreDriver(AmaranthBackend(ctx, dut), g)
        await drv.tick()
        for k, cfg in enumerate(chip.cores):
            await drv.write("registers", chip_config_addr(g, k, register_index("n_active")),
                            cfg.n_active())
            words = cfg.to_words()
            for name in config_memory_names(g):
                w = np.asarray(words[name], dtype=np.uint64)
                for a in np.flatnonzero(w).tolist():     # a fresh simulation holds zeros
                    await drv.write(name, chip_config_addr(g, k, a), int(w[a]))
        steps = []
        u = np.zeros((T, lg.n_compartments), dtype=np.int64)
        v = np.zeros_like(u)
        def host(t):
            return [p for a in np.flatnonzero(x[t]) for p in copies.get(a, ())]

        for t in range(T):
            if t == 0 or not overlap:
                await drv.send_spikes(host(t))
            during = host(t + 1) if overlap and t + 1 < T else ()
            ready = None if out_ready is None else (lambda c, t=t: out_ready(t, c))
            steps.append(await drv.run_step(ready, send_during=during))
            for k, cxs in enumerate(chip.compartments):
                if cxs.size:
                    words = await drv.read_many(
                        "state", [chip_config_addr(g, k, i) for i in range(cxs.size)])
                    u[t, cxs], v[t, cxs] = decode_state(g, words)
        outputs = np.zeros((T, lg.n_outputs), dtype=np.int32)
        for t, s in enumerate(steps):
            for oid, _ in s.events:
                outputs[t, oid] += 1
        result["run"] = ChipRun(steps=steps, u=u, v=v, outputs=outputs,
                                cycles=ctx.get(dut.cycles), flits=ctx.get(dut.flits),
                                flit_waits=ctx.get(dut.flit_waits))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return result["run"]
