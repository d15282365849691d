"""iCE40 UP5K pieces: the SPRAM memory override, the PLL and the power-on reset.

**SPRAM.** The UP5K's four SB_SPRAM256KA blocks (16 K x 16 bits each, 1 Mbit) are single-port:
one address per cycle.  Yosys infers them only for a memory whose read and write ports share
one address signal; the neurocore's ``synapses`` memory has separate read and write addresses
(``cfg.addr`` for writes, the synapse walk for reads).  :class:`SinglePortRAM` implements such
a memory on SPRAM with ``address = write_en ? write_addr : read_addr``.  That is exact for a
memory that is written only while its read data is unused in the next cycle: the neurocore
writes a synapse only through the configuration port while idle (docs/rtl.md: ``cfg.ready``
is high only while idle), and its synapse reads happen only while a step runs, so a write
never coincides with a read whose data is used.  The board platforms apply it through
Amaranth's ``platform.get_memory()`` hook to the memories :func:`spram_candidate` selects
(the synapse memory; nothing in rtl/ changes).  SPRAM has no initial contents: the host
driver fills every configuration memory before loading (docs/protocol.md).

:class:`SPRAMModel` is a behavioural model of SB_SPRAM256KA so the same wrapper runs in the
simulators (tests/test_boards_system.py runs the whole board design with it).
"""

from __future__ import annotations

from amaranth.hdl import (Cat, ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module,
                          Mux, Shape, Signal)
from amaranth.lib import io
from amaranth.lib.memory import Memory

from .reset import hold_reset_until_lock

__all__ = ["SPRAM_DEPTH", "SPRAM_WIDTH", "SPRAM_COUNT", "SPRAMModel", "SinglePortRAM",
           "spram_candidate", "spram_blocks", "ice40_pll_params", "ICE40ClockReset"]

SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16
SPRAM_COUNT = 4           # on the UP5K


def spram_blocks(depth: int, width: int) -> int:
    """SB_SPRAM256KA blocks needed for a ``depth`` x ``width`` memory."""
    return -(-depth // SPRAM_DEPTH) * -(-width // SPRAM_WIDTH)


class SPRAMModel(Elaboratable):
    """Behavioural SB_SPRAM256KA: 16 K x 16, registered read, nibble write mask.

    A write does not change ``dataout``; with ``chipselect`` low the block does nothing and
    ``dataout`` holds its value (SPRAM reads have no output enable).
    """

    def __init__(self):
        self.address = Signal(14)
        self.datain = Signal(16)
        self.maskwren = Signal(4)
        self.wren = Signal()
        self.chipselect = Signal()
        self.dataout = Signal(16)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=16, depth=SPRAM_DEPTH, init=[])
        wr = mem.write_port(granularity=4)
        rd = mem.read_port()
        m.d.comb += [wr.addr.eq(self.address), wr.data.eq(self.datain), rd.addr.eq(self.address),
                     rd.en.eq(self.chipselect & ~self.wren), self.dataout.eq(rd.data)]
        with m.If(self.chipselect & self.wren):
            m.d.comb += wr.en.eq(self.maskwren)
        return m


class SinglePortRAM(Elaboratable):
    """A :class:`Memory` with one write and one read port, built from SPRAM blocks.

    ``model=True`` uses :class:`SPRAMModel` instead of the SB_SPRAM256KA primitive.
    """

    def __init__(self, memory: Memory, *, model: bool = False):
        check = spram_candidate(memory)
        if check is not True:
            raise ValueError(f"memory cannot go into SPRAM: {check}")
        self.memory = memory
        self.model = model
        self.width = Shape.cast(memory.shape).width
        self.n_wide = -(-self.width // SPRAM_WIDTH)
        self.n_banks = -(-memory.depth // SPRAM_DEPTH)

    def elaborate(self, platform):
        m = Module()
        wp, rp = self.memory.write_ports[0], self.memory.read_ports[0]
        wen = wp.en.any()
        addr = Signal(max(14, len(wp.addr)))
        m.d.comb += addr.eq(Mux(wen, wp.addr, rp.addr))
        wdata = Signal(self.n_wide * SPRAM_WIDTH)
        m.d.comb += wdata.eq(wp.data)
        bank = addr[14:] if self.n_banks > 1 else Const(0, 1)
        bank_r = Signal(len(bank))
        with m.If(rp.en & ~wen):
            m.d.sync += bank_r.eq(bank)
        outs = []
        for b in range(self.n_banks):
            words = []
            for i in range(self.n_wide):
                dout = Signal(SPRAM_WIDTH, name=f"spram_{b}_{i}_out")
                cs = Signal(name=f"spram_{b}_{i}_cs")
                m.d.comb += cs.eq((bank == b) & (wen | rp.en))
                din = wdata[i * SPRAM_WIDTH:(i + 1) * SPRAM_WIDTH]
                if self.model:
                    blk = SPRAMModel()
                    m.submodules[f"spram_{b}_{i}"] = blk
                    m.d.comb += [blk.address.eq(addr[:14]), blk.datain.eq(din),
                                 blk.maskwren.eq(0b1111), blk.wren.eq(wen),
                                 blk.chipselect.eq(cs), dout.eq(blk.dataout)]
                else:
                    m.submodules[f"spram_{b}_{i}"] = Instance(
                        "SB_SPRAM256KA",
                        i_ADDRESS=addr[:14], i_DATAIN=din, i_MASKWREN=Const(0b1111, 4),
                        i_WREN=wen, i_CHIPSELECT=cs, i_CLOCK=ClockSignal(rp.domain),
                        i_STANDBY=Const(0), i_SLEEP=Const(0), i_POWEROFF=Const(1),
                        o_DATAOUT=dout)
                words.append(dout)
            outs.append(Cat(*words))
        data = outs[0]
        for b in range(1, self.n_banks):
            data = Mux(bank_r == b, outs[b], data)
        m.d.comb += rp.data.eq(data[:self.width])
        return m


def spram_candidate(memory: Memory):
    """True if ``memory`` has the port structure :class:`SinglePortRAM` supports, else why not.

    (One write port without byte enables and one non-transparent read port, both in the
    ``sync`` domain; the write/read exclusivity is the caller's contract, see above.)
    """
    if len(memory.write_ports) != 1 or len(memory.read_ports) != 1:
        return f"{len(memory.write_ports)} write and {len(memory.read_ports)} read ports"
    wp, rp = memory.write_ports[0], memory.read_ports[0]
    if len(wp.en) != 1:
        return "the write port has byte enables"
    if rp.domain != "sync" or wp.domain != "sync":
        return "ports outside the sync domain"
    if rp.transparent_for:
        return "a transparent read port"
    return True


# ---- PLL and reset ----------------------------------------------------------------------------------
def ice40_pll_params(f_in: float, f_out: float) -> dict:
    """SB_PLL40 settings (SIMPLE feedback) whose output is nearest ``f_out`` (as icepll).

    Returns ``DIVR``, ``DIVF``, ``DIVQ``, ``FILTER_RANGE`` and the achieved ``f_out``.
    """
    best = None
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            for divq in range(1, 7):
                f = f_vco / (1 << divq)
                err = abs(f - f_out)
                if best is None or err < best[0] - 1e-3:
                    best = (err, divr, divf, divq, f, f_pfd)
    if best is None:
        raise ValueError(f"no SB_PLL40 setting reaches {f_out / 1e6} MHz from {f_in / 1e6} MHz")
    _, divr, divf, divq, f, f_pfd = best
    if abs(f - f_out) > 0.01 * f_out:
        raise ValueError(f"the nearest SB_PLL40 output to {f_out / 1e6} MHz is {f / 1e6} MHz")
    filt = next(i for i, lim in enumerate((17e6, 26e6, 44e6, 66e6, 101e6, float("inf")), 1)
                if f_pfd < lim)
    return {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": filt, "f_out": f}


class ICE40ClockReset(Elaboratable):
    """The ``sync`` domain: from the board clock pin, through SB_PLL40_PAD unless ``f_out`` is
    the pin's frequency, with a power-on reset held for ``por_us`` after the PLL locks (iCE40
    block RAMs read as zero for ~3 us after configuration; Amaranth's own default domain
    waits 15 us for the same reason)."""

    def __init__(self, resource: str, f_in: float, f_out: float, *, por_us: float = 20.0):
        self.resource = resource
        self.f_in = f_in
        self.pll = None if abs(f_out - f_in) < 1 else ice40_pll_params(f_in, f_out)
        self.f_out = f_in if self.pll is None else self.pll["f_out"]
        self.por_cycles = int(por_us * 1e-6 * self.f_out) + 1
        self.lock = Signal()
        #: The domains this module drives; the parent adds them (``m.domains += ...``).
        self.domains = [ClockDomain("sync"), ClockDomain("por", reset_less=True)]

    def elaborate(self, platform):
        m = Module()
        cd, por = self.domains
        if self.pll is None:
            m.submodules.clk_buf = clk_buf = io.Buffer("i", platform.request(self.resource,
                                                                            dir="-"))
            m.d.comb += [cd.clk.eq(clk_buf.i), self.lock.eq(1)]
        else:
            p = self.pll
            pin = platform.request(self.resource, dir="-")
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=Const(p["DIVR"], 4), p_DIVF=Const(p["DIVF"], 7),
                p_DIVQ=Const(p["DIVQ"], 3), p_FILTER_RANGE=Const(p["FILTER_RANGE"], 3),
                io_PACKAGEPIN=pin.io, i_RESETB=Const(1), i_BYPASS=Const(0),
                o_PLLOUTGLOBAL=cd.clk, o_LOCK=self.lock)
        hold_reset_until_lock(m, cd, por, self.lock, self.por_cycles)
        # nextpnr derives the PLL output's constraint from the clock pin's (the report
        # checks that the target equals f_out).
        return m

