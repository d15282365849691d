"""Host driver of a neurocore on a board: the framed UART protocol (docs/protocol.md).

Two layers, both independent of what carries the bytes (:mod:`neurocore.sw.transport`: a
pyserial port for a real board, :class:`~neurocore.sw.transport.SimTransport` for the RTL in
simulation; the same code runs on both):

* :class:`BoardLink`: one method per protocol command; every request waits for its response
  frame and raises :class:`ProtocolError` on an error status.  A frame the board did not
  execute (``BAD_CRC``/``TIMEOUT``, or no answer to an idempotent command) is sent again.
* :class:`NeurocoreHost`: loads a core image (:func:`neurocore.sw.image.load_program` or a
  :class:`~neurocore.golden.network.CoreConfig`), runs spike rasters step by step and runs
  Quartz inference on samples (:meth:`NeurocoreHost.infer`: encode → per step host spikes and
  one step → output events → decode).
* Protocol v2 (docs/protocol.md, "Version 2"): :meth:`NeurocoreHost.load_encoder` loads
  the on-chip encoder's tables, :meth:`NeurocoreHost.infer_batch` sends images of 8-bit
  pixels as IMAGE frames within the credit window and returns each image's class, spike
  counts and first spikes (no round trip per step).  ``neurocore board run`` uses it.

Command line (a real board)::

    python -m neurocore.sw.host --port /dev/ttyUSB1 --image digits.ncimg --digits 10
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..boards.protocol import (CLASS_BYTES, DEFAULT_MAX_PAYLOAD, ENCODER_HEADER,
                               ENCODER_PARAMS, ENCODER_TABLES, EVENT_BYTES, IMAGE_REPLY_HEAD,
                               MEMORY_INDEX, SPIKE_BYTES, V2_OVERHEAD, BoardInfo, BridgeFlags,
                               ClearMask, Cmd, Frame, FrameParser, LinkInfo, Status,
                               decode_info, decode_link, encode_frame, encode_frame_v2,
                               max_events, max_read_words, max_spikes, max_write_words,
                               word_bytes)
from ..golden.network import CoreConfig, config_memory_names
from ..spec.schedule import register_index
from ..spec.geometry import CoreGeometry

__all__ = ["ProtocolError", "LinkTimeout", "BoardLink", "BoardStatus", "NeurocoreHost",
           "Inference", "RasterRun", "geometry_from_info", "infer_samples", "BatchResult",
           "decode_image_reply", "batch_session"]

#: Commands that may be sent again when their response is lost (same effect twice).
IDEMPOTENT = {Cmd.INFO, Cmd.STATUS, Cmd.CLEAR, Cmd.WRITE, Cmd.READ, Cmd.FILL}
#: Statuses that mean "the board did not execute the frame": always safe to resend.
NOT_EXECUTED = {Status.BAD_CRC, Status.TIMEOUT}
#: Without a deadline (``timeout=None``), bytes read without the awaited response before the
#: link gives up: 16 frames of the largest size.
MAX_STRAY_BYTES = 16 * (5 + 255)
#: Data bytes (after the status byte) of the OK responses with a fixed size.
STATUS_REPLY = struct.Struct("<BBIH")
STEP_REPLY = struct.Struct("<IH")


class ProtocolError(RuntimeError):
    """The board answered with an error status (``status``) or an unreadable response."""

    def __init__(self, message: str, status: Status | int | None = None, payload: bytes = b""):
        super().__init__(message)
        self.status = status
        self.payload = payload


class LinkTimeout(ProtocolError):
    """No response frame arrived in time."""


@dataclass(frozen=True)
class BoardStatus:
    core_errors: int
    bridge_flags: BridgeFlags
    step: int
    events_pending: int


def geometry_from_info(info: BoardInfo, name: str = "board") -> CoreGeometry:
    try:
        return CoreGeometry(name=name, **info.geometry)
    except ValueError as e:
        raise ProtocolError(f"INFO reports an invalid geometry: {e}") from None


class BoardLink:
    """Protocol client over a transport (``write``, ``read``, ``reset_input_buffer``).

    ``timeout``: seconds to wait for a response (a real port's reads also time out on their
    own); ``None`` trusts the transport's read timeout (simulation transports count cycles)
    and gives up after two empty reads.  ``retries``: resends of a frame the
    board reports as not executed (or, for idempotent commands, whose response is lost).
    """

    def __init__(self, transport, *, timeout: float = 2.0, retries: int = 2,
                 max_payload: int = DEFAULT_MAX_PAYLOAD):
        self.t = transport
        self.timeout = timeout
        self.retries = retries
        self.max_payload = max_payload
        self.frames_sent = 0
        self.resends = 0
        #: Send every request as a v2 frame (set once LINK answered: a bridge in v2 mode
        #: skips v1 sync bytes until the line has been quiet).
        self.v2 = False
        self.tag = 0

    # ---- framing -------------------------------------------------------------------------------
    def _read_frame(self, cmd: int) -> Frame:
        parser = FrameParser()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        empty = received = 0
        while True:
            # Ask for the rest of the frame the parser is in (at least the 5-byte minimum).
            buf = parser.buf
            need = 5 - len(buf) if len(buf) < 3 else 5 + buf[2] - len(buf)
            data = self.t.read(max(1, need))
            received += len(data)
            frames = parser.feed(data) if data else parser.skip() if parser.pending() else None
            # (a partial frame that stopped: its sync byte was a stray byte; skipped)
            for frame in frames or ():
                if frame.cmd == cmd:
                    return frame
            empty += frames is None
            # The deadline holds however many bytes arrive: garbage and stale frames for
            # other commands do not keep the link waiting.
            if self._gave_up(deadline, empty, received):
                raise LinkTimeout(f"no response to command 0x{cmd:02x}"
                                  + (f" within {self.timeout} s" if deadline else "")
                                  + (f" ({received} bytes of other traffic)" if received else ""))

    @staticmethod
    def _gave_up(deadline: float | None, empty: int, received: int) -> bool:
        """Past the deadline; without one, two empty reads or more bytes than
        :data:`MAX_STRAY_BYTES` without the response."""
        if deadline is not None:
            return time.monotonic() > deadline
        return empty >= 2 or received > MAX_STRAY_BYTES

    def request(self, cmd: Cmd, payload: bytes = b"", *, allow=()) -> Frame:
        """Send one frame; return the OK response (or one with a status in ``allow``)."""
        cmd = Cmd(cmd)
        frame = (encode_frame_v2(cmd, payload, max_frame=self.max_payload) if self.v2 else
                 encode_frame(cmd, payload, max_payload=self.max_payload))
        for attempt in range(self.retries + 1):
            self.t.reset_input_buffer()
            self.t.write(frame)
            self.frames_sent += 1
            try:
                rsp = self._read_frame(cmd)
            except LinkTimeout:
                if cmd in IDEMPOTENT and attempt < self.retries:
                    self.resends += 1
                    continue
                raise
            if not rsp.payload:
                raise ProtocolError(f"response to {cmd.name} has no status byte")
            status = rsp.status
            if status in NOT_EXECUTED and attempt < self.retries:
                self.resends += 1
                continue
            if status == Status.OK or status in allow:
                return rsp
            name = status.name if isinstance(status, Status) else f"0x{status:02x}"
            raise ProtocolError(f"{cmd.name} failed: {name}", status, rsp.data)
        raise AssertionError("unreachable")

    # ---- commands --------------------------------------------------------------------------------
    def info(self) -> BoardInfo:
        try:
            return decode_info(self.request(Cmd.INFO).data)
        except ValueError as e:
            raise ProtocolError(f"INFO reply: {e}") from None

    def link_info(self) -> LinkInfo:
        """LINK: the v2 limits (RX ring, largest v2 payload, encoder sizes)."""
        try:
            return decode_link(self.request(Cmd.LINK).data)
        except ValueError as e:
            raise ProtocolError(f"LINK reply: {e}") from None

    def _next_tag(self, busy=()) -> int:
        while True:
            self.tag = (self.tag + 1) & 0xFF
            if self.tag not in busy:
                return self.tag

    def send_v2(self, cmd: Cmd, payload: bytes, busy=()) -> int:
        """Send one v2 frame without waiting; return its tag."""
        tag = self._next_tag(busy)
        self.t.write(encode_frame_v2(cmd, payload, tag=tag))
        self.frames_sent += 1
        return tag

    def encoder(self, table: str, addr: int, words, max_frame: int) -> None:
        """ENCODER: write u16 ``words`` into encoder ``table`` from ``addr`` (v2 frames of at
        most ``max_frame`` payload bytes; each waits for its reply, resent when the board
        executed nothing)."""
        words = [int(w) for w in words]
        per = (max_frame - ENCODER_HEADER) // 2
        for i in range(0, len(words), per):
            chunk = words[i:i + per]
            payload = (bytes([ENCODER_TABLES[table]]) + int(addr + i).to_bytes(2, "little")
                       + b"".join(w.to_bytes(2, "little") for w in chunk))
            for attempt in range(self.retries + 1):
                tag = self.send_v2(Cmd.ENCODER, payload)
                rsp = self._reply(Cmd.ENCODER, {tag})
                if rsp.status in NOT_EXECUTED and attempt < self.retries:
                    self.resends += 1
                    continue
                if rsp.status != Status.OK:
                    raise ProtocolError(f"ENCODER {table}[{addr + i}:+{len(chunk)}] failed: "
                                        f"{_status_name(rsp.status)}", rsp.status, rsp.data)
                break

    def _reply(self, cmd: Cmd, tags) -> Frame:
        """Read frames until a reply to ``cmd`` carrying one of ``tags`` arrives."""
        while True:
            rsp = self._read_frame(cmd)
            if len(rsp.payload) >= 2 and rsp.payload[1] in tags:
                return rsp

    def _fixed(self, cmd: Cmd, payload: bytes, layout: struct.Struct) -> tuple:
        """Send ``cmd``; unpack its OK reply, which must be exactly ``layout.size`` bytes."""
        d = self.request(cmd, payload).data
        if len(d) != layout.size:
            raise ProtocolError(f"{cmd.name} reply has {len(d)} data bytes, expected "
                                f"{layout.size}", Status.OK, d)
        return layout.unpack(d)

    def status(self) -> BoardStatus:
        core, flags, step, pending = self._fixed(Cmd.STATUS, b"", STATUS_REPLY)
        return BoardStatus(core, BridgeFlags(flags), step, pending)

    def clear(self, mask: ClearMask = ClearMask.ALL) -> None:
        self.request(Cmd.CLEAR, bytes([int(mask)]))

    @staticmethod
    def _head(mem: str, addr: int) -> bytes:
        return bytes([MEMORY_INDEX[mem]]) + int(addr).to_bytes(3, "little")

    def write(self, geometry: CoreGeometry, mem: str, addr: int, words) -> None:
        """Write consecutive words (as many frames as needed)."""
        wb = word_bytes(geometry)[mem]
        step = max_write_words(geometry, mem, self.max_payload)
        words = [int(w) for w in words]
        for i in range(0, len(words), step):
            chunk = words[i:i + step]
            data = b"".join(w.to_bytes(8, "little")[:wb] for w in chunk)
            self.request(Cmd.WRITE, self._head(mem, addr + i) + bytes([len(chunk)]) + data)

    def read(self, geometry: CoreGeometry, mem: str, addr: int, count: int) -> list[int]:
        wb = word_bytes(geometry)[mem]
        step = max_read_words(geometry, mem, self.max_payload)
        out = []
        for i in range(0, count, step):
            n = min(step, count - i)
            d = self.request(Cmd.READ, self._head(mem, addr + i) + bytes([n])).data
            if len(d) != n * wb:
                raise ProtocolError(f"READ {mem}[{addr + i}:+{n}] returned {len(d)} bytes")
            out += [int.from_bytes(d[j * wb:(j + 1) * wb], "little") for j in range(n)]
        return out

    def fill(self, geometry: CoreGeometry, mem: str, addr: int, count: int, word: int = 0):
        wb = word_bytes(geometry)[mem]
        self.request(Cmd.FILL, self._head(mem, addr) + int(count).to_bytes(3, "little")
                     + int(word).to_bytes(8, "little")[:wb])

    def spikes(self, axons) -> int:
        """Queue host spikes for the next step; return how many the board accepted."""
        axons = [int(a) for a in axons]
        accepted = 0
        step = max_spikes(self.max_payload)
        for i in range(0, len(axons), step):
            chunk = axons[i:i + step]
            (n,) = self._fixed(Cmd.SPIKES, _spike_bytes(chunk), struct.Struct("<B"))
            if n > len(chunk):
                raise ProtocolError(f"SPIKES reply accepts {n} of {len(chunk)} spikes")
            accepted += n
        return accepted

    def run(self, steps: int = 1) -> tuple[int, int]:
        """Run ``steps`` steps; return (step counter, events pending)."""
        return self._fixed(Cmd.RUN, int(steps).to_bytes(2, "little"), STEP_REPLY)

    def step(self, axons=()) -> tuple[int, int]:
        """Queue host spikes and run one step; return (step counter, events pending)."""
        axons = [int(a) for a in axons]
        step = max_spikes(self.max_payload)
        while len(axons) > step:
            self.spikes(axons[:step])
            axons = axons[step:]
        return self._fixed(Cmd.STEP, _spike_bytes(axons), STEP_REPLY)

    def events(self, limit: int | None = None) -> list[tuple[int, int]]:
        """Pop up to one frame of output events: ``[(output id, step), ...]``."""
        limit = max_events(self.max_payload) if limit is None else limit
        d = self.request(Cmd.EVENTS, bytes([limit])).data
        n = d[0] if d else 0
        if not d or len(d) != 1 + n * EVENT_BYTES or n > limit:
            raise ProtocolError(f"EVENTS returned {len(d)} bytes for {n} events "
                                f"(asked for at most {limit})", Status.OK, d)
        return [struct.unpack_from("<HI", d, 1 + i * EVENT_BYTES) for i in range(n)]

    def drain_events(self) -> list[tuple[int, int]]:
        out = []
        while True:
            ev = self.events()
            out += ev
            if len(ev) < max_events(self.max_payload):
                return out


def _status_name(status) -> str:
    return status.name if isinstance(status, Status) else f"0x{status:02x}"


def decode_image_reply(data: bytes, n_classes: int) -> tuple[int, np.ndarray, np.ndarray]:
    """IMAGE reply data after status and tag: (class (-1: none), counts, first steps (-1))."""
    if len(data) != 1 + CLASS_BYTES * n_classes:
        raise ProtocolError(f"IMAGE reply has {len(data)} data bytes after the tag, expected "
                            f"{1 + CLASS_BYTES * n_classes} for {n_classes} classes",
                            Status.OK, data)
    cls = data[0]
    body = np.frombuffer(data[1:], dtype=np.uint8).reshape(n_classes, CLASS_BYTES)
    counts = body[:, 0].astype(np.int64)
    first = body[:, 1].astype(np.int64) | (body[:, 2].astype(np.int64) << 8)
    first = np.where(first == 0xFFFF, -1, first)
    if cls != 0xFF and cls >= n_classes:
        raise ProtocolError(f"IMAGE reply names class {cls} of {n_classes}", Status.OK, data)
    return (-1 if cls == 0xFF else int(cls)), counts, first


def _spike_bytes(axons) -> bytes:
    return b"".join(int(a).to_bytes(SPIKE_BYTES, "little") for a in axons)


@dataclass
class RasterRun:
    """Output events of one raster: ``events[(id, step)]`` and the per-step counts."""

    events: list[tuple[int, int]]
    outputs: np.ndarray                     # (steps, n_outputs) event counts
    status: BoardStatus | None = None


@dataclass
class Inference:
    """One sample through :meth:`NeurocoreHost.infer`."""

    predicted: int                          # class (-1: no output spike)
    first_spike: np.ndarray                 # (n_classes,) step of each class's first spike
    values: np.ndarray                      # decoded Quartz values
    events: list[tuple[int, int]] = field(default_factory=list)
    outputs: np.ndarray | None = None       # (n_steps, n_outputs) event counts
    seconds: float = 0.0


@dataclass
class BatchResult:
    """Replies of a batch of IMAGE frames (:meth:`NeurocoreHost.infer_batch`), image order."""

    predicted: np.ndarray                   # (N,) class, -1: no output spike
    counts: np.ndarray                      # (N, n_classes) spikes per class (saturate 255)
    first_spike: np.ndarray                 # (N, n_classes) first-spike step, -1: none
    resends: int = 0                        # IMAGE frames sent again (BAD_CRC / TIMEOUT)
    seconds: float = 0.0


class NeurocoreHost:
    """A core on a board, driven over a :class:`BoardLink` (see the module docstring)."""

    def __init__(self, transport, *, timeout: float = 2.0, retries: int = 2):
        self.link = BoardLink(transport, timeout=timeout, retries=retries)
        self.info = self.link.info()
        self.link.max_payload = self.info.max_payload
        self.geometry = geometry_from_info(self.info)
        self.loaded: CoreConfig | None = None
        self.link_info: LinkInfo | None = None  # LINK, asked by the first v2 call
        self.encoder_for = None                 # program whose tables the encoder holds
        self.tables = None

    # ---- protocol v2: on-chip encoder, batches of images -----------------------------
    def load_encoder(self, program) -> None:
        """Load ``program``'s config (if not loaded) and its encoder tables
        (:func:`~neurocore.sw.pixels.encoder_tables`); ValueError when they exceed the
        board's encoder (each size named with the board's limit)."""
        from .pixels import NO_STEP, encoder_tables

        tab = encoder_tables(program)
        if self.link_info is None:
            self.link_info = self.link.link_info()
            self.link.v2 = True
        L = self.link_info
        for what, need, have in (("inputs", tab.n_inputs, L.enc_inputs),
                                 ("steps per image", tab.n_steps, L.enc_steps),
                                 ("classes", tab.n_outputs, L.enc_classes),
                                 ("clock axons", len(tab.clocks), L.enc_clocks)):
            if need > have:
                raise ValueError(f"program needs {need} {what}; the board's encoder holds "
                                 f"{have} (LINK)")
        if self.loaded is not program.config:
            self.load(program)
        mf = L.max_frame
        self.link.encoder("lut", 0, tab.lut.tolist(), mf)
        self.link.encoder("axons", 0, tab.axons.tolist(), mf)
        clocks = list(tab.clocks) + [(0, NO_STEP)] * (L.enc_clocks - len(tab.clocks))
        self.link.encoder("clock_axon", 0, [a for a, _ in clocks], mf)
        self.link.encoder("clock_step", 0, [s for _, s in clocks], mf)
        p = ENCODER_PARAMS
        params = [0] * len(p)
        params[p["n_inputs"]], params[p["n_steps"]] = tab.n_inputs, tab.n_steps
        params[p["n_classes"]] = tab.n_outputs
        self.link.encoder("params", 0, params, mf)
        self.encoder_for, self.tables = program, tab

    def window(self, n_inputs: int) -> int:
        """IMAGE frames of ``n_inputs`` pixels the host may have unanswered (credits)."""
        return self.link_info.window(n_inputs + V2_OVERHEAD)

    def infer_batch(self, program, pixels, *, progress=None) -> BatchResult:
        """Run images of 8-bit pixels (N, n_inputs; byte ``b`` is the input ``b / 255``) as
        IMAGE frames within the credit window; return every reply in image order.

        ``progress(n)`` is called with the number of images answered so far.  A frame the
        board did not execute (``BAD_CRC``/``TIMEOUT``, or no reply in time) is sent again,
        at most ``retries`` times per image; any other error status is a ProtocolError.
        """
        from .pixels import check_pixels

        t0 = time.perf_counter()
        if self.encoder_for is not program:
            self.load_encoder(program)
        tab = self.tables
        px = check_pixels(tab, pixels, "infer_batch")
        n, C = px.shape[0], tab.n_outputs
        out = BatchResult(predicted=np.full(n, -1), counts=np.zeros((n, C), dtype=np.int64),
                          first_spike=np.full((n, C), -1))
        window = self.window(tab.n_inputs)
        todo = list(range(n))[::-1]           # stack: next image last
        outstanding: dict[int, int] = {}      # tag -> image
        order: list[int] = []                 # tags in the order sent
        tries = np.zeros(n, dtype=np.int64)
        done = 0
        while todo or outstanding:
            while todo and len(outstanding) < window:
                i = todo.pop()
                tag = self.link.send_v2(Cmd.IMAGE, px[i].tobytes(), busy=outstanding)
                outstanding[tag] = i
                order.append(tag)
            try:
                rsp = self.link._reply(Cmd.IMAGE, outstanding)
            except LinkTimeout:
                # replies lost: send every unanswered image again
                for tag in list(outstanding):
                    i = outstanding.pop(tag)
                    self._retry(tries, i, "no reply")
                    todo.append(i)
                continue
            tag = rsp.payload[1]
            i = outstanding.pop(tag)
            if rsp.status in NOT_EXECUTED:
                self._retry(tries, i, _status_name(rsp.status))
                todo.append(i)
                continue
            if rsp.status != Status.OK:
                raise ProtocolError(f"IMAGE {i} failed: {_status_name(rsp.status)}",
                                    rsp.status, rsp.data)
            cls, counts, first = decode_image_reply(rsp.data[1:], C)
            out.predicted[i], out.counts[i], out.first_spike[i] = cls, counts, first
            done += 1
            if progress is not None:
                progress(done)
        out.resends = int(tries.sum())
        out.seconds = time.perf_counter() - t0
        return out

    def _retry(self, tries, i: int, why: str) -> None:
        tries[i] += 1
        self.link.resends += 1
        if tries[i] > self.link.retries:
            raise ProtocolError(f"IMAGE {i}: {why} after {tries[i]} tries")

    # ---- image -----------------------------------------------------------------------------------
    def load(self, config_or_program, *, verify: bool = False) -> int:
        """Load a config (or a program's config) into the core; return the words written.

        Each configuration memory is first filled with zeros on the board (FILL), then its
        non-zero words are written in runs; the dynamic state, the event FIFO and the error
        flags are cleared, and the ``n_active`` register is set (spec §2.5).  ``verify`` reads
        every memory back.
        """
        config = getattr(config_or_program, "config", config_or_program)
        if not isinstance(config, CoreConfig):
            raise TypeError(f"load takes a CoreConfig or a QuartzProgram, not {config!r}")
        g = config.geometry
        if not self.info.same_geometry(g):
            diff = {f: (getattr(g, f), v) for f, v in self.info.geometry.items()
                    if getattr(g, f) != v}
            raise ValueError(f"image geometry {g.name!r} differs from the board's: "
                             f"(image, board) = {diff}")
        words = config.to_words()
        written = 0
        for name in config_memory_names(g):
            w = np.asarray(words[name], dtype=np.uint64)
            self.link.fill(g, name, 0, w.size, 0)
            nz = np.flatnonzero(w)
            if nz.size:
                # runs of consecutive non-zero words
                breaks = np.flatnonzero(np.diff(nz) != 1) + 1
                for run in np.split(nz, breaks):
                    self.link.write(g, name, int(run[0]), w[run[0]:run[-1] + 1].tolist())
                    written += run.size
        self.link.clear(ClearMask.ALL)
        self.link.write(g, "registers", register_index("n_active"), [config.n_active()])
        if verify:
            for name in config_memory_names(g):
                back = self.link.read(g, name, 0, int(words[name].size))
                if not np.array_equal(np.asarray(back, dtype=np.uint64), words[name]):
                    bad = int(np.flatnonzero(np.asarray(back, dtype=np.uint64)
                                             != words[name])[0])
                    raise ProtocolError(f"verify: {name}[{bad}] reads {back[bad]:#x}, "
                                        f"wrote {int(words[name][bad]):#x}")
        self.loaded = config
        return written

    # ---- running ---------------------------------------------------------------------------------
    def run_raster(self, raster: np.ndarray, *, clear: bool = True) -> RasterRun:
        """Run a (steps, n_axons) 0/1 raster from step 0; return every output event."""
        x = np.asarray(raster)
        g = self.geometry
        if x.ndim != 2 or x.shape[1] != g.n_axons:
            raise ValueError(f"raster must be (steps, {g.n_axons}), not {x.shape}")
        if clear:
            self.link.clear(ClearMask.ALL)
        half = max(1, self.info.event_depth // 2)
        events = []
        for t in range(x.shape[0]):
            axons = np.flatnonzero(x[t])
            if axons.size > self.info.input_depth:
                raise ValueError(f"step {t} has {axons.size} host spikes; the board buffers "
                                 f"{self.info.input_depth}")
            _, pending = self.link.step(axons.tolist())
            if pending >= half:
                events += self.link.drain_events()
        events += self.link.drain_events()
        st = self.link.status()
        if st.bridge_flags & BridgeFlags.EVENT_OVERFLOW:
            raise ProtocolError("the board's event FIFO overflowed: events were lost")
        outputs = np.zeros((x.shape[0], g.n_outputs), dtype=np.int32)
        first_step = st.step - x.shape[0]
        for oid, step in events:
            if not (first_step <= step < st.step and oid < g.n_outputs):
                raise ProtocolError(f"event (output {oid}, step {step}) lies outside this run "
                                    f"(steps {first_step}..{st.step - 1}, {g.n_outputs} "
                                    "outputs)")
            outputs[step - first_step, oid] += 1
        return RasterRun(events=events, outputs=outputs, status=st)

    def infer(self, program, sample) -> Inference:
        """Quartz inference of one sample: class and first-spike steps (``program.decode``)."""
        t0 = time.perf_counter()
        if self.loaded is not program.config:
            self.load(program)
        raster = program.encode(np.asarray(sample)[None])[0]
        run = self.run_raster(raster)
        d = program.decode(run.outputs[None])
        return Inference(predicted=int(d["predicted"][0]), first_spike=d["first_spike"][0],
                         values=d["values"][0], events=run.events, outputs=run.outputs,
                         seconds=time.perf_counter() - t0)


def infer_samples(transport, image: str, samples, *, timeout: float | None = None) -> dict:
    """Load a program image and infer each sample; JSON-able results (a simulation session).

    ``samples``: nested lists (one input per sample).  Returns per sample the class, the
    first-spike step of every output and the output events, plus the link counters.
    """
    from .image import load_program

    program = load_program(image)
    host = NeurocoreHost(transport, timeout=timeout)
    written = host.load(program)
    out = []
    for x in samples:
        r = host.infer(program, np.asarray(x, dtype=np.float64))
        out.append({"predicted": r.predicted, "first_spike": r.first_spike.tolist(),
                    "events": [list(e) for e in r.events], "seconds": r.seconds})
    return {"samples": out, "words_written": written, "frames": host.link.frames_sent,
            "resends": host.link.resends, "status": list(host.link.status().__dict__.values())}


def batch_session(transport, image: str, pixels, *, timeout: float | None = None) -> dict:
    """Load a program image and run ``pixels`` (N × n_inputs bytes) as one v2 batch;
    JSON-able replies and link counters (a simulation session)."""
    from .image import load_program

    program = load_program(image)
    host = NeurocoreHost(transport, timeout=timeout)
    host.load_encoder(program)
    before = (transport.bytes_written, transport.bytes_read)
    r = host.infer_batch(program, np.asarray(pixels, dtype=np.uint8))
    return {"predicted": r.predicted.tolist(), "counts": r.counts.tolist(),
            "first_spike": r.first_spike.tolist(), "resends": r.resends,
            "batch_bytes_written": transport.bytes_written - before[0],
            "batch_bytes_read": transport.bytes_read - before[1],
            "window": host.window(host.tables.n_inputs),
            "status": list(host.link.status().__dict__.values())}


def _parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m neurocore.sw.host",
                                 description="Run Quartz inference on a neurocore board")
    ap.add_argument("--port", required=True)
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--image", required=True, help="program image (sw/image.save_program)")
    ap.add_argument("--digits", type=int, default=10, help="digits test images to run")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    """Command line; a bad image, port or link is one line on stderr and exit status 2."""
    from .image import ImageFormatError, load_program
    from .transport import open_serial

    a = _parse_args(argv)
    try:
        program = load_program(a.image)       # before the port: a bad image costs nothing
        port = open_serial(a.port, a.baud)
    except (ImageFormatError, OSError, ValueError) as e:
        print(f"neurocore.sw.host: error: {e}", file=sys.stderr)
        return 2
    try:
        with port:
            return _run_digits(port, program, a.digits)
    except (ProtocolError, OSError, ValueError) as e:
        print(f"neurocore.sw.host: error: {e}", file=sys.stderr)
        return 2


def _run_digits(port, program, digits: int) -> int:  # pragma: no cover - needs a board
    from .datasets import load_digits_split

    data = load_digits_split()
    host = NeurocoreHost(port)
    print(f"board: {host.geometry} at {host.info.clock_hz / 1e6:.2f} MHz")
    host.load(program)
    correct = 0
    for i in range(digits):
        r = host.infer(program, data.x_test[i].numpy())
        correct += int(r.predicted == int(data.y_test[i]))
        print(f"{i}: class {r.predicted} (label {int(data.y_test[i])}), first spikes "
              f"{r.first_spike.tolist()}, {r.seconds * 1e3:.0f} ms")
    print(f"{correct}/{digits} correct")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
