"""Host-side driver of the RTL neurocore, shared by the Amaranth simulator and cocotb.

The driver speaks to the core's ports (docs/rtl.md) through a tiny backend with three
operations: ``await tick()`` (advance to the middle of the next clock cycle: every register
has taken its new value and the combinational outputs have settled), ``get(name)`` and
``set(name, value)`` on port names written ``group.member`` (e.g. ``"cfg.valid"``).  The same
coroutines therefore run under Amaranth's simulator (:mod:`neurocore.sim.pysim`) and under
cocotb + Verilator (:mod:`neurocore.sim.cocotb_neurocore`).

Protocol of one cycle: read the outputs, then set the inputs; a handshake (``valid & ready``)
happens at the next rising edge with the values read/set in this cycle.  Cycle numbers of a
step count from the cycle in which ``ctrl.start`` is accepted (cycle 0) to the cycle in which
``ctrl.done`` is high; the step's length is ``done_cycle + 1`` (docs/rtl.md §Schedule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ..golden.arith import current_from_pattern
from ..golden.network import CoreConfig, config_memory_names
from ..spec.geometry import CoreGeometry
from ..spec.schedule import COUNTERS, MEMORY_INDEX, register_index
from ..spec.words import memories, unpack

__all__ = ["CoreDriver", "StepResult", "INPUT_PORTS", "OUTPUT_PORTS", "decode_state"]

#: Ports the driver sets (``group.member``) ...
INPUT_PORTS = ("cfg.valid", "cfg.mem", "cfg.addr", "cfg.write", "cfg.wdata", "ctrl.start",
               "ctrl.clear", "ctrl.error_clear", "inp.valid", "inp.payload", "out.ready")
#: ... and the ports it reads.
OUTPUT_PORTS = ("cfg.ready", "cfg.rdata", "cfg.rvalid", "ctrl.busy", "ctrl.done", "ctrl.step",
                "ctrl.error", "inp.ready", "out.valid", "out.payload")


@dataclass
class StepResult:
    """What one time step did: its length and its output events ``(id, cycle)`` in order."""

    step: int
    cycles: int
    events: list[tuple[int, int]] = field(default_factory=list)
    stalls: int = 0          # cycles with out.valid & ~out.ready


def decode_state(g: CoreGeometry, words) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of the ``state`` words read back (u decoded from its stored pattern)."""
    f = unpack(memories(g)["state"].layout, np.asarray(words, dtype=np.uint64))
    return current_from_pattern(f["u"], g), f["v"]


def _select(mem: str | int) -> int:
    """Memory select of a memory name (``spec.schedule.MEMORY_INDEX``) or a select value."""
    return mem if isinstance(mem, int) else MEMORY_INDEX[mem]


class CoreDriver:
    """Configure, run and read back one core through a backend (see the module docstring).

    ``max_cycles`` bounds every wait so that a hung core fails instead of blocking.
    """

    def __init__(self, backend, geometry: CoreGeometry, *, max_cycles: int = 1_000_000):
        self.bus = backend
        self.g = geometry
        self.max_cycles = max_cycles
        self.cycle = 0                       # cycles since the driver started
        for name in INPUT_PORTS:
            if name != "out.ready":
                self.bus.set(name, 0)
        self.bus.set("out.ready", 1)

    async def tick(self):
        await self.bus.tick()
        self.cycle += 1

    # ---- configuration port ------------------------------------------------------------
    async def write(self, mem: str | int, addr: int, word: int):
        """Write one word (waits for ``cfg.ready``); ``mem``: name or select value."""
        await self._wait("cfg.ready")
        b = self.bus
        b.set("cfg.valid", 1)
        b.set("cfg.mem", _select(mem))
        b.set("cfg.addr", addr)
        b.set("cfg.write", 1)
        b.set("cfg.wdata", int(word))
        await self.tick()
        b.set("cfg.valid", 0)
        b.set("cfg.write", 0)

    async def read_many(self, mem: str | int, addrs: Iterable[int]) -> list[int]:
        """Read words back-to-back (one per cycle; each arrives one cycle later)."""
        await self._wait("cfg.ready")
        b = self.bus
        out = []
        addrs = list(addrs)
        b.set("cfg.mem", _select(mem))
        b.set("cfg.write", 0)
        for i, a in enumerate(addrs):
            b.set("cfg.valid", 1)
            b.set("cfg.addr", a)
            await self.tick()
            if not b.get("cfg.rvalid"):
                raise RuntimeError(f"cfg.rvalid low one cycle after reading {mem}[{a}]")
            if i + 1 < len(addrs):
                out.append(b.get("cfg.rdata"))
        b.set("cfg.valid", 0)
        if addrs:
            out.append(b.get("cfg.rdata"))
        return out

    async def read(self, mem: str, addr: int) -> int:
        return (await self.read_many(mem, [addr]))[0]

    async def load(self, words: dict[str, np.ndarray], previous: dict[str, np.ndarray] | None = None,
                   n_active: int | None = None) -> int:
        """Write a config image (``CoreConfig.to_words()``) and the ``n_active`` register
        (``CoreConfig.n_active()`` of the image when None); return the number of writes.

        With ``previous`` (the image the core holds now), only differing words are written.
        """
        if n_active is None:
            n_active = CoreConfig.from_words(self.g, words).n_active()
        await self.write("registers", register_index("n_active"), n_active)
        count = 1
        for name in config_memory_names(self.g):
            new = np.asarray(words[name], dtype=np.uint64)
            idx = (np.arange(new.size) if previous is None
                   else np.flatnonzero(new != np.asarray(previous[name], dtype=np.uint64)))
            for a in idx.tolist():
                await self.write(name, a, int(new[a]))
                count += 1
        return count

    async def read_counters(self) -> dict[str, int]:
        """Return every hardware counter (spec/schedule.py ``COUNTERS``)."""
        first = register_index(COUNTERS[0])
        values = await self.read_many("registers", range(first, first + len(COUNTERS)))
        return dict(zip(COUNTERS, values))

    async def zero_counters(self):
        """Write 0 into every hardware counter."""
        for name in COUNTERS:
            await self.write("registers", register_index(name), 0)

    async def clear(self):
        """Zero every state and accumulator entry and the step counter (``ctrl.clear``)."""
        await self._wait_idle()
        self.bus.set("ctrl.clear", 1)
        await self.tick()
        self.bus.set("ctrl.clear", 0)
        await self._wait_idle()

    async def read_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (u, v) of every compartment (u decoded from its stored pattern)."""
        return decode_state(self.g, await self.read_many("state", range(self.g.n_compartments)))

    # ---- spikes and steps ------------------------------------------------------------------
    async def send_spikes(self, axons: Iterable[int]):
        """Push host spikes (axon ids) into the input stream, one per cycle when ready."""
        b = self.bus
        for a in axons:
            b.set("inp.payload", int(a))
            b.set("inp.valid", 1)
            await self._wait("inp.ready")
            await self.tick()
        b.set("inp.valid", 0)

    async def run_step(self, out_ready: Callable[[int], bool] | None = None,
                       send_during: Iterable[int] = ()) -> StepResult:
        """Start one step and follow it to ``ctrl.done``; record output events with cycles.

        ``out_ready(cycle)`` gives ``out.ready`` for each cycle of the step (always 1 if None).
        ``send_during``: host spikes for the *next* step, pushed while this step runs.
        """
        await self._wait_idle()
        b = self.bus
        step = b.get("ctrl.step")
        b.set("ctrl.start", 1)
        self.start_cycle = self.cycle
        res = StepResult(step=step, cycles=0)
        pending = [int(a) for a in send_during]
        c = 0
        while True:
            ready = 1 if out_ready is None else int(bool(out_ready(c)))
            b.set("out.ready", ready)
            if pending:                 # accepted at the next edge when inp.ready is high
                b.set("inp.payload", pending[0])
                b.set("inp.valid", 1)
                if b.get("inp.ready"):
                    pending.pop(0)
            else:
                b.set("inp.valid", 0)
            if c > 0:
                if b.get("out.valid"):
                    if ready:
                        res.events.append((b.get("out.payload"), c))
                    else:
                        res.stalls += 1
                if b.get("ctrl.done"):
                    break
            await self.tick()
            if c == 0:
                b.set("ctrl.start", 0)
            c += 1
            if c > self.max_cycles:
                raise TimeoutError(f"step {step} did not finish within {self.max_cycles} cycles")
        b.set("out.ready", 1)
        res.cycles = c + 1
        await self.tick()
        b.set("inp.valid", 0)
        await self.send_spikes(pending)
        return res

    async def _wait(self, port: str):
        for _ in range(self.max_cycles):
            if self.bus.get(port):
                return
            await self.tick()
        raise TimeoutError(f"{port} stayed low for {self.max_cycles} cycles")

    async def _wait_idle(self):
        for _ in range(self.max_cycles):
            if not self.bus.get("ctrl.busy"):
                return
            await self.tick()
        raise TimeoutError(f"core stayed busy for {self.max_cycles} cycles")
