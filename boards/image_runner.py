"""Protocol v2 commands ENCODER and IMAGE: the on-chip encoder driving the core (docs/protocol.md).

:class:`ImageRunner` executes one command when ``start`` pulses (``cmd``, payload ``length``,
``tag``), reading payload byte ``pl_index`` on ``pl_data`` one cycle later, writing its reply
data (after the status byte) into the bridge's response buffer through ``tx_*``, and pulses
``done`` with ``status`` and ``count`` (reply data bytes).

* ENCODER (table u8, address u16, u16 words): writes the words into the encoder's table
  (rtl/encoder.py numbering) or, table 4, the parameters n_inputs, n_steps, n_classes.
  Reply: tag.
* IMAGE (``n_inputs`` pixel bytes): clears the core, loads the pixels into the encoder, then
  for each step 0 … n_steps − 1 pushes the encoder's spikes for the step into the core and
  runs the step.  Output events of ids < n_classes are counted (saturating at 255) and their
  first step kept; the class is the output with the earliest first spike (lowest id on ties,
  0xFF: none), as ``QuartzProgram.decode`` picks it.  Reply: tag, class, per class (count u8,
  first step u16 LE, 0xFFFF: none); ``INPUT_FULL`` when a step's spikes overflowed the core's
  host-spike buffer (the image still runs; its result is not trustworthy).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..rtl.encoder import TTFSEncoder
from ..sw.pixels import NO_STEP, STEP_BITS
from .protocol import ENCODER_HEADER, ENCODER_PARAMS, ENCODER_TABLES, Cmd, Status

__all__ = ["ImageRunner"]


class ImageRunner(wiring.Component):
    """ENCODER/IMAGE executor (module docstring)."""

    def __init__(self, *, max_inputs: int, max_steps: int, max_classes: int, axon_bits: int,
                 out_bits: int, step_bits: int, max_clocks: int = 3):
        self.max_inputs, self.max_steps, self.max_classes = max_inputs, max_steps, max_classes
        self.encoder = TTFSEncoder(max_inputs=max_inputs, max_steps=max_steps,
                                   axon_bits=axon_bits, max_clocks=max_clocks)
        super().__init__({
            "start": In(1), "cmd": In(8), "length": In(16), "tag": In(8),
            "pl_index": Out(16), "pl_data": In(8),
            "tx_en": Out(1), "tx_addr": Out(8), "tx_data": Out(8),
            "done": Out(1), "status": Out(8), "count": Out(8),
            "clear": Out(1), "run": Out(1), "busy": In(1), "step": In(step_bits),
            "inp": Out(stream.Signature(unsigned(axon_bits))),
            "out": In(stream.Signature(unsigned(out_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.encoder = enc = self.encoder
        n_in, n_steps, n_cls = Signal(16), Signal(STEP_BITS), Signal(range(self.max_classes + 1))
        cnt = Array([Signal(8, name=f"cnt{i}") for i in range(self.max_classes)])
        first = Array([Signal(STEP_BITS, name=f"first{i}") for i in range(self.max_classes)])
        idx, t, word = Signal(16), Signal(STEP_BITS), Signal(16)
        table, addr = Signal(8), Signal(16)
        c = Signal(range(self.max_classes + 1))
        best, best_t = Signal(8), Signal(STEP_BITS)
        lost = Signal()
        tptr = Signal(8)
        run = Signal()
        m.d.comb += [self.run.eq(run), self.pl_index.eq(idx), enc.step.eq(t),
                     enc.pixels.payload.eq(self.pl_data),
                     enc.wr_table.eq(table), enc.wr_addr.eq(addr), enc.wr_data.eq(word),
                     self.inp.payload.eq(enc.spikes.payload), self.count.eq(tptr)]

        def put(value):
            m.d.comb += [self.tx_en.eq(1), self.tx_addr.eq(tptr), self.tx_data.eq(value)]
            m.d.sync += tptr.eq(tptr + 1)

        def finish(status):
            m.d.sync += self.status.eq(status)
            m.next = "DONE"

        # output events of the image run (only while stepping: the bridge gates out.valid)
        m.d.comb += self.out.ready.eq(1)
        with m.If(self.out.valid & (self.out.payload < n_cls)):
            oid = self.out.payload
            m.d.sync += cnt[oid].eq(Mux(cnt[oid] == 255, 255, cnt[oid] + 1))
            with m.If(first[oid] == NO_STEP):
                m.d.sync += first[oid].eq(self.step)

        with m.FSM(name="runner"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [tptr.eq(0), idx.eq(0), t.eq(0), lost.eq(0)]
                    m.next = "TAG"
            with m.State("TAG"):
                put(self.tag)
                with m.If(self.cmd == Cmd.ENCODER):
                    with m.If((self.length < ENCODER_HEADER + 2) | ~self.length[0]):
                        finish(Status.BAD_LENGTH)
                    with m.Else():
                        m.next = "E_HEAD"
                with m.Elif((self.length != n_in) | (n_in == 0) | (n_steps == 0)):
                    finish(Status.BAD_LENGTH)
                with m.Else():
                    m.d.comb += self.clear.eq(1)
                    m.d.sync += [cnt[i].eq(0) for i in range(self.max_classes)]
                    m.d.sync += [first[i].eq(NO_STEP) for i in range(self.max_classes)]
                    m.next = "CLEAR"
            # -- ENCODER: header, then one u16 word per 4 cycles (2 bytes, each read 2 cycles)
            with m.State("E_HEAD"):
                m.next = "E_HEAD_RD"
            with m.State("E_HEAD_RD"):                  # pl_data = payload[idx]
                with m.Switch(idx):
                    with m.Case(0):
                        m.d.sync += table.eq(self.pl_data)
                    with m.Case(1):
                        m.d.sync += addr[:8].eq(self.pl_data)
                    with m.Case(2):
                        m.d.sync += addr[8:].eq(self.pl_data)
                m.d.sync += idx.eq(idx + 1)
                m.next = "E_HEAD"
                with m.If(idx == ENCODER_HEADER - 1):
                    m.next = "E_BYTE"
                    with m.If(table > ENCODER_TABLES["params"]):
                        finish(Status.RANGE)
            with m.State("E_BYTE"):
                with m.If(idx == self.length):
                    finish(Status.OK)
                with m.Else():
                    m.next = "E_BYTE_RD"
            with m.State("E_BYTE_RD"):
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx[0]):                        # low byte (header is 3 bytes)
                    m.d.sync += word[:8].eq(self.pl_data)
                    m.next = "E_BYTE"
                with m.Else():
                    m.d.sync += word[8:].eq(self.pl_data)
                    m.next = "E_WRITE"
            with m.State("E_WRITE"):
                with m.If(table == ENCODER_TABLES["params"]):
                    with m.Switch(addr):
                        with m.Case(ENCODER_PARAMS["n_inputs"]):
                            m.d.sync += n_in.eq(Mux(word > self.max_inputs, 0, word))
                        with m.Case(ENCODER_PARAMS["n_steps"]):
                            m.d.sync += n_steps.eq(Mux(word > self.max_steps, 0, word))
                        with m.Case(ENCODER_PARAMS["n_classes"]):
                            m.d.sync += n_cls.eq(Mux(word > self.max_classes, 0, word))
                with m.Else():
                    m.d.comb += enc.wr_en.eq(1)
                m.d.sync += addr.eq(addr + 1)
                m.next = "E_BYTE"
            # -- IMAGE
            with m.State("CLEAR"):                       # the core's clear sweep, encoder lists
                with m.If(~self.busy & enc.ready):
                    m.d.comb += enc.begin.eq(1)
                    m.next = "PIX"
            with m.State("PIX"):                         # pl_data valid next cycle
                with m.If(idx == n_in):
                    m.next = "STEP"
                with m.Elif(enc.ready):
                    m.next = "PIX_PUSH"
            with m.State("PIX_PUSH"):
                m.d.comb += enc.pixels.valid.eq(1)
                with m.If(enc.pixels.ready):
                    m.d.sync += idx.eq(idx + 1)
                    m.next = "PIX"
            with m.State("STEP"):
                with m.If(t == n_steps):
                    m.d.sync += [c.eq(0), best.eq(0xFF), best_t.eq(NO_STEP)]
                    m.next = "CLASS"
                with m.Elif(enc.ready):
                    m.d.comb += enc.emit.eq(1)
                    m.next = "SPIKES"
            with m.State("SPIKES"):                      # encoder → core host spikes
                m.d.comb += [self.inp.valid.eq(enc.spikes.valid), enc.spikes.ready.eq(1)]
                with m.If(enc.spikes.valid & ~self.inp.ready):
                    m.d.sync += lost.eq(1)
                with m.If(enc.ready):
                    m.d.sync += run.eq(1)            # a register (timing), high in RUN_GO
                    m.next = "RUN_GO"
            with m.State("RUN_GO"):
                m.d.sync += run.eq(0)
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(~self.busy):
                    m.d.sync += t.eq(t + 1)
                    m.next = "STEP"
            with m.State("CLASS"):                       # earliest first spike, lowest id
                with m.If(c == n_cls):
                    put(best)
                    m.d.sync += [c.eq(0), idx.eq(0)]
                    m.next = "REPLY"
                with m.Else():
                    with m.If(first[c] < best_t):
                        m.d.sync += [best.eq(c), best_t.eq(first[c])]
                    m.d.sync += c.eq(c + 1)
            with m.State("REPLY"):
                with m.If(c == n_cls):
                    finish(Mux(lost, Status.INPUT_FULL, Status.OK))
                with m.Else():
                    f16 = Mux(first[c] == NO_STEP, 0xFFFF, first[c])
                    part = Array([cnt[c], f16[:8], f16[8:]])
                    put(part[idx[:2]])
                    m.d.sync += idx.eq(Mux(idx[:2] == 2, 0, idx + 1))
                    with m.If(idx[:2] == 2):
                        m.d.sync += c.eq(c + 1)
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
        return m
