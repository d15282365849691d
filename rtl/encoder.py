"""On-chip TTFS encoder: 8-bit pixels → host spikes per step (docs/rtl.md, "TTFS encoder").

The encoder holds the tables of :func:`neurocore.sw.pixels.encoder_tables` (a 256-entry
pixel → step LUT, the axon of each input, up to ``max_clocks`` clock (axon, step) pairs) and,
for the image being run, one linked list of inputs per step: a pixel byte of input ``i``
looks up its step ``s`` and is pushed on list ``s`` (``next[i] = head[s]; head[s] = i``), so an
image costs O(inputs + steps) cycles, not inputs × steps.

Timing: ``begin`` (one cycle, while ``ready``) empties every list in ``max_steps`` cycles and
restarts the input index at 0; each accepted pixel takes 3 cycles; ``emit`` (one cycle, while
``ready``) with ``step`` = t streams out, on ``spikes``, the axon of every input whose pixel
spikes at step t (list order: last input first), then the clock axons whose step is t, and
returns to ``ready``.  Pixels beyond ``max_inputs`` are dropped.  The tables are written through
``wr_*`` (one word per cycle, any time the encoder is ready): table 0 LUT (addr = pixel value,
data = step, :data:`~neurocore.sw.pixels.NO_STEP` = never), 1 input axons (addr = input),
2 clock axon and 3 clock step (addr = clock index; a clock with step NO_STEP is off).
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..sw.pixels import NO_STEP, STEP_BITS

__all__ = ["TTFSEncoder", "TABLE_LUT", "TABLE_AXONS", "TABLE_CLOCK_AXON", "TABLE_CLOCK_STEP"]

TABLE_LUT, TABLE_AXONS, TABLE_CLOCK_AXON, TABLE_CLOCK_STEP = range(4)


class TTFSEncoder(wiring.Component):
    """Pixel bytes in, per-step host spikes out (module docstring).

    ``max_inputs``: inputs per image (≤ 65535); ``max_steps``: steps per image (≤ NO_STEP);
    ``axon_bits``: width of an axon id; ``max_clocks``: clock axons.
    """

    def __init__(self, *, max_inputs: int, max_steps: int, axon_bits: int, max_clocks: int = 3):
        if not 1 <= max_inputs < 1 << 16:
            raise ValueError(f"max_inputs must lie in 1..65535, not {max_inputs!r}")
        if not 1 <= max_steps <= NO_STEP:
            raise ValueError(f"max_steps must lie in 1..{NO_STEP}, not {max_steps!r}")
        self.max_inputs, self.max_steps, self.max_clocks = max_inputs, max_steps, max_clocks
        self.idx_bits = max_inputs.bit_length()          # all ones: end of list
        super().__init__({
            "begin": In(1), "emit": In(1), "step": In(STEP_BITS), "ready": Out(1),
            "pixels": In(stream.Signature(8)),
            "spikes": Out(stream.Signature(unsigned(axon_bits))),
            "wr_en": In(1), "wr_table": In(2), "wr_addr": In(16), "wr_data": In(16),
        })

    def elaborate(self, platform):
        m = Module()
        nil = (1 << self.idx_bits) - 1
        axon_bits = len(self.spikes.payload)
        lut = m.submodules.lut = Memory(shape=STEP_BITS, depth=256, init=[NO_STEP] * 256)
        axons = m.submodules.axons = Memory(shape=axon_bits, depth=self.max_inputs, init=[])
        nxt = m.submodules.nxt = Memory(shape=self.idx_bits, depth=self.max_inputs, init=[])
        head = m.submodules.head = Memory(shape=self.idx_bits, depth=self.max_steps, init=[])
        lut_w, lut_r = lut.write_port(), lut.read_port()
        ax_w, ax_r = axons.write_port(), axons.read_port()
        nxt_w, nxt_r = nxt.write_port(), nxt.read_port()
        head_w, head_r = head.write_port(), head.read_port()
        clk_axon = Array([Signal(axon_bits, name=f"clk_axon{i}") for i in range(self.max_clocks)])
        clk_step = Array([Signal(STEP_BITS, init=NO_STEP, name=f"clk_step{i}")
                          for i in range(self.max_clocks)])

        # ---- table writes
        wa, wd = self.wr_addr, self.wr_data
        m.d.comb += [lut_w.addr.eq(wa), lut_w.data.eq(wd), ax_w.addr.eq(wa), ax_w.data.eq(wd)]
        with m.If(self.wr_en):
            with m.Switch(self.wr_table):
                with m.Case(TABLE_LUT):
                    m.d.comb += lut_w.en.eq(1)
                with m.Case(TABLE_AXONS):
                    m.d.comb += ax_w.en.eq(wa < self.max_inputs)
                with m.Case(TABLE_CLOCK_AXON):
                    with m.If(wa < self.max_clocks):
                        m.d.sync += clk_axon[wa].eq(wd)
                with m.Case(TABLE_CLOCK_STEP):
                    with m.If(wa < self.max_clocks):
                        m.d.sync += clk_step[wa].eq(wd)

        idx = Signal(16)             # next input of the image
        s = Signal(STEP_BITS)        # step of the pixel being inserted
        cur = Signal(self.idx_bits)  # list walk
        t = Signal(STEP_BITS)        # step being emitted
        c = Signal(range(self.max_clocks + 1))
        m.d.comb += [ax_r.addr.eq(cur), nxt_r.addr.eq(cur), lut_r.addr.eq(self.pixels.payload),
                     head_r.addr.eq(s)]
        with m.FSM(name="encoder"):
            with m.State("IDLE"):
                m.d.comb += self.ready.eq(1)
                with m.If(self.begin):
                    m.d.sync += [idx.eq(0), s.eq(0)]
                    m.next = "CLEAR"
                with m.Elif(self.emit):
                    m.d.comb += head_r.addr.eq(self.step)
                    m.d.sync += t.eq(self.step)
                    m.next = "HEAD"
                with m.Else():
                    m.d.comb += self.pixels.ready.eq(1)
                    with m.If(self.pixels.valid):
                        m.next = "LOOKUP"
            with m.State("CLEAR"):               # head[0 .. max_steps-1] = nil
                m.d.comb += [head_w.en.eq(1), head_w.addr.eq(s), head_w.data.eq(nil)]
                m.d.sync += s.eq(s + 1)
                with m.If(s == self.max_steps - 1):
                    m.next = "IDLE"
            with m.State("LOOKUP"):              # lut_r.data: step of the pixel
                m.d.sync += s.eq(lut_r.data)
                m.d.comb += head_r.addr.eq(lut_r.data)
                with m.If((lut_r.data >= self.max_steps) | (idx >= self.max_inputs)):
                    m.d.sync += idx.eq(idx + 1)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "PUSH"
            with m.State("PUSH"):                # head_r.data: old head of list s
                m.d.comb += [nxt_w.en.eq(1), nxt_w.addr.eq(idx), nxt_w.data.eq(head_r.data),
                             head_w.en.eq(1), head_w.addr.eq(s), head_w.data.eq(idx)]
                m.d.sync += idx.eq(idx + 1)
                m.next = "IDLE"
            with m.State("HEAD"):                # head_r.data: first input of list t
                m.d.sync += cur.eq(head_r.data)
                m.next = "WALK"
            with m.State("WALK"):                # ax_r/nxt_r read cur
                with m.If(cur == nil):
                    m.d.sync += c.eq(0)
                    m.next = "CLOCKS"
                with m.Else():
                    m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += [self.spikes.valid.eq(1), self.spikes.payload.eq(ax_r.data)]
                with m.If(self.spikes.ready):
                    m.d.sync += cur.eq(nxt_r.data)
                    m.next = "WALK"
            with m.State("CLOCKS"):
                with m.If(c == self.max_clocks):
                    m.next = "IDLE"
                with m.Elif(clk_step[c] == t):
                    m.d.comb += [self.spikes.valid.eq(1), self.spikes.payload.eq(clk_axon[c])]
                    with m.If(self.spikes.ready):
                        m.d.sync += c.eq(c + 1)
                with m.Else():
                    m.d.sync += c.eq(c + 1)
        return m
