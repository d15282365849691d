"""Cycle model of the RTL core: every step's length, output-event cycles and counters.

It steps the control registers of the schedule in :mod:`neurocore.spec.schedule` cycle by
cycle, as ``rtl/controller.py``, ``rtl/host_queue.py``, ``rtl/route_reader.py``,
``rtl/synapse_walker.py`` and ``rtl/dendrite.py`` do, but without data: which compartments
spike comes from the golden model.  Cycles of a step count from the cycle in which
``ctrl.start`` is accepted (cycle 0) to the DONE cycle (``cycles - 1``).

- UPDATE: the idle-skip scanner walks windows of ``SKIP_WINDOW`` groups and issues one
  needed group per cycle (a window without one costs a cycle), at least one cycle; a group
  is needed unless all its compartments were quiet after the last step (``u = 0``,
  ``bias_mant = 0``, ``v = 0`` or ``dv = 0`` with no periodic reset in the profile) and no
  synapse input lands on it now; in the
  first step after ``ctrl.clear`` every group is needed; DRAIN takes ``drain_cycles(g)``;
- HOST feeds one host spike per cycle while the walker accepts, and ends one cycle after the
  last one left (at least one cycle);
- an axon offered to the walker (by the host queue, the route reader or the chip's flit
  queue) is taken while its input FIFO holds fewer than ``AXON_PIPE_DEPTH`` axons and
  reaches the FIFO's head one cycle later;
- the walker holds one axon in its map register and one list in its list register; a list
  of ``L`` synapses is walked in ``ceil(L / k_s)`` cycles, and the next axon is looked up in
  the list's last cycle; an empty list leaves the map register at once;
- conv (``n_conv > 0``, spec §3.5, rtl/conv_walker.py): an axon whose map word has
  ``conv ≠ 0`` waits in the map register until 2 cycles after its lookup (descriptor read,
  window setup); it then needs the list stage if it has a dense list or a non-empty scatter,
  and its scatter (:func:`conv_cycles`: one chunk of up to ``k_s`` consecutive output
  channels of one position per cycle) follows its dense list's last cycle; the next axon is
  handed over in the scatter's last cycle;
- SPIKE: the route reader takes the first route list in one cycle, then offers one route per
  cycle (the next list is taken with the last route of a list); OUTPUT events leave when
  ``out.ready``; it ends when everything is idle, then DONE.

Synaptic operations are counted in the dendrite lanes' write-back stage (S2); ``forwards``
counts write-backs onto the entry that the same lane wrote in the cycle before.

:class:`CoreStep` holds one core's registers of one step and advances them a cycle at a
time; :func:`step_schedule` runs one alone, spec/chip_cycle_model.py runs the cores of a chip
in lockstep.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .schedule import (AXON_PIPE_DEPTH, CONV_SETUP, COUNTERS, SKIP_WINDOW, drain_cycles,
                       synapse_stages)

__all__ = ["StepSchedule", "CoreStep", "step_schedule", "schedule", "counter_totals", "conv_cycles"]


OUTPUT_KIND = 1   # RouteKind.OUTPUT (spec/words.py)
CONV, DEPTHWISE, BROADCAST = 0, 1, 2   # ConvKind (spec/words.py)


@dataclass
class StepSchedule:
    """Predicted timing and counters of one step (``counters`` keyed as ``COUNTERS``)."""

    step: int
    cycles: int
    events: list[tuple[int, int]] = field(default_factory=list)   # (output id, cycle)
    sops: int = 0
    forwards: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    #: (step, group) of every accumulator entry written in this step (input landing later)
    landings: set = field(default_factory=set)


class _Lists:
    """Read-only views of a config's lists (synapse map, synapses, axon map, routes)."""

    def __init__(self, config):
        g = config.geometry
        self.g = g
        sm, syn = config.mem["synapse_map"], config.mem["synapses"]
        self.base, self.length = sm["base"], sm["length"]
        self.target, self.delay = syn["target"], syn["delay"]
        am, rt = config.mem["axon_map"], config.mem["routes"]
        self.rbase, self.rlen = am["base"], am["length"]
        self.rkind, self.rtarget = rt["kind"], rt["target"]
        self.conv = sm["conv"] if g.n_conv else np.zeros(g.n_axons, dtype=np.int64)
        self.scatter = conv_cycles(config)
        self.n_active = config.n_active()       # the n_active register (spec §2.5)


def conv_cycles(config) -> dict[int, list[list[tuple[int, int]]]]:
    """Per axon with a non-empty scatter: its cycles, each the ``(kernel word, target)`` pairs
    issued in it (one chunk of up to ``k_s`` consecutive output channels of one position),
    in the spec's scatter order (y, x, kernel position for BROADCAST, co)."""
    g = config.geometry
    if not g.n_conv:
        return {}
    sm, conv = config.mem["synapse_map"], config.mem["conv"]
    out = {}
    for axon in np.flatnonzero(sm["conv"]):
        f = {k: int(v[int(sm["conv"][axon]) - 1]) for k, v in conv.items()}
        ci, iy, ix = (int(sm[k][axon]) for k in ("ci", "iy", "ix"))
        C, H, W, kh, kw = (f[k] for k in ("out_c", "out_h", "out_w", "kernel_h", "kernel_w"))
        s, pad, kind = 1 << f["stride_shift"], f["pad"], f["kind"]
        chans = [ci] if kind == DEPTHWISE else list(range(C))
        c_k = ci if kind == CONV else 0                               # the kernel of ci
        if kind == BROADCAST:                                         # every kernel position
            places = [(y, x, k // kw, k % kw) for y in range(H) for x in range(W)
                      for k in range(kh * kw)]
        else:
            places = [(y, x, iy + pad - y * s, ix + pad - x * s) for y in range(H)
                      for x in range(W) if 0 <= iy + pad - y * s < kh
                      and 0 <= ix + pad - x * s < kw]
        cycles = []
        for y, x, ky, kx in places:
            pairs = [(f["kernel_base"] + ((c_k * kh + ky) * kw + kx) * C + co,
                      f["out_base"] + (co * H + y) * W + x) for co in chans]
            cycles += [pairs[i:i + g.k_s] for i in range(0, len(pairs), g.k_s)]
        if cycles:
            out[int(axon)] = cycles
    return out


def update_scan(need: np.ndarray, groups: int, window: int) -> tuple[int, list[int]]:
    """The idle-skip scanner (rtl/idle_skip.py): UPDATE cycles and the groups it issues."""
    pos, cycles, issued = 0, 0, []
    while True:
        cycles += 1
        end = (pos // window + 1) * window
        hit = np.flatnonzero(need[pos:min(end, groups)])
        if hit.size:
            issued.append(pos + int(hit[0]))
            pos = issued[-1] + 1
        else:
            pos = end
        if pos >= groups:
            return cycles, issued


def group_need(config, u_prev, v_prev, landing_groups, lists: _Lists | None = None,
               ) -> np.ndarray:
    """Groups that need an update: not quiet after the last step (``u_prev``/``v_prev``, None
    right after ``ctrl.clear``) or with input landing now (``landing_groups``); every group
    when the geometry has no idle skip.  ``lists``: the config's :class:`_Lists`, if built."""
    g = config.geometry
    rows = g.bank_depth
    if u_prev is None or not g.idle_skip:
        return np.ones(rows, dtype=bool)
    cx = config.mem["compartments"]
    prof = config.mem["profiles"]
    holds = prof["dv"][cx["profile"]] == 0             # v stays (spec §2.5) ...
    if g.reset_bits:                                   # ... unless a periodic reset clears it
        holds &= prof["reset_interval"][cx["profile"]] == 0
    quiet = (np.asarray(u_prev) == 0) & (cx["bias_mant"] == 0) & ((np.asarray(v_prev) == 0)
                                                                  | holds)
    n_active = lists.n_active if lists is not None else config.n_active()
    quiet[min(n_active, g.n_compartments):] = True      # never updated
    need = ~quiet.reshape(rows, g.k_u).all(axis=1)
    need[list(landing_groups)] = True
    return need


class CoreStep:
    """One core's registers during one step, advanced one cycle at a time by :meth:`cycle`
    (the schedule of the module docstring).  :func:`step_schedule` runs one alone; the chip
    model (:mod:`neurocore.spec.chip_cycle_model`) runs several in lockstep, giving each the
    chip's signals of the cycle: output ready, the router's ``flit_out.ready`` and the head of
    the core's queue of remote flits.  Arguments as :func:`step_schedule`; ``index``: the
    core's index on a chip (None: a single core, whose AXON routes are all local)."""

    def __init__(self, config, spikes, host_axons, step: int = 0, *, need=None,
                 lists: _Lists | None = None, index: int | None = None):
        L = self.L = lists or _Lists(config)
        g = L.g
        self.index = index
        self.rcore = config.mem["routes"]["core"] if index is not None else None
        self.step, self.slot, self.D = step, step % g.n_delay_slots, g.n_delay_slots
        n = g.n_compartments
        n_active = min(L.n_active, n)
        groups = min(-(-L.n_active // g.k_u), g.bank_depth)
        need = np.ones(g.bank_depth, dtype=bool) if need is None else need
        scan, issued = update_scan(need, groups, min(SKIP_WINDOW, g.bank_depth))
        self.updates = sum(min(g.k_u, n_active - r * g.k_u) for r in issued)
        self.update = scan + drain_cycles(g)
        self.n_active = n_active
        self.host = deque(int(a) for a in host_axons if 0 <= int(a) < g.n_axons)
        fired = np.flatnonzero(np.asarray(spikes, dtype=bool)[:n] & (L.rlen[:n] > 0))
        self.queue = deque(sorted(fired.tolist(), key=lambda cx: (cx % g.k_u, cx)))
        self.c = 1 + self.update            # the first HOST cycle
        self.phase = "HOST"
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.events: list[tuple[int, int]] = []
        # walker: input FIFO, map register (axon, bad) and its age, list register (ptr, rem)
        # and the scatter (cycles left); S1 and S2 lane entries
        self.pipe: deque = deque()
        self.m_axon, self.m_age, self.l_ptr, self.l_rem = None, 0, 0, 0
        self.scatter: deque = deque()
        # the synapse pipeline: the walker's words, S0 … S1 (entry read), S2 (write)
        self.s_pipe: deque = deque([[] for _ in range(synapse_stages(g) - 1)])
        self.s2: list = []
        # the writes of the cycles a read misses (1, and 2 with read_regs), per lane
        self.prev_written: deque = deque(maxlen=1 + g.read_regs)
        self.forwards = 0
        self.landings: set = set()
        # route reader
        self.r_route, self.r_ptr, self.r_rem = False, 0, 0

    def idle(self) -> bool:
        """SPIKE with nothing left to deliver (a chip core: no remote flit queued either)."""
        return (self.phase == "SPIKE" and not self.queue and not self.r_route
                and not self.pipe and self.m_axon is None and self.l_rem == 0 and not self.scatter
                and not any(self.s_pipe) and not self.s2)

    def out_done(self) -> bool:
        """SPIKE, spike queue empty and route reader idle: the last output event has left."""
        return self.phase == "SPIKE" and not self.queue and not self.r_route

    def cycle(self, out_ready: Callable[[int], bool] | None = None, flit_ready: bool = True,
              flit_head: int | None = None) -> tuple[tuple[int, int] | None, bool]:
        """One cycle: ``out_ready(cycle)`` (always ready when None), ``flit_ready`` (the
        router takes a flit), ``flit_head`` (the axon at the head of the remote-flit queue,
        None when empty).  Returns ``(flit offered (core, axon) or None, head flit taken)``."""
        L, g = self.L, self.L.g
        k_s, slot, D = g.k_s, self.slot, self.D
        c = self.c
        # ---- combinational ----------------------------------------------------------
        m_axon = self.m_axon
        m_len = 0 if m_axon is None or m_axon[1] else int(L.length[m_axon[0]])
        l_last = self.l_rem > 0 and self.l_rem <= k_s
        emit = bool(self.scatter) and self.l_rem == 0
        if g.n_conv:
            setup = (m_axon is None or m_axon[1] or not L.conv[m_axon[0]]
                     or self.m_age >= CONV_SETUP)
            m_conv = m_axon is not None and not m_axon[1] and m_axon[0] in L.scatter
            # the list stage is free, or in its last cycle (dense list or scatter)
            free = ((self.l_rem == 0 or l_last) and not self.scatter
                    or emit and len(self.scatter) == 1)
            m_consume = m_axon is not None and setup and (free or (m_len == 0 and not m_conv))
        else:
            m_conv = False
            m_consume = m_axon is not None and (self.l_rem == 0 or l_last or m_len == 0)
        ready = m_axon is None or m_consume            # the map register takes the head
        w_rdy = len(self.pipe) < AXON_PIPE_DEPTH       # the input FIFO takes the offer
        offer = None                                   # (axon, bad) offered to the walker
        flit = None                                    # (core, axon) offered to the router
        take = advance = False
        spike = self.phase == "SPIKE"
        if spike and flit_head is not None:            # remote flits go first (rtl/core.py)
            offer = (flit_head, False)
        if self.phase == "HOST":
            if self.host:
                offer = (self.host[0], False)
        elif self.r_route:
            kind, target = int(L.rkind[self.r_ptr]), int(L.rtarget[self.r_ptr])
            if kind == OUTPUT_KIND:
                if out_ready is None or out_ready(c):
                    self.events.append((target, c))
                    advance = True
                else:
                    self.counts["stalls"] += 1
            else:
                bad = target >= g.n_axons
                core = self.index
                if self.index is not None:
                    core = int(self.rcore[self.r_ptr])
                    bad = bad or core >= g.n_cores
                if not bad and core != self.index:
                    flit = (core, target)
                    advance = flit_ready
                elif flit_head is None:
                    offer = (target, bad)
                    advance = w_rdy
            if advance and self.r_rem == 1:
                take = bool(self.queue)
        else:
            take = bool(self.queue)
        idle = self.idle() and flit_head is None
        self.counts["host_cycles" if self.phase == "HOST" else "spike_cycles"] += 1
        self.counts["sops"] += len(self.s2)
        # ---- registers ----------------------------------------------------------------
        s2_next = self.s_pipe.popleft()
        for lane, entry in self.s2:
            if any(w.get(lane) == entry for w in self.prev_written):
                self.forwards += 1
        self.prev_written.append(dict(self.s2))
        l_ptr, l_rem = self.l_ptr, self.l_rem
        s1 = [(b, _entry(L, l_ptr + ((b - l_ptr) % k_s), slot, D))
              for b in range(k_s) if l_rem and (b - l_ptr) % k_s < l_rem]
        if emit:                      # the scatter's chunk: word a on lane a mod k_s
            s1 = sorted((a % k_s, _entry(L, a, slot, D, target))
                        for a, target in self.scatter.popleft())
        for _, (s_x, target) in s1:
            self.landings.add((self.step + 1 + (s_x - slot - 1) % D, target // g.k_u))
        self.s_pipe.append(s1)
        self.s2 = s2_next
        if l_rem:
            self.l_ptr, self.l_rem = l_ptr + k_s, max(l_rem - k_s, 0)
        if m_consume and m_len:
            self.l_ptr, self.l_rem = int(L.base[m_axon[0]]), m_len
        if m_consume and m_conv:
            self.scatter = deque(L.scatter[m_axon[0]])
        self.m_age = 0 if ready else self.m_age + 1
        took_flit = spike and flit_head is not None and w_rdy
        if ready:
            self.m_axon = self.pipe.popleft() if self.pipe else None
        if offer is not None and w_rdy:
            self.pipe.append(offer)
            if self.phase == "HOST":
                self.host.popleft()
        if spike and self.r_route and advance:
            if self.r_rem == 1:
                self.r_route = False
            else:
                self.r_ptr, self.r_rem = self.r_ptr + 1, self.r_rem - 1
        if take:
            cx = self.queue.popleft()
            self.r_route, self.r_ptr, self.r_rem = True, int(L.rbase[cx]), int(L.rlen[cx])
        self.c = c + 1
        if self.phase == "HOST" and not self.host and not (offer is not None and w_rdy):
            self.phase = "SPIKE"
        self.last_idle = idle
        return flit, took_flit

    def result(self, cycles: int) -> StepSchedule:
        """The step's schedule when it ends with ``cycles`` cycles (its DONE cycle last)."""
        counts = self.counts
        counts.update(steps=1, cycles=cycles, update_cycles=self.update, updates=self.updates,
                      skipped=self.n_active - self.updates)
        return StepSchedule(step=self.step, cycles=cycles, events=self.events,
                            sops=counts["sops"], forwards=self.forwards, counters=counts,
                            landings=self.landings)


def step_schedule(config, spikes: np.ndarray, host_axons, step: int = 0, *,
                  need: np.ndarray | None = None,
                  out_ready: Callable[[int], bool] | None = None, lists: _Lists | None = None,
                  ) -> StepSchedule:
    """Schedule of one step: ``spikes`` (bool, n_compartments) of this step's UPDATE,
    ``host_axons`` the step's host spikes in arrival order (ids ``>= n_axons`` are dropped at
    the input), ``need`` the groups to update (:func:`group_need`; all when None),
    ``out_ready(cycle)`` the output handshake (always ready when None)."""
    core = CoreStep(config, spikes, host_axons, step, need=need, lists=lists)
    while True:
        core.cycle(out_ready)
        if core.last_idle:
            return core.result(core.c + 1)


def _entry(L: _Lists, address: int, slot: int, D: int, target: int | None = None,
           ) -> tuple[int, int]:
    """Accumulator entry ``((t+1+delay) mod D, target)`` of synapse word ``address`` (the
    word's own target, or ``target`` for a conv kernel word)."""
    return (int(slot + 1 + L.delay[address]) % D,
            int(L.target[address]) if target is None else int(target))


def schedule(config, inputs: np.ndarray, gold=None, *,
             out_ready: Callable[[int, int], bool] | None = None) -> list[StepSchedule]:
    """Schedules of every step of one sample, from ``ctrl.clear`` on.

    ``inputs``: (steps, n_axons) 0/1 raster (host spikes sent in ascending axon order);
    ``gold``: the golden model's run of this sample (``spikes``, ``u``, ``v`` of shape
    (steps, n_compartments)), computed when None;
    ``out_ready(step, cycle)``: output handshake (always ready when None).
    """
    x = np.asarray(inputs)
    if gold is None:
        from ..golden.core import GoldenCore
        gold = GoldenCore(config).run(x[None], record=("u", "v")).sample(0)
    lists = _Lists(config)
    out, landing = [], set()
    for t in range(x.shape[0]):
        need = group_need(config, None if t == 0 else gold.u[t - 1],
                          None if t == 0 else gold.v[t - 1],
                          {grp for s, grp in landing if s == t}, lists)
        sched = step_schedule(config, gold.spikes[t], np.flatnonzero(x[t]), step=t, need=need,
                              lists=lists, out_ready=None if out_ready is None else
                              (lambda cyc, t=t: out_ready(t, cyc)))
        landing = {(s, grp) for s, grp in landing if s > t} | sched.landings
        out.append(sched)
    return out


def counter_totals(steps: list[StepSchedule]) -> dict[str, int]:
    """Sum of every counter over ``steps`` (what the RTL's counters read after them)."""
    return {name: sum(s.counters[name] for s in steps) for name in COUNTERS}
