"""Cycle model of the RTL chip (rtl/chip.py, rtl/router.py; docs/rtl.md §8): every step's
length, output-event cycles, the chip counters (``cycles``, ``flits``, ``flit_waits``) and
every core's counters.

Every core is the single core's :class:`~neurocore.spec.cycle_model.CoreStep`; the chip runs
them in lockstep from the common start cycle, with what joins them modelled cycle by cycle
from registered state, as the RTL computes it:

- each core's remote AXON routes leave as flits into the router's input FIFO of that core
  (``flit_out.ready`` = the FIFO's ``w_rdy``; a cycle with a flit offered and not taken is a
  ``flit_wait``);
- the router's output ``j`` takes the head of the lowest-numbered input FIFO whose head
  names core ``j`` when core ``j``'s remote-flit queue has room (one ``flit``);
- a core's walker in SPIKE takes the head of its remote-flit queue before any local route;
- the output merge passes core ``cur``'s events (``cur`` from 0; it moves on, one core per
  cycle, once core ``cur`` is in SPIKE with its spike queue empty and its route reader idle);
  the other cores' OUTPUT routes stall;
- the barrier: the step's last SPIKE cycle is the first in which every core is idle with an
  empty flit queue and every router FIFO is empty; all cores take DONE the cycle after.

The FIFOs are :class:`_Fifo`, Amaranth's ``SyncFIFOBuffered`` register by register (an entry
written at cycle ``c`` is readable at ``c + 2``).  Which compartments spike comes from
:class:`~neurocore.golden.chip.GoldenChip`; a core's idle skip sees the landings of
everything its own walker delivered, remote flits included.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .cycle_model import CoreStep, StepSchedule, _Lists, counter_totals, group_need
from .schedule import FLIT_IN_DEPTH, ROUTER_FIFO_DEPTH

__all__ = ["ChipStepSchedule", "chip_schedule", "chip_totals", "CHIP_COUNTERS"]

#: The chip's counter outputs (rtl/chip.py).
CHIP_COUNTERS = ("cycles", "flits", "flit_waits")


class _Fifo:
    """``amaranth.lib.fifo.SyncFIFOBuffered(depth)``: an inner queue of ``depth - 1`` entries
    and an output register (``depth == 1``: the output register alone)."""

    def __init__(self, depth: int):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"FIFO depth must be a positive integer, not {depth!r}")
        self.depth = depth
        self.inner: deque = deque()
        self.head = None                       # the output register (None: r_rdy low)

    def w_rdy(self) -> bool:
        return self.head is None if self.depth == 1 else len(self.inner) != self.depth - 1

    def level(self) -> int:
        return len(self.inner) + (self.head is not None)

    def tick(self, w_en: bool, w_data, r_en: bool) -> None:
        do_write, do_read = w_en and self.w_rdy(), r_en and self.head is not None
        if self.depth == 1:
            if do_read:
                self.head = None
            if do_write:
                self.head = w_data
            return
        if self.inner and (self.head is None or r_en):
            self.head = self.inner.popleft()
        elif r_en:
            self.head = None
        if do_write:
            self.inner.append(w_data)


@dataclass
class ChipStepSchedule:
    """Predicted timing and counters of one chip step: its length, the chip's output events
    ``(id, cycle)``, the flits and flit waits, and every core's :class:`StepSchedule`."""

    step: int
    cycles: int
    events: list[tuple[int, int]] = field(default_factory=list)
    flits: int = 0
    flit_waits: int = 0
    cores: list[StepSchedule] = field(default_factory=list)


def chip_step(chip, cores: list[CoreStep], *, out_ready: Callable[[int], bool] | None = None,
              flit_depth: int = FLIT_IN_DEPTH, router_depth: int = ROUTER_FIFO_DEPTH,
              ) -> ChipStepSchedule:
    """Run the cores of one step in lockstep to the barrier (module docstring)."""
    n = len(cores)
    router = [_Fifo(router_depth) for _ in range(n)]
    queue = [_Fifo(flit_depth) for _ in range(n)]
    cur, flits, waits = 0, 0, 0
    c = min(core.c for core in cores)
    while True:
        active = [core.c == c for core in cores]
        last = (all(a and core.idle() and q.level() == 0
                    for a, core, q in zip(active, cores, queue))
                and all(f.level() == 0 for f in router))
        out_done = [a and core.out_done() for a, core in zip(active, cores)]
        grant = {}                                       # router output j <- input i
        for j in range(n):
            i = next((i for i, f in enumerate(router) if f.head is not None and f.head[0] == j),
                     None)
            if i is not None:
                grant[j] = i
        heads = [f.head for f in router]
        r_en = [False] * n
        for j, i in grant.items():
            r_en[i] = queue[j].w_rdy()
            flits += r_en[i]
        offered, took = [None] * n, [False] * n
        for k, core in enumerate(cores):
            if active[k]:
                ready = (lambda cyc, k=k: cur == k and (out_ready is None or out_ready(cyc)))
                offered[k], took[k] = core.cycle(ready, router[k].w_rdy(), queue[k].head)
                waits += offered[k] is not None and not router[k].w_rdy()
        for i, f in enumerate(router):
            f.tick(offered[i] is not None, offered[i], r_en[i])
        for j, q in enumerate(queue):
            q.tick(j in grant, heads[grant[j]][1] if j in grant else None, took[j])
        if cur < n and out_done[cur]:
            cur += 1
        if last:
            break
        c += 1
    cycles = c + 2
    scheds = [core.result(cycles) for core in cores]
    events = sorted((e for s in scheds for e in s.events), key=lambda e: e[1])
    return ChipStepSchedule(step=cores[0].step, cycles=cycles, events=events, flits=flits,
                            flit_waits=waits, cores=scheds)


def chip_schedule(chip, inputs: np.ndarray, gold=None, *,
                  out_ready: Callable[[int, int], bool] | None = None, ready_pattern=None,
                  flit_depth: int = FLIT_IN_DEPTH, router_depth: int = ROUTER_FIFO_DEPTH,
                  ) -> list[ChipStepSchedule]:
    """Schedules of every step of one sample on the chip ``chip`` (a
    :class:`~neurocore.golden.chip.ChipConfig`), from ``ctrl.clear`` on.

    ``inputs``: (steps, logical n_axons) 0/1 raster (host spikes sent in ascending logical
    axon order, each to every copy); ``gold``: :class:`GoldenChip`'s run of this sample
    (``spikes``, ``u``, ``v``, logical order), computed when None; ``out_ready(step, cycle)``:
    the output handshake (always ready when None); ``ready_pattern``: instead, the C++
    harness's READY bits (taken cyclically, one per step cycle, continuing across steps); the
    FIFO depths as :class:`Chip`'s.
    """
    bits = None if ready_pattern is None or not len(ready_pattern) else \
        np.asarray(ready_pattern, dtype=bool)
    start = 0                                   # the pattern's position at the step's start
    x = np.asarray(inputs, dtype=bool)
    if gold is None:
        from ..golden.chip import GoldenChip
        gold = GoldenChip(chip).run(x, record=("u", "v"))
    g = chip.chip.core
    lists = [_Lists(cfg) for cfg in chip.cores]
    landing = [set() for _ in chip.cores]
    out = []

    def local(a, cxs):
        full = np.zeros(g.n_compartments, dtype=np.asarray(a).dtype)
        full[:cxs.size] = a[cxs]
        return full

    for t in range(x.shape[0]):
        cores = []
        for k, (cfg, cxs) in enumerate(zip(chip.cores, chip.compartments)):
            need = group_need(cfg, None if t == 0 else local(gold.u[t - 1], cxs),
                              None if t == 0 else local(gold.v[t - 1], cxs),
                              {grp for s, grp in landing[k] if s == t}, lists[k])
            cores.append(CoreStep(cfg, local(gold.spikes[t], cxs),
                                  np.flatnonzero(x[t][chip.axons[k]]), t, need=need,
                                  lists=lists[k], index=k))
        if bits is not None:
            ready = lambda cyc, s=start: bool(bits[(s + cyc) % bits.size])   # noqa: E731
        else:
            ready = None if out_ready is None else (lambda cyc, t=t: out_ready(t, cyc))
        sched = chip_step(chip, cores, flit_depth=flit_depth, router_depth=router_depth,
                          out_ready=ready)
        if bits is not None:
            start = (start + sched.cycles) % bits.size
        for k, s in enumerate(sched.cores):
            landing[k] = {(st, grp) for st, grp in landing[k] if st > t} | s.landings
        out.append(sched)
    return out


def chip_totals(steps: list[ChipStepSchedule]) -> dict:
    """The chip counters summed over ``steps`` and every core's counters
    (``{"cycles", "flits", "flit_waits", "cores": [per-core counters]}``)."""
    n = len(steps[0].cores) if steps else 0
    return {"cycles": sum(s.cycles for s in steps), "flits": sum(s.flits for s in steps),
            "flit_waits": sum(s.flit_waits for s in steps),
            "cores": [counter_totals([s.cores[k] for s in steps]) for k in range(n)]}
