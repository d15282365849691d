"""cocotb side of the full-system simulation (run by :func:`neurocore.boards.sim_system.run`).

The DUT is the Verilog of a board's :class:`~neurocore.boards.uart_bridge.NeurocoreSystem`
(bridge + core, synapse memory on the SPRAM model where the board uses SPRAM).  The job file
(``$NEUROCORE_BOARD_JOB``, JSON) names a host function ``"module:function"`` and its keyword
arguments; the function runs in a thread with a :class:`~neurocore.sw.transport.SimTransport`
whose requests this test serves through a bit-level UART model on ``rx``/``tx``.  Its return
value (JSON-able) is written to the job's ``report`` path with the simulated cycle count.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, FallingEdge, Timer

from ..sw.transport import SimTransport, run_host_thread

#: Clock period of the simulation (ns).
CLOCK_NS = 10


def _resolve(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


@cocotb.test()
async def host_session(dut):
    with open(os.environ["NEUROCORE_BOARD_JOB"]) as f:
        job = json.load(f)
    div = int(job["divisor"])
    bit_ns = div * CLOCK_NS
    read_timeout_ns = int(job.get("read_timeout_cycles", 2_000_000)) * CLOCK_NS
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 4)

    received: deque[int] = deque()
    stats = {"framing": 0}

    async def monitor():
        while True:
            await FallingEdge(dut.tx)
            await Timer(bit_ns // 2, unit="ns")
            if int(dut.tx.value):
                continue                                  # a glitch, not a start bit
            value = 0
            for i in range(8):
                await Timer(bit_ns, unit="ns")
                value |= int(dut.tx.value) << i
            await Timer(bit_ns, unit="ns")
            if int(dut.tx.value):
                received.append(value)
            else:
                stats["framing"] += 1

    cocotb.start_soon(monitor())
    transport = SimTransport()
    fn = _resolve(job["host"])
    host = run_host_thread(lambda t: fn(t, **job.get("kwargs", {})), transport)
    t0 = time.perf_counter()
    start_ns = get_sim_time("ns")
    try:
        while True:
            req = transport.next_request()
            kind = req[0]
            if kind == "close":
                break
            if kind == "write":
                for b in req[1]:
                    for level in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                        dut.rx.value = level
                        await Timer(bit_ns, unit="ns")
                transport.reply(None)
            elif kind == "read":
                n = req[1]
                limit = read_timeout_ns if req[2] is None else req[2] * CLOCK_NS
                waited = 0
                while len(received) < n and waited < limit:
                    await Timer(bit_ns, unit="ns")
                    waited += bit_ns
                transport.reply(bytes(received.popleft() for _ in range(min(n, len(received)))))
            elif kind == "flush":
                received.clear()
                transport.reply(None)
            elif kind == "wait":                  # reply: cycles since the session began
                await ClockCycles(dut.clk, req[1])
                transport.reply(int((get_sim_time("ns") - start_ns) // CLOCK_NS))
            else:
                transport.fail(f"unknown request {kind!r}")
    finally:
        transport.fail("the simulation ended")
    result = host.join()
    cycles = int((get_sim_time("ns") - start_ns) // CLOCK_NS)
    with open(job["report"], "w") as f:
        json.dump({"result": result, "sim_cycles": cycles, "framing": stats["framing"],
                   "wall_s": time.perf_counter() - t0,
                   "bytes_written": transport.bytes_written,
                   "bytes_read": transport.bytes_read}, f)
