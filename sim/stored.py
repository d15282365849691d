"""A stored network on a batch raster: the job, and its check against golden + cycle model.

:func:`stored_job` turns a :class:`~neurocore.golden.network.CoreConfig` and a raster into a
job (sim/jobfile.py) that does what the host does per sample: ``ctrl.clear``, load the image
(only words that differ from the image the core holds), then per step push the host spikes,
run the step, and read the state memory back every ``state_every`` steps and after the last;
the hardware counters are zeroed after the load and read after the sample's last step.
Either harness runs it (C++: sim/fast.py; cocotb: sim/verilator.py).  :func:`stored_report`
compares the records with the golden model and the cycle model (sim/check.py messages: step,
cycle, compartment or event, field, expected and actual, sample, wave file) and returns the
report of :func:`neurocore.sim.verilator.run_stored`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..golden.core import GoldenCore
from ..golden.network import CoreConfig, config_memory_names
from ..spec.cycle_model import counter_totals, schedule
from ..spec.schedule import COUNTERS, MEMORY_INDEX, register_index
from .check import CLOCK_NS, counter_mismatch, state_mismatch, step_mismatch
from .driver import decode_state
from .jobfile import Job, Op, Record

__all__ = ["StoredRun", "stored_job", "stored_report", "run_stored_on", "run_speed", "MARKS",
           "run_many_on"]

#: MARK tags around each sample: its start, after ``ctrl.clear``, after the load, its end.
MARKS = ("start", "cleared", "loaded", "end")


@dataclass
class StoredRun:
    """What :func:`stored_report` needs besides the records."""

    config: CoreConfig
    inputs: np.ndarray            # (batch, steps, n_axons) bool
    label: str
    state_every: int
    keep_outputs: int
    #: further reads ``(sample, step, mem, first, n)``: words ``first .. first+n-1`` of memory
    #: select ``mem`` after step ``step`` of sample ``sample`` (after the state read, if any);
    #: returned per sample as ``reads`` (e.g. counters exposed as a further memory select).
    reads: tuple = ()

    def reads_after(self, b: int, t: int) -> list[tuple[int, int, int]]:
        return [(m, a, n) for s, st, m, a, n in self.reads if (s, st) == (b, t)]


def _load(job: Job, words: dict, previous: dict | None, n_active: int) -> int:
    """CoreDriver.load: the n_active register, then every config word (or only those
    differing from ``previous``)."""
    job.write(MEMORY_INDEX["registers"], [register_index("n_active")], [n_active])
    count = 1
    for name in words:
        new = np.asarray(words[name], dtype=np.uint64)
        idx = (np.arange(new.size) if previous is None
               else np.flatnonzero(new != np.asarray(previous[name], dtype=np.uint64)))
        job.write(MEMORY_INDEX[name], idx, new[idx])
        count += idx.size
    return count


def _state_read(t: int, steps: int, every: int) -> bool:
    return bool(every and (t + 1) % every == 0) or t == steps - 1


def stored_job(run: StoredRun, previous: dict | None = None, job: Job | None = None,
               ) -> tuple[Job, list[int]]:
    """The job of ``run`` (appended to ``job`` if given, whose image is ``previous``);
    returns it and the number of words loaded per sample."""
    g = run.config.geometry
    words = run.config.to_words()
    n_active = run.config.n_active()
    first_counter = register_index(COUNTERS[0])
    job, loaded = job or Job(), []
    x = np.asarray(run.inputs, dtype=bool)
    for b in range(x.shape[0]):
        job.mark(MARKS.index("start"))
        job.clear()
        job.mark(MARKS.index("cleared"))
        loaded.append(_load(job, words, previous, n_active))
        previous = words
        job.write(MEMORY_INDEX["registers"], np.arange(first_counter, first_counter + len(COUNTERS)),
                  np.zeros(len(COUNTERS), dtype=np.uint64))
        job.mark(MARKS.index("loaded"))
        for t in range(x.shape[1]):
            job.send(np.flatnonzero(x[b, t]))
            job.step()
            if _state_read(t, x.shape[1], run.state_every):
                job.read(MEMORY_INDEX["state"], 0, g.n_compartments)
            for mem, first, n in run.reads_after(b, t):
                job.read(mem, first, n)
        job.read(MEMORY_INDEX["registers"], first_counter, len(COUNTERS))
        job.mark(MARKS.index("end"))
    return job, loaded


def _samples(records: list[Record]):
    """Split the records into samples: (marks {name: record}, steps, state reads)."""
    out, cur = [], None
    for r in records:
        if r.op == Op.MARK:
            name = MARKS[r.tag]
            if name == "start":
                cur = ({}, [], [])
                out.append(cur)
            cur[0][name] = r
        elif r.op == Op.STEP:
            cur[1].append(r)
        elif r.op == Op.READ:
            cur[2].append(r)
    return out


def stored_report(run: StoredRun, records: list[Record], loaded: list[int], *,
                  waves: str | None = None) -> dict:
    """Check the records of :func:`stored_job` against golden and the cycle model.

    Returns ``{"networks": [record], "failure": first mismatch or None,
    "total_sim_cycles", "total_wall_s"}``; the network record holds one record per sample
    (step cycles, the hardware ``counters`` read back and the cycle model's, events, outputs
    kept below ``keep_outputs`` as ``[step, id]``, state checks, cycle counts of
    clear/load/run and the harness's wall time of the run).
    """
    g = run.config.geometry
    x = np.asarray(run.inputs, dtype=bool)
    B, steps = x.shape[:2]
    t_gold = time.perf_counter()
    gold = GoldenCore(run.config).run(x, record=("u", "v"))
    gold_s = time.perf_counter() - t_gold
    end = next((r for r in records if r.op == Op.END), None)
    per_sample = _samples(records)
    samples, first = [], None
    for b, (marks, step_recs, reads) in enumerate(per_sample):
        sched = schedule(run.config, x[b], gold.sample(b))
        tag = f"{run.label} sample {b}"
        results, kept, state_checks, extra = [], [], 0, []
        reads = iter(reads)
        for t, rec in enumerate(step_recs):
            res = rec.step
            results.append(res)
            kept += [[t, e[0]] for e in res.events if e[0] < run.keep_outputs]
            first = step_mismatch(t, None, None, sched[t], res, None, None,
                                  start_cycle=rec.start_cycle, seed=tag, waves=waves,
                                  ns_per_cycle=CLOCK_NS, geometry=g)
            read = next(reads, None) if _state_read(t, steps, run.state_every) else None
            for mem, a, n in run.reads_after(b, t):
                got = next(reads, None)
                if got is not None:
                    extra.append({"step": t, "mem": mem, "first": a,
                                  "words": [int(w) for w in got.words]})
            if first is None and read is not None:
                u, v = decode_state(g, read.words)
                state_checks += 1
                first = state_mismatch(t, gold.u[b, t], gold.v[b, t], u, v,
                                       start_cycle=rec.start_cycle, seed=tag, waves=waves,
                                       ns_per_cycle=CLOCK_NS, geometry=g)
            if first:
                break
        got = next(reads, None)
        counters = dict(zip(COUNTERS, (int(w) for w in got.words))) if got else {}
        model = counter_totals(sched[:len(results)])
        if first is None:
            first = counter_mismatch(model, counters, what=f"{tag}, after {steps} steps",
                                     seed=tag, waves=waves)
        stop = marks.get("end") or (step_recs[-1] if step_recs else marks["start"])
        if first is None and (len(results) < steps or "end" not in marks):
            first = f"{tag}: harness stopped after {len(results)} of {steps} steps"
        cyc = {k: marks[k].cycle if k in marks else stop.cycle for k in MARKS}
        wall = {k: (marks[k].wall_ns if k in marks else stop.wall_ns) * 1e-9 for k in MARKS}
        samples.append({
            "cycles": [r.cycles for r in results],
            "counters": counters, "model_counters": model,
            "events": sum(len(r.events) for r in results),
            "outputs": kept, "state_checks": state_checks, "loaded_words": loaded[b],
            "reads": extra,
            "clear_cycles": cyc["cleared"] - cyc["start"],
            "load_cycles": cyc["loaded"] - cyc["cleared"],
            "sim_cycles": cyc["end"] - cyc["start"], "run_cycles": cyc["end"] - cyc["loaded"],
            "run_wall_s": wall["end"] - wall["loaded"], "wall_s": wall["end"] - wall["start"],
        })
        if first:
            break
    if first is None and len(samples) < B:
        first = f"{run.label}: harness stopped after {len(samples)} of {B} samples"
    c0 = per_sample[0][0]["start"] if per_sample else None
    rec = {
        "label": run.label, "seed": run.label, "steps": steps, "samples": samples,
        "mutation": None, "mismatch": first, "golden_s": gold_s,
        "describe": f"{run.label}: {B} samples x {steps} steps, geometry {g.name}",
        "sim_cycles": (end.cycle - c0.cycle) if end and c0 else 0,
        "wall_s": (end.wall_ns - c0.wall_ns) * 1e-9 if end and c0 else 0.0,
    }
    return {"geometry": g.name, "networks": [rec], "failure": first, "waves": waves,
            "total_sim_cycles": end.cycle if end else 0,
            "total_wall_s": end.wall_ns * 1e-9 if end else 0.0}


def run_speed(records: list[Record]) -> tuple[int, float]:
    """Simulated cycles and harness wall seconds of the samples' runs (after each load)."""
    cycles, wall = 0, 0
    for marks, _, _ in _samples(records):
        if "end" in marks:
            cycles += marks["end"].cycle - marks["loaded"].cycle
            wall += marks["end"].wall_ns - marks["loaded"].wall_ns
    return cycles, wall * 1e-9


def run_stored_on(run_job, harness: str, config: CoreConfig, inputs, *, name: str, label: str,
                  state_every: int, keep_outputs: int, waves, fault, reads=(),
                  opt: str | None = None) -> dict:
    """Build the job of a stored run, run it with ``run_job`` (``run_job_fast`` or
    ``run_job_cocotb``, C++ profile ``opt``), check it; the report names the ``harness`` and
    its error if any."""
    x = np.asarray(inputs, dtype=bool)
    run = StoredRun(config, x[None] if x.ndim == 2 else x, label, int(state_every),
                    int(keep_outputs), tuple(tuple(int(v) for v in r) for r in reads))
    job, loaded = stored_job(run)
    records, info = run_job(config.geometry, job, name=name, waves=waves, fault=fault, opt=opt)
    report = stored_report(run, records, loaded, waves=info["waves"])
    if info["error"]:
        report["failure"] = f"{label}: {harness} harness: {info['error']}"
    report["build_s"], report["wall_s"], report["harness"] = (info["build_s"], info["wall_s"],
                                                              harness)
    return report


def run_many_on(run_job, geometry, runs: list[StoredRun], *, name: str, fault=None,
                waves=False, opt: str | None = None) -> list[dict]:
    """Every run of ``runs`` (one geometry) in **one** job and one harness start: each run
    loads only the words that differ from the image before it.  Returns one
    :func:`stored_report` per run (a run the harness did not finish reports so)."""
    job, previous, loaded, spans = Job(), None, [], []
    for run in runs:
        _, n = stored_job(run, previous, job)
        previous = run.config.to_words()
        loaded.append(n)
        spans.append(np.asarray(run.inputs).shape[0])
    records, info = run_job(geometry, job, name=name, waves=waves, fault=fault, opt=opt)
    starts = [i for i, r in enumerate(records)
              if r.op == Op.MARK and MARKS[r.tag] == "start"] + [len(records)]
    reports, first = [], 0
    for run, n, samples in zip(runs, loaded, spans):
        lo, hi = starts[min(first, len(starts) - 1)], starts[min(first + samples,
                                                                  len(starts) - 1)]
        report = stored_report(run, records[lo:hi], n, waves=info["waves"])
        if info["error"] and report["failure"]:          # the run the harness stopped in
            report["failure"] += f" (harness: {info['error']})"
        report["build_s"], report["wall_s"] = info["build_s"], info["wall_s"]
        reports.append(report)
        first += samples
    return reports
