"""ECP5 pieces: the EHXPLLL setting search (as Project Trellis' ecppll) and the clock/reset."""

from __future__ import annotations

from amaranth.hdl import ClockDomain, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io

from .reset import hold_reset_until_lock

__all__ = ["ecp5_pll_params", "ECP5ClockReset"]


def ecp5_pll_params(f_in: float, f_out: float) -> dict:
    """EHXPLLL dividers (CLKOP feedback) whose output is nearest ``f_out``.

    Limits as ecppll: PFD 3.125–400 MHz, VCO 400–800 MHz, output 10–400 MHz.  Returns
    ``CLKI_DIV``, ``CLKFB_DIV``, ``CLKOP_DIV``, ``f_vco`` and the achieved ``f_out``.
    """
    best = None
    for clki in range(1, 129):
        f_pfd = f_in / clki
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for clkfb in range(1, 81):
            f = f_pfd * clkfb
            if not 10e6 <= f <= 400e6:
                continue
            for clkop in range(1, 129):
                f_vco = f * clkop
                if not 400e6 <= f_vco <= 800e6:
                    continue
                err = abs(f - f_out)
                # nearest output, then the VCO nearest 600 MHz
                key = (round(err, 3), abs(f_vco - 600e6))
                if best is None or key < best[0]:
                    best = (key, clki, clkfb, clkop, f_vco, f)
    if best is None:
        raise ValueError(f"no EHXPLLL setting reaches {f_out / 1e6} MHz from {f_in / 1e6} MHz")
    _, clki, clkfb, clkop, f_vco, f = best
    if abs(f - f_out) > 0.01 * f_out:
        raise ValueError(f"the nearest EHXPLLL output to {f_out / 1e6} MHz is {f / 1e6} MHz")
    return {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop, "f_vco": f_vco,
            "f_out": f}


class ECP5ClockReset(Elaboratable):
    """The ``sync`` domain from the board clock through EHXPLLL (unless ``f_out == f_in``),
    held in reset until the PLL locks and ``por_cycles`` more cycles have passed."""

    def __init__(self, resource: str, f_in: float, f_out: float, *, por_cycles: int = 64):
        self.resource = resource
        self.f_in = f_in
        self.pll = None if abs(f_out - f_in) < 1 else ecp5_pll_params(f_in, f_out)
        self.f_out = f_in if self.pll is None else self.pll["f_out"]
        self.por_cycles = por_cycles
        self.lock = Signal()
        #: The domains this module drives; the parent adds them (``m.domains += ...``).
        self.domains = [ClockDomain("sync"), ClockDomain("por", reset_less=True)]

    def elaborate(self, platform):
        m = Module()
        cd, por = self.domains
        m.submodules.clk_buf = clk_buf = io.Buffer("i", platform.request(self.resource, dir="-"))
        clk_in = clk_buf.i
        if self.pll is None:
            m.d.comb += [cd.clk.eq(clk_in), self.lock.eq(1)]
        else:
            p = self.pll
            m.submodules.pll = Instance(
                "EHXPLLL",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=p["CLKI_DIV"], p_CLKFB_DIV=p["CLKFB_DIV"], p_FEEDBK_PATH="CLKOP",
                p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
                p_CLKOP_CPHASE=p["CLKOP_DIV"] - 1, p_CLKOP_FPHASE=0,
                a_FREQUENCY_PIN_CLKI=f"{self.f_in / 1e6:g}",
                a_FREQUENCY_PIN_CLKOP=f"{self.f_out / 1e6:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                i_RST=Const(0), i_STDBY=Const(0), i_CLKI=clk_in, i_CLKFB=cd.clk,
                i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1),
                i_PHASESTEP=Const(1), i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0),
                i_ENCLKOP=Const(0), o_CLKOP=cd.clk, o_LOCK=self.lock)
        hold_reset_until_lock(m, cd, por, self.lock, self.por_cycles)
        # nextpnr derives the PLL output's constraint from the clock pin's (the report
        # checks that the target equals f_out).
        return m
