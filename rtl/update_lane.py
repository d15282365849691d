"""One compartment-update lane: its bank of compartments and the update pipeline.

Lane ``i`` of ``k_u`` owns the compartments ``cx ≡ i mod k_u`` (row ``cx // k_u`` of its
``compartments``, ``state`` and ``axon_map`` banks) and a copy of the profiles.  The core
issues group ``r`` (compartments ``r·k_u … r·k_u + k_u - 1``) to every lane in the same cycle:

- U0 (``issue``): read the compartment word, state and axon-map word of row ``r``;
- U1: read the profile; sum this compartment's accumulator entries over the synapse lanes
  (``acc``; the core clears them in this cycle);
- U2: feed :class:`~neurocore.rtl.compartment.CompartmentUpdate`;
- U2 + latency: write the state back; on a spike of a compartment with routes, offer its
  axon-map word on ``spike`` (one cycle, no backpressure: the spike queue has room for a
  whole bank).

A lane whose compartment is ``>= n_active`` stays idle for that group (spec §2.5).

With ``geometry.read_regs`` a stage U1r follows U1: the words and entries go into registers
first (block-RAM data feeds no logic in its read cycle), and the profile read and the sum move
to U1r (spec/schedule.py ``update_read_stages``).

Periodic reset (``reset_bits > 0``, spec §11): in U2 the lane selects its compartment's
profile bit of ``due`` (rtl/reset_phase.py) with the registered profile index and feeds the
datapath ``u = v = 0`` instead of the stored state, so it updates from the reset state.  With
``reset_bits = 0`` the lane has no ``due`` port and no reset logic.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry
from ..spec.schedule import DATAPATH_LATENCY, REGISTER_BITS
from ..spec.words import (accumulator_layout, axon_map_layout, compartment_layout,
                          profile_layout, state_layout)
from .compartment import CompartmentUpdate
from .config_bus import ConfigBus, ConfigReader, bank_split
from .fault import Fault

__all__ = ["UpdateLane"]

_BANKED = ("compartments", "state", "axon_map")


class UpdateLane(wiring.Component):
    """Members: ``cfg``/``rdata`` (configuration bus: this lane's rows of ``compartments``,
    ``state``, ``axon_map``; every lane writes its profile copy, lane 0 answers reads),
    ``running``, ``n_active``, ``issue``/``group`` (U0), ``acc`` (U1: this compartment's
    entry in every synapse lane), ``clr_en``/``clr_row`` (CLEAR sweep: zero a state row),
    ``spike_valid``/``spike`` (route list of a spiking compartment), ``updated`` (an update
    was issued in U0), ``wb_valid``/``wb_group``/``wb_quiet`` (a cycle after the write-back
    of a group: the group, and whether the new state is quiet: ``u = 0``, ``bias_mant = 0``,
    ``v = 0`` or ``dv = 0`` and, with ``reset_bits > 0``, ``reset_interval = 0``),
    ``due``/``active`` (``reset_bits > 0`` only, from
    :class:`~neurocore.rtl.reset_phase.ResetPhases`: the profiles that reset in this step /
    that have a reset at all).  The lanes' profile copies hold the decay and
    threshold fields only (``profile_layout(g, reset=False)``)."""

    def __init__(self, geometry: CoreGeometry, lane: int, *, fault: Fault | None = None):
        g = self.geometry = geometry
        self.lane = lane
        self.fault = fault
        super().__init__({
            "cfg": In(ConfigBus(g)),
            "rdata": Out(64),
            "running": In(1),
            "n_active": In(REGISTER_BITS),
            "issue": In(1),
            "group": In(range(g.bank_depth)),
            "acc": In(data.ArrayLayout(accumulator_layout(g), g.k_s)),
            "clr_en": In(1),
            "clr_row": In(range(g.bank_depth)),
            "spike_valid": Out(1),
            "spike": Out(axon_map_layout(g)),
            "updated": Out(1),
            "wb_valid": Out(1),
            "wb_group": Out(range(g.bank_depth)),
            "wb_quiet": Out(1),
            **({"due": In(g.n_profiles), "active": In(g.n_profiles)} if g.reset_bits else {}),
        })

    def elaborate(self, platform):
        g = self.geometry
        m = Module()
        layouts = {"compartments": compartment_layout(g), "state": state_layout(g),
                   "axon_map": axon_map_layout(g)}
        mems = {name: Memory(shape=layouts[name], depth=g.bank_depth, init=[])
                for name in _BANKED}
        lane_profile = profile_layout(g, reset=False)      # the reset fields: ResetPhases
        mems["profiles"] = Memory(shape=lane_profile, depth=g.n_profiles, init=[])
        for name, mem in mems.items():
            m.submodules[name] = mem
        rd = {name: mem.read_port() for name, mem in mems.items()}
        wr = {name: mem.write_port() for name, mem in mems.items()}

        # ---- U0 -> U1 (-> U1r) -> U2 -----------------------------------------------------
        # this lane's compartment of group r is below n_active iff r < limit (a register:
        # n_active changes only while the core is idle, through the configuration port)
        limit = Signal(range(g.bank_depth + 1))
        wanted = (self.n_active + (g.k_u - 1 - self.lane)) >> (g.k_u - 1).bit_length()
        m.d.sync += limit.eq(Mux(wanted > g.bank_depth, g.bank_depth, wanted))
        m.d.comb += self.updated.eq(self.issue & (self.group < limit))
        valid, group = Signal(), Signal.like(self.group)
        m.d.sync += [valid.eq(self.updated), group.eq(self.group)]
        # U1 has the block-RAM words and the synapse lanes' accumulator entries; with
        # read_regs they go into registers first (U1r), the profile is read at the registered
        # word's index and the entries are summed a cycle later
        words = {name: rd[name].data for name in _BANKED}
        entries = [self.acc[j].acc for j in range(g.k_s)]
        for k in range(g.read_regs):
            r_words = {name: Signal(layouts[name], name=f"u1r{k}_{name}") for name in _BANKED}
            r_entries = [Signal.like(e, name=f"u1r{k}_acc{j}") for j, e in enumerate(entries)]
            r_valid, r_group = Signal(name=f"u1r{k}_valid"), Signal.like(group)
            m.d.sync += [r_valid.eq(valid), r_group.eq(group)]
            m.d.sync += [r_words[name].eq(words[name]) for name in _BANKED]
            m.d.sync += [r.eq(e) for r, e in zip(r_entries, entries)]
            words, entries, valid, group = r_words, r_entries, r_valid, r_group
        profile_index = words["compartments"].profile
        u2_valid, u2_group = Signal(), Signal.like(self.group)
        u2 = {name: Signal(layouts[name], name=f"u2_{name}") for name in _BANKED}
        u2_acc = Signal(accumulator_layout(g))
        m.d.sync += [u2_valid.eq(valid), u2_group.eq(group), u2_acc.acc.eq(sum(entries))]
        m.d.sync += [u2[name].eq(words[name]) for name in _BANKED]
        dp = m.submodules.datapath = CompartmentUpdate(g, latency=DATAPATH_LATENCY,
                                                       fault=self.fault)
        state = u2["state"]
        if g.reset_bits:    # periodic reset: the update starts from u = v = 0 (registers only
            reset = Signal()  # before the select)
            m.d.comb += reset.eq(self.due.bit_select(u2["compartments"].profile, 1))
            state = Mux(reset, 0, u2["state"])
        m.d.comb += [dp.acc.eq(u2_acc.acc), dp.state.eq(state),
                     dp.config.eq(u2["compartments"]), dp.profile.eq(rd["profiles"].data)]
        still = Signal()                  # bias 0 and (dv 0): only u and v can move it
        m.d.comb += still.eq(u2["compartments"].bias_mant == 0)
        v_holds = Signal()               # v stays: dv 0 (and no periodic reset to clear it)
        holds = rd["profiles"].data.dv == 0
        if g.reset_bits:
            holds = holds & ~self.active.bit_select(u2["compartments"].profile, 1)
        m.d.comb += v_holds.eq(holds)
        w_valid, w_group, w_axon, w_still, w_holds = (u2_valid, u2_group, u2["axon_map"], still,
                                                      v_holds)
        for k in range(dp.latency):       # follow the datapath's register stages
            nv, ng, na = Signal(name=f"w{k}_valid"), Signal.like(w_group), Signal.like(w_axon)
            ns, nh = Signal(name=f"w{k}_still"), Signal(name=f"w{k}_holds")
            m.d.sync += [nv.eq(w_valid), ng.eq(w_group), na.eq(w_axon), ns.eq(w_still),
                         nh.eq(w_holds)]
            w_valid, w_group, w_axon, w_still, w_holds = nv, ng, na, ns, nh
        m.d.comb += [self.spike_valid.eq(w_valid & dp.spike & (w_axon.length != 0)),
                     self.spike.eq(w_axon)]
        # the quiet flag leaves through a register (a cycle after the write-back: the
        # saturated state's zero tests and the flags' row decode are timed apart)
        m.d.sync += [self.wb_valid.eq(w_valid), self.wb_group.eq(w_group),
                     self.wb_quiet.eq(w_still & (dp.next_state.u == 0)
                                      & ((dp.next_state.v == 0) | w_holds))]

        # ---- memory ports: pipeline while running, configuration bus while idle ----------
        reader = ConfigReader(m, self.cfg, self.rdata, _BANKED + ("profiles",))
        c_bank, c_row = bank_split(self.cfg.addr, g.k_u)
        mine = c_bank == self.lane
        for name in _BANKED:
            m.d.comb += [rd[name].addr.eq(Mux(self.running, self.group, c_row)),
                         wr[name].addr.eq(c_row),
                         wr[name].data.eq(self.cfg.wdata[:layouts[name].size]),
                         wr[name].en.eq(reader.write(name) & mine)]
        for name in _BANKED:
            c_mine = Signal(name=f"cfg_mine_{name}")
            m.d.sync += c_mine.eq(reader.hit(name) & mine)
            with m.If(c_mine):
                reader.drive(name, rd[name].data)
        if self.lane == 0:
            reader.drive("profiles", rd["profiles"].data)
        m.d.comb += [
            rd["profiles"].addr.eq(Mux(self.running, profile_index, self.cfg.addr)),
            wr["profiles"].addr.eq(self.cfg.addr),
            wr["profiles"].data.eq(self.cfg.wdata[:lane_profile.size]),
            wr["profiles"].en.eq(reader.write("profiles")),
        ]
        with m.If(w_valid):
            m.d.comb += [wr["state"].en.eq(1), wr["state"].addr.eq(w_group),
                         wr["state"].data.eq(dp.next_state)]
        with m.Elif(self.clr_en):
            m.d.comb += [wr["state"].en.eq(1), wr["state"].addr.eq(self.clr_row),
                         wr["state"].data.eq(0)]
        return m
