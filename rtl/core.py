"""The neurocore: memories, configuration port, spike streams and the time-step controller.

:class:`Neurocore` implements docs/spec.md for one :class:`~neurocore.spec.geometry.CoreGeometry`.
Every memory of :func:`neurocore.spec.words.memories` is an :class:`amaranth.lib.memory.Memory`
whose shape is the word's :class:`~amaranth.lib.data.StructLayout`; they are all written and
read at run time through one configuration port, so one build serves every network of a
geometry.  docs/rtl.md describes the interfaces, the schedule and the robustness rules;
:mod:`neurocore.golden.cycle_model` predicts the schedule cycle by cycle.

One time step (``ctrl.start`` accepted while idle):

1. **UPDATE**: compartments ``0 … n-1``, one per cycle, through a four-stage pipeline
   (U0 read compartment config, state, accumulator slot ``t mod D`` and axon map; U1 read the
   profile and clear the accumulator entry; U2 the datapath's ``dp.latency`` pipeline stages
   (:class:`~neurocore.rtl.compartment.CompartmentUpdate`); U3 write the state back and, on a
   spike of a compartment with routes, push its route list into the spike buffer), then
   :data:`UPDATE_DRAIN_CYCLES` drain cycles.
2. **DELIVER**: first the host spikes accepted before the start (input buffer), then the
   buffered compartment spikes through their routes.  Each axon's synapse list is walked one
   synapse per cycle into a read-modify-write pipeline (P1 read synapse word, read accumulator
   ``(t+1+delay) mod D``; P2 add and write back, forwarding the previous cycle's write).  OUTPUT
   routes emit an event on ``out``; without ``out.ready`` the controller stalls.
3. **DONE**: ``ctrl.done`` for one cycle; the step counter advances.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry, bits_for
from ..spec.words import RouteKind, SignMode, memories
from .compartment import STAGES, CompartmentUpdate
from .fault import Fault, inject

__all__ = ["Neurocore", "ConfigSignature", "ControlSignature", "ErrorFlags", "MEMORY_INDEX",
           "CONFIG_DATA_BITS", "UPDATE_DRAIN_CYCLES"]

#: Cycles after the last UPDATE issue until the last state write-back: U1, U2, then the
#: datapath's stages (:data:`~neurocore.rtl.compartment.STAGES`, all registered).
UPDATE_DRAIN_CYCLES = 2 + len(STAGES)

#: Width of the configuration port's data bus (every memory word fits in it).
CONFIG_DATA_BITS = 64

#: Memory select value of each memory on the configuration port (order of ``memories(g)``).
MEMORY_INDEX = {name: i for i, name in enumerate(
    ("synapse_map", "synapses", "compartments", "profiles", "axon_map", "routes", "state",
     "accumulators"))}

#: Sticky error flags (``ctrl.error``), cleared by ``ctrl.error_clear``.
ErrorFlags = data.StructLayout({
    "cfg_range": 1,     # configuration access to an address beyond the memory's depth (ignored)
    "input_range": 1,   # host spike on an axon id >= n_axons (dropped)
    "list_range": 1,    # a route to an axon >= n_axons or a synapse to a compartment >= n (skipped)
})


def config_addr_bits(g: CoreGeometry) -> int:
    return max(bits_for(m.depth) for m in memories(g).values())


class ConfigSignature(wiring.Signature):
    """Configuration port, seen from the host (``Out`` = driven by the host).

    An access is one cycle with ``valid & ready``: ``mem`` selects the memory
    (:data:`MEMORY_INDEX`), ``addr`` the word, ``write`` chooses write (``wdata``, LSB-aligned
    word) or read.  A read returns the word on ``rdata`` with ``rvalid`` one cycle later.
    ``ready`` is high only while the core is idle.
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


class ControlSignature(wiring.Signature):
    """Time-step control, seen from the host.

    ``start`` (accepted while not ``busy``) runs one time step; ``clear`` (accepted while not
    ``busy``) zeroes every state and accumulator entry and the step counter; ``done`` is high
    for the last cycle of a step; ``step`` is the number of the step that runs (or runs next);
    ``error`` holds the sticky :data:`ErrorFlags` until ``error_clear``.
    """

    def __init__(self, g: CoreGeometry, step_bits: int):
        super().__init__({
            "start": Out(1),
            "clear": Out(1),
            "error_clear": Out(1),
            "busy": In(1),
            "done": In(1),
            "step": In(step_bits),
            "error": In(ErrorFlags),
        })


class Neurocore(wiring.Component):
    """One neurocore of geometry ``geometry`` (docs/spec.md, docs/rtl.md).

    Members
    -------
    cfg : In(ConfigSignature)
        Run-time read/write access to every memory (only while idle).
    ctrl : In(ControlSignature)
        Start a step, clear the dynamic state, status and sticky errors.
    inp : In(stream.Signature(axon_bits))
        Host spikes (axon ids) for the next step; buffered (``input_depth`` entries).
    out : Out(stream.Signature(output id bits))
        Output events of OUTPUT routes, emitted during the step's DELIVER phase.

    ``fault`` (tests only, :class:`~neurocore.rtl.fault.Fault`): corrupt one bit of one internal
    signal of the core or its datapath; ``None`` (default) adds nothing to the design.
    """

    def __init__(self, geometry: CoreGeometry, *, step_bits: int = 32, input_depth: int | None = None,
                 fault: Fault | None = None):
        if not isinstance(geometry, CoreGeometry):
            self._MustUse__silence = True
            raise TypeError(f"geometry must be a CoreGeometry, not {geometry!r}")
        if fault is not None and not isinstance(fault, Fault):
            self._MustUse__silence = True
            raise TypeError(f"fault must be a Fault or None, not {fault!r}")
        self.fault = fault
        if not isinstance(step_bits, int) or step_bits < 1:
            self._MustUse__silence = True
            raise ValueError(f"step_bits must be a positive integer, not {step_bits!r}")
        g = self.geometry = geometry
        depth = g.n_axons if input_depth is None else input_depth
        if not isinstance(depth, int) or depth < 1:
            self._MustUse__silence = True
            raise ValueError(f"input_depth must be a positive integer, not {input_depth!r}")
        self.input_depth = 1 << (depth - 1).bit_length()   # a power of two (ring buffer)
        self.step_bits = step_bits
        self.out_bits = bits_for(g.n_outputs)
        super().__init__({
            "cfg": In(ConfigSignature(g)),
            "ctrl": In(ControlSignature(g, step_bits)),
            "inp": In(stream.Signature(unsigned(g.axon_bits))),
            "out": Out(stream.Signature(unsigned(self.out_bits))),
        })

    def elaborate(self, platform):
        g = self.geometry
        n, D = g.n_compartments, g.n_delay_slots
        m = Module()
        mems = memories(g)

        # ---- memories -------------------------------------------------------------------
        mem = {}
        for name, desc in mems.items():
            mem[name] = m.submodules[f"mem_{name}"] = Memory(
                shape=desc.layout, depth=desc.depth, init=[])
        rd = {name: mm.read_port() for name, mm in mem.items()}
        wr = {name: mm.write_port() for name, mm in mem.items()}
        for p in wr.values():
            m.d.comb += p.en.eq(0)

        in_bits = (self.input_depth - 1).bit_length()
        inbuf = m.submodules.inbuf = Memory(shape=unsigned(g.axon_bits), depth=self.input_depth,
                                            init=[])
        in_rd, in_wr = inbuf.read_port(), inbuf.write_port()
        spkbuf = m.submodules.spkbuf = Memory(shape=mems["axon_map"].layout, depth=n, init=[])
        spk_rd, spk_wr = spkbuf.read_port(), spkbuf.write_port()
        m.d.comb += [in_wr.en.eq(0), spk_wr.en.eq(0)]

        # ---- registers --------------------------------------------------------------------
        step = Signal(self.step_bits)
        slot = Signal(range(D))
        error = Signal(ErrorFlags)
        set_err = Signal(ErrorFlags)          # comb: flags raised this cycle
        m.d.comb += [self.ctrl.step.eq(step), self.ctrl.error.eq(error)]
        with m.If(self.ctrl.error_clear):
            m.d.sync += error.eq(set_err)
        with m.Else():
            m.d.sync += error.eq(error.as_value() | set_err.as_value())

        # ---- host spike input buffer (ring) ------------------------------------------------
        in_wp = Signal(in_bits + 1)
        in_rp = Signal(in_bits + 1)
        in_rp_nxt = Signal(in_bits + 1)
        host_end = Signal(in_bits + 1)
        m.d.comb += in_rp_nxt.eq(in_rp)
        m.d.sync += in_rp.eq(in_rp_nxt)
        level = Signal(in_bits + 1)
        m.d.comb += [
            level.eq(in_wp - in_rp),
            self.inp.ready.eq(level != self.input_depth),
            in_rd.addr.eq(in_rp_nxt[:in_bits] if in_bits else 0),
        ]
        with m.If(self.inp.valid & self.inp.ready):
            with m.If(self.inp.payload < g.n_axons):
                m.d.comb += [in_wr.en.eq(1), in_wr.data.eq(self.inp.payload)]
                if in_bits:
                    m.d.comb += in_wr.addr.eq(in_wp[:in_bits])
                m.d.sync += in_wp.eq(in_wp + 1)
            with m.Else():
                m.d.comb += set_err.input_range.eq(1)

        # ---- spike buffer (route lists of this step's spiking compartments) ---------------
        spk_wp = Signal(range(n + 1))
        spk_rp = Signal(range(n + 1))
        spk_rp_nxt = Signal(range(n + 1))
        m.d.comb += spk_rp_nxt.eq(spk_rp)
        m.d.sync += spk_rp.eq(spk_rp_nxt)
        m.d.comb += spk_rd.addr.eq(spk_rp_nxt)

        # ---- UPDATE pipeline ----------------------------------------------------------------
        cx = Signal(range(n))
        u0_valid = Signal()                   # comb: issue compartment cx this cycle
        u1_valid, u1_cx, u1_acc_addr = Signal(), Signal(range(n)), Signal(range(n * D))
        u2_valid, u2_cx = Signal(), Signal(range(n))
        u2_acc = Signal(mems["accumulators"].layout)
        u2_state = Signal(mems["state"].layout)
        u2_config = Signal(mems["compartments"].layout)
        u2_axon = Signal(mems["axon_map"].layout)
        acc_addr_u0 = Signal(range(n * D))
        m.d.comb += acc_addr_u0.eq(slot * n + cx)
        m.d.sync += [u1_valid.eq(u0_valid), u1_cx.eq(cx), u1_acc_addr.eq(acc_addr_u0),
                     u2_valid.eq(u1_valid), u2_cx.eq(u1_cx)]
        with m.If(u1_valid):
            m.d.sync += [u2_acc.eq(rd["accumulators"].data), u2_state.eq(rd["state"].data),
                         u2_config.eq(rd["compartments"].data), u2_axon.eq(rd["axon_map"].data)]
        f = self.fault
        dp_fault = f if f is not None and f.signal not in ("acc_new", "fwd_hit") else None
        dp = m.submodules.datapath = CompartmentUpdate(g, fault=dp_fault)   # U2 -> U3
        assert 2 + dp.latency == UPDATE_DRAIN_CYCLES
        m.d.comb += [dp.acc.eq(u2_acc.acc), dp.state.eq(u2_state), dp.config.eq(u2_config),
                     dp.profile.eq(rd["profiles"].data)]
        # U3: the compartment whose datapath outputs are valid now (dp.latency after U2).
        u3_valid, u3_cx, u3_axon = u2_valid, u2_cx, u2_axon
        for i in range(dp.latency):
            valid, cx_i = Signal(name=f"u3_valid_{i}"), Signal(range(n), name=f"u3_cx_{i}")
            axon = Signal(mems["axon_map"].layout, name=f"u3_axon_{i}")
            m.d.sync += [valid.eq(u3_valid), cx_i.eq(u3_cx), axon.eq(u3_axon)]
            u3_valid, u3_cx, u3_axon = valid, cx_i, axon

        # ---- DELIVER: synapse read-modify-write pipeline -------------------------------------
        issue = Signal()                      # comb: read a synapse word this cycle
        syn_addr = Signal(g.synapse_addr_bits)
        p1_valid = Signal()
        m.d.sync += p1_valid.eq(issue)
        syn = rd["synapses"].data
        delay_sum = Signal(range(2 * D))
        p1_slot = Signal(range(D))
        m.d.comb += [
            delay_sum.eq(slot + 1 + syn.delay),
            p1_slot.eq(Mux(delay_sum >= D, delay_sum - D, delay_sum)),
        ]
        weight = Signal(range(-(1 << g.weight_bits), 1 << g.weight_bits))
        with m.Switch(syn.sign_mode):
            with m.Case(SignMode.EXCITATORY):
                m.d.comb += weight.eq(syn.weight)
            with m.Case(SignMode.INHIBITORY):
                m.d.comb += weight.eq(-syn.weight)
            with m.Default():                 # MIXED (and unused patterns, as the golden model)
                m.d.comb += weight.eq(syn.weight.as_signed() << 1)
        p1_acc_addr = Signal(range(n * D))
        m.d.comb += p1_acc_addr.eq(p1_slot * n + syn.target)
        target_ok = (syn.target < n) if n < (1 << g.cx_bits) else Const(1)
        p2_valid = Signal()
        p2_addr = Signal(range(n * D))
        contrib = Signal(signed(len(weight) + (1 << g.weight_exp_bits) - 1))
        m.d.sync += [p2_valid.eq(p1_valid & target_ok), p2_addr.eq(p1_acc_addr),
                     contrib.eq(weight << syn.weight_exp)]
        with m.If(p1_valid & ~target_ok):
            m.d.comb += set_err.list_range.eq(1)
        fwd_valid = Signal()
        fwd_addr = Signal(range(n * D))
        fwd_data = Signal(mems["accumulators"].layout)
        old = Signal(mems["accumulators"].layout)
        new = Signal(mems["accumulators"].layout)
        if f is not None and f.signal == "fwd_hit":
            fwd_hit = Signal()
            m.d.comb += fwd_hit.eq(fwd_valid & (fwd_addr == p2_addr))
            m.d.comb += old.eq(Mux(inject(m, f, "fwd_hit", fwd_hit), fwd_data,
                                   rd["accumulators"].data))
        else:
            m.d.comb += old.eq(Mux(fwd_valid & (fwd_addr == p2_addr), fwd_data,
                                   rd["accumulators"].data))
        m.d.comb += new.acc.eq(old.acc + contrib)
        new = inject(m, f, "acc_new", new)
        m.d.sync += [fwd_valid.eq(p2_valid), fwd_addr.eq(p2_addr), fwd_data.eq(new)]

        # ---- configuration port ----------------------------------------------------------------
        idle = Signal()
        cfg = self.cfg
        cfg_ok = Signal()
        cfg_fire = Signal()
        depth_of = [mems[name].depth for name in MEMORY_INDEX]
        with m.Switch(cfg.mem):
            for i, d in enumerate(depth_of):
                with m.Case(i):
                    m.d.comb += cfg_ok.eq(cfg.addr < d)
        m.d.comb += [
            cfg.ready.eq(idle & ~self.ctrl.start & ~self.ctrl.clear),
            cfg_fire.eq(cfg.valid & cfg.ready),
        ]
        with m.If(cfg_fire & ~cfg_ok):
            m.d.comb += set_err.cfg_range.eq(1)
        rsel = Signal.like(cfg.mem)
        rok = Signal()
        m.d.sync += [cfg.rvalid.eq(cfg_fire & ~cfg.write), rsel.eq(cfg.mem), rok.eq(cfg_ok)]
        with m.Switch(rsel):
            for name, i in MEMORY_INDEX.items():
                with m.Case(i):
                    m.d.comb += cfg.rdata.eq(Mux(rok, rd[name].data.as_value(), 0))
        for name, i in MEMORY_INDEX.items():
            width = mems[name].layout.size
            m.d.comb += [rd[name].addr.eq(cfg.addr), wr[name].addr.eq(cfg.addr),
                         wr[name].data.eq(cfg.wdata[:width])]
            with m.If(cfg_fire & cfg.write & cfg_ok & (cfg.mem == i)):
                m.d.comb += wr[name].en.eq(1)

        # ---- controller -----------------------------------------------------------------------
        # Where a synapse walk returns: the next host spike, the next route, the next spike.
        ret = Signal(2)
        RET_HOST, RET_ROUTE, RET_SPIKE = 0, 1, 2
        syn_ptr = Signal(g.synapse_addr_bits)
        syn_rem = Signal(g.fanout_bits)
        axon_bad = Signal()
        route_ptr = Signal(g.route_addr_bits)
        route_ptr_nxt = Signal(g.route_addr_bits)
        route_rem = Signal(g.route_len_bits)
        m.d.comb += route_ptr_nxt.eq(route_ptr)
        m.d.sync += route_ptr.eq(route_ptr_nxt)
        clr = Signal(range(n * D))
        smap = rd["synapse_map"].data
        route = rd["routes"].data
        drain = Signal(range(UPDATE_DRAIN_CYCLES))

        # Address defaults while running (the config port drives them while idle).
        with m.If(~idle):
            m.d.comb += [
                rd["compartments"].addr.eq(cx), rd["state"].addr.eq(cx),
                rd["axon_map"].addr.eq(cx),
                rd["profiles"].addr.eq(rd["compartments"].data.profile),
                rd["accumulators"].addr.eq(Mux(p1_valid, p1_acc_addr, acc_addr_u0)),
                rd["synapses"].addr.eq(syn_addr),
                rd["routes"].addr.eq(route_ptr_nxt),
            ]
        # Accumulator writes: U1 clear, P2 read-modify-write, CLEAR sweep (exclusive in time).
        with m.If(u1_valid):
            m.d.comb += [wr["accumulators"].en.eq(1), wr["accumulators"].addr.eq(u1_acc_addr),
                         wr["accumulators"].data.eq(0)]
        with m.Elif(p2_valid):
            m.d.comb += [wr["accumulators"].en.eq(1), wr["accumulators"].addr.eq(p2_addr),
                         wr["accumulators"].data.eq(new)]
        # State write-back and spike push (U3).
        with m.If(u3_valid):
            m.d.comb += [wr["state"].en.eq(1), wr["state"].addr.eq(u3_cx),
                         wr["state"].data.eq(dp.next_state)]
            with m.If(dp.spike & (u3_axon.length != 0)):
                m.d.comb += [spk_wr.en.eq(1), spk_wr.addr.eq(spk_wp), spk_wr.data.eq(u3_axon)]
                m.d.sync += spk_wp.eq(spk_wp + 1)

        with m.FSM(name="phase"):
            with m.State("IDLE"):
                m.d.comb += idle.eq(1)
                with m.If(self.ctrl.clear):
                    m.d.sync += clr.eq(0)
                    m.next = "CLEAR"
                with m.Elif(self.ctrl.start):
                    m.d.sync += [cx.eq(0), host_end.eq(in_wp), spk_wp.eq(0), spk_rp.eq(0)]
                    m.next = "UPDATE"
            with m.State("CLEAR"):
                m.d.comb += [wr["accumulators"].en.eq(1), wr["accumulators"].addr.eq(clr),
                             wr["accumulators"].data.eq(0)]
                with m.If(clr < n):
                    m.d.comb += [wr["state"].en.eq(1), wr["state"].addr.eq(clr),
                                 wr["state"].data.eq(0)]
                m.d.sync += clr.eq(clr + 1)
                with m.If(clr == n * D - 1):
                    m.d.sync += [step.eq(0), slot.eq(0)]
                    m.next = "IDLE"
            with m.State("UPDATE"):
                m.d.comb += u0_valid.eq(1)
                m.d.sync += cx.eq(cx + 1)
                with m.If(cx == n - 1):
                    m.d.sync += drain.eq(0)
                    m.next = "UDRAIN"
            with m.State("UDRAIN"):
                m.d.sync += drain.eq(drain + 1)
                with m.If(drain == UPDATE_DRAIN_CYCLES - 1):
                    m.next = "HOST"
            with m.State("HOST"):
                with m.If(in_rp != host_end):
                    m.d.comb += [rd["synapse_map"].addr.eq(in_rd.data), in_rp_nxt.eq(in_rp + 1)]
                    m.d.sync += [ret.eq(RET_HOST), axon_bad.eq(0)]
                    m.next = "MAP"
                with m.Else():
                    m.next = "SPIKE"
            with m.State("MAP"):
                length = Mux(axon_bad, 0, smap.length)
                m.d.comb += syn_addr.eq(smap.base)
                m.d.sync += [syn_ptr.eq(smap.base + 1), syn_rem.eq(length - 1)]
                with m.If(length != 0):
                    m.d.comb += issue.eq(1)
                with m.If(length > 1):
                    m.next = "WALK"
                with m.Else():
                    self._return(m, ret, RET_HOST, RET_ROUTE)
            with m.State("WALK"):
                m.d.comb += [issue.eq(1), syn_addr.eq(syn_ptr)]
                m.d.sync += [syn_ptr.eq(syn_ptr + 1), syn_rem.eq(syn_rem - 1)]
                with m.If(syn_rem == 1):
                    self._return(m, ret, RET_HOST, RET_ROUTE)
            with m.State("SPIKE"):
                with m.If(spk_rp != spk_wp):
                    m.d.comb += [route_ptr_nxt.eq(spk_rd.data.base), spk_rp_nxt.eq(spk_rp + 1)]
                    m.d.sync += route_rem.eq(spk_rd.data.length)
                    m.next = "ROUTE"
                with m.Else():
                    m.next = "DONE"
            with m.State("ROUTE"):
                # route_rem >= 1 here; the last route returns to SPIKE.
                last = route_rem == 1
                with m.If(route.kind == RouteKind.OUTPUT):
                    m.d.comb += [self.out.valid.eq(1), self.out.payload.eq(route.target)]
                    with m.If(self.out.ready):
                        m.d.comb += route_ptr_nxt.eq(route_ptr + 1)
                        m.d.sync += route_rem.eq(route_rem - 1)
                        with m.If(last):
                            m.next = "SPIKE"
                with m.Else():
                    m.d.comb += [rd["synapse_map"].addr.eq(route.target),
                                 route_ptr_nxt.eq(route_ptr + 1)]
                    bad = (route.target >= g.n_axons) if g.n_axons < (1 << len(route.target)) \
                        else Const(0)
                    with m.If(bad):
                        m.d.comb += set_err.list_range.eq(1)
                    m.d.sync += [route_rem.eq(route_rem - 1), axon_bad.eq(bad),
                                 ret.eq(Mux(last, RET_SPIKE, RET_ROUTE))]
                    m.next = "MAP"
            with m.State("DONE"):
                m.d.comb += self.ctrl.done.eq(1)
                m.d.sync += [step.eq(step + 1), slot.eq(Mux(slot == D - 1, 0, slot + 1))]
                m.next = "IDLE"
        m.d.comb += [self.ctrl.busy.eq(~idle)]
        return m

    @staticmethod
    def _return(m: Module, ret, ret_host, ret_route):
        with m.If(ret == ret_host):
            m.next = "HOST"
        with m.Elif(ret == ret_route):
            m.next = "ROUTE"
        with m.Else():
            m.next = "SPIKE"
