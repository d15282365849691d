"""UART (8N1) and the framed host-protocol bridge to a :class:`~neurocore.rtl.core.Neurocore`.

docs/protocol.md describes the protocol; :mod:`neurocore.boards.protocol` holds its constants.

* :mod:`neurocore.boards.uart`: the 8N1 :class:`UARTRx`/:class:`UARTTx` (re-exported here).
* :mod:`neurocore.boards.link_rx`: :class:`~neurocore.boards.link_rx.LinkReceiver`, the RX
  ring buffer and the v1/v2 frame parser (timeouts, bad CRC, resynchronisation).
* :mod:`neurocore.boards.image_runner`: the v2 commands ENCODER and IMAGE (on-chip encoder).
* :class:`HostBridge`: takes each parsed frame, runs the v1 command on the core's
  configuration port, control port and spike streams (or hands ENCODER/IMAGE to the image
  runner), and answers with one response frame.  Output events
  (id, step) go into a FIFO that the host drains with EVENTS; the core's ``out.ready`` is
  always high, so a full FIFO drops events and raises ``EVENT_OVERFLOW``.
* :class:`NeurocoreSystem`: bridge + core, with the serial pins as ports (the board tops and
  the full-system simulation use it).
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .uart import MIN_DIVISOR, UARTRx, UARTTx, check_divisor, crc16_byte
from ..rtl.core import ControlSignature, ConfigSignature, Neurocore
from ..spec.geometry import CoreGeometry, bits_for
from ..spec.schedule import port_targets
from .image_runner import ImageRunner
from .link_rx import LinkReceiver
from .link_tx import ResponseSender
from .protocol import (CLASS_BYTES, DEFAULT_MAX_PAYLOAD, EVENT_BYTES, FILL_HEADER,
                       IMAGE_REPLY_HEAD, MEMORY_INDEX, V2_OVERHEAD,
                       WRITE_HEADER, ClearMask, Cmd, LinkInfo, Status, encode_info,
                       encode_link, max_events, word_bytes)

__all__ = ["UARTRx", "UARTTx", "HostBridge", "NeurocoreSystem", "crc16_byte", "MIN_DIVISOR"]

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
    """

    def __init__(self, geometry: CoreGeometry, *, divisor: int, timeout: int,
                 max_payload: int = DEFAULT_MAX_PAYLOAD, event_depth: int = 256,
                 step_bits: int = 32, input_depth: int | None = None, clock_hz: int = 0,
                 baud: int = 0, rx_depth: int = 2048, enc_inputs: int | None = None,
                 enc_steps: int = 256, enc_classes: int | None = None):
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
        self.link = LinkInfo(rx_depth=rx_depth, max_frame=rx_depth - V2_OVERHEAD,
                             enc_inputs=enc_inputs or min(g.n_axons, 1024),
                             enc_steps=enc_steps,
                             enc_classes=enc_classes or min(g.n_outputs, 16), enc_clocks=3)
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
        g = self.geometry
        m = Module()
        mp = self.max_payload
        targets = port_targets(g)
        wb_of = word_bytes(g)
        names = list(MEMORY_INDEX)
        sel_bits = bits_for(len(names))
        # a select of a memory this geometry lacks (conv with n_conv = 0): BAD_MEMORY
        wb_of = {n: wb_of.get(n, 1) for n in names}
        WB = Array([Const(wb_of[n], 4) for n in names])
        DEPTH = Array([Const(targets.get(n, (0, 8))[0], 25) for n in names])
        MAXREAD = Array([Const(min(255, (mp - 1) // wb_of[n]), 8) for n in names])
        PRESENT = Array([Const(n in targets, 1) for n in names])
        max_ev = max_events(mp)

        m.submodules.uart_rx = urx = UARTRx(self.divisor)
        m.submodules.sender = snd = ResponseSender(divisor=self.divisor, depth=mp)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(snd.tx)]

        # ---- receiver (ring + parser), v2 executor, response buffer ------------------------
        m.submodules.receiver = lr = LinkReceiver(depth=self.rx_depth, timeout=self.timeout,
                                                  max_payload=mp,
                                                  max_frame=self.link.max_frame)
        m.d.comb += [lr.rx_data.eq(urx.data), lr.rx_valid.eq(urx.valid)]
        L = self.link
        m.submodules.runner = runner = ImageRunner(
            max_inputs=L.enc_inputs, max_steps=L.enc_steps, max_classes=L.enc_classes,
            axon_bits=g.axon_bits, out_bits=self.out_bits, step_bits=self.step_bits,
            max_clocks=L.enc_clocks)
        m.d.comb += [runner.cmd.eq(lr.cmd), runner.length.eq(lr.length), runner.tag.eq(lr.tag),
                     runner.pl_data.eq(lr.pl_data), runner.busy.eq(self.ctrl.busy),
                     runner.step.eq(self.ctrl.step), runner.inp.ready.eq(self.inp.ready),
                     runner.out.payload.eq(self.out.payload)]
        in_runner = Signal()
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
            runner.out.valid.eq(self.out.valid & in_runner),
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
        mem_sel = Signal(8)
        addr = Signal(25)
        remain = Signal(24)
        wbyte = Signal(3)
        word = Signal(64)
        tptr = Signal(8)
        rptr = Signal(8)
        rptr_nxt = Signal(8)
        spike_lo = Signal(8)
        spike_cnt = Signal(8)
        nsteps = Signal(16)
        mask = Signal(3)
        ev_left = Signal(8)
        ev = Signal(ev_w)
        emit_idx = Signal(3)
        m.d.comb += [rptr_nxt.eq(rptr), lr.pl_index.eq(rptr_nxt)]
        rxr_data = lr.pl_data
        m.d.sync += rptr.eq(rptr_nxt)
        wb = WB[mem_sel[:sel_bits]]
        hdr_mem = hdr[0]
        hdr_addr = Cat(hdr[1], hdr[2], hdr[3])
        hdr_count8 = hdr[4]
        hdr_count24 = Cat(hdr[4], hdr[5], hdr[6])
        wb_h = WB[hdr_mem[:sel_bits]]
        # WRITE payload bytes: count * word bytes, by memory, as shifts and adds (Yosys would
        # share constant multiplications as one multiplier on a DSP)
        payload_h = Array([sum(hdr_count8 << i for i in range(wb_of[n].bit_length())
                               if wb_of[n] >> i & 1) for n in names])[hdr_mem[:sel_bits]]
        is_fill = e_cmd == Cmd.FILL
        is_read = e_cmd == Cmd.READ
        end = Signal(25)                     # first address after the access
        bad_short, bad_mem, bad_len = Signal(), Signal(), Signal()
        cfg, ctrl = self.cfg, self.ctrl
        m.d.comb += [cfg.mem.eq(mem_sel), cfg.addr.eq(addr), cfg.wdata.eq(word),
                     self.inp.payload.eq(Cat(spike_lo, rxr_data))]
        # response bytes for STATUS and RUN/STEP (emitted by EMIT)
        emit_sel = Signal()                  # 0: STATUS (8 bytes), 1: RUN (6 bytes)
        step32 = Signal(32)
        m.d.comb += step32.eq(ctrl.step)
        level16 = Signal(16)
        m.d.comb += level16.eq(fifo.r_level)
        status_bytes = Array([ctrl.error.as_value(), flags, *(step32.word_select(i, 8)
                              for i in range(4)), level16[:8], level16[8:]])
        run_bytes = Array([*(step32.word_select(i, 8) for i in range(4)), level16[:8],
                           level16[8:]])
        info_rom = Array([Const(b, 8) for b in self.info])
        info_idx = Signal(range(len(self.info) + 1))
        link_bytes = encode_link(self.link)
        link_rom = Array([Const(b, 8) for b in link_bytes])

        # The core's cfg.ready is ~busy & ~start & ~clear, and the executor never drives start
        # or clear while it accesses the configuration port: there the access is taken iff the
        # core is not busy.  (Waiting on busy, a register decode, keeps the core's ready logic,
        # which depends on this FSM's start/clear, out of this FSM's next-state logic.)
        cfg_taken = ~ctrl.busy

        def respond(status, count=0):
            m.d.sync += [e_status.eq(status), e_count.eq(count)]
            m.next = "RESPOND"

        def txbuf_put(value):
            m.d.comb += [txw.en.eq(1), txw.addr.eq(tptr), txw.data.eq(value)]
            m.d.sync += tptr.eq(tptr + 1)

        with m.FSM(name="executor") as executor:
            with m.State("IDLE"):
                with m.If(pending & ~tx_busy & ~tx_start):
                    m.d.comb += take.eq(1)
                    m.d.sync += tptr.eq(0)
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
            with m.State("DISPATCH"):
                with m.Switch(e_cmd):
                    with m.Case(Cmd.INFO):
                        with m.If(e_len != 0):
                            respond(Status.BAD_LENGTH)
                        with m.Else():
                            m.d.sync += info_idx.eq(0)
                            m.next = "INFO"
                    with m.Case(Cmd.LINK):
                        with m.If(e_len != 0):
                            respond(Status.BAD_LENGTH)
                        with m.Else():
                            m.d.sync += info_idx.eq(0)
                            m.next = "LINK"
                    with m.Case(Cmd.ENCODER, Cmd.IMAGE):
                        m.d.comb += runner.start.eq(1)
                        m.next = "RUNNER"
                    with m.Case(Cmd.STATUS):
                        with m.If(e_len != 0):
                            respond(Status.BAD_LENGTH)
                        with m.Else():
                            m.d.sync += [emit_idx.eq(0), emit_sel.eq(0)]
                            m.next = "EMIT"
                    with m.Case(Cmd.CLEAR):
                        with m.If(e_len > 1):
                            respond(Status.BAD_LENGTH)
                        with m.Else():
                            m.d.sync += mask.eq(Mux(e_len == 1, hdr[0][:3], ClearMask.ALL))
                            m.next = "CLEAR_CORE"
                    with m.Case(Cmd.WRITE, Cmd.READ, Cmd.FILL):
                        # The checks are registered here and decided in ACCESS (timing).
                        count = Mux(is_fill, hdr_count24, hdr_count8)
                        need = Mux(is_fill, FILL_HEADER + wb_h,
                                   Mux(is_read, WRITE_HEADER, WRITE_HEADER + payload_h))
                        m.d.sync += [mem_sel.eq(hdr_mem), addr.eq(hdr_addr), remain.eq(count),
                                     wbyte.eq(0), word.eq(0), end.eq(hdr_addr + count),
                                     bad_short.eq(e_len < WRITE_HEADER),
                                     bad_mem.eq((hdr_mem >= len(MEMORY_INDEX))
                                                | ~PRESENT[hdr_mem[:sel_bits]]),
                                     bad_len.eq((e_len != need) | (~is_fill & (hdr_count8 == 0)) |
                                                (is_read & (hdr_count8 > MAXREAD[hdr_mem[:sel_bits]])))]
                        m.d.comb += rptr_nxt.eq(Mux(is_fill, FILL_HEADER, WRITE_HEADER))
                        m.next = "ACCESS"
                    with m.Case(Cmd.SPIKES, Cmd.STEP):
                        m.d.comb += rptr_nxt.eq(0)
                        m.d.sync += [spike_cnt.eq(0), nsteps.eq(1)]
                        with m.If(e_len[0]):
                            respond(Status.BAD_LENGTH)
                        with m.Else():
                            m.next = "CHECK_LO"
                    with m.Case(Cmd.RUN):
                        m.d.sync += nsteps.eq(Cat(hdr[0], hdr[1]))
                        with m.If(e_len != 2):
                            respond(Status.BAD_LENGTH)
                        with m.Else():
                            m.next = "RUN_NEXT"
                    with m.Case(Cmd.EVENTS):
                        limit = Mux((e_len == 1) & (hdr[0] < max_ev), hdr[0], max_ev)
                        with m.If(e_len > 1):
                            respond(Status.BAD_LENGTH)
                        with m.Else():
                            m.d.sync += ev_left.eq(Mux(fifo.r_level < limit, fifo.r_level,
                                                       limit))
                            m.next = "EV_COUNT"
                    with m.Default():
                        respond(Status.UNKNOWN_CMD)

            # -- WRITE / READ / FILL: the header checks, in their order of precedence
            with m.State("ACCESS"):
                with m.If(bad_short):
                    respond(Status.BAD_LENGTH)
                with m.Elif(bad_mem):
                    respond(Status.BAD_MEMORY)
                with m.Elif(bad_len):
                    respond(Status.BAD_LENGTH)
                with m.Elif(end > DEPTH[mem_sel[:sel_bits]]):
                    respond(Status.RANGE)
                with m.Elif(is_read):
                    m.next = "READ_ISSUE"
                with m.Elif(is_fill & (remain == 0)):
                    respond(Status.OK)
                with m.Else():
                    m.next = "WORD"

            # -- INFO: copy the constant bytes
            with m.State("INFO"):
                txbuf_put(info_rom[info_idx])
                m.d.sync += info_idx.eq(info_idx + 1)
                with m.If(info_idx == len(self.info) - 1):
                    respond(Status.OK, len(self.info))

            with m.State("LINK"):
                txbuf_put(link_rom[info_idx])
                m.d.sync += info_idx.eq(info_idx + 1)
                with m.If(info_idx == len(link_bytes) - 1):
                    respond(Status.OK, len(link_bytes))

            # -- ENCODER / IMAGE (protocol v2): the runner owns the core and the reply buffer
            with m.State("RUNNER"):
                m.d.comb += [in_runner.eq(1), lr.pl_index.eq(runner.pl_index),
                             txw.en.eq(runner.tx_en), txw.addr.eq(runner.tx_addr),
                             txw.data.eq(runner.tx_data), ctrl.clear.eq(runner.clear),
                             ctrl.start.eq(runner.run), self.inp.valid.eq(runner.inp.valid),
                             self.inp.payload.eq(runner.inp.payload)]
                with m.If(runner.done):
                    respond(runner.status, runner.count)

            # -- STATUS / RUN replies: a few register bytes
            with m.State("EMIT"):
                txbuf_put(Mux(emit_sel, run_bytes[emit_idx], status_bytes[emit_idx]))
                m.d.sync += emit_idx.eq(emit_idx + 1)
                n_emit = Mux(emit_sel, len(run_bytes), len(status_bytes))
                with m.If(emit_idx == n_emit - 1):
                    respond(Status.OK, n_emit)

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

            # -- WRITE / FILL: assemble one word from the payload (little-endian)
            with m.State("WORD"):
                m.d.comb += [rptr_nxt.eq(rptr + 1)]
                m.d.sync += [word.word_select(wbyte, 8).eq(rxr_data), wbyte.eq(wbyte + 1)]
                with m.If(wbyte == wb - 1):
                    m.next = "STORE"
            with m.State("STORE"):
                m.d.comb += [cfg.valid.eq(1), cfg.write.eq(1)]
                with m.If(cfg_taken):
                    m.d.sync += [addr.eq(addr + 1), remain.eq(remain - 1), wbyte.eq(0)]
                    with m.If(remain == 1):
                        respond(Status.OK)
                    with m.Elif(e_cmd == Cmd.WRITE):
                        m.d.sync += word.eq(0)
                        m.next = "WORD"

            # -- READ: one word per round, wb bytes into the response
            with m.State("READ_ISSUE"):
                m.d.comb += [cfg.valid.eq(1)]
                with m.If(cfg_taken):
                    m.next = "READ_WAIT"
            with m.State("READ_WAIT"):
                with m.If(cfg.rvalid):
                    m.d.sync += [word.eq(cfg.rdata), wbyte.eq(0)]
                    m.next = "READ_EMIT"
            with m.State("READ_EMIT"):
                txbuf_put(word.word_select(wbyte, 8))
                m.d.sync += wbyte.eq(wbyte + 1)
                with m.If(wbyte == wb - 1):
                    m.d.sync += [addr.eq(addr + 1), remain.eq(remain - 1)]
                    with m.If(remain == 1):
                        respond(Status.OK, tptr + 1)
                    with m.Else():
                        m.next = "READ_ISSUE"

            # -- SPIKES / STEP: check every axon id first, then push them
            with m.State("CHECK_LO"):
                with m.If(rptr == e_len):
                    m.d.comb += rptr_nxt.eq(0)
                    m.next = "PUSH_LO"
                with m.Else():
                    m.d.comb += rptr_nxt.eq(rptr + 1)
                    m.d.sync += spike_lo.eq(rxr_data)
                    m.next = "CHECK_HI"
            with m.State("CHECK_HI"):
                m.d.comb += [rptr_nxt.eq(rptr + 1)]
                with m.If(Cat(spike_lo, rxr_data) >= g.n_axons):
                    respond(Status.RANGE)
                with m.Else():
                    m.next = "CHECK_LO"
            with m.State("PUSH_LO"):
                with m.If(rptr == e_len):
                    with m.If(e_cmd == Cmd.STEP):
                        m.next = "RUN_NEXT"
                    with m.Else():
                        txbuf_put(spike_cnt)
                        respond(Status.OK, 1)
                with m.Else():
                    m.d.comb += rptr_nxt.eq(rptr + 1)
                    m.d.sync += spike_lo.eq(rxr_data)
                    m.next = "PUSH_HI"
            with m.State("PUSH_HI"):
                m.d.comb += [self.inp.valid.eq(1)]
                with m.If(self.inp.ready):
                    m.d.comb += rptr_nxt.eq(rptr + 1)
                    m.d.sync += spike_cnt.eq(spike_cnt + 1)
                    m.next = "PUSH_LO"
                with m.Else():                   # the core is idle: the buffer is full
                    txbuf_put(spike_cnt)
                    respond(Status.INPUT_FULL, 1)

            # -- RUN / STEP: nsteps steps, then step counter and events pending
            with m.State("RUN_NEXT"):
                with m.If(nsteps == 0):
                    m.d.sync += [emit_idx.eq(0), emit_sel.eq(1)]
                    m.next = "EMIT"
                with m.Elif(~ctrl.busy):
                    m.d.comb += ctrl.start.eq(1)
                    m.d.sync += nsteps.eq(nsteps - 1)
                    m.next = "RUN_WAIT"
            with m.State("RUN_WAIT"):
                with m.If(~ctrl.busy):
                    m.next = "RUN_NEXT"

            # -- EVENTS: count, then (id u16, step u32) per event
            with m.State("EV_COUNT"):
                txbuf_put(ev_left)
                m.next = "EV_POP"
            with m.State("EV_POP"):
                with m.If(ev_left == 0):
                    respond(Status.OK, tptr)
                with m.Elif(fifo.r_rdy):
                    m.d.comb += fifo.r_en.eq(1)
                    m.d.sync += [ev.eq(fifo.r_data), emit_idx.eq(0), ev_left.eq(ev_left - 1)]
                    m.next = "EV_EMIT"
            with m.State("EV_EMIT"):
                ev_id = Signal(16)
                ev_step = Signal(32)
                m.d.comb += [ev_id.eq(ev[:self.out_bits]), ev_step.eq(ev[self.out_bits:])]
                ev_bytes = Array([ev_id[:8], ev_id[8:], *(ev_step.word_select(i, 8)
                                                         for i in range(4))])
                txbuf_put(ev_bytes[emit_idx])
                m.d.sync += emit_idx.eq(emit_idx + 1)
                with m.If(emit_idx == EVENT_BYTES - 1):
                    m.next = "EV_POP"

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
