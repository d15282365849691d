"""ULX3S (ECP5 LFE5U-85F, CABGA381, speed 6): neurocore + UART bridge on the FTDI (US1).

* Geometry: ``presets.BOARD_GEOMETRIES["ulx3s"]``, every memory in block RAM; the decay
  multipliers in MULT18X18D (``synth_ecp5`` infers them).
* Clock: the 25 MHz oscillator through EHXPLLL to :attr:`Board.default_clock_hz`.
* UART: 115200 baud 8N1 by default on the FTDI's serial port.
* LEDs: D0 = a command or step is running, D1 = a sticky error flag, D7 = PLL locked.

``make bitstream BOARD=ulx3s`` → ``build/ulx3s/neurocore.bit``; program it with
``openFPGALoader -b ulx3s build/ulx3s/neurocore.bit`` (the build itself does not need
openFPGALoader: the platform drops it from the required tools).
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from .ecp5 import ECP5ClockReset, ecp5_pll_params
from .top import BoardBase

__all__ = ["Board", "Top", "NeurocoreULX3SPlatform"]


class NeurocoreULX3SPlatform(ULX3S_85F_Platform):
    """ULX3S 85F; building needs no programmer (amaranth-boards lists openFPGALoader)."""

    @property
    def required_tools(self):
        return [t for t in super().required_tools if t != "openFPGALoader"]


class Top(Elaboratable):
    def __init__(self, board: "Board"):
        self.board = board
        self.clock = ECP5ClockReset("clk25", 25e6, board.clock_hz)

    def elaborate(self, platform):
        m = Module()
        m.domains += self.clock.domains
        m.submodules.clock = self.clock
        m.submodules.system = system = self.board.system()
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        leds = []
        for i in (0, 1, 7):
            leds.append(io.Buffer("o", platform.request("led", i, dir="-")))
            m.submodules[f"led{i}"] = leds[-1]
        m.d.comb += [system.rx.eq(rx.i), tx.o.eq(system.tx),
                     leds[0].o.eq(system.led_busy), leds[1].o.eq(system.led_error),
                     leds[2].o.eq(self.clock.lock)]
        return m


class Board(BoardBase):
    board = "ulx3s"
    device = "LFE5U-85F-6BG381C"
    multipliers = 156            # MULT18X18D
    multiplier_bits = 18
    bitstream_suffix = "bit"
    default_clock_hz = 30e6
    event_depth = 512
    synth_opts = ""

    @property
    def clock_hz(self) -> float:
        if abs(self.requested_clock_hz - 25e6) < 1:
            return 25e6
        return ecp5_pll_params(25e6, self.requested_clock_hz)["f_out"]

    def pll_info(self):
        if abs(self.requested_clock_hz - 25e6) < 1:
            return None
        return {"primitive": "EHXPLLL", "f_in_hz": 25e6,
                **ecp5_pll_params(25e6, self.requested_clock_hz)}

    def platform(self):
        return NeurocoreULX3SPlatform()

    def top(self):
        return Top(self)

    def memory_map(self) -> dict:
        return {"override": []}
