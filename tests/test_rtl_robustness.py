"""docs/rtl.md §3 robustness rules that no power-of-two preset reaches: a full host-spike
buffer, and (with forced memory words) a synapse to a compartment ``≥ n_compartments`` or an
AXON route to an axon ``≥ n_axons``.  Non-power-of-two geometries make the bad ids
representable; the RTL runs in Amaranth's simulator and is compared with the golden model of
the config without the bad entry."""

from __future__ import annotations

import copy

import numpy as np

from neurocore.golden.core import GoldenCore
from neurocore.golden.network import NetworkBuilder
from neurocore.rtl.core import Neurocore
from neurocore.sim.pysim import simulate
from neurocore.spec.geometry import CoreGeometry
from neurocore.spec.words import RouteKind

LIST_RANGE = 4                                   # bit 2 of ctrl.error (rtl.core.ErrorFlags)
#: n_compartments = 6 (ids 6, 7 representable), n_axons = 12 (ids 12..15 representable).
ODD = CoreGeometry.preset("tiny").replace(name="odd", n_compartments=6, n_axons=12,
                                          n_outputs=6)


def golden_u_v(config, raster):
    r = GoldenCore(config).run(raster, record=("u", "v"))
    return r.u[-1], r.v[-1]


def raster(steps: int, spikes: dict[int, list[int]], g=ODD) -> np.ndarray:
    x = np.zeros((steps, g.n_axons), dtype=bool)
    for t, axons in spikes.items():
        x[t, axons] = True
    return x


async def run_steps(drv, words, spikes: dict[int, list[int]], steps: int, forced=()):
    """Load ``words``, write the ``forced`` (memory, address, word) triples, run ``steps``
    steps with host ``spikes``; return (ctrl.error, u, v)."""
    await drv.load(words)
    for mem, addr, word in forced:
        await drv.write(mem, addr, word)
    for t in range(steps):
        await drv.send_spikes(spikes.get(t, []))
        await drv.run_step()
    u, v = await drv.read_state()
    return drv.bus.get("ctrl.error"), u, v


def test_full_input_buffer_holds_the_host_off_without_loss():
    """input_depth=3: a 3-entry host queue; the 4th spike waits (inp.ready low) and no
    accepted spike is lost or doubled."""
    b = NetworkBuilder(ODD)
    p = b.add_profile(du=0, du_offset=0, dv=0, vth=1000)
    cx = b.add_compartments(6, profile=p)
    for a in range(6):
        b.connect(a, [cx[a]], [10 + a])
    cfg = b.build()
    dut = Neurocore(ODD, input_depth=3)

    async def tb(drv):
        await drv.load(cfg.to_words())
        bus, readies = drv.bus, []
        for a in range(6):                       # offer six spikes, one per cycle
            readies.append(bus.get("inp.ready"))
            bus.set("inp.payload", a)
            bus.set("inp.valid", 1)
            await drv.tick()
        bus.set("inp.valid", 0)
        await drv.run_step()
        u, v = await drv.read_state()
        return readies, u, v

    readies, u, v = simulate(dut, tb)
    assert dut.input_depth == 3 and readies == [1, 1, 1, 0, 0, 0]
    gold_u, gold_v = golden_u_v(cfg, raster(1, {0: [0, 1, 2]}))
    assert (u == gold_u).all() and (v == gold_v).all()


def test_synapse_to_a_compartment_beyond_n_is_skipped_and_flagged():
    b = NetworkBuilder(ODD)
    p = b.add_profile(du=0, du_offset=0, dv=0, vth=1000)
    b.add_compartments(6, profile=p)
    b.connect(0, [0, 1, 2], [5, 7, 9])           # synapses 0, 1, 2 of axon 0
    cfg = b.build()
    bad = copy.deepcopy(cfg)
    bad.mem["synapses"]["target"][1] = 7         # compartment 7 of 6: representable, invalid
    skipped = copy.deepcopy(cfg)
    skipped.mem["synapses"]["weight"][1] = 0     # the reference: that synapse contributes 0
    forced = [("synapses", 1, int(bad.to_words()["synapses"][1]))]

    err, u, v = simulate(Neurocore(ODD), lambda drv: run_steps(
        drv, cfg.to_words(), {0: [0]}, 2, forced))
    gold_u, gold_v = golden_u_v(skipped, raster(2, {0: [0]}))
    assert err == LIST_RANGE
    assert (u == gold_u).all() and (v == gold_v).all() and u[0] != 0 and u[1] == 0


def test_axon_route_beyond_n_axons_is_skipped_and_flagged():
    """Compartment 0 fires every step; its AXON route is forced to axon 13 of 12: the route
    is an empty list (nothing delivered, nothing aliased onto axon 13 mod 8 = 5)."""
    b = NetworkBuilder(ODD)
    fire = b.add_profile(du=0, du_offset=0, dv=0, vth=0)
    hold = b.add_profile(du=0, du_offset=0, dv=0, vth=1000)
    b.add_compartments(1, profile=fire, bias_mant=100)
    b.add_compartments(5, profile=hold)
    b.route_to_axon(0, 11)                       # axon 11: no synapses (the reference)
    b.connect(5, [2, 3], [20, 30])               # axon 13 mod 8 would alias here
    b.connect(1, [4], [40])                      # axon 1 = 13 - 12: the other possible wrap
    cfg = b.build()
    route = int(cfg.mem["axon_map"]["base"][0])
    bad = copy.deepcopy(cfg)
    bad.mem["routes"]["target"][route] = 13
    assert bad.mem["routes"]["kind"][route] == RouteKind.AXON.value
    forced = [("routes", route, int(bad.to_words()["routes"][route]))]

    err, u, v = simulate(Neurocore(ODD), lambda drv: run_steps(
        drv, cfg.to_words(), {}, 3, forced))
    gold_u, gold_v = golden_u_v(cfg, raster(3, {}))
    assert err == LIST_RANGE
    assert (u == gold_u).all() and (v == gold_v).all() and not u[1:].any()


def test_idle_skip_past_a_partial_last_window():
    """40 update groups: the scanner's last window (32–63) is partial; with every group in it
    quiet, the scanner's next position must stop at the end of the bank (a wrapped position
    would restart the scan and never leave UPDATE)."""
    g = CoreGeometry.preset("tiny").replace(name="partial", n_compartments=40)
    b = NetworkBuilder(g)
    hold = b.add_profile(du=0, du_offset=0, dv=0, vth=1000)
    b.add_compartments(1, profile=hold, bias_mant=3)       # never quiet
    b.add_compartments(39, profile=hold)                   # quiet from step 1 on
    b.connect(0, [39], [5])                  # n_active = 40: axon 0 never spikes
    cfg = b.build()
    assert cfg.n_active() == 40
    err, u, v = simulate(Neurocore(g), lambda drv: run_steps(drv, cfg.to_words(), {}, 3))
    gold_u, gold_v = golden_u_v(cfg, raster(3, {}, g))
    assert err == 0
    assert (u == gold_u).all() and (v == gold_v).all() and v[0] != 0
