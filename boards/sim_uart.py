"""Amaranth-simulator side of :class:`~neurocore.sw.transport.SimTransport`.

:func:`simulate_host` runs a design with a serial ``rx`` input and ``tx`` output (e.g.
:class:`~neurocore.boards.uart_bridge.NeurocoreSystem`) in Amaranth's simulator while
``host_fn(transport)`` runs in a thread: the host's writes are shifted into ``rx`` bit by bit
(8N1 at ``divisor`` cycles per bit), a background monitor decodes ``tx``, and the host's
reads return the decoded bytes.  The simulation only advances while the host waits for it.

Besides the pyserial subset, the transport served here understands two simulation-only
requests, sent with :func:`send_line` and :func:`wait_cycles`: drive raw line levels (to
make framing errors and glitches) and let cycles pass.
"""

from __future__ import annotations

from collections import deque

from amaranth.sim import Simulator

from ..sw.transport import SimTransport, run_host_thread

__all__ = ["simulate_host", "send_line", "wait_cycles", "uart_bits", "DEFAULT_READ_TIMEOUT"]

#: Cycles a host read waits for its bytes before returning what it has.
DEFAULT_READ_TIMEOUT = 200_000


def uart_bits(byte: int, stop: int = 1) -> list[int]:
    """Line levels of one 8N1 character: start bit, 8 data bits LSB first, stop bit."""
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


def send_line(transport: SimTransport, levels: list[tuple[int, int]]):
    """Drive ``rx`` with ``(level, cycles)`` pairs, then idle for one bit (simulation only)."""
    return transport._call("line", list(levels))


def wait_cycles(transport: SimTransport, cycles: int) -> int:
    """Let ``cycles`` clock cycles pass; return the cycle count (simulation transports only)."""
    return transport._call("wait", int(cycles))


def simulate_host(dut, host_fn, *, divisor: int, read_timeout: int = DEFAULT_READ_TIMEOUT,
                  vcd: str | None = None, extra_testbenches=()):
    """Run ``host_fn(transport)`` against ``dut`` (ports ``rx``, ``tx``); return its result."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    transport = SimTransport()
    received: deque[int] = deque()
    state = {"cycle": 0, "framing": 0}

    async def monitor(ctx):
        half = divisor // 2
        while True:
            if ctx.get(dut.tx):
                await ctx.negedge(dut.tx)
            await ctx.tick().repeat(half)
            value = 0
            for i in range(8):
                await ctx.tick().repeat(divisor)
                value |= ctx.get(dut.tx) << i
            await ctx.tick().repeat(divisor)
            if ctx.get(dut.tx):
                received.append(value)
            else:
                state["framing"] += 1

    async def tick(ctx, n):
        await ctx.tick().repeat(n)
        state["cycle"] += n

    async def server(ctx):
        ctx.set(dut.rx, 1)
        await tick(ctx, 8)
        while True:
            req = transport.next_request()
            kind = req[0]
            try:
                if kind == "close":
                    break
                if kind == "write":
                    for b in req[1]:
                        for level in uart_bits(b):
                            ctx.set(dut.rx, level)
                            await tick(ctx, divisor)
                    transport.reply(None)
                elif kind == "read":
                    n, waited = req[1], 0
                    limit = read_timeout if req[2] is None else req[2]
                    while len(received) < n and waited < limit:
                        await tick(ctx, divisor)
                        waited += divisor
                    out = bytes(received.popleft() for _ in range(min(n, len(received))))
                    transport.reply(out)
                elif kind == "flush":
                    received.clear()
                    transport.reply(None)
                elif kind == "line":
                    for level, cycles in req[1]:
                        ctx.set(dut.rx, level)
                        await tick(ctx, cycles)
                    ctx.set(dut.rx, 1)                  # idle (one stop bit) before anything else
                    await tick(ctx, divisor)
                    transport.reply(None)
                elif kind == "wait":
                    await tick(ctx, req[1])
                    transport.reply(state["cycle"])
                else:
                    transport.fail(f"unknown request {kind!r}")
            except BaseException as e:
                transport.fail(f"{type(e).__name__}: {e}")
                raise

    sim.add_testbench(monitor, background=True)
    for tb in extra_testbenches:
        sim.add_testbench(tb, background=True)
    sim.add_testbench(server)
    host = run_host_thread(host_fn, transport)
    try:
        if vcd:
            with sim.write_vcd(vcd):
                sim.run()
        else:
            sim.run()
    finally:
        transport.fail("the simulation ended")   # unblocks a host still waiting for a reply
    return host.join()
