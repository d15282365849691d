"""iCEBreaker (iCE40UP5K-SG48): neurocore + UART bridge on the FTDI's second channel.

* Geometry: ``presets.BOARD_GEOMETRIES["icebreaker"]``; the synapse memory in the four
  SPRAMs (:class:`~neurocore.boards.ice40.SinglePortRAM` through ``get_memory``), everything
  else in block RAM; the decay multipliers in the SB_MAC16 DSPs (``synth_ice40 -dsp``).
* Clock: the 12 MHz oscillator through SB_PLL40_PAD to :attr:`Board.default_clock_hz`.
* UART: 115200 baud 8N1 by default (``pins 6/9``, the FTDI's channel B: ``/dev/ttyUSB1``).
* LEDs: red = a sticky error flag, green = a command or step is running.

``make bitstream BOARD=icebreaker`` → ``build/icebreaker/neurocore.bin``; program it with
``iceprog build/icebreaker/neurocore.bin``.
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io
from amaranth_boards.icebreaker import ICEBreakerPlatform

from .ice40 import ICE40ClockReset, SinglePortRAM, ice40_pll_params, spram_blocks
from .top import BoardBase, MemoryOverride, core_memory_selector

__all__ = ["Board", "Top", "NeurocoreICEBreakerPlatform"]


class NeurocoreICEBreakerPlatform(ICEBreakerPlatform):
    """The iCEBreaker platform with the SPRAM override for the synapse memory."""

    def __init__(self, override: MemoryOverride, **kwargs):
        super().__init__(**kwargs)
        self._override = override

    def get_memory(self, memory):
        return self._override(memory)


class Top(Elaboratable):
    def __init__(self, board: "Board"):
        self.board = board
        self.clock = ICE40ClockReset("clk12", 12e6, board.clock_hz)

    def elaborate(self, platform):
        m = Module()
        m.domains += self.clock.domains
        m.submodules.clock = self.clock
        m.submodules.system = system = self.board.system()
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.submodules.led_r = led_r = io.Buffer("o", platform.request("led_r", 0, dir="-"))
        m.submodules.led_g = led_g = io.Buffer("o", platform.request("led_g", 0, dir="-"))
        m.d.comb += [system.rx.eq(rx.i), tx.o.eq(system.tx),
                     led_r.o.eq(system.led_error), led_g.o.eq(system.led_busy)]
        return m


class Board(BoardBase):
    board = "icebreaker"
    device = "iCE40UP5K-SG48"
    bitstream_suffix = "bin"
    #: 30 MHz (the PLL gives 30.02): the core with the registered bridge closes there with
    #: nextpnr placement seed 6.  Seeds 2-6 of this design at this constraint gave 28.39,
    #: 30.02, 28.55, 28.91 and 30.07 MHz; nextpnr is deterministic for one netlist, seed and
    #: version, and the design key (boards/build.py) covers all three.
    default_clock_hz = 30e6
    seed = 6
    event_depth = 128
    synth_opts = "-dsp"
    multipliers = 8              # SB_MAC16
    multiplier_bits = 16
    #: Memories put into SPRAM.
    spram = ("synapses",)
    rx_depth = 512               # block RAM is scarce: room for 3 digits IMAGE frames
    enc_inputs = 256
    #: The image runner and its encoder (v2 ENCODER/IMAGE) do not fit the UP5K's 5280 logic
    #: cells beside the core and the bridge (Yosys: 5594 LUT4 with them); the bitstream
    #: answers those commands UNKNOWN_CMD (docs/protocol.md).
    image_commands = False
    #: 16-bit step counter (65536 steps between CLEARs; the digits MLP runs 62 per image):
    #: narrower event FIFO entries, step registers and reply multiplexers.
    step_bits = 16
    #: 16-bit hardware counters (a digits MLP inference takes about 13,000 cycles; the host
    #: clears them before each measurement): 9 x 16 fewer flip-flops and adder cells.
    counter_bits = 16

    @property
    def clock_hz(self) -> float:
        if abs(self.requested_clock_hz - 12e6) < 1:
            return 12e6
        return ice40_pll_params(12e6, self.requested_clock_hz)["f_out"]

    def pll_info(self):
        if abs(self.requested_clock_hz - 12e6) < 1:
            return None
        return {"primitive": "SB_PLL40_PAD", "f_in_hz": 12e6,
                **ice40_pll_params(12e6, self.requested_clock_hz)}

    def platform(self):
        self.override = MemoryOverride(core_memory_selector(self.geometry, self.spram),
                                       SinglePortRAM)
        return NeurocoreICEBreakerPlatform(self.override)

    def top(self):
        return Top(self)

    def memory_map(self) -> dict:
        from ..spec.words import memories
        mems = memories(self.geometry)
        return {"spram": {n: spram_blocks(mems[n].depth, mems[n].layout.size)
                          for n in self.spram},
                "override": list(self.override.mapped) if self.override else []}
