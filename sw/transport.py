"""Byte transports for the host driver (:mod:`neurocore.sw.host`).

A transport has the subset of :class:`serial.Serial` that the driver uses:

* ``write(data)``: send bytes;
* ``read(n)``: return up to ``n`` bytes, fewer (possibly none) when its timeout passes;
* ``reset_input_buffer()``: drop whatever was received and not read yet;
* ``close()``.

:func:`open_serial` opens a real board's serial port (pyserial).  :class:`SimTransport` is the
in-process transport of the simulations: the driver runs in a thread and every call is served
by the simulation (Amaranth's simulator or cocotb), which shifts the bytes through a UART
model at bit level.  The simulation is paused while the driver computes, so the two run in
lockstep and a read's timeout is counted in simulated clock cycles.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

__all__ = ["open_serial", "SimTransport", "run_host_thread", "HostThread"]


def open_serial(port: str, baud: int = 115200, timeout: float = 1.0):
    """Open ``port`` as 8N1 at ``baud`` with a read timeout (seconds)."""
    import serial

    return serial.Serial(port, baudrate=baud, bytesize=8, parity="N", stopbits=1,
                         timeout=timeout, write_timeout=timeout)


class SimTransport:
    """Transport whose other end is a simulation (see the module docstring).

    Host side: :meth:`write`, :meth:`read`, :meth:`reset_input_buffer`, :meth:`close`.
    Simulation side: :meth:`next_request` (blocks, pausing the simulation, until the host
    asks for something) and :meth:`reply`.  Requests are tuples ``("write", data)``,
    ``("read", n, timeout_cycles or None)``, ``("flush",)`` and ``("close",)``.
    """

    def __init__(self, *, poll_timeout: float = 600.0):
        self._req: queue.Queue = queue.Queue()
        self._rsp: queue.Queue = queue.Queue()
        self.closed = False
        self.poll_timeout = poll_timeout
        self.bytes_written = 0
        self.bytes_read = 0
        #: Clock cycles a read waits for its bytes (None: the simulation's default).
        self.read_timeout_cycles: int | None = None

    # ---- host side ---------------------------------------------------------------------------
    def _call(self, *request):
        if self.closed:
            raise ConnectionError("the simulation transport is closed")
        self._req.put(request)
        kind, value = self._rsp.get(timeout=self.poll_timeout)
        if kind == "error":
            raise ConnectionError(f"simulation side failed: {value}")
        return value

    def write(self, data: bytes) -> int:
        data = bytes(data)
        self._call("write", data)
        self.bytes_written += len(data)
        return len(data)

    def read(self, n: int = 1) -> bytes:
        data = self._call("read", int(n), self.read_timeout_cycles)
        self.bytes_read += len(data)
        return data

    def reset_input_buffer(self) -> None:
        self._call("flush")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._req.put(("close",))

    # ---- simulation side ----------------------------------------------------------------------
    def next_request(self) -> tuple:
        return self._req.get()

    def reply(self, value=None) -> None:
        self._rsp.put(("ok", value))

    def fail(self, message: str) -> None:
        self._rsp.put(("error", message))


class HostThread:
    """Runs ``fn(transport)`` in a thread; the transport is closed when ``fn`` returns."""

    def __init__(self, fn: Callable, transport: SimTransport):
        self.transport = transport
        self.result = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)

    def _run(self, fn):
        try:
            self.result = fn(self.transport)
        except BaseException as e:  # re-raised by join()
            self.error = e
        finally:
            self.transport.close()

    def start(self):
        self.thread.start()
        return self

    def join(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result


def run_host_thread(fn: Callable, transport: SimTransport) -> HostThread:
    """Start ``fn(transport)`` in a :class:`HostThread` and return it."""
    return HostThread(fn, transport).start()
