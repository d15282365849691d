"""The neurocore: its components, the configuration port and the step controller.

:class:`Neurocore` implements docs/spec.md for one
:class:`~neurocore.spec.geometry.CoreGeometry` with ``k_u`` update lanes and ``k_s`` synapse
lanes.  The components (one file each, docs/rtl.md §1):

- :class:`~neurocore.rtl.host_queue.HostQueue`: host spikes of the next step;
- :class:`~neurocore.rtl.update_lane.UpdateLane` × ``k_u``: compartment banks and updates;
- :class:`~neurocore.rtl.spike_queue.SpikeQueue`: route lists of this step's spikes;
- :class:`~neurocore.rtl.route_reader.RouteReader`: routes → output events / axon requests;
- :class:`~neurocore.rtl.synapse_walker.SynapseWalker`: axon → ``k_s`` synapses per cycle;
- :class:`~neurocore.rtl.dendrite.DendriteLane` × ``k_s``: accumulators, read-modify-write;
- :class:`~neurocore.rtl.idle_skip.IdleSkip`: which groups need an update, and the scanner;
- :class:`~neurocore.rtl.counters.Counters`: ``n_active`` and the hardware counters;
- :class:`~neurocore.rtl.reset_phase.ResetPhases` (``reset_bits > 0`` only): which profiles
  reset in the next step (periodic reset, spec §11).

The controller walks the phases of :class:`~neurocore.spec.schedule.Phase`; the cycle model
(:mod:`neurocore.spec.cycle_model`) predicts every step's cycles and counters exactly.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry, bits_for
from ..spec.schedule import (CONFIG_DATA_BITS, FLIT_IN_DEPTH, MEMORY_INDEX, REGISTER_BITS,
                              Phase, issue_stages)
from ..spec.words import flit_layout
from .config_bus import ConfigBus, config_addr_bits, memory_depths
from .controller import ControlSignature, ErrorFlags, StepController
from .counters import Counters
from .dendrite import DendriteLane
from .fault import CORE_SIGNALS, DATAPATH_SIGNALS, RESET_SIGNALS, Fault
from .host_queue import HostQueue
from .idle_skip import IdleSkip
from .reset_phase import ResetPhases
from .route_reader import RouteReader
from .spike_queue import SpikeQueue
from .synapse_walker import SynapseWalker
from .update_lane import UpdateLane

__all__ = ["Neurocore", "ConfigSignature", "ControlSignature", "ErrorFlags"]


class ConfigSignature(wiring.Signature):
    """Configuration port, seen from the host (``Out`` = driven by the host).

    An access is one cycle with ``valid & ready``: ``mem`` selects the memory
    (:data:`~neurocore.spec.schedule.MEMORY_INDEX`), ``addr`` the word, ``write`` chooses
    write (``wdata``, LSB-aligned word) or read.  A read returns the word on ``rdata`` with
    ``rvalid`` one cycle later.  ``ready`` is high only while the core is idle.
    """

    def __init__(self, g: CoreGeometry):
        super().__init__({
            "valid": Out(1),
            "ready": In(1),
            "mem": Out(bits_for(len(MEMORY_INDEX))),
            "addr": Out(config_addr_bits(g)),
            "write": Out(1),
            "wdata": Out(CONFIG_DATA_BITS),
            "rdata": In(CONFIG_DATA_BITS),
            "rvalid": In(1),
        })



class Neurocore(wiring.Component):
    """One neurocore of geometry ``geometry`` (docs/spec.md, docs/rtl.md).

    Members: ``cfg`` (run-time access to every memory and register, only while idle),
    ``ctrl``, ``inp`` (host spikes for the next step, queued ``input_depth`` deep), ``out``
    (output events of OUTPUT routes, during the step's SPIKE phase).

    ``counter_bits``: width of the hardware counters (at most ``REGISTER_BITS``, read
    zero-extended; they wrap at ``2**counter_bits``); a board short of logic cells narrows them.

    ``fault`` (tests only, :class:`~neurocore.rtl.fault.Fault`): corrupt one bit of one
    internal signal of one lane; ``None`` (default) adds nothing to the design.

    A chip core (``geometry.n_cores > 1``, ``index`` its place on the chip, docs/rtl.md
    §8) has five more members: ``flit_out`` (flits ``(core, axon)`` of AXON routes to other
    cores, SPIKE phase), ``flit_in`` (remote axons of this step, queued ``flit_depth`` deep
    and fed to the walker in SPIKE ahead of local routes), ``deliver_done`` (high in SPIKE while
    no DELIVER work is left and no remote flit is queued), ``out_done`` (high in SPIKE once the
    step's last output event has left) and ``step_end`` (the chip's barrier: with
    ``deliver_done`` it ends the step; the core waits in SPIKE until then).  A single core has
    none of them and ``index`` must be 0.
    """

    def __init__(self, geometry: CoreGeometry, *, step_bits: int = 32,
                 input_depth: int | None = None, fault: Fault | None = None, index: int = 0,
                 flit_depth: int = FLIT_IN_DEPTH, counter_bits: int = REGISTER_BITS):
        problems = []
        if not isinstance(geometry, CoreGeometry):
            problems.append(TypeError(f"geometry must be a CoreGeometry, not {geometry!r}"))
        if fault is not None and not isinstance(fault, Fault):
            problems.append(TypeError(f"fault must be a Fault or None, not {fault!r}"))
        elif (fault is not None and fault.signal in RESET_SIGNALS
              and isinstance(geometry, CoreGeometry) and not geometry.reset_bits):
            problems.append(ValueError(f"fault {fault.signal!r} needs a core with periodic "
                                       f"reset; geometry {geometry.name!r} has reset_bits=0"))
        if not isinstance(step_bits, int) or step_bits < 1:
            problems.append(ValueError(f"step_bits must be a positive integer, not {step_bits!r}"))
        depth = geometry.n_axons if input_depth is None and not problems else input_depth
        if not problems and (not isinstance(depth, int) or depth < 1):
            problems.append(ValueError(f"input_depth must be a positive integer, not "
                                       f"{input_depth!r}"))
        if not problems and not (isinstance(index, int)
                                 and 0 <= index < max(geometry.n_cores, 1)):
            problems.append(ValueError(f"index must be a core index below n_cores="
                                       f"{geometry.n_cores}, not {index!r}"))
        if not problems and (not isinstance(flit_depth, int) or flit_depth < 1):
            problems.append(ValueError(f"flit_depth must be a positive integer, not "
                                       f"{flit_depth!r}"))
        if not (isinstance(counter_bits, int) and 1 <= counter_bits <= REGISTER_BITS):
            problems.append(ValueError(f"counter_bits must be an integer in 1..{REGISTER_BITS}, "
                                       f"not {counter_bits!r}"))
        if problems:
            self._MustUse__silence = True
            raise problems[0]
        self.fault = fault
        g = self.geometry = geometry
        self.input_depth = depth
        self.step_bits = step_bits
        self.index = index
        self.flit_depth = flit_depth
        self.counter_bits = counter_bits
        chip = {}
        if g.n_cores > 1:
            chip = {"flit_out": Out(stream.Signature(flit_layout(g))),
                    "flit_in": In(stream.Signature(unsigned(g.axon_bits))),
                    "deliver_done": Out(1), "out_done": Out(1), "step_end": In(1)}
        super().__init__({
            **chip,
            "cfg": In(ConfigSignature(g)),
            "ctrl": In(ControlSignature(g, step_bits)),
            "inp": In(stream.Signature(g.axon_bits)),
            "out": Out(stream.Signature(bits_for(g.n_outputs))),
        })

    def elaborate(self, platform):
        g, f = self.geometry, self.fault
        m = Module()
        ctl = m.submodules.controller = StepController(g, self.step_bits)
        host = m.submodules.host_queue = HostQueue(g, self.input_depth)
        spikes = m.submodules.spike_queue = SpikeQueue(g)
        routes = m.submodules.route_reader = RouteReader(g, self.index)
        walker = m.submodules.walker = SynapseWalker(g, fault=f and f.applies_to(CORE_SIGNALS, 0))
        counters = m.submodules.counters = Counters(g, fault=f and f.applies_to(CORE_SIGNALS, 0),
                                                      width=self.counter_bits)
        skip = m.submodules.idle_skip = IdleSkip(g, fault=f and f.applies_to(CORE_SIGNALS, 0))
        lanes = [UpdateLane(g, i, fault=f and f.applies_to(DATAPATH_SIGNALS, i))
                 for i in range(g.k_u)]
        dendrites = [DendriteLane(g, j, fault=f and f.applies_to(CORE_SIGNALS, j))
                     for j in range(g.k_s)]
        for i, c in enumerate(lanes):
            m.submodules[f"update{i}"] = c
        for j, c in enumerate(dendrites):
            m.submodules[f"dendrite{j}"] = c
        owners = [walker, routes, counters, *lanes]
        if g.reset_bits:                 # periodic reset: the profiles' reset fields, phases
            phases = m.submodules.reset_phases = ResetPhases(
                g, fault=f and f.applies_to(CORE_SIGNALS, 0))
            owners.append(phases)
            m.d.comb += [phases.clear.eq(ctl.clearing), phases.advance.eq(ctl.done_cycle)]
            for c in lanes:
                m.d.comb += [c.due.eq(phases.due), c.active.eq(phases.active)]

        # ---- configuration port: range check, one bus, OR of the owners' read data --------
        cfg, bus = self.cfg, ConfigBus(g).create(path=("bus",))
        in_range = Signal()
        with m.Switch(cfg.mem):
            for name, depth in memory_depths(g).items():
                with m.Case(MEMORY_INDEX[name]):
                    m.d.comb += in_range.eq(cfg.addr < depth)
        fire = cfg.valid & cfg.ready
        m.d.comb += [cfg.ready.eq(ctl.cfg_open), ctl.cfg_range.eq(fire & ~in_range),
                     bus.valid.eq(fire & in_range), bus.write.eq(cfg.write), bus.mem.eq(cfg.mem),
                     bus.addr.eq(cfg.addr), bus.wdata.eq(cfg.wdata)]
        m.d.sync += cfg.rvalid.eq(fire & ~cfg.write)
        acc_sum = sum(d.cfg_data.acc for d in dendrites)
        acc_read = Signal()
        m.d.sync += acc_read.eq(bus.valid & ~bus.write & (bus.mem == MEMORY_INDEX["accumulators"]))
        rdata = Mux(acc_read, acc_sum[:g.acc_bits], 0)
        for c in owners:
            rdata = rdata | c.rdata
        m.d.comb += cfg.rdata.eq(rdata)
        wiring.connect(m, bus, *(c.cfg for c in owners + dendrites))
        m.d.comb += [c.running.eq(ctl.running) for c in (walker, routes, *lanes, *dendrites)]

        # ---- control and status ------------------------------------------------------------
        wiring.connect(m, wiring.flipped(self.ctrl), ctl.ctrl)
        m.d.comb += [ctl.drained.eq(host.drained),
                     ctl.spikes_empty.eq(spikes.empty), ctl.routes_busy.eq(routes.busy),
                     ctl.walker_busy.eq(walker.busy),
                     ctl.input_range.eq(host.input_range),
                     ctl.list_range.eq(routes.list_range
                                       | sum(d.list_range for d in dendrites).bool())]
        m.d.comb += ctl.lanes_busy.eq(sum(d.busy for d in dendrites).bool())

        # ---- UPDATE: the scanner picks groups, lanes in lockstep, accumulator rows read in
        # U0 and cleared in U1 ------------------------------------------------------------
        self._idle_skip(m, g, ctl, skip, counters, lanes, dendrites, bus)
        issue, group = self._issue_stages(m, g, ctl.issue, skip.group)
        m.d.comb += [skip.issue.eq(issue), skip.issued.eq(group)]
        upd_row = Signal(range(g.bank_depth * g.n_delay_slots))
        m.d.comb += upd_row.eq(ctl.slot * g.bank_depth + group)
        u1_row, u1_issue = Signal.like(upd_row), Signal()
        m.d.sync += [u1_row.eq(upd_row), u1_issue.eq(issue)]
        for c in lanes:
            m.d.comb += [c.n_active.eq(counters.n_active), c.issue.eq(issue),
                         c.group.eq(group),
                         c.clr_en.eq(ctl.clearing & (ctl.sweep < g.bank_depth)),
                         c.clr_row.eq(ctl.sweep)]
            for j, d in enumerate(dendrites):
                m.d.comb += c.acc[j].eq(d.upd_data[c.lane])
        for d in dendrites:
            m.d.comb += [d.slot.eq(ctl.slot), d.upd_row.eq(upd_row),
                         d.clr_en.eq(u1_issue | ctl.clearing),
                         d.clr_row.eq(Mux(ctl.clearing, ctl.sweep, u1_row))]
        m.d.comb += [spikes.push_valid[i].eq(c.spike_valid) for i, c in enumerate(lanes)]
        m.d.comb += [spikes.push[i].eq(c.spike) for i, c in enumerate(lanes)]

        # ---- DELIVER: host spikes, then route lists, into the walker and the lanes ---------
        m.d.comb += [host.start.eq(ctl.started), host.enable.eq(ctl.phase == Phase.HOST.value),
                     routes.enable.eq(ctl.phase == Phase.SPIKE.value)]
        wiring.connect(m, wiring.flipped(self.inp), host.inp)
        wiring.connect(m, spikes.out, routes.lists)
        wiring.connect(m, routes.out, wiring.flipped(self.out))
        if g.n_cores > 1:
            self._chip_links(m, g, ctl, host, spikes, routes, walker)
        else:
            with m.If(ctl.phase == Phase.HOST.value):
                wiring.connect(m, host.out, walker.axon)
            with m.Else():
                wiring.connect(m, routes.axon, walker.axon)
        for j, d in enumerate(dendrites):
            m.d.comb += [d.syn_valid.eq(walker.syn_valid[j]), d.syn.eq(walker.syn[j])]

        # ---- counters ---------------------------------------------------------------------
        m.d.comb += [
            counters.inc_steps.eq(ctl.done_cycle), counters.inc_cycles.eq(ctl.step_cycle),
            counters.inc_update_cycles.eq(ctl.phase.matches(Phase.UPDATE.value, Phase.DRAIN.value)),
            counters.inc_host_cycles.eq(ctl.phase == Phase.HOST.value),
            counters.inc_spike_cycles.eq(ctl.phase == Phase.SPIKE.value),
            counters.inc_sops.eq(sum(d.sop for d in dendrites)),
            counters.inc_updates.eq(sum(c.updated for c in lanes)),
            counters.inc_stalls.eq(self.out.valid & ~self.out.ready),
        ]
        return m

    def _chip_links(self, m, g, ctl, host, spikes, routes, walker):
        """Chip core: remote routes out as flits, remote flits in (queued; in SPIKE they go to
        the walker before local routes, so the queue drains whatever the route reader waits
        for), and the barrier handshake."""
        flits = m.submodules.flits_in = SyncFIFOBuffered(width=g.axon_bits, depth=self.flit_depth)
        m.d.comb += [self.flit_in.ready.eq(flits.w_rdy), flits.w_en.eq(self.flit_in.valid),
                     flits.w_data.eq(self.flit_in.payload)]
        wiring.connect(m, routes.flit, wiring.flipped(self.flit_out))
        in_spike = ctl.phase == Phase.SPIKE.value
        with m.If(ctl.phase == Phase.HOST.value):
            wiring.connect(m, host.out, walker.axon)
        with m.Elif(in_spike & flits.r_rdy):
            m.d.comb += [walker.axon.valid.eq(1), walker.axon.payload.axon.eq(flits.r_data),
                         walker.axon.payload.bad.eq(0), flits.r_en.eq(walker.axon.ready)]
        with m.Else():
            wiring.connect(m, routes.axon, walker.axon)
        m.d.comb += [ctl.flits_empty.eq(flits.level == 0), ctl.step_end.eq(self.step_end),
                     self.deliver_done.eq(ctl.deliver_done),
                     self.out_done.eq(in_spike & spikes.empty & ~routes.busy)]

    @staticmethod
    def _issue_stages(m, g, issue, group):
        """The scanner's choice through ``issue_stages(g)`` registers: the update pipeline's
        addresses (every lane's banks, the accumulator rows) come from a register."""
        for k in range(issue_stages(g)):
            q_issue, q_group = Signal(name=f"issue_q{k}"), Signal.like(group, name=f"group_q{k}")
            m.d.sync += [q_issue.eq(issue), q_group.eq(group)]
            issue, group = q_issue, q_group
        return issue, group

    @staticmethod
    def _idle_skip(m, g, ctl, skip, counters, lanes, dendrites, bus):
        """Wire the idle-skip flags and scanner; count the compartments it skipped."""
        shift = (g.k_u - 1).bit_length()
        groups = Signal(range(g.bank_depth + 1))
        wanted = (counters.n_active + g.k_u - 1) >> shift
        # registered: n_active changes only through the configuration port, which is closed
        # in the start cycle, so the first UPDATE cycle already sees the new value
        groups_next = Mux(wanted > g.bank_depth, g.bank_depth, wanted)
        m.d.sync += groups.eq(groups_next)
        touch = bus.valid & bus.write
        m.d.comb += [
            skip.slot.eq(ctl.slot), skip.groups.eq(groups), skip.groups_next.eq(groups_next),
            skip.pos.eq(ctl.pos),
            ctl.groups.eq(groups), ctl.found.eq(skip.found), ctl.next_pos.eq(skip.next_pos),
            skip.clear.eq(ctl.clearing),
            skip.touch.eq(touch & ((bus.mem == MEMORY_INDEX["state"])
                                   | (bus.mem == MEMORY_INDEX["compartments"])
                                   | (bus.mem == MEMORY_INDEX["profiles"]))),
            skip.touch_acc.eq(touch & (bus.mem == MEMORY_INDEX["accumulators"])),
            skip.wb_valid.eq(lanes[0].wb_valid), skip.wb_group.eq(lanes[0].wb_group),
            skip.wb_quiet.eq(Cat(c.wb_quiet | ~c.wb_valid for c in lanes).all()),
        ]
        for j, d in enumerate(dendrites):
            m.d.comb += [skip.deliver_valid[j].eq(d.sop), skip.deliver_slot[j].eq(d.sop_slot),
                         skip.deliver_row[j].eq(d.sop_group)]
        # skipped = min(n_active, n) - compartments updated in this step, added at DONE
        step_updates = Signal(range(g.n_compartments + 1))
        issued = Signal(range(g.k_u + 1))           # registered: the adder starts from it
        m.d.sync += issued.eq(sum(c.updated for c in lanes))
        with m.If(ctl.started):
            m.d.sync += step_updates.eq(0)
        with m.Else():
            m.d.sync += step_updates.eq(step_updates + issued)
        active = Mux(counters.n_active > g.n_compartments, g.n_compartments, counters.n_active)
        with m.If(ctl.done_cycle):
            m.d.comb += counters.inc_skipped.eq(active - step_updates)
