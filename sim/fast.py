"""The stand-alone C++ Verilator harness: a whole job without Python per clock cycle.

:func:`build_fast` builds ``sim/cxx/neurocore_tb.cpp`` with the Verilog of one geometry
(:func:`~neurocore.sim.verilator.write_verilog`) into ``sim_build/<geometry>-cxx``
(``-waves-cxx`` with ``WAVES=1``: FST tracing), incrementally.  :func:`run_job_fast` runs a
job (sim/jobfile.py) and returns its result records; :func:`run_stored_fast` is
:func:`~neurocore.sim.verilator.run_stored` on this harness (same report, same checks:
sim/stored.py).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from ..rtl.fault import Fault
from ..spec.geometry import CoreGeometry
from .jobfile import Job, Record, read_results, record_difference
from .stored import StoredRun, run_many_on, run_speed, run_stored_on, stored_job
from .verilator import (BUILD_ARGS, CXX_OPT, cxx_opt, NO_SPLIT, TOPLEVEL, TRACE_ARGS, build_dir_for,
                        fst_build_args, run_job_cocotb, verilator_on_path, waves_enabled,
                        write_verilog)

__all__ = ["build_fast", "compile_harness", "run_job_fast", "run_stored_fast", "run_many_fast", "crosscheck_cocotb",
           "cxx_dir_for", "TESTBENCH"]

TESTBENCH = Path(__file__).resolve().parent / "cxx" / "neurocore_tb.cpp"
EXE = "neurocore_tb"
def cxx_dir_for(geometry: CoreGeometry | str, waves: bool = False,
                fault: Fault | None = None, opt: str | None = None) -> Path:
    """``sim_build/<cocotb build dir name>-cxx``: the harness's build of that geometry."""
    d = build_dir_for(geometry, waves, fault, opt)
    return d.with_name(d.name + "-cxx")


def build_fast(geometry: CoreGeometry | str, *, waves: bool | None = None,
               fault: Fault | None = None, opt: str | None = None) -> tuple[Path, float]:
    """Build (incrementally) the harness with the C++ profile ``opt`` (:data:`CXX_OPT`:
    ``quick`` for tests, ``fast`` for benchmarks); return ``(executable, seconds)``."""
    waves = waves_enabled() if waves is None else waves
    bdir = cxx_dir_for(geometry, waves, fault, opt)
    return compile_harness(write_verilog(geometry, bdir, fault), opt=opt, waves=waves)


def compile_harness(src: Path, *, opt: str | None = None, waves: bool = False,
                    defines: tuple[str, ...] = ()) -> tuple[Path, float]:
    """Verilate ``src`` (top module ``neurocore``) with :data:`TESTBENCH` into its folder,
    incrementally; ``defines``: C++ macros (``NEUROCORE_CHIP`` for a chip).  Returns
    ``(executable, seconds)``."""
    verilator_on_path()
    bdir = src.parent
    exe = bdir / EXE
    t0 = time.perf_counter()
    cflags = ["-CFLAGS", " ".join(f"-D{d}" for d in defines)] if defines else []
    cmd = ["verilator", "--cc", "--exe", "--build", "-j", "1", "--top-module", TOPLEVEL,
           "-Mdir", str(bdir), "-o", EXE, *BUILD_ARGS, *NO_SPLIT, *cflags,
           "-MAKEFLAGS", CXX_OPT[cxx_opt(opt)],
           *(TRACE_ARGS + fst_build_args(bdir) if waves else []), str(src), str(TESTBENCH)]
    done = subprocess.run(cmd, cwd=bdir, capture_output=True, text=True)
    if done.returncode != 0 or not exe.exists():
        raise RuntimeError(f"C++ harness build failed ({' '.join(cmd)}):\n"
                           f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return exe, time.perf_counter() - t0


def run_job_fast(geometry: CoreGeometry | str, job: Job, *, name: str = "job",
                 waves: bool | None = None, fault: Fault | None = None,
                 opt: str | None = None) -> tuple[list[Record], dict]:
    """Run ``job``; return its records and ``{"build_s", "wall_s", "waves", "error"}``.

    ``error`` is the harness's message when it stopped early (the records before it stay).
    """
    waves = waves_enabled() if waves is None else waves
    exe, build_s = build_fast(geometry, waves=waves, fault=fault, opt=opt)
    bdir = exe.parent
    job.check_ports(json.loads((bdir / f"{TOPLEVEL}.json").read_text())["ports"])
    job_path = job.save(bdir / f"{name}.job")
    res_path = bdir / f"{name}.results"
    fst = bdir / f"{name}.fst" if waves else None
    t0 = time.perf_counter()
    done = subprocess.run([str(exe), str(job_path), str(res_path)] + ([str(fst)] if fst else []),
                          capture_output=True, text=True)
    info = {"build_s": build_s, "wall_s": time.perf_counter() - t0,
            "waves": str(fst) if fst else None,
            "error": done.stderr.strip() or f"exit {done.returncode}" if done.returncode else None}
    return read_results(res_path), info


def run_stored_fast(config, inputs, *, name: str = "stored", label: str = "stored",
                    state_every: int = 0, keep_outputs: int = 0, waves: bool | None = None,
                    fault: Fault | None = None, reads=(), opt: str | None = None) -> dict:
    """:func:`~neurocore.sim.verilator.run_stored` on the C++ harness (same arguments/report)."""
    return run_stored_on(run_job_fast, "C++", config, inputs, name=name, label=label,
                         state_every=state_every, keep_outputs=keep_outputs, waves=waves,
                         fault=fault, reads=reads, opt=opt)


def run_many_fast(geometry: CoreGeometry | str, runs: list[StoredRun], *, name: str = "many",
                  fault: Fault | None = None, opt: str | None = None) -> list[dict]:
    """Many stored runs in one job on the C++ harness (:func:`~neurocore.sim.stored.run_many_on`):
    one build, one harness start; one report per run."""
    return run_many_on(run_job_fast, geometry, runs, name=name, fault=fault, waves=False,
                       opt=opt)


def crosscheck_cocotb(run: StoredRun, *, name: str = "crosscheck", opt: str | None = None) -> dict:
    """Run the job of ``run`` on both harnesses (C++ and cocotb, no waves).

    Returns ``difference`` (the first differing record, None when identical), each harness's
    error, and per harness the simulated cycles and wall seconds of the samples' runs.
    """
    job, _ = stored_job(run)
    fast, fast_info = run_job_fast(run.config.geometry, job, name=name, waves=False, opt=opt)
    slow, slow_info = run_job_cocotb(run.config.geometry, job, name=name, waves=False, opt=opt)
    (fc, fw), (sc, sw) = run_speed(fast), run_speed(slow)
    return {"difference": record_difference(fast, slow), "error": fast_info["error"]
            or slow_info["error"], "cxx_cycles": fc, "cxx_wall_s": fw, "cocotb_cycles": sc,
            "cocotb_wall_s": sw, "cocotb_build_s": slow_info["build_s"]}
