"""Commands SPIKES, STEP and RUN of the bridge: host spikes and steps (docs/protocol.md).

:class:`SpikeExec` executes one command when ``start`` pulses (``cmd``, payload ``length`` u8,
payload bytes 0 and 1 on ``hdr0``/``hdr1``), reading payload byte ``pl_index`` on ``pl_data``
one cycle later (``pl_index`` is 0 in the ``start`` cycle), writing reply data through ``tx_*``
and pulsing ``done`` with ``status`` and ``count``.

* SPIKES / STEP: every axon id (u16 LE) is checked against ``n_axons`` first (``RANGE``,
  nothing queued), then pushed into the core's ``inp``; a push the core refuses means its
  host-spike buffer is full (``INPUT_FULL``, reply: the spikes queued).  SPIKES replies with
  the spikes queued; STEP then runs one step.
* RUN: ``n`` (u16) steps back to back.  STEP and RUN reply with the step counter u32 and the
  events pending (``events``) u16, sampled after the last step.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .exec_reply import reply_writers
from .protocol import Cmd, Status

__all__ = ["SpikeExec"]


class SpikeExec(wiring.Component):
    """SPIKES/STEP/RUN executor (module docstring)."""

    def __init__(self, *, n_axons: int, axon_bits: int, step_bits: int):
        self.n_axons = n_axons
        super().__init__({
            "start": In(1), "cmd": In(8), "length": In(8), "hdr0": In(8), "hdr1": In(8),
            "pl_index": Out(8), "pl_data": In(8),
            "tx_en": Out(1), "tx_addr": Out(8), "tx_data": Out(8),
            "done": Out(1), "status": Out(8), "count": Out(8),
            "inp": Out(stream.Signature(unsigned(axon_bits))),
            "run": Out(1), "busy": In(1), "step": In(step_bits), "events": In(16),
        })

    def elaborate(self, platform):
        m = Module()
        tptr, rptr, rptr_nxt = Signal(8), Signal(8), Signal(8)
        spike_lo, spike_hi, spike_cnt = Signal(8), Signal(8), Signal(8)
        nsteps = Signal(16)
        emit_idx = Signal(3)
        step32 = Signal(32)
        e_len = self.length
        run = Signal()
        m.d.comb += [rptr_nxt.eq(rptr), self.pl_index.eq(rptr_nxt), self.count.eq(tptr),
                     step32.eq(self.step), self.inp.payload.eq(Cat(spike_lo, spike_hi)),
                     self.run.eq(run)]
        m.d.sync += rptr.eq(rptr_nxt)
        run_bytes = Array([*(step32.word_select(i, 8) for i in range(4)), self.events[:8],
                           self.events[8:]])

        finish, put = reply_writers(m, self, tptr)

        with m.FSM(name="spike_exec"):
            with m.State("IDLE"):
                m.d.comb += rptr_nxt.eq(0)           # whether or not `start` (timing)
                with m.If(self.start):
                    m.d.sync += [tptr.eq(0), spike_cnt.eq(0), nsteps.eq(1)]
                    with m.If(self.cmd == Cmd.RUN):
                        m.d.sync += nsteps.eq(Cat(self.hdr0, self.hdr1))
                        with m.If(e_len != 2):
                            finish(Status.BAD_LENGTH)
                        with m.Else():
                            m.next = "RUN_NEXT"
                    with m.Elif(e_len[0]):
                        finish(Status.BAD_LENGTH)
                    with m.Else():
                        m.next = "CHECK_LO"
            # -- SPIKES / STEP: check every axon id first, then push them
            with m.State("CHECK_LO"):
                with m.If(rptr == e_len):
                    m.d.comb += rptr_nxt.eq(0)
                    m.next = "PUSH_LO"
                with m.Else():
                    m.d.comb += rptr_nxt.eq(rptr + 1)
                    m.d.sync += spike_lo.eq(self.pl_data)
                    m.next = "CHECK_HI"
            with m.State("CHECK_HI"):
                m.d.comb += [rptr_nxt.eq(rptr + 1)]
                with m.If(Cat(spike_lo, self.pl_data) >= self.n_axons):
                    finish(Status.RANGE)
                with m.Else():
                    m.next = "CHECK_LO"
            with m.State("PUSH_LO"):
                with m.If(rptr == e_len):
                    with m.If(self.cmd == Cmd.STEP):
                        m.next = "RUN_NEXT"
                    with m.Else():
                        put(spike_cnt)
                        finish(Status.OK)
                with m.Else():
                    m.d.comb += rptr_nxt.eq(rptr + 1)
                    m.d.sync += spike_lo.eq(self.pl_data)
                    m.next = "PUSH_HI"
            with m.State("PUSH_HI"):
                m.d.comb += rptr_nxt.eq(rptr + 1)
                m.d.sync += spike_hi.eq(self.pl_data)
                m.next = "PUSH"
            # the payload read address does not follow the core's ready (timing)
            with m.State("PUSH"):
                m.d.comb += [self.inp.valid.eq(1)]
                with m.If(self.inp.ready):
                    m.d.sync += spike_cnt.eq(spike_cnt + 1)
                    m.next = "PUSH_LO"
                with m.Else():                   # the core is idle: the buffer is full
                    put(spike_cnt)
                    finish(Status.INPUT_FULL)
            # -- RUN / STEP: nsteps steps, then step counter and events pending
            # `run` is a register (timing: the core's start logic follows it), high in RUN_GO
            with m.State("RUN_NEXT"):
                with m.If(nsteps == 0):
                    m.d.sync += emit_idx.eq(0)
                    m.next = "EMIT"
                with m.Elif(~self.busy):
                    m.d.sync += [run.eq(1), nsteps.eq(nsteps - 1)]
                    m.next = "RUN_GO"
            with m.State("RUN_GO"):
                m.d.sync += run.eq(0)
                m.next = "RUN_WAIT"
            with m.State("RUN_WAIT"):
                with m.If(~self.busy):
                    m.next = "RUN_NEXT"
            with m.State("EMIT"):
                put(run_bytes[emit_idx])
                m.d.sync += emit_idx.eq(emit_idx + 1)
                with m.If(emit_idx == len(run_bytes) - 1):
                    finish(Status.OK)
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
        return m
