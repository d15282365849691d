"""Compartment update datapath: one CUBA LIF update, exactly docs/spec.md §2.2–2.3.

:class:`CompartmentUpdate` is combinational (or has one register stage): given a compartment's accumulator entry, its
stored state (``u`` pattern, ``v``), its profile and its configuration word, it computes the
new state and whether the compartment spikes.  The core (:mod:`neurocore.rtl.core`) registers
its inputs and outputs.  All widths come from the :class:`~neurocore.spec.geometry.CoreGeometry`
and the ports use the word layouts of :mod:`neurocore.spec.words`.

Equations (``S = state_bits``, ``M = 2**(S-1)``)::

    du_eff = du + du_offset
    u'     = wrap_u(decay(u, du_eff) + (acc << act_shift))   # stored pattern = value mod 2**S
    v'     = sat_v(decay(v, dv) + u' + (bias_mant << bias_exp))
    spike  = v' > (vth << vth_shift)                         # strict
    v'     = 0 if spike

    decay(x, d) = sign(x) * ((|x| * (2**decay_shift - d)) >> decay_shift)

With ``registered=True`` a register stage sits between the decay multipliers and the sums.

``u`` is stored as an ``S``-bit pattern; the pattern ``100…0`` means ``+M`` (so u lives in
``(-M, M]``), hence the hardware sign of ``u`` is ``u[S-1] & (u[S-2:0] != 0)``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry
from ..spec.words import compartment_layout, profile_layout, state_layout
from .fault import DATAPATH_SIGNALS, Fault, inject

__all__ = ["CompartmentUpdate", "decay_hw"]


def decay_hw(m: Module, x, d_eff, g: CoreGeometry, name: str):
    """Return a signal holding ``sign(x) * ((|x| * (2**decay_shift - d_eff)) >> decay_shift)``.

    ``x`` is a signed value, ``d_eff`` an unsigned value in ``0 … 2**decay_shift``.
    """
    xw = len(x)
    factor = Signal(unsigned(g.decay_shift + 1), name=f"{name}_factor")
    mag = Signal(unsigned(xw), name=f"{name}_mag")
    prod = Signal(unsigned(xw + g.decay_shift + 1), name=f"{name}_prod")
    out = Signal(signed(xw + 1), name=f"{name}_decayed")
    m.d.comb += [
        factor.eq((1 << g.decay_shift) - d_eff),
        mag.eq(Mux(x[-1], -x, x)),
        prod.eq(mag * factor),
    ]
    shifted = prod[g.decay_shift:]
    m.d.comb += out.eq(Mux(x[-1], -shifted, shifted))
    return out


class CompartmentUpdate(wiring.Component):
    """Compartment update (docs/spec.md §2.2), combinational or with one register stage.

    With ``registered=True`` the two decay products (and the accumulator, bias and threshold
    that go with them) are registered, so the outputs follow the inputs by one cycle
    (:attr:`latency`); the core uses this form to halve the datapath's critical path.

    Members
    -------
    acc : In(signed(acc_bits))
        Accumulator entry read (and cleared) for this step.
    state : In(state_layout)
        Stored ``u`` pattern and ``v``.
    profile : In(profile_layout)
        ``du``, ``dv``, ``du_offset``, ``vth``.
    config : In(compartment_layout)
        ``bias_mant``, ``bias_exp`` (the ``profile`` field is not used here).
    next_state : Out(state_layout)
        New ``u`` pattern and ``v`` (``v = 0`` after a spike).
    spike : Out(1)
        ``v > vth << vth_shift`` before the reset.

    ``fault`` (tests only, :class:`~neurocore.rtl.fault.Fault`): corrupt one bit of an internal
    signal; ``None`` adds nothing to the design.
    """

    def __init__(self, geometry: CoreGeometry, *, registered: bool = False,
                 fault: Fault | None = None):
        if not isinstance(geometry, CoreGeometry):
            self._MustUse__silence = True
            raise TypeError(f"geometry must be a CoreGeometry, not {geometry!r}")
        if fault is not None and (not isinstance(fault, Fault)
                                  or fault.signal not in DATAPATH_SIGNALS):
            self._MustUse__silence = True
            raise ValueError(f"CompartmentUpdate faults are Fault(signal in {DATAPATH_SIGNALS}),"
                             f" not {fault!r}")
        self.fault = fault
        self.geometry = g = geometry
        self.registered = bool(registered)
        #: Cycles from the inputs to the outputs (0: combinational).
        self.latency = int(self.registered)
        super().__init__({
            "acc": In(signed(g.acc_bits)),
            "state": In(state_layout(g)),
            "profile": In(profile_layout(g)),
            "config": In(compartment_layout(g)),
            "next_state": Out(state_layout(g)),
            "spike": Out(1),
        })

    def elaborate(self, platform):
        g = self.geometry
        m = Module()
        f = self.fault
        S = g.state_bits
        top = 1 << (S - 1)

        # u pattern -> value in (-2**(S-1), 2**(S-1)]: S+1 bits signed.
        u_pat = self.state.u
        u_val = Signal(signed(S + 1))
        m.d.comb += u_val.eq(Mux(u_pat == top, top, u_pat.as_signed()))
        v_val = self.state.v

        du_eff = Signal(unsigned(g.decay_bits + 1))
        m.d.comb += du_eff.eq(self.profile.du + self.profile.du_offset)
        bias_a = Signal(signed(g.bias_mant_bits + (1 << g.bias_exp_bits) - 1))
        m.d.comb += bias_a.eq(self.config.bias_mant << self.config.bias_exp)
        threshold_a = Signal(unsigned(g.vth_bits + g.vth_shift))
        m.d.comb += threshold_a.eq(self.profile.vth << g.vth_shift)

        # Stage A: the two decays (multipliers); optionally registered here.
        def stage(sig, name):
            out = Signal.like(sig, name=name)
            if self.registered:
                m.d.sync += out.eq(sig)
            else:
                m.d.comb += out.eq(sig)
            return out

        u_dec = stage(inject(m, f, "u_dec", decay_hw(m, u_val, du_eff, g, "u")), "u_dec")
        v_dec = stage(inject(m, f, "v_dec", decay_hw(m, v_val, self.profile.dv, g, "v")), "v_dec")
        acc = stage(self.acc, "acc_b")
        bias = stage(bias_a, "bias")
        threshold = inject(m, f, "threshold", stage(threshold_a, "threshold"))

        # Stage B.  u' = wrap(decay(u) + (acc << act_shift)): the pattern is the sum mod 2**S.
        u_sum = Signal(signed(S + 2))
        m.d.comb += u_sum.eq(u_dec + (acc << g.act_shift))
        u_new_pat = inject(m, f, "u_sum", u_sum)[:S]
        u_new = Signal(signed(S + 1))
        m.d.comb += u_new.eq(Mux(u_new_pat == top, top, u_new_pat.as_signed()))

        # v' = sat(decay(v) + u' + bias)
        v_sum = Signal(signed(max(S + 1, len(bias)) + 2))
        m.d.comb += v_sum.eq(v_dec + u_new + bias)
        v_sum = inject(m, f, "v_sum", v_sum)
        lim = top - 1
        v_sat = Signal(signed(S))
        with m.If(v_sum > lim):
            m.d.comb += v_sat.eq(lim)
        with m.Elif(v_sum < -lim):
            m.d.comb += v_sat.eq(-lim)
        with m.Else():
            m.d.comb += v_sat.eq(v_sum)

        compare = self.spike
        if f is not None and f.signal == "spike":
            compare = Signal(name="spike_compare")
            m.d.comb += self.spike.eq(inject(m, f, "spike", compare))
        m.d.comb += [
            compare.eq(v_sat > threshold),
            self.next_state.u.eq(u_new_pat),
            self.next_state.v.eq(Mux(self.spike, 0, v_sat)),
        ]
        return m
