"""Play a job file (sim/jobfile.py) through :class:`~neurocore.sim.driver.CoreDriver`.

This is the reference meaning of a job: the C++ testbench (sim/cxx/neurocore_tb.cpp) must
return the same records, cycle for cycle (tests/test_rtl_fast.py runs both).
"""

from __future__ import annotations

import time

import numpy as np

from .driver import CoreDriver
from .jobfile import Op, Record, decode_ops

__all__ = ["play"]


async def play(drv: CoreDriver, words: np.ndarray) -> list[Record]:
    """Run the job ``words`` on ``drv``; return its result records (wall clock from now)."""
    ops = decode_ops(words)
    drv.max_cycles = ops[0][1]
    t0 = time.perf_counter_ns()
    ready_bits, pos = np.zeros(0, dtype=bool), 0

    def out_ready(_c):
        nonlocal pos
        if not ready_bits.size:
            return True
        bit = bool(ready_bits[pos])
        pos = (pos + 1) % ready_bits.size
        return bit

    records = []
    for op, *args in ops[1:]:
        rec = None
        if op == Op.CLEAR:
            await drv.clear()
        elif op == Op.WRITE:
            mem, addrs, words_ = args
            for a, w in zip(addrs, words_):
                await drv.write(mem, a, w)
        elif op == Op.SEND:
            await drv.send_spikes(args[0])
        elif op == Op.STEP:
            res = await drv.run_step(out_ready)
            rec = Record(op, 0, 0, step=res, start_cycle=drv.start_cycle)
        elif op == Op.READ:
            mem, first, n = args
            got = await drv.read_many(mem, range(first, first + n))
            rec = Record(op, 0, 0, words=np.array(got, dtype=np.uint64))
        elif op == Op.READY:
            ready_bits, pos = args[0], 0
        elif op == Op.MARK:
            rec = Record(op, 0, 0, tag=args[0])
        if rec is not None:
            rec.cycle, rec.wall_ns = drv.cycle, time.perf_counter_ns() - t0
            records.append(rec)
    records.append(Record(Op.END, drv.cycle, time.perf_counter_ns() - t0))
    return records
