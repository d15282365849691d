"""Full-system simulation: a board's bridge + core in Verilator, the host driver over a UART.

:func:`build` converts :class:`~neurocore.boards.uart_bridge.NeurocoreSystem` for a board
geometry to Verilog (``sim_build/system-<geometry>-div<d>/board_system.v``, rewritten only
when the text changes) with the board's memory overrides (the iCEBreaker's synapse memory
on :class:`~neurocore.boards.ice40.SinglePortRAM` with the SPRAM model), and builds the
Verilator model once.  :func:`run` runs one host function (``"module:function"``, called as
``fn(transport, **kwargs)``) against it through :mod:`neurocore.boards.cocotb_system` and
returns its result with the simulated cycles and wall time.  A fast UART (``divisor`` clock
cycles per bit, default 4) keeps the byte traffic short.
"""

from __future__ import annotations

import json
import time

from amaranth.back import verilog

from ..sim.verilator import BUILD_ARGS, NO_SPLIT, ROOT, make_flags
from ..spec.geometry import CoreGeometry
from .ice40 import SinglePortRAM
from .top import MemoryOverride, core_memory_selector
from .uart_bridge import NeurocoreSystem

__all__ = ["SimPlatform", "build", "run", "TOPLEVEL", "system_for", "SIM_DIVISOR",
           "board_spram"]

#: Clock cycles per UART bit of the system simulation (a fast line keeps the traffic short).
SIM_DIVISOR = 4


def board_spram(board: str) -> tuple:
    """Memories the board puts on SPRAM (the simulation uses the SPRAM model for them)."""
    return ("synapses",) if board == "icebreaker" else ()

TOPLEVEL = "board_system"
TEST_MODULE = "neurocore.boards.cocotb_system"


class SimPlatform:
    """Just enough platform for ``verilog.convert``: the ``get_memory`` override."""

    def __init__(self, override: MemoryOverride | None):
        self._override = override

    def get_memory(self, memory):
        if self._override is None:
            from amaranth.lib.memory import Memory
            return Memory.elaborate(memory, None)
        return self._override(memory)


def system_for(geometry: CoreGeometry, *, divisor: int, timeout: int, spram=(),
               event_depth: int = 128):
    """The system and the platform whose overrides the board build would use."""
    system = NeurocoreSystem(geometry, divisor=divisor, timeout=timeout,
                             event_depth=event_depth)
    override = (MemoryOverride(core_memory_selector(geometry, spram),
                               lambda mem: SinglePortRAM(mem, model=True)) if spram else None)
    return system, SimPlatform(override)


def build(geometry: CoreGeometry, *, divisor: int = 4, timeout: int | None = None, spram=(),
          event_depth: int = 128):
    """Write the Verilog and build the Verilator model; return ``(runner, dir, seconds)``."""
    from cocotb_tools.runner import get_runner

    from ..sim.verilator import verilator_on_path
    verilator_on_path()

    timeout = timeout if timeout is not None else 64 * divisor
    tag = f"system-{geometry.name}-div{divisor}" + ("-spram" if spram else "")
    bdir = ROOT / "sim_build" / tag
    bdir.mkdir(parents=True, exist_ok=True)
    system, platform = system_for(geometry, divisor=divisor, timeout=timeout, spram=spram,
                                  event_depth=event_depth)
    text = verilog.convert(system, name=TOPLEVEL, platform=platform, emit_src=False)
    if spram and platform._override.mapped != list(spram):
        raise RuntimeError(f"memory override mapped {platform._override.mapped}, wanted {spram}")
    src = bdir / f"{TOPLEVEL}.v"
    if not src.exists() or src.read_text() != text:
        src.write_text(text)
    runner = get_runner("verilator")
    t0 = time.perf_counter()
    with make_flags():
        runner.build(sources=[src], hdl_toplevel=TOPLEVEL, build_dir=bdir,
                     build_args=BUILD_ARGS + NO_SPLIT, timescale=("1ns", "1ps"))
    return runner, bdir, time.perf_counter() - t0


def run(geometry: CoreGeometry, host: str, kwargs: dict | None = None, *, divisor: int = 4,
        timeout: int | None = None, spram=(), name: str = "session",
        read_timeout_cycles: int = 2_000_000) -> dict:
    """Run ``host`` against the simulated system; return the report dict (``result`` etc.)."""
    runner, bdir, build_s = build(geometry, divisor=divisor, timeout=timeout, spram=spram)
    job = bdir / f"{name}.job.json"
    report = bdir / f"{name}.report.json"
    report.unlink(missing_ok=True)
    job.write_text(json.dumps({"host": host, "kwargs": kwargs or {}, "divisor": divisor,
                               "report": str(report),
                               "read_timeout_cycles": read_timeout_cycles}, indent=1))
    t0 = time.perf_counter()
    failure = None
    try:
        runner.test(hdl_toplevel=TOPLEVEL, test_module=TEST_MODULE, build_dir=bdir,
                    test_dir=bdir, extra_env={"NEUROCORE_BOARD_JOB": str(job)},
                    results_xml=str(bdir / f"{name}.results.xml"))
    except SystemExit as e:   # cocotb's runner exits when the cocotb test fails
        failure = f"cocotb run failed ({e}); see {bdir / (name + '.results.xml')}"
    if not report.exists():
        raise RuntimeError(failure or "the simulation wrote no report")
    out = json.loads(report.read_text())
    out.update(build_s=build_s, run_s=time.perf_counter() - t0, failure=failure)
    return out

