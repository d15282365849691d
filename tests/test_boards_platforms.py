"""Board pieces that need no toolchain: PLL settings, the SPRAM wrapper, baud divisors,
report parsing, board geometries."""

from __future__ import annotations

import pytest
from amaranth.hdl import Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from neurocore.boards.build import parse_nextpnr_log, parse_yosys_cells, unregistered_dsps
from neurocore.boards.ecp5 import ecp5_pll_params
from neurocore.boards.ice40 import SinglePortRAM, ice40_pll_params, spram_blocks, spram_candidate
from neurocore.boards.presets import BOARD_GEOMETRIES, board_geometry
from neurocore.boards.top import uart_divisor
from neurocore.spec.words import memories


def test_pll_settings_match_icepll_and_ecppll():
    # icepll -i 12 -o 24 / -o 48; ecppll -i 25 -o 50
    assert ice40_pll_params(12e6, 24e6) == {"DIVR": 0, "DIVF": 63, "DIVQ": 5, "FILTER_RANGE": 1,
                                            "f_out": 24e6}
    assert ice40_pll_params(12e6, 48e6)["DIVQ"] == 4
    p = ice40_pll_params(12e6, 13.5e6)
    assert p["f_out"] == 13.5e6 and 533e6 <= 12e6 * (p["DIVF"] + 1) <= 1066e6
    e = ecp5_pll_params(25e6, 50e6)
    assert (e["CLKI_DIV"], e["CLKFB_DIV"], e["CLKOP_DIV"], e["f_out"]) == (1, 2, 12, 50e6)
    for f in (40e6, 62.5e6, 75e6):
        e = ecp5_pll_params(25e6, f)
        assert abs(e["f_out"] - f) / f < 0.01 and 400e6 <= e["f_vco"] <= 800e6
    with pytest.raises(ValueError):
        ice40_pll_params(12e6, 5e6)                     # below 533 MHz / 64
    with pytest.raises(ValueError):
        ecp5_pll_params(25e6, 33e6)                     # 33.33 MHz is the nearest


def test_uart_divisor():
    assert uart_divisor(13.5e6, 115200) == 117          # 0.16 % fast
    assert uart_divisor(50e6, 115200) == 434
    with pytest.raises(ValueError, match="cycles per bit"):
        uart_divisor(1e6, 921600)
    with pytest.raises(ValueError, match="off by"):
        uart_divisor(13.5e6, 3_000_000)                 # 4.5 cycles per bit
    assert uart_divisor(12e6, 3_000_000) == 4


@pytest.mark.parametrize("depth,width", [(64, 23), (20000, 20), (40000, 36)])
def test_single_port_ram_on_the_spram_model_behaves_like_memory(depth, width, rng):
    """Banked, multi-block SPRAM wrapper vs Amaranth's Memory: random writes, then reads."""
    ref = Memory(shape=width, depth=depth, init=[])
    dut = Memory(shape=width, depth=depth, init=[])
    dut._MustUse__silence = True                 # implemented by the wrapper, not elaborated
    ports = {}
    m = Module()
    m.submodules.ref = ref
    for name, mem in (("ref", ref), ("dut", dut)):
        ports[name] = (mem.write_port(), mem.read_port())
    assert spram_candidate(dut) is True
    m.submodules.dut = SinglePortRAM(dut, model=True)
    n = 200
    addrs = rng.integers(0, depth, n)
    addrs[:4] = [0, depth - 1, min(16383, depth - 1), min(16384, depth - 1)]
    data = rng.integers(0, 1 << width, n)
    sim = Simulator(m)
    sim.add_clock(1e-8)

    async def tb(ctx):
        for a, d in zip(addrs, data):
            for wp, _ in ports.values():
                ctx.set(wp.addr, int(a))
                ctx.set(wp.data, int(d))
                ctx.set(wp.en, 1)
            await ctx.tick()
        for wp, _ in ports.values():
            ctx.set(wp.en, 0)
        expect = {}
        for a, d in zip(addrs, data):
            expect[int(a)] = int(d)
        for a in list(expect)[:120]:
            for _, rp in ports.values():
                ctx.set(rp.addr, a)
            await ctx.tick()
            assert ctx.get(ports["dut"][1].data) == ctx.get(ports["ref"][1].data) == expect[a]

    sim.add_testbench(tb)
    sim.run()
    assert spram_blocks(depth, width) == -(-depth // 16384) * -(-width // 16)


def test_spram_candidate_rejects_other_port_structures():
    mem = Memory(shape=8, depth=16, init=[])
    mem._MustUse__silence = True
    mem.read_port()
    mem.read_port()
    mem.write_port()
    assert "2 read" in spram_candidate(mem)
    mem = Memory(shape=16, depth=16, init=[])
    mem._MustUse__silence = True
    mem.write_port(granularity=8)
    mem.read_port()
    assert "byte enables" in spram_candidate(mem)


def test_board_geometries_fit_their_memories():
    ice = board_geometry("icebreaker")
    syn = memories(ice)["synapses"]
    assert spram_blocks(syn.depth, syn.layout.size) <= 4        # the UP5K has four SPRAMs
    assert set(BOARD_GEOMETRIES) == {"icebreaker", "ulx3s"}
    with pytest.raises(KeyError):
        board_geometry("nope")


LOG = """Info: Device utilisation:
Info: \t         ICESTORM_LC:  3000/ 5280    56%
Info: \t        ICESTORM_RAM:    20/   30    66%

Info: Max frequency for clock                      'clk': 20.00 MHz (PASS at 12.00 MHz)
Info: Device utilisation:
Info: \t         ICESTORM_LC:  3924/ 5280    74%
Info: \t        ICESTORM_RAM:    24/   30    80%
Info: \t        ICESTORM_DSP:     5/    8    62%

Info: Max frequency for clock '$PACKER_GND_NET_$glb_clk': 263.16 MHz (PASS at 13.50 MHz)
Info: Max frequency for clock                      'clk': 18.62 MHz (PASS at 13.50 MHz)

Info: Max delay posedge $PACKER_GND_NET_$glb_clk -> posedge clk                     : 31.00 ns
Info: Max delay posedge clk                      -> posedge $PACKER_GND_NET_$glb_clk: 30.00 ns
"""


def test_nextpnr_log_parsing_uses_nextpnrs_fmax():
    r = parse_nextpnr_log(LOG)
    assert r["utilisation"]["ICESTORM_LC"] == {"used": 3924, "total": 5280}
    assert r["utilisation"]["ICESTORM_DSP"]["used"] == 5
    assert r["clocks"] == {"clk": {"fmax_mhz": 18.62, "target_mhz": 13.5, "pass": True}}
    # a DSP with its clock tied off: nextpnr invents a constant-net clock and cannot time
    # through the DSP
    assert r["unclocked"] == ["$PACKER_GND_NET_$glb_clk"]
    assert parse_nextpnr_log(LOG.split("Info: Max frequency for clock '$PACKER")[0]
                             + "Info: Max frequency for clock 'clk': 18.62 MHz (PASS at 13.50 "
                             "MHz)\n")["unclocked"] == []
    with pytest.raises(ValueError):
        parse_nextpnr_log("nothing")
    cells = parse_yosys_cells("Printing statistics.\n\n     4475   SB_LUT4\n       24   SB_RAM40_4K\n")
    assert cells == {"SB_LUT4": 4475, "SB_RAM40_4K": 24}


def _mac(**params):
    base = {"A_REG": 1, "B_REG": 1, "TOPOUTPUT_SELECT": 3, "BOTOUTPUT_SELECT": 3,
            "PIPELINE_16x16_MULT_REG1": 1}
    base.update(params)
    return {"type": "SB_MAC16", "parameters": {k: format(v, "032b") for k, v in base.items()}}


def test_unregistered_dsps_are_listed():
    """Only an SB_MAC16 registered at its A/B inputs and at its outputs is timed exactly."""
    cells = {"ok": _mac(), "ok_acc": _mac(TOPOUTPUT_SELECT=1, BOTOUTPUT_SELECT=1,
                                          PIPELINE_16x16_MULT_REG1=0),
             "comb_out": _mac(PIPELINE_16x16_MULT_REG1=0), "comb_b": _mac(B_REG=0),
             "adder": _mac(BOTOUTPUT_SELECT=0), "lut": {"type": "SB_LUT4", "parameters": {}}}
    netlist = {"modules": {"top": {"cells": cells}}}
    assert unregistered_dsps(netlist) == ["adder", "comb_b", "comb_out"]



@pytest.mark.parametrize("board,primitives", [
    ("icebreaker", {"SB_PLL40_PAD": 1, "SB_SPRAM256KA": 4}),
    ("ulx3s", {"EHXPLLL": 1, "SB_SPRAM256KA": 0}),
])
def test_board_tops_elaborate_with_pll_and_memory_overrides(board, primitives):
    """Both tops elaborate to RTLIL (no synthesis): PLL, SPRAM blocks, UART divisor."""
    from neurocore.boards.build import board_module

    b = board_module(board).Board()
    plan = b.platform().prepare(b.top(), name=b.name, synth_opts=b.synth_opts)
    il = plan.files[f"{b.name}.il"]
    for prim, count in primitives.items():
        assert il.count(f"cell \\{prim} ") == count, prim
    assert b.memory_map()["override"] == (["synapses"] if board == "icebreaker" else [])
    system = b.system()
    for unused in (system, system.core, system.bridge):   # inspected, not elaborated
        unused._MustUse__silence = True
    assert system.bridge.divisor == uart_divisor(b.clock_hz, 115200)
    assert system.geometry == board_geometry(board)


def test_update_lanes_beyond_the_multiplier_budget_are_refused():
    """Each update lane needs two decay multipliers (24 x 13 bits: two hard multipliers each on
    both devices); more lanes than the device holds is a ConfigError before elaboration."""
    from neurocore.boards.icebreaker import Board as IceBreaker
    from neurocore.boards.ulx3s import Board as ULX3S
    from neurocore.spec.geometry import ConfigError

    g = IceBreaker().geometry
    assert IceBreaker.lane_multipliers(g) == 4 and ULX3S.lane_multipliers(g) == 4
    IceBreaker(geometry=g.replace(k_u=2))              # 8 of 8 SB_MAC16
    with pytest.raises(ConfigError, match=r"k_u=4 update lanes need 16 hard multipliers .* "
                                          r"has 8: use k_u <= 2"):
        IceBreaker(geometry=g.replace(k_u=4))
    assert ULX3S().geometry.k_u * 4 <= ULX3S.multipliers
