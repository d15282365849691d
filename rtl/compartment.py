"""Compartment update datapath: one CUBA LIF update, exactly docs/spec.md §2.2–2.3.

:class:`CompartmentUpdate` computes, from a compartment's accumulator entry, its stored state
(``u`` pattern, ``v``), its profile and its configuration word, the new state and whether the
compartment spikes.  It is combinational (``latency=0``) or a pipeline of ``latency`` register
stages, one new compartment per cycle.  All widths come from the
:class:`~neurocore.spec.geometry.CoreGeometry` and the ports use the word layouts of
:mod:`neurocore.spec.words`.

Equations (``S = state_bits``, ``M = 2**(S-1)``)::

    du_eff = du + du_offset
    u'     = wrap_u(decay(u, du_eff) + (acc << act_shift))   # stored pattern = value mod 2**S
    v'     = sat_v(decay(v, dv) + u' + (bias_mant << bias_exp))
    spike  = v' > (vth << vth_shift)                         # strict
    v'     = 0 if spike

    decay(x, d) = sign(x) * ((|x| * (2**decay_shift - d)) >> decay_shift)

``u`` is stored as an ``S``-bit pattern; the pattern ``100…0`` means ``+M`` (so u lives in
``(-M, M]``), hence the hardware sign of ``u`` is ``u[S-1] & (u[S-2:0] != 0)``.

Each decay multiplies the low ``S-1`` bits of ``|x|`` in equal slices of at most ``DSP_WIDTH``
bits (two 12 x 13 partial products for ``S = 24``), so each fits one SB_MAC16 (16 x 16
unsigned) or MULT18X18D; ``|x| = M`` (top bit) is a multiplexer.  The pipeline registers are
reset-less without enable, and each DSP input is a whole register, so Yosys packs the
``operands`` and ``products`` stages into the SB_MAC16 input and pipeline registers and
nextpnr times the DSPs exactly (boards/build.py checks every SB_MAC16 for it).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..spec.geometry import CoreGeometry
from ..spec.words import compartment_layout, profile_layout, state_layout
from .fault import DATAPATH_SIGNALS, Fault, inject

__all__ = ["CompartmentUpdate", "STAGES", "DSP_WIDTH"]

#: Operand width of one partial product: the smallest DSP's unsigned input (SB_MAC16 16 x 16).
DSP_WIDTH = 16

#: Register stages in the order ``latency`` adds them (``latency=k`` uses the first ``k``):
#: ``products`` = the DSP output registers (partial products), ``operands`` = the DSP input
#: registers (magnitudes, factors), ``voltage`` = ``v`` before saturation and the threshold
#: compare, ``decays`` = the signed decayed ``u`` and ``v``, ``current`` = ``u'``.
STAGES = ("products", "operands", "voltage", "decays", "current")


class CompartmentUpdate(wiring.Component):
    """Compartment update (docs/spec.md §2.2), ``latency`` cycles from inputs to outputs.

    ``latency`` is 0 (combinational) to ``len(STAGES)`` (every stage of :data:`STAGES`
    registered; the default, for 100 MHz on ECP5).  A new set of inputs may be applied every
    cycle; the outputs of the inputs applied in cycle ``t`` are valid in cycle ``t + latency``.

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

    def __init__(self, geometry: CoreGeometry, *, latency: int = len(STAGES),
                 fault: Fault | None = None):
        if not isinstance(geometry, CoreGeometry):
            self._MustUse__silence = True
            raise TypeError(f"geometry must be a CoreGeometry, not {geometry!r}")
        if fault is not None and (not isinstance(fault, Fault)
                                  or fault.signal not in DATAPATH_SIGNALS):
            self._MustUse__silence = True
            raise ValueError(f"CompartmentUpdate faults are Fault(signal in {DATAPATH_SIGNALS}),"
                             f" not {fault!r}")
        if not isinstance(latency, int) or not 0 <= latency <= len(STAGES):
            self._MustUse__silence = True
            raise ValueError(f"latency must be an integer in 0 … {len(STAGES)}, not {latency!r}")
        if ((1 << geometry.vth_bits) - 1) << geometry.vth_shift >= 1 << (geometry.state_bits - 1):
            self._MustUse__silence = True      # the spike compare relies on it (elaborate)
            raise ValueError("the largest threshold must be below the saturation limit")
        self.fault = fault
        self.geometry = g = geometry
        #: Cycles from the inputs to the outputs (0: combinational).
        self.latency = latency
        #: The registered stages (a prefix of :data:`STAGES`).
        self.stages = STAGES[:latency]
        super().__init__({
            "acc": In(signed(g.acc_bits)),
            "state": In(state_layout(g)),
            "profile": In(profile_layout(g, reset=False)),
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
        lim = top - 1

        def stage(name, **signals):
            """Pass ``signals`` through the ``name`` stage: registered if it is in use."""
            out = []
            for key, sig in signals.items():
                # keep: Yosys would drop the product registers' unused top bits, and a
                # narrowed register no longer packs into the DSP.
                keep = name == "products" and name in self.stages
                reg = Signal.like(sig, name=f"{name}_{key}", reset_less=True,
                                  attrs={"keep": 1} if keep else {})
                if name in self.stages:
                    m.d.sync += reg.eq(sig)
                else:
                    m.d.comb += reg.eq(sig)
                out.append(reg)
            return out

        # Operands.  |u| from the pattern: negative iff the sign bit is set and it is not +M.
        u_pat, v_val = self.state.u, self.state.v
        u_neg = Signal()
        m.d.comb += u_neg.eq(u_pat[-1] & u_pat[:-1].any())
        u_mag = Signal(unsigned(S))
        v_mag = Signal(unsigned(S))
        m.d.comb += [u_mag.eq(Mux(u_neg, -u_pat, u_pat)),
                     v_mag.eq(Mux(v_val[-1], -v_val, v_val))]
        du_eff = Signal(unsigned(g.decay_bits + 1))
        u_fac = Signal(unsigned(g.decay_shift + 1))
        v_fac = Signal(unsigned(g.decay_shift + 1))
        m.d.comb += [du_eff.eq(self.profile.du + self.profile.du_offset),
                     u_fac.eq((1 << g.decay_shift) - du_eff),
                     v_fac.eq((1 << g.decay_shift) - self.profile.dv)]
        bias = Signal(signed(g.bias_mant_bits + (1 << g.bias_exp_bits) - 1))
        m.d.comb += bias.eq(self.config.bias_mant << self.config.bias_exp)
        # |x| <= M: the DSPs multiply the low S-1 bits, in equal slices of at most DSP_WIDTH
        # bits, each in its own register (Yosys packs whole registers into a DSP's inputs).
        # The top bit means |x| = M exactly (the low bits are 0): the product is fac << (S-1).
        n_parts = -(-(S - 1) // DSP_WIDTH)
        w = -(-(S - 1) // n_parts)
        u_ops = {f"u_mag{i}": u_mag[i * w:min((i + 1) * w, S - 1)] for i in range(n_parts)}
        v_ops = {f"v_mag{i}": v_mag[i * w:min((i + 1) * w, S - 1)] for i in range(n_parts)}
        regs = stage("operands", **u_ops, **v_ops, u_fac=u_fac, v_fac=v_fac, u_neg=u_neg,
                     v_neg=v_val[-1], u_max=u_mag[-1], v_max=v_mag[-1], acc=self.acc,
                     bias=bias, vth=self.profile.vth)
        u_mags, v_mags = regs[:n_parts], regs[n_parts:2 * n_parts]
        u_fac, v_fac, u_neg, v_neg, u_max, v_max, acc, bias, vth = regs[2 * n_parts:]

        # Products: each magnitude slice times its factor (one DSP each).
        def partials(mags, fac, name):
            prods = {}
            for i, part in enumerate(mags):
                p = Signal(unsigned(len(part) + len(fac)), name=f"{name}_p{i}")
                m.d.comb += p.eq(part * fac)
                prods[f"{name}{i}"] = p
            return prods

        regs = stage("products", **partials(u_mags, u_fac, "u"), **partials(v_mags, v_fac, "v"),
                     u_fac=u_fac, v_fac=v_fac, u_neg=u_neg, v_neg=v_neg, u_max=u_max,
                     v_max=v_max, acc=acc, bias=bias, vth=vth)
        u_parts, v_parts = regs[:n_parts], regs[n_parts:2 * n_parts]
        u_fac, v_fac, u_neg, v_neg, u_max, v_max, acc, bias, vth = regs[2 * n_parts:]

        # Decays: sum the partial products (or M * fac), shift, apply the sign.
        def decayed(parts, fac, is_max, neg, name):
            total = Signal(unsigned(S + g.decay_shift), name=f"{name}_prod")
            m.d.comb += total.eq(Mux(is_max, fac << (S - 1),
                                     sum(p << (k * w) for k, p in enumerate(parts))))
            shifted = total[g.decay_shift:]
            out = Signal(signed(S + 1), name=f"{name}_decayed")
            m.d.comb += out.eq(Mux(neg, -shifted, shifted))
            return out

        u_dec = inject(m, f, "u_dec", decayed(u_parts, u_fac, u_max, u_neg, "u"))
        v_dec = inject(m, f, "v_dec", decayed(v_parts, v_fac, v_max, v_neg, "v"))
        u_dec, v_dec, acc, bias, vth = stage(
            "decays", u_dec=u_dec, v_dec=v_dec, acc=acc, bias=bias, vth=vth)
        # Current.  u' = wrap(decay(u) + (acc << act_shift)): the pattern is the sum mod 2**S.
        u_sum = Signal(signed(S + 2))
        m.d.comb += u_sum.eq(u_dec + (acc << g.act_shift))
        u_new_pat = Signal(unsigned(S))
        m.d.comb += u_new_pat.eq(inject(m, f, "u_sum", u_sum)[:S])
        u_new = Signal(signed(S + 1))
        m.d.comb += u_new.eq(Mux(u_new_pat == top, top, u_new_pat.as_signed()))
        u_new_pat, u_new, v_dec, bias, vth = stage(
            "current", u_pat=u_new_pat, u_val=u_new, v_dec=v_dec, bias=bias, vth=vth)

        # Voltage.  v' = sat(decay(v) + u' + bias)
        v_sum = Signal(signed(max(S + 1, len(bias)) + 2))
        m.d.comb += v_sum.eq(v_dec + u_new + bias)
        v_sum = inject(m, f, "v_sum", v_sum)
        v_sum, u_new_pat, vth = stage("voltage", v_sum=v_sum, u_pat=u_new_pat, vth=vth)
        threshold = Signal(unsigned(g.vth_bits + g.vth_shift))
        m.d.comb += threshold.eq(vth << g.vth_shift)
        threshold = inject(m, f, "threshold", threshold)

        # Saturate and compare in parallel: with 0 <= threshold <= lim, sat(v) > threshold
        # iff v > threshold.
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
            compare.eq(v_sum > threshold),
            self.next_state.u.eq(u_new_pat),
            self.next_state.v.eq(Mux(self.spike, 0, v_sat)),
        ]
        return m
