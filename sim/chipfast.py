"""The RTL chip (:class:`~neurocore.rtl.chip.Chip`) on the stand-alone C++ Verilator harness.

The chip's ``cfg``/``ctrl``/``inp``/``out`` ports carry the core's names, so
``sim/cxx/neurocore_tb.cpp`` drives it unchanged, built with ``-DNEUROCORE_CHIP`` (which adds
the job op ``COUNTERS``: the chip's ``cycles``, ``flits``, ``flit_waits`` outputs) against the
chip's Verilog (top module renamed ``neurocore``) in ``sim_build/chip-<core geometry>-cxx``.

:func:`chip_job` is what a host does per image: ``ctrl.clear``, load every core (only words
that changed since the image before), zero every core's counters, then per step the host
spikes ``(axon, core)`` to every copy of each logical axon, the step, the chip counters and
(every ``state_every`` steps and after the last) every core's state; after the image, every
core's counters.  :func:`run_chip_fast` runs it and parses the records per image;
:func:`chip_mismatch` names the first divergence from :class:`~neurocore.golden.chip.GoldenChip`
(image, step, core, compartment, field, expected and actual, label/seed).
"""

from __future__ import annotations

import functools
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from ..golden.chip import ChipConfig, GoldenChip
from ..golden.network import config_memory_names
from ..rtl.chip import Chip, chip_config_addr
from ..spec.geometry import CoreGeometry
from ..spec.schedule import (COUNTERS, FLIT_IN_DEPTH, MEMORY_INDEX, REGISTER_BITS,
                             ROUTER_FIFO_DEPTH, register_index)
from ..spec.words import RouteKind
from .chipsim import host_copies
from .driver import StepResult, decode_state
from .fast import compile_harness
from .jobfile import Job, Op, Record, read_results
from .verilator import ROOT, TOPLEVEL, cxx_opt, geometry_key, port_map

__all__ = ["CHIP_COUNTERS", "ChipImage", "ChipFastRun", "chip_dir_for", "build_chip_fast",
           "chip_job", "run_chip_fast", "expected_events", "chip_mismatch", "check_chip_fast"]

#: The chip's counter outputs, in the order the COUNTERS record holds them.
CHIP_COUNTERS = ("cycles", "flits", "flit_waits")
_WRAP = 1 << REGISTER_BITS


def chip_dir_for(core: CoreGeometry, opt: str | None = None,
                 depths: tuple[int, int] = (FLIT_IN_DEPTH, ROUTER_FIFO_DEPTH)) -> Path:
    """``sim_build/chip-<core geometry key>[-fifo<flit>x<router>]-cxx[-<opt>]`` (no suffix
    for the default FIFO depths and the ``quick`` C++ profile)."""
    opt = cxx_opt(opt)
    fifo = "" if depths == (FLIT_IN_DEPTH, ROUTER_FIFO_DEPTH) else f"-fifo{depths[0]}x{depths[1]}"
    return ROOT / "sim_build" / (f"chip-{geometry_key(core)}{fifo}-cxx"
                                 + ("" if opt == "quick" else f"-{opt}"))


@functools.lru_cache(maxsize=4)
def _chip_verilog(core: CoreGeometry, depths: tuple[int, int]) -> tuple[str, dict]:
    dut = Chip(core, flit_depth=depths[0], router_depth=depths[1])
    return verilog.convert(dut, name=TOPLEVEL, emit_src=False), port_map(dut)


def build_chip_fast(core: CoreGeometry, *, opt: str | None = None,
                    depths: tuple[int, int] = (FLIT_IN_DEPTH, ROUTER_FIFO_DEPTH),
                    ) -> tuple[Path, float, dict]:
    """Build (incrementally) the chip harness of chip cores ``core`` (``n_cores >= 2``) with
    the C++ profile ``opt`` and ``depths = (flit_depth, router_depth)`` (:class:`Chip`'s);
    return ``(executable, seconds, port map)``."""
    bdir = chip_dir_for(core, opt, depths)
    bdir.mkdir(parents=True, exist_ok=True)
    text, ports = _chip_verilog(core, tuple(depths))
    src = bdir / f"{TOPLEVEL}.v"
    if not src.exists() or src.read_text() != text:     # keep the mtime: incremental build
        src.write_text(text)
    exe, secs = compile_harness(src, opt=opt, defines=("NEUROCORE_CHIP",))
    return exe, secs, ports


def _state_read(t: int, steps: int, every: int) -> bool:
    return bool(every and (t + 1) % every == 0) or t == steps - 1


def chip_job(chip: ChipConfig, inputs: np.ndarray, *, state_every: int = 1,
             ready=(), max_cycles: int = 1_000_000) -> Job:
    """The job of ``inputs`` (images, steps, logical n_axons) on ``chip`` (module docstring);
    ``ready``: ``out.ready`` bits taken cyclically, one per step cycle, continuing across steps
    (empty: always ready)."""
    g = chip.chip.core
    x = np.asarray(inputs, dtype=bool)
    payloads = host_copies(chip)
    words = [cfg.to_words() for cfg in chip.cores]
    first = register_index(COUNTERS[0])
    regs = MEMORY_INDEX["registers"]
    job, previous = Job(max_cycles), None
    if len(ready):
        job.ready(ready)
    for b in range(x.shape[0]):
        job.clear()
        for k, cfg in enumerate(chip.cores):
            job.write(regs, [chip_config_addr(g, k, register_index("n_active"))],
                      [cfg.n_active()])
            for name in config_memory_names(g):
                new = np.asarray(words[k][name], dtype=np.uint64)
                idx = (np.arange(new.size) if previous is None else
                       np.flatnonzero(new != np.asarray(previous[k][name], dtype=np.uint64)))
                job.write(MEMORY_INDEX[name], [chip_config_addr(g, k, a) for a in idx.tolist()],
                          new[idx])
            job.write(regs, [chip_config_addr(g, k, first + i) for i in range(len(COUNTERS))],
                      np.zeros(len(COUNTERS), dtype=np.uint64))
        previous = words
        job.mark(b)
        job.counters()
        for t in range(x.shape[1]):
            job.send([p for a in np.flatnonzero(x[b, t]).tolist() for p in payloads.get(a, ())])
            job.step()
            job.counters()
            if _state_read(t, x.shape[1], state_every):
                for k, cxs in enumerate(chip.compartments):
                    if cxs.size:
                        job.read(MEMORY_INDEX["state"], chip_config_addr(g, k, 0), cxs.size)
        for k in range(len(chip.cores)):
            job.read(regs, chip_config_addr(g, k, first), len(COUNTERS))
    return job


@dataclass
class ChipImage:
    """One image's run on the chip: steps (events ``(id, cycle)``), per step the chip
    counters' increments, per read step the logical ``u``/``v``, every core's counters."""

    steps: list[StepResult] = field(default_factory=list)
    chip_counters: list[dict] = field(default_factory=list)    # per step, CHIP_COUNTERS
    states: dict = field(default_factory=dict)                 # step -> (u, v) logical
    core_counters: list[dict] = field(default_factory=list)    # per core, COUNTERS

    def totals(self) -> dict[str, int]:
        """The chip counters' increments over the image."""
        return {n: sum(c[n] for c in self.chip_counters) for n in CHIP_COUNTERS}


@dataclass
class ChipFastRun:
    images: list[ChipImage]
    build_s: float
    wall_s: float          # the harness process, load and readback included
    sim_cycles: int        # simulated cycles of the whole job
    error: str | None      # the harness's message when it stopped early


def _parse(chip: ChipConfig, records: list[Record], steps: int, state_every: int
           ) -> list[ChipImage]:
    g, lg = chip.chip.core, chip.logical.geometry
    images: list[ChipImage] = []
    img, last = None, None
    for r in records:
        if r.op == Op.MARK:
            img, last = ChipImage(), None
            images.append(img)
        elif img is None:
            continue
        elif r.op == Op.COUNTERS:
            now = [int(w) for w in r.words]
            if last is not None:
                img.chip_counters.append({n: (a - b) % _WRAP
                                          for n, a, b in zip(CHIP_COUNTERS, now, last)})
            last = now
        elif r.op == Op.STEP:
            img.steps.append(r.step)
    # the reads of each image: per read step one block per non-empty core, then the counters
    for img, rs in zip(images, _split_reads(records)):
        rs = iter(rs)
        for t in range(len(img.steps)):
            if _state_read(t, steps, state_every):
                u = np.zeros(lg.n_compartments, dtype=np.int64)
                v = np.zeros_like(u)
                for k, cxs in enumerate(chip.compartments):
                    if cxs.size:
                        w = next(rs, None)
                        if w is None:
                            break
                        u[cxs], v[cxs] = decode_state(g, w)
                else:
                    img.states[t] = (u, v)
        for k in range(len(chip.cores)):
            w = next(rs, None)
            if w is not None:
                img.core_counters.append(dict(zip(COUNTERS, (int(x) for x in w))))
    return images


def _split_reads(records: list[Record]) -> list[list[np.ndarray]]:
    out: list[list] = []
    for r in records:
        if r.op == Op.MARK:
            out.append([])
        elif r.op == Op.READ and out:
            out[-1].append(r.words)
    return out


def run_chip_fast(chip: ChipConfig, inputs: np.ndarray, *, state_every: int = 1,
                  opt: str | None = None, name: str = "chip", ready=(),
                  depths: tuple[int, int] = (FLIT_IN_DEPTH, ROUTER_FIFO_DEPTH),
                  max_cycles: int = 1_000_000) -> ChipFastRun:
    """Run ``inputs`` ((images,) steps, logical n_axons) on the RTL chip in the C++ harness
    (:func:`chip_job`); ``opt``: the C++ profile (``quick`` for tests, ``fast`` for benches);
    ``ready``: the output-ready pattern (:func:`chip_job`); ``depths``: the chip's
    ``(flit_depth, router_depth)``."""
    x = np.asarray(inputs, dtype=bool)
    x = x[None] if x.ndim == 2 else x
    if x.ndim != 3 or x.shape[2] != chip.logical.geometry.n_axons:
        raise ValueError(f"inputs must be (images, steps, {chip.logical.geometry.n_axons}) "
                         f"host rasters, not shape {np.shape(inputs)}")
    exe, build_s, ports = build_chip_fast(chip.chip.core, opt=opt, depths=depths)
    job = chip_job(chip, x, state_every=state_every, ready=ready, max_cycles=max_cycles)
    job.check_ports(ports)
    bdir = exe.parent
    job_path, res_path = job.save(bdir / f"{name}.job"), bdir / f"{name}.results"
    res_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    done = subprocess.run([str(exe), str(job_path), str(res_path)], capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    records = read_results(res_path) if res_path.exists() else []
    end = next((r.cycle for r in records if r.op == Op.END), 0)
    error = (done.stderr.strip() or f"exit {done.returncode}") if done.returncode else None
    return ChipFastRun(images=_parse(chip, records, x.shape[1], state_every), build_s=build_s,
                       wall_s=wall, sim_cycles=end, error=error)


def expected_events(chip: ChipConfig, spikes_t: np.ndarray) -> list[int]:
    """Output ids of one step in the chip's order (docs/rtl.md §8.1): core by core; in a core
    update lane by lane, in a lane by compartment, each compartment's routes in list order."""
    out = []
    k_u = chip.chip.core.k_u
    for k, cfg in enumerate(chip.cores):
        am, r = cfg.mem["axon_map"], cfg.mem["routes"]
        cxs = chip.compartments[k]
        for lc in sorted(range(cxs.size), key=lambda i: (i % k_u, i)):
            if spikes_t[cxs[lc]]:
                for a in range(am["base"][lc], am["base"][lc] + am["length"][lc]):
                    if r["kind"][a] == RouteKind.OUTPUT.value:
                        out.append(int(r["target"][a]))
    return out


def _where(chip: ChipConfig, cx: int) -> str:
    k = int(np.flatnonzero([np.isin(cx, c) for c in chip.compartments])[0])
    local = int(np.flatnonzero(chip.compartments[k] == cx)[0])
    return f"core {k} compartment {local} (logical {cx})"


def chip_mismatch(chip: ChipConfig, run: ChipFastRun, gold, label: str) -> str | None:
    """The first divergence of ``run`` from ``gold`` (a batched :class:`RunResult` of
    :class:`GoldenChip` with ``u``, ``v``): output events of every step (ids and order),
    ``u``/``v`` of every compartment at every read step, the flit count; or the harness's
    error; None when they agree."""
    B, T = gold.spikes.shape[:2]
    flits_per_spike = chip.remote_routes()
    for b, img in enumerate(run.images):
        for t, step in enumerate(img.steps):
            where = f"{label}: image {b} step {t}"
            want = expected_events(chip, gold.spikes[b, t])
            got = [int(e[0]) for e in step.events]
            if got != want:
                i = next((i for i, (p, q) in enumerate(zip(got, want)) if p != q),
                         min(len(got), len(want)))
                return (f"{where}: output event {i}: expected id "
                        f"{want[i] if i < len(want) else 'none'}, RTL "
                        f"{got[i] if i < len(got) else 'none'} ({len(want)} expected, "
                        f"{len(got)} from the RTL)")
            if t in img.states:
                for name, actual in zip(("u", "v"), img.states[t]):
                    expected = getattr(gold, name)[b, t]
                    bad = np.flatnonzero(actual != expected)
                    if bad.size:
                        cx = int(bad[0])
                        return (f"{where}: {_where(chip, cx)} field {name}: expected "
                                f"{int(expected[cx])}, RTL {int(actual[cx])}")
            flits = int((gold.spikes[b, t] * flits_per_spike).sum())
            if t < len(img.chip_counters) and img.chip_counters[t]["flits"] != flits:
                return (f"{where}: chip counter flits: expected {flits}, RTL "
                        f"{img.chip_counters[t]['flits']}")
        if len(img.steps) < T:
            return f"{label}: image {b}: the harness stopped after {len(img.steps)} of {T} " \
                   f"steps ({run.error})"
    if len(run.images) < B:
        return f"{label}: the harness stopped after {len(run.images)} of {B} images " \
               f"({run.error})"
    return f"{label}: harness: {run.error}" if run.error else None


def check_chip_fast(chip: ChipConfig, inputs: np.ndarray, *, label: str, state_every: int = 1,
                    **kw) -> tuple[ChipFastRun, object, str | None]:
    """Run ``inputs`` on the RTL chip (``kw``: :func:`run_chip_fast`'s) and on
    :class:`GoldenChip`; return ``(run, golden run, first mismatch or None)``."""
    x = np.asarray(inputs, dtype=bool)
    x = x[None] if x.ndim == 2 else x
    gold = GoldenChip(chip).run(x, record=("u", "v"))
    run = run_chip_fast(chip, x, state_every=state_every, **kw)
    return run, gold, chip_mismatch(chip, run, gold, label)
