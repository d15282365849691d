"""Binary job and result files of the stand-alone harnesses (sim/cxx/neurocore_tb.cpp).

A job is a list of host operations with the meaning of :class:`~neurocore.sim.driver.CoreDriver`'s
methods; the C++ testbench and :func:`neurocore.sim.jobplay.play` (the same job through the
Python driver, under cocotb) execute it cycle for cycle alike.  Both files are little-endian
``uint64`` words.

Job: ``MAGIC, max_cycles`` then operations, each an opcode and its operands:

=========  ==================================  =============================================
op         operands                            driver call
=========  ==================================  =============================================
``CLEAR``  --                                  ``clear()``
``WRITE``  ``mem, n, (addr, word) * n``        ``write(mem, addr, word)`` for each pair
``SEND``   ``n, axon * n``                     ``send_spikes(axons)``
``STEP``   --                                  ``run_step(out_ready)``
``READ``   ``mem, first, n``                   ``read_many(mem, range(first, first + n))``
``READY``  ``n, bits packed LSB-first``        ``out.ready`` of each following step cycle, taken
                                               cyclically from the ``n`` bits (``n = 0``: 1)
``MARK``   ``tag``                             nothing (records the cycle and the time)
``COUNTERS`` --                                a chip's counter outputs ``cycles, flits,
                                               flit_waits`` (chip builds only: sim/chipfast.py)
``END``    --                                  end of the job
=========  ==================================  =============================================

``mem`` is the memory select (``spec.schedule.MEMORY_INDEX``), chosen by the Python side.  Results:
one record per ``STEP``, ``READ``, ``MARK`` and the final ``END``, each starting with
``op, cycle, wall_ns`` (the simulation cycle and the harness's wall clock after the operation)::

    STEP: step, cycles, start_cycle, stalls, n, (id, cycle) * n
    READ: n, word * n
    COUNTERS: n, word * n   (n = 3: cycles, flits, flit_waits)
    MARK: tag
    END:  --
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import numpy as np

from .driver import StepResult

__all__ = ["MAGIC", "Op", "Job", "Record", "read_results", "encode_results", "decode_ops",
           "record_difference"]

MAGIC = int.from_bytes(b"NECJOB01", "little")


class Op(IntEnum):
    END = 0
    CLEAR = 1
    WRITE = 2
    SEND = 3
    STEP = 4
    READ = 5
    READY = 6
    MARK = 7
    COUNTERS = 8


class Job:
    """Builds a job; :meth:`save` writes it.  ``max_cycles`` bounds every wait (a timeout)."""

    def __init__(self, max_cycles: int = 1_000_000):
        self.chunks: list[np.ndarray] = [np.array([MAGIC, max_cycles], dtype=np.uint64)]
        #: largest value the job puts on each input port (checked by :meth:`check_ports`)
        self.maxima = {"cfg__mem": 0, "cfg__addr": 0, "cfg__wdata": 0, "inp__payload": 0}

    def _see(self, port: str, values) -> None:
        values = np.asarray(values, dtype=np.uint64)
        if values.size:
            self.maxima[port] = max(self.maxima[port], int(values.max()))

    def check_ports(self, ports: dict) -> None:
        """Raise ValueError if a value of the job does not fit its port's width (``ports``:
        the port map of the sidecar ``neurocore.json``, :func:`~.verilator.port_map`)."""
        for port, top in self.maxima.items():
            width = ports[port]["width"]
            if top >> width:
                raise ValueError(f"job puts {top} on {port}, which has {width} bits")

    def _put(self, *words) -> None:
        self.chunks.append(np.array(words, dtype=np.uint64))

    def clear(self) -> None:
        self._put(Op.CLEAR)

    def write(self, mem: int, addrs, words) -> None:
        """Write ``words[k]`` to ``addrs[k]`` of memory select ``mem``."""
        addrs, words = np.asarray(addrs, dtype=np.uint64), np.asarray(words, dtype=np.uint64)
        if addrs.size:
            self._see("cfg__mem", [mem])
            self._see("cfg__addr", addrs)
            self._see("cfg__wdata", words)
            self._put(Op.WRITE, mem, addrs.size)
            self.chunks.append(np.stack([addrs, words], axis=1).ravel())

    def send(self, axons) -> None:
        axons = np.asarray(axons, dtype=np.uint64)
        if axons.size:
            self._see("inp__payload", axons)
            self._put(Op.SEND, axons.size)
            self.chunks.append(axons)

    def step(self) -> None:
        self._put(Op.STEP)

    def read(self, mem: int, first: int, n: int) -> None:
        if n:
            self._see("cfg__mem", [mem])
            self._see("cfg__addr", [first + n - 1])
        self._put(Op.READ, mem, first, n)

    def ready(self, bits) -> None:
        """``out.ready`` per step cycle from now on, cyclically; empty: always ready."""
        bits = np.asarray(bits, dtype=bool)
        self._put(Op.READY, bits.size)
        if bits.size:
            packed = np.packbits(bits, bitorder="little")
            packed = np.pad(packed, (0, -packed.size % 8))
            self.chunks.append(packed.view("<u8").astype(np.uint64))

    def mark(self, tag: int) -> None:
        self._put(Op.MARK, tag)

    def counters(self) -> None:
        """Record a chip's counter outputs (a chip harness only)."""
        self._put(Op.COUNTERS)

    def words(self) -> np.ndarray:
        return np.concatenate(self.chunks + [np.array([Op.END], dtype=np.uint64)])

    def save(self, path: Path) -> Path:
        self.words().astype("<u8").tofile(path)
        return path


def decode_ops(words: np.ndarray) -> list[tuple]:
    """The operations of a job as ``(op, operands...)`` tuples (``max_cycles`` first)."""
    w = [int(x) for x in np.asarray(words, dtype=np.uint64)]
    if not w or w[0] != MAGIC:
        raise ValueError("not a neurocore job file")
    ops: list[tuple] = [("max_cycles", w[1])]
    i = 2
    while True:
        op = Op(w[i])
        i += 1
        if op == Op.END:
            return ops
        if op == Op.WRITE:
            mem, n = w[i], w[i + 1]
            pairs = w[i + 2:i + 2 + 2 * n]
            ops.append((op, mem, pairs[0::2], pairs[1::2]))
            i += 2 + 2 * n
        elif op == Op.SEND:
            n = w[i]
            ops.append((op, w[i + 1:i + 1 + n]))
            i += 1 + n
        elif op == Op.READ:
            ops.append((op, *w[i:i + 3]))
            i += 3
        elif op == Op.READY:
            n, nw = w[i], (w[i] + 63) // 64
            packed = np.array(w[i + 1:i + 1 + nw], dtype="<u8").view(np.uint8)
            ops.append((op, np.unpackbits(packed, bitorder="little")[:n].astype(bool)))
            i += 1 + nw
        elif op == Op.MARK:
            ops.append((op, w[i]))
            i += 1
        else:
            ops.append((op,))


@dataclass
class Record:
    """One result record: ``op``, the cycle and wall clock (ns) after it, and its payload."""

    op: Op
    cycle: int
    wall_ns: int
    step: StepResult | None = None       # STEP
    start_cycle: int = 0                 # STEP: absolute cycle in which ctrl.start was accepted
    words: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))  # READ, COUNTERS
    tag: int = 0                         # MARK


def encode_results(records: list[Record]) -> np.ndarray:
    """The result words of ``records`` (the inverse of :func:`read_results`)."""
    out: list[int] = []
    for r in records:
        out += [r.op, r.cycle, r.wall_ns]
        if r.op == Op.STEP:
            s = r.step
            out += [s.step, s.cycles, r.start_cycle, s.stalls, len(s.events)]
            out += [x for e in s.events for x in e]
        elif r.op in (Op.READ, Op.COUNTERS):
            out += [len(r.words), *(int(x) for x in r.words)]
        elif r.op == Op.MARK:
            out.append(r.tag)
    return np.array(out, dtype=np.uint64)


def read_results(data: np.ndarray | Path) -> list[Record]:
    """Parse result words (or a result file) into records."""
    w = np.fromfile(data, dtype="<u8") if isinstance(data, (str, Path)) else data
    w = np.asarray(w, dtype=np.uint64)
    recs, i = [], 0
    while i < w.size:
        op, cycle, wall = Op(int(w[i])), int(w[i + 1]), int(w[i + 2])
        i += 3
        r = Record(op, cycle, wall)
        if op == Op.STEP:
            step, cycles, start, stalls, n = (int(x) for x in w[i:i + 5])
            ev = w[i + 5:i + 5 + 2 * n].reshape(-1, 2).tolist()
            r.step = StepResult(step=step, cycles=cycles, events=[tuple(e) for e in ev],
                                stalls=stalls)
            r.start_cycle = start
            i += 5 + 2 * n
        elif op in (Op.READ, Op.COUNTERS):
            n = int(w[i])
            r.words = w[i + 1:i + 1 + n].copy()
            i += 1 + n
        elif op == Op.MARK:
            r.tag = int(w[i])
            i += 1
        recs.append(r)
    return recs


def _fields(r: Record) -> tuple:
    return (r.op.name, r.cycle, r.step, r.start_cycle, [int(w) for w in r.words], r.tag)


def record_difference(a: list[Record], b: list[Record]) -> str | None:
    """The first record in which two runs of one job differ (all but the wall clock), or None."""
    for k in range(max(len(a), len(b))):
        x = _fields(a[k]) if k < len(a) else None
        y = _fields(b[k]) if k < len(b) else None
        if x != y:
            return f"record {k} of {len(a)} / {len(b)}: {x} vs {y}"
    return None
