"""cocotb regression of the Verilog core (run by :func:`neurocore.sim.verilator.run_regression`).

One cocotb test, :func:`regression`, runs every network of the job file named by
``$NEUROCORE_JOB`` in one simulation.  A job entry is a dict:

- ``seed``, ``steps``: the network and raster ``random_network(seed, geometry, steps=steps)``;
- ``generator`` (optional): ``"random"`` (default) or ``"forwarding"``
  (:data:`neurocore.golden.random_networks.GENERATORS`);
- ``label`` (optional): copied into the network's record of the report;
- ``record_only`` (optional): a mismatch is recorded but does not stop the run (mutant runs);
- ``mutation`` (optional): ``"weight"``, ``"delay"`` or ``"threshold"``: after loading the
  image, one word is corrupted through the configuration port (:mod:`neurocore.sim.mutations`)
  and a mismatch against the uncorrupted golden run **must** be reported (when no corruption
  of that kind changes the network's golden run, the next seeds are tried);
- ``out_ready`` (optional): probability of ``out.ready`` per cycle (seeded backpressure); the
  step lengths must then equal the cycle model plus the stall cycles.

An entry with ``npz`` instead of ``seed`` runs a stored network on a batch of samples
(:func:`run_batch`): the file holds the packed memories (``words_<memory>``) and the raster
``inputs`` (batch, steps, n_axons); ``state_every`` (0 = only after each sample's last step)
sets how often u and v of every compartment are read back; ``keep_outputs`` (default 0)
records the events with an id below it, per sample, as ``[step, id]`` pairs.

For every network: ``ctrl.clear``, load the image through the configuration port (only the
words that differ from the image loaded before), then per step push the host spikes, run the
step, read u and v of every compartment back, and compare with the golden model and the
cycle model (:func:`neurocore.sim.check.step_mismatch`).  The first unexpected mismatch stops
the run; the report (JSON, path in the job) names step, cycle, compartment, field, expected
and actual values, seed and wave file.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from ..golden.core import GoldenCore
from ..spec.cycle_model import counter_totals, schedule
from ..golden.network import CONFIG_MEMORIES, CoreConfig
from ..golden.random_networks import GENERATORS
from ..spec.geometry import CoreGeometry
from .check import counter_mismatch, state_mismatch, step_mismatch
from .driver import INPUT_PORTS, OUTPUT_PORTS, CoreDriver
from .mutations import NoMutation, find_mutation


#: Clock period of the simulation (ns).
CLOCK_NS = 10
#: A mutation job moves on to the next seeds when no corruption of its kind changes the run.
MUTATION_SEED_TRIES = 20


def backpressure(seed: int, step: int, cycle: int, p: float) -> bool:
    """Seeded ``out.ready`` of one cycle of one step (the same for the RTL and the model)."""
    return np.random.default_rng([seed, step, cycle]).random() < p


class CocotbBackend:
    """Driver backend on cocotb handles; one tick = the next falling clock edge."""

    def __init__(self, dut):
        self.clk = dut.clk
        self.h = {name: getattr(dut, name.replace(".", "__")) for name in INPUT_PORTS + OUTPUT_PORTS}
        self.cache: dict[str, int] = {}

    async def tick(self):
        await FallingEdge(self.clk)

    def get(self, name: str) -> int:
        return int(self.h[name].value)

    def set(self, name: str, value: int):
        value = int(value)
        if self.cache.get(name) != value:
            self.h[name].value = value
            self.cache[name] = value


@cocotb.test()
async def regression(dut):
    with open(os.environ["NEUROCORE_JOB"]) as f:
        job = json.load(f)
    geo = job["geometry"]
    g = CoreGeometry.preset(geo) if isinstance(geo, str) else CoreGeometry(**geo)
    waves = job.get("waves")
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    backend = CocotbBackend(dut)
    drv = CoreDriver(backend, g)
    for _ in range(2):
        await drv.tick()
    dut.rst.value = 0
    await drv.tick()

    report = {"geometry": g.name, "networks": [], "failure": None, "waves": waves}
    previous = None
    t_start = time.perf_counter()
    seed = None
    try:
        for entry in job["networks"]:
            if "npz" in entry:
                seed = entry.get("label", entry["npz"])
                rec, previous = await run_batch(drv, g, entry, previous, waves)
            else:
                seed = int(entry["seed"])
                rec, previous = await run_network(drv, g, entry, previous, waves)
            report["networks"].append(rec)
            seed = rec["seed"]
            if entry.get("record_only"):
                continue
            expected_mismatch = rec["mutation"] is not None
            if bool(rec["mismatch"]) != expected_mismatch:
                report["failure"] = (rec["mismatch"] or f"seed {seed}: corrupted "
                                     f"{rec['mutation']} was not detected")
                break
    except Exception as e:  # report, then fail the cocotb test
        report["failure"] = f"seed {seed}: {type(e).__name__}: {e}"
        raise
    finally:
        report["total_sim_cycles"] = drv.cycle
        report["total_wall_s"] = time.perf_counter() - t_start
        with open(job["report"], "w") as f:
            json.dump(report, f, indent=1)
    assert report["failure"] is None, report["failure"]


async def run_network(drv: CoreDriver, g: CoreGeometry, entry: dict, previous, waves):
    """Run one job entry; return its record and the image the core now holds."""
    seed, steps = int(entry["seed"]), int(entry["steps"])
    generator = GENERATORS[entry.get("generator", "random")]
    mutation = None
    for attempt in range(MUTATION_SEED_TRIES if entry.get("mutation") else 1):
        net = generator(seed + attempt, g, steps=steps)
        x = net.inputs[0]
        if entry.get("mutation"):
            try:
                mutation = find_mutation(net.config, x, entry["mutation"], seed + attempt)
            except NoMutation:
                continue
        break
    else:
        raise NoMutation(f"seeds {seed}..{seed + attempt}: no {entry['mutation']} corruption "
                         f"changes the golden run")
    seed += attempt
    gold = GoldenCore(net.config).run(x, record=("u", "v"))
    ready_rate = entry.get("out_ready")
    out_ready = None
    if ready_rate is not None:
        def out_ready(t, c, _seed=seed, _p=float(ready_rate)):
            return backpressure(_seed, t, c, _p)
    sched = schedule(net.config, x, gold.spikes, out_ready=out_ready)
    words = net.config.to_words()

    t0 = time.perf_counter()
    c0 = drv.cycle
    await drv.clear()
    loaded = await drv.load(words, previous)
    previous = {k: v.copy() for k, v in words.items()}
    if mutation is not None:
        await drv.write(mutation.memory, mutation.address, mutation.word)
        previous[mutation.memory][mutation.address] = mutation.word
    await drv.zero_counters()
    first = None
    results = []
    for t in range(steps):
        await drv.send_spikes(np.flatnonzero(x[t]))
        res = await drv.run_step(None if out_ready is None else
                                 (lambda c, t=t: out_ready(t, c)))
        u, v = await drv.read_state()
        results.append(res)
        first = step_mismatch(t, gold.u[t], gold.v[t], sched[t], res, u, v,
                              start_cycle=drv.start_cycle, seed=seed, waves=waves,
                              ns_per_cycle=CLOCK_NS, k_u=g.k_u)
        if first:
            break
    counters = await drv.read_counters()
    if first is None:
        first = counter_mismatch(counter_totals(sched), counters, seed=seed, waves=waves,
                                 what=f"after {steps} steps")
    rec = {
        "label": entry.get("label", "random"),
        "seed": seed, "steps": steps, "describe": net.describe(), "loaded_words": loaded,
        "mutation": mutation.describe() if mutation else None,
        "mismatch": first, "cycles": [r.cycles for r in results],
        "stalls": sum(r.stalls for r in results),
        "sops": [s.sops for s in sched[:len(results)]],
        "forwards": sum(s.forwards for s in sched[:len(results)]),
        "counters": counters,
        "events": sum(len(r.events) for r in results),
        "sim_cycles": drv.cycle - c0, "wall_s": time.perf_counter() - t0,
    }
    return rec, previous


async def run_batch(drv: CoreDriver, g: CoreGeometry, entry: dict, previous, waves):
    """Run a stored network (``entry["npz"]``) on every sample of its raster.

    Per sample: ``ctrl.clear``, load (only changed words), then per step push the host spikes,
    run the step and compare its length and every output event with its cycle against the
    cycle model (:func:`~neurocore.sim.check.step_mismatch` without the state); u and v of every
    compartment are compared every ``state_every`` steps and after the last step.
    """
    label = entry.get("label", "batch")
    data = np.load(entry["npz"])
    words = {name: data[f"words_{name}"].astype(np.uint64) for name in CONFIG_MEMORIES}
    config = CoreConfig.from_words(g, words)
    x = data["inputs"].astype(bool)
    every = int(entry.get("state_every", 0))
    keep = int(entry.get("keep_outputs", 0))
    B, steps = x.shape[0], x.shape[1]
    t_gold = time.perf_counter()
    gold = GoldenCore(config).run(x, record=("u", "v"))
    gold_s = time.perf_counter() - t_gold
    samples, first = [], None
    t_all, c_all = time.perf_counter(), drv.cycle
    for b in range(B):
        sched = schedule(config, x[b], gold.spikes[b])
        c0, t0 = drv.cycle, time.perf_counter()
        await drv.clear()
        c_clear = drv.cycle
        loaded = await drv.load(words, previous)
        previous = {k: v.copy() for k, v in words.items()}
        await drv.zero_counters()
        c_run, t_run = drv.cycle, time.perf_counter()
        results, kept, state_checks = [], [], 0
        tag = f"{label} sample {b}"
        for t in range(steps):
            await drv.send_spikes(np.flatnonzero(x[b, t]))
            res = await drv.run_step()
            results.append(res)
            kept += [[t, e[0]] for e in res.events if e[0] < keep]
            first = step_mismatch(t, None, None, sched[t], res, None, None,
                                  start_cycle=drv.start_cycle, seed=tag, waves=waves,
                                  ns_per_cycle=CLOCK_NS, k_u=g.k_u)
            if first is None and ((every and (t + 1) % every == 0) or t == steps - 1):
                u, v = await drv.read_state()
                state_checks += 1
                first = state_mismatch(t, gold.u[b, t], gold.v[b, t], u, v,
                                       start_cycle=drv.start_cycle, seed=tag, waves=waves,
                                       ns_per_cycle=CLOCK_NS, k_u=g.k_u)
            if first:
                break
        run_cycles, run_wall = drv.cycle - c_run, time.perf_counter() - t_run
        counters = await drv.read_counters()
        if first is None:
            first = counter_mismatch(counter_totals(sched), counters, seed=tag, waves=waves,
                                     what=f"{tag}, after {steps} steps")
        samples.append({
            "cycles": [r.cycles for r in results],
            "counters": counters,
            "model_counters": counter_totals(sched[:len(results)]),
            "events": sum(len(r.events) for r in results),
            "outputs": kept, "state_checks": state_checks, "loaded_words": loaded,
            "clear_cycles": c_clear - c0, "load_cycles": c_run - c_clear,
            "sim_cycles": drv.cycle - c0, "run_cycles": run_cycles, "run_wall_s": run_wall,
            "wall_s": time.perf_counter() - t0,
        })
        if first:
            break
    rec = {
        "label": label, "seed": label, "steps": steps, "samples": samples, "mutation": None,
        "mismatch": first, "golden_s": gold_s,
        "describe": f"{label}: {B} samples x {steps} steps, geometry {g.name}",
        "sim_cycles": drv.cycle - c_all, "wall_s": time.perf_counter() - t_all,
    }
    return rec, previous
