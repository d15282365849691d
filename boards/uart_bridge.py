"""UART (8N1) and the framed host-protocol bridge to a :class:`~neurocore.rtl.core.Neurocore`.

docs/protocol.md describes the protocol; :mod:`neurocore.boards.protocol` holds its constants.

* :mod:`neurocore.boards.uart`: the 8N1 :class:`UARTRx`/:class:`UARTTx` (re-exported here).
* :mod:`neurocore.boards.link_rx`: :class:`~neurocore.boards.link_rx.LinkReceiver`, the RX
  ring buffer and the v1/v2 frame parser (timeouts, bad CRC, resynchronisation).
* :mod:`neurocore.boards.link_tx`: the reply buffer and the response-frame transmitter.
* The command executors, one component each, started with the parsed frame and answering
  with a status and the reply bytes they wrote: :mod:`~neurocore.boards.reply_exec` (INFO,
  LINK, STATUS, EVENTS), :mod:`~neurocore.boards.mem_access` (WRITE, READ, FILL),
  :mod:`~neurocore.boards.spike_exec` (SPIKES, STEP, RUN) and
  :mod:`~neurocore.boards.image_runner` (v2 ENCODER, IMAGE on the on-chip encoder).
* :class:`HostBridge`: wires them, dispatches each parsed frame to its executor (CLEAR it
  runs itself), and sends one response frame per request.  Output events
  (id, step) go into a FIFO that the host drains with EVENTS; the core's ``out.ready`` is
  always high, so a full FIFO drops events and raises ``EVENT_OVERFLOW``.
* :class:`NeurocoreSystem`: bridge + core, with the serial pins as ports (the board tops and
  the full-system simulation use it).
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import enum, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..rtl.core import ConfigSignature, ControlSignature, Neurocore
from ..spec.geometry import CoreGeometry, bits_for
from .image_runner import ImageRunner
from .link_rx import LinkReceiver
from .link_tx import ResponseSender
from .mem_access import MemoryAccess
from .reply_exec import ReplyExec
from .spike_exec import SpikeExec
from .protocol import (CLASS_BYTES, DEFAULT_MAX_PAYLOAD, IMAGE_REPLY_HEAD,
                       V2_OVERHEAD, ClearMask, Cmd, LinkInfo, Status, encode_info, encode_link,
                       max_events)
# UART and CRC logic live in boards/uart.py; re-exported for existing imports
from .uart import MIN_DIVISOR, UARTRx, UARTTx, check_divisor, crc16_byte

__all__ = ["UARTRx", "UARTTx", "HostBridge", "NeurocoreSystem", "crc16_byte", "MIN_DIVISOR"]


class Target(enum.Enum, shape=3):
    """The executor a command goes to (:data:`TARGET_CMDS`); NONE: ``UNKNOWN_CMD``."""
    NONE = 0
    REPLY = 1
    RUNNER = 2
    CLEAR = 3
    MEMORY = 4
    SPIKES = 5


#: The commands each executor runs.
TARGET_CMDS = {
    Target.REPLY: (Cmd.INFO, Cmd.LINK, Cmd.STATUS, Cmd.EVENTS),
    Target.RUNNER: (Cmd.ENCODER, Cmd.IMAGE),
    Target.CLEAR: (Cmd.CLEAR,),
    Target.MEMORY: (Cmd.WRITE, Cmd.READ, Cmd.FILL),
    Target.SPIKES: (Cmd.SPIKES, Cmd.STEP, Cmd.RUN),
}


class HostBridge(wiring.Component):
    """Framed-protocol bridge between a UART and one neurocore (module docstring).

    Parameters
    ----------
    geometry : CoreGeometry
        The core's geometry (memory depths, word widths, axon and output id widths).
    divisor : int
        Clock cycles per UART bit.
    timeout : int
        Inter-byte timeout of a frame, and the quiet time that ends a rejected frame (cycles).
    max_payload : int
        Largest request payload accepted (``LEN`` above it is ``BAD_LENGTH``); 100..255.
    event_depth : int
        Entries of the output-event FIFO.
    step_bits, input_depth : int
        The core's step counter width and host-spike buffer depth (reported by INFO).
    clock_hz, baud : int
        Reported by INFO (informational).
    rx_depth : int
        Bytes of the RX ring (power of two); a v2 payload may hold ``rx_depth - V2_OVERHEAD``.
    enc_inputs, enc_steps, enc_classes : int
        Encoder sizes (v2 IMAGE): pixels per image, steps per image, classes reported.
    image_commands : bool
        Build the image runner and its encoder (v2 ENCODER, IMAGE).  Without them (a device
        without the logic to spare: the iCEBreaker) ENCODER and IMAGE answer ``UNKNOWN_CMD``
        and LINK reports encoder sizes 0.
    """

    def __init__(self, geometry: CoreGeometry, *, divisor: int, timeout: int,
                 max_payload: int = DEFAULT_MAX_PAYLOAD, event_depth: int = 256,
                 step_bits: int = 32, input_depth: int | None = None, clock_hz: int = 0,
                 baud: int = 0, rx_depth: int = 2048, enc_inputs: int | None = None,
                 enc_steps: int = 256, enc_classes: int | None = None,
                 image_commands: bool = True):
        check_divisor(divisor)
        g = self.geometry = geometry
        if not isinstance(timeout, int) or timeout < 2 * divisor:
            raise ValueError(f"timeout must be at least two bit times ({2 * divisor} cycles), "
                             f"not {timeout!r}")
        if input_depth is None:
            input_depth = 1 << (g.n_axons - 1).bit_length()
        self.info = encode_info(g, max_payload=max_payload, step_bits=step_bits,
                                event_depth=event_depth, input_depth=input_depth,
                                clock_hz=clock_hz, baud=baud)
        if not 1 + len(self.info) <= max_payload <= 255:
            raise ValueError(f"max_payload must lie in {1 + len(self.info)}..255 (the INFO "
                             f"response needs {1 + len(self.info)} bytes), not {max_payload!r}")
        if g.n_axons > 1 << 16 or g.n_outputs > 1 << 16 or step_bits > 32:
            raise ValueError("the protocol carries 16-bit axon/output ids and 32-bit steps")
        self.divisor, self.timeout, self.max_payload = divisor, timeout, max_payload
        self.event_depth, self.step_bits = event_depth, step_bits
        self.out_bits = bits_for(g.n_outputs)
        self.rx_depth = rx_depth
        self.image_commands = image_commands
        on = int(image_commands)
        self.link = LinkInfo(rx_depth=rx_depth, max_frame=rx_depth - V2_OVERHEAD,
                             enc_inputs=on * (enc_inputs or min(g.n_axons, 1024)),
                             enc_steps=on * enc_steps,
                             enc_classes=on * (enc_classes or min(g.n_outputs, 16)),
                             enc_clocks=on * 3)
        if IMAGE_REPLY_HEAD - 1 + CLASS_BYTES * self.link.enc_classes > max_payload:
            raise ValueError(f"{self.link.enc_classes} classes do not fit an IMAGE reply of "
                             f"max_payload {max_payload} bytes")
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "cfg": Out(ConfigSignature(g)),
            "ctrl": Out(ControlSignature(g, step_bits)),
            "inp": Out(stream.Signature(unsigned(g.axon_bits))),
            "out": In(stream.Signature(unsigned(self.out_bits))),
            "led_busy": Out(1),      # a command is running (or the core is busy)
            "led_error": Out(1),     # any sticky core or bridge flag
        })

    def elaborate(self, platform):
        m = Module()
        mp = self.max_payload

        m.submodules.uart_rx = urx = UARTRx(self.divisor)
        m.submodules.sender = snd = ResponseSender(divisor=self.divisor, depth=mp)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(snd.tx)]

        # ---- receiver (ring + parser) and the reply buffer ----------------------------------
        m.submodules.receiver = lr = LinkReceiver(depth=self.rx_depth, timeout=self.timeout,
                                                  max_payload=mp,
                                                  max_frame=self.link.max_frame)
        m.d.comb += [lr.rx_data.eq(urx.data), lr.rx_valid.eq(urx.valid)]
        in_runner = self._in_runner = Signal()
        txw = SimpleNamespace(en=snd.w_en, addr=snd.w_addr, data=snd.w_data)

        # ---- sticky bridge flags -----------------------------------------------------------
        flags = Signal(5)
        set_flags = Signal(5)
        clr_flags = Signal()
        m.d.sync += flags.eq(Mux(clr_flags, 0, flags) | set_flags)
        m.d.comb += [set_flags[2].eq(urx.framing), set_flags[1].eq(lr.overrun),
                     set_flags[4].eq(lr.skipped)]

        # ---- the parsed frame ----------------------------------------------------------------
        exec_busy = Signal()                 # the executor runs a command: the parser holds
        take = Signal()                      # the executor takes the pending frame
        r_cmd = lr.cmd
        r_len = lr.length[:8]                # v1 commands: LEN <= max_payload (checked)
        r_err = lr.status                    # status of a rejected frame (0: frame OK)
        hdr = Array(lr.hdr)
        pending = lr.pending
        m.d.comb += [lr.hold.eq(exec_busy), lr.take.eq(take)]

        # ---- event FIFO (output id, step) ------------------------------------------------------
        fifo_rst = Signal()
        ev_w = self.out_bits + self.step_bits
        fifo = m.submodules.events = ResetInserter(fifo_rst)(
            SyncFIFOBuffered(width=ev_w, depth=self.event_depth))
        m.d.comb += [
            self.out.ready.eq(1),
            fifo.w_data.eq(Cat(self.out.payload, self.ctrl.step)),
            fifo.w_en.eq(self.out.valid & ~in_runner),
        ]
        with m.If(self.out.valid & ~in_runner & ~fifo.w_rdy):
            m.d.comb += set_flags[0].eq(1)

        # ---- transmitter: the response frame (boards/link_tx.py) ------------------------
        # status & count of the response under construction (set by the executor)
        e_status = Signal(8)
        e_count = Signal(8)
        tx_start, tx_busy = snd.start, snd.busy
        m.d.comb += [snd.cmd.eq(r_cmd), snd.status.eq(e_status), snd.count.eq(e_count)]

        # ---- executor ----------------------------------------------------------------------------
        e_cmd = r_cmd
        e_len = r_len
        mask = Signal(3)
        ctrl = self.ctrl
        level16 = Signal(16)
        m.d.comb += level16.eq(fifo.r_level)
        runner, spk, mem, rep = self._executors(m, lr, fifo, flags, level16)
        # payload reads and host spikes: the spike executor's unless another executor runs
        m.d.comb += [lr.pl_index.eq(spk.pl_index), self.inp.payload.eq(spk.inp.payload),
                     ctrl.start.eq(spk.run if runner is None else spk.run | runner.run)]

        def respond(status, count=0):
            m.d.sync += [e_status.eq(status), e_count.eq(count)]
            m.next = "RESPOND"

        target = Signal(Target)
        with m.Switch(r_cmd):
            for t, cmds in TARGET_CMDS.items():
                if t is Target.RUNNER and runner is None:
                    continue                     # ENCODER / IMAGE: UNKNOWN_CMD
                with m.Case(*cmds):
                    m.d.sync += target.eq(t)
            with m.Default():
                m.d.sync += target.eq(Target.NONE)

        with m.FSM(name="executor") as executor:
            with m.State("IDLE"):
                with m.If(pending & ~tx_busy & ~tx_start):
                    m.d.comb += take.eq(1)
                    v2_cmd = (r_cmd == Cmd.ENCODER) | (r_cmd == Cmd.IMAGE)
                    with m.If((r_err != Status.OK) & lr.v2):        # v2: the tag follows
                        m.d.comb += [txw.en.eq(1), txw.addr.eq(0), txw.data.eq(lr.tag)]
                        respond(r_err, 1)
                    with m.Elif(r_err != Status.OK):
                        respond(r_err)
                    with m.Elif(~v2_cmd & (lr.length > mp)):
                        respond(Status.BAD_LENGTH)
                    with m.Else():
                        m.next = "DISPATCH"
            # The command's executor is decoded into a register (`target`, from the pending
            # frame's command, which holds still) and started in DISPATCH (timing).
            with m.State("DISPATCH"):
                with m.Switch(target):
                    with m.Case(Target.REPLY):
                        m.d.comb += rep.start.eq(1)
                        m.next = "REPLY"
                    if runner is not None:
                        with m.Case(Target.RUNNER):
                            m.d.comb += runner.start.eq(1)
                            m.next = "RUNNER"
                    with m.Case(Target.CLEAR):
                        with m.If(e_len > 1):
                            respond(Status.BAD_LENGTH)
                        with m.Else():
                            m.d.sync += mask.eq(Mux(e_len == 1, hdr[0][:3], ClearMask.ALL))
                            m.next = "CLEAR_CORE"
                    with m.Case(Target.MEMORY):
                        m.d.comb += mem.start.eq(1)
                        m.next = "MEMORY"
                    with m.Case(Target.SPIKES):
                        m.d.comb += spk.start.eq(1)
                        m.next = "SPIKES"
                    with m.Default():
                        respond(Status.UNKNOWN_CMD)

            # -- WRITE / READ / FILL: the memory-access executor owns the configuration port
            with m.State("MEMORY"):
                m.d.comb += [lr.pl_index.eq(mem.pl_index), txw.en.eq(mem.tx_en),
                             txw.addr.eq(mem.tx_addr), txw.data.eq(mem.tx_data)]
                with m.If(mem.done):
                    respond(mem.status, mem.count)

            # -- ENCODER / IMAGE (protocol v2): the runner owns the core and the reply buffer
            if runner is not None:
                with m.State("RUNNER"):
                    m.d.comb += [in_runner.eq(1), lr.pl_index.eq(runner.pl_index),
                                 txw.en.eq(runner.tx_en), txw.addr.eq(runner.tx_addr),
                                 txw.data.eq(runner.tx_data), ctrl.clear.eq(runner.clear),
                                 self.inp.valid.eq(runner.inp.valid),
                                 self.inp.payload.eq(runner.inp.payload)]
                    with m.If(runner.done):
                        respond(runner.status, runner.count)

            # -- SPIKES / STEP / RUN: the spike executor owns the core's inp and start (`start`
            # is the OR of the executors' `run` registers, each high only while its executor
            # runs: no state decode in front of the core's start and configuration ready)
            with m.State("SPIKES"):
                m.d.comb += [txw.en.eq(spk.tx_en), txw.addr.eq(spk.tx_addr),
                             txw.data.eq(spk.tx_data), self.inp.valid.eq(spk.inp.valid)]
                with m.If(spk.done):
                    respond(spk.status, spk.count)

            # -- INFO / LINK / STATUS / EVENTS: the reply executor
            with m.State("REPLY"):
                m.d.comb += [txw.en.eq(rep.tx_en), txw.addr.eq(rep.tx_addr),
                             txw.data.eq(rep.tx_data)]
                with m.If(rep.done):
                    respond(rep.status, rep.count)

            # -- CLEAR
            with m.State("CLEAR_CORE"):
                with m.If(mask[0]):
                    m.d.comb += ctrl.clear.eq(1)
                m.next = "CLEAR_WAIT"
            with m.State("CLEAR_WAIT"):
                with m.If(~ctrl.busy):
                    m.d.comb += [fifo_rst.eq(mask[1]), ctrl.error_clear.eq(mask[2]),
                                 clr_flags.eq(mask[2])]
                    respond(Status.OK)

            with m.State("RESPOND"):
                m.d.comb += [tx_start.eq(1)]
                with m.If(e_status != Status.OK):
                    m.d.comb += set_flags[3].eq(1)
                m.next = "IDLE"

        # busy in every state but IDLE: a compare of the state register (timing)
        m.d.comb += exec_busy.eq(~executor.ongoing("IDLE"))
        m.d.comb += [
            self.led_busy.eq(exec_busy | ctrl.busy),
            self.led_error.eq((flags != 0) | (ctrl.error.as_value() != 0)),
        ]
        return m

    def _executors(self, m, lr, fifo, flags, level16):
        """The command executors, their inputs wired to the parsed frame (``lr``), the core
        and the event FIFO; the dispatch FSM routes their outputs."""
        g, mp = self.geometry, self.max_payload
        max_ev = max_events(mp)
        ctrl = self.ctrl
        L = self.link
        runner = None
        if self.image_commands:
            m.submodules.runner = runner = ImageRunner(
                max_inputs=L.enc_inputs, max_steps=L.enc_steps, max_classes=L.enc_classes,
                axon_bits=g.axon_bits, out_bits=self.out_bits, step_bits=self.step_bits,
                max_clocks=L.enc_clocks)
            m.d.comb += [runner.cmd.eq(lr.cmd), runner.length.eq(lr.length),
                         runner.tag.eq(lr.tag), runner.pl_data.eq(lr.pl_data),
                         runner.busy.eq(ctrl.busy), runner.step.eq(ctrl.step),
                         runner.inp.ready.eq(self.inp.ready),
                         runner.out.payload.eq(self.out.payload),
                         runner.out.valid.eq(self.out.valid & self._in_runner)]
        m.submodules.spike_exec = spk = SpikeExec(n_axons=g.n_axons, axon_bits=g.axon_bits,
                                                  step_bits=self.step_bits)
        m.d.comb += [spk.cmd.eq(lr.cmd), spk.length.eq(lr.length[:8]), spk.hdr0.eq(lr.hdr[0]),
                     spk.hdr1.eq(lr.hdr[1]), spk.pl_data.eq(lr.pl_data),
                     spk.inp.ready.eq(self.inp.ready), spk.busy.eq(ctrl.busy),
                     spk.step.eq(ctrl.step)]
        m.submodules.mem_access = mem = MemoryAccess(g, max_payload=mp)
        wiring.connect(m, wiring.flipped(self.cfg), mem.cfg)
        m.d.comb += [mem.cmd.eq(lr.cmd), mem.length.eq(lr.length[:8]),
                     mem.pl_data.eq(lr.pl_data), mem.core_busy.eq(ctrl.busy),
                     *(mem.hdr[i].eq(lr.hdr[i]) for i in range(8))]
        m.d.comb += spk.events.eq(level16)
        m.submodules.reply_exec = rep = ReplyExec(
            info=self.info, link=encode_link(self.link), out_bits=self.out_bits,
            step_bits=self.step_bits, max_events=max_ev)
        m.d.comb += [rep.cmd.eq(lr.cmd), rep.length.eq(lr.length[:8]), rep.hdr0.eq(lr.hdr[0]),
                     rep.errors.eq(ctrl.error.as_value()), rep.flags.eq(flags),
                     rep.step.eq(ctrl.step), rep.ev_rdy.eq(fifo.r_rdy),
                     fifo.r_en.eq(rep.ev_en), rep.ev_data.eq(fifo.r_data),
                     rep.ev_level.eq(level16)]
        return runner, spk, mem, rep   # runner: None without image commands


class NeurocoreSystem(wiring.Component):
    """:class:`HostBridge` + :class:`Neurocore`: a UART in, a UART out and two status bits."""

    def __init__(self, geometry: CoreGeometry, *, divisor: int, timeout: int,
                 max_payload: int = DEFAULT_MAX_PAYLOAD, event_depth: int = 256,
                 step_bits: int = 32, clock_hz: int = 0, baud: int = 0, core_kwargs=None,
                 **link_kwargs):
        self.geometry = geometry
        self.core = Neurocore(geometry, step_bits=step_bits, **(core_kwargs or {}))
        self.bridge = HostBridge(geometry, divisor=divisor, timeout=timeout,
                                 max_payload=max_payload, event_depth=event_depth,
                                 step_bits=step_bits, input_depth=self.core.input_depth,
                                 clock_hz=clock_hz, baud=baud, **link_kwargs)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "led_busy": Out(1),
                          "led_error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        m.submodules.bridge = br = self.bridge
        wiring.connect(m, br.cfg, core.cfg)
        wiring.connect(m, br.ctrl, core.ctrl)
        wiring.connect(m, br.inp, core.inp)
        wiring.connect(m, core.out, br.out)
        m.d.comb += [br.rx.eq(self.rx), self.tx.eq(br.tx), self.led_busy.eq(br.led_busy),
                     self.led_error.eq(br.led_error)]
        return m
