"""Test-only fault injection: corrupt one bit of one internal signal of the RTL.

A :class:`Fault` names an internal signal of the datapath or the core and one of its bits; the
RTL then flips that bit (``stuck=None``) or holds it at 0 or 1 (``stuck=0``/``1``) wherever the
signal is used.  ``CompartmentUpdate(..., fault=...)`` and ``Neurocore(..., fault=...)`` take
one; with ``fault=None`` (the default) nothing is added, so the generated Verilog is exactly
that of the fault-free design.  The mutation tests (tests/test_rtl_mutants.py) build such
mutants with Verilator and check that the cocotb regression reports each one as a mismatch.

Signals (``FAULT_SIGNALS``):

===============  =========  =============================================================
name             where      what
===============  =========  =============================================================
``u_dec``        datapath   decay product of u (before the U2 → U3 register)
``v_dec``        datapath   decay product of v (before the U2 → U3 register)
``u_sum``        datapath   u adder output ``decay(u) + (acc << act_shift)`` (before the wrap)
``v_sum``        datapath   v adder output ``decay(v) + u' + bias`` (before saturation)
``threshold``    datapath   threshold operand of the spike compare (``vth << vth_shift``)
``spike``        datapath   spike compare result
``acc_new``      lane       accumulator read-modify-write adder output (DELIVER, S2)
``fwd_hit``      lane       select of the forwarded accumulator value (``stuck=0``: no forwarding)
``counter_inc``  core       the ``sops`` counter's per-cycle increment
``skip_need``    core       the idle-skip scanner's "group needs an update" vector
``conv_target``  core       the conv generator's target of a chunk (bit 0: off by one)
``reset_due``    core       periodic reset: bit ``p`` = profile ``p`` resets this step
                            (``reset_bits > 0`` only; rtl/reset_phase.py)
``reset_start``  core       periodic reset: start phase ``(−reset_offset) mod I`` of a written
                            profile (bit 0 flipped: the reset one step early or late)
===============  =========  =============================================================

``lane`` picks the synapse lane (``acc_new``, ``fwd_hit``) or update lane (datapath signals)
whose copy is corrupted; the other lanes stay correct.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Const, Module, Signal, Value

__all__ = ["Fault", "FAULT_SIGNALS", "DATAPATH_SIGNALS", "CORE_SIGNALS", "RESET_SIGNALS",
           "inject"]

DATAPATH_SIGNALS = ("u_dec", "v_dec", "u_sum", "v_sum", "threshold", "spike")
CORE_SIGNALS = ("acc_new", "fwd_hit", "counter_inc", "skip_need", "conv_target", "reset_due",
                "reset_start")
FAULT_SIGNALS = DATAPATH_SIGNALS + CORE_SIGNALS
#: Signals that exist only on a core with ``reset_bits > 0``.
RESET_SIGNALS = ("reset_due", "reset_start")


@dataclass(frozen=True)
class Fault:
    """Flip (``stuck=None``) or force (``stuck=0``/``1``) bit ``bit`` of signal ``signal``."""

    signal: str
    bit: int = 0
    stuck: int | None = None
    lane: int = 0

    def __post_init__(self):
        if self.signal not in FAULT_SIGNALS:
            raise ValueError(f"fault signal must be one of {FAULT_SIGNALS}, not {self.signal!r}")
        if not isinstance(self.bit, int) or self.bit < 0:
            raise ValueError(f"fault bit must be a non-negative integer, not {self.bit!r}")
        if self.stuck not in (None, 0, 1):
            raise ValueError(f"fault stuck must be None, 0 or 1, not {self.stuck!r}")
        if not isinstance(self.lane, int) or self.lane < 0:
            raise ValueError(f"fault lane must be a non-negative integer, not {self.lane!r}")

    def applies_to(self, signals: tuple[str, ...], lane: int) -> "Fault | None":
        """This fault if it names one of ``signals`` in lane ``lane``, else None."""
        return self if self.signal in signals and self.lane == lane else None

    @property
    def tag(self) -> str:
        """Short name for build directories: ``u_sum-b3-flip``, ``fwd_hit-b0-stuck0``."""
        how = "flip" if self.stuck is None else f"stuck{self.stuck}"
        return f"{self.signal}-b{self.bit}-{how}" + (f"-lane{self.lane}" if self.lane else "")

    def describe(self) -> str:
        how = "flipped" if self.stuck is None else f"stuck at {self.stuck}"
        return f"bit {self.bit} of {self.signal} {how}" + (f" in lane {self.lane}"
                                                           if self.lane else "")

    def to_json(self) -> dict:
        return {"signal": self.signal, "bit": self.bit, "stuck": self.stuck, "lane": self.lane}

    @classmethod
    def from_json(cls, d: dict | None) -> "Fault | None":
        return None if d is None else cls(d["signal"], int(d["bit"]), d.get("stuck"),
                                          int(d.get("lane", 0)))


def inject(m: Module, fault: Fault | None, name: str, sig: Signal) -> Signal:
    """Return ``sig``, or a copy with the fault applied when ``fault`` names ``name``."""
    if fault is None or fault.signal != name:
        return sig
    width = len(Value.cast(sig))
    if fault.bit >= width:
        m._MustUse__silence = True        # the module is abandoned with the error
        raise ValueError(f"fault bit {fault.bit} is outside {name} ({width} bits)")
    mask = Const(1 << fault.bit, width)
    raw = Value.cast(sig).as_unsigned()
    out = Signal(sig.shape(), name=f"{name}_faulty")
    if fault.stuck is None:
        value = raw ^ mask
    elif fault.stuck:
        value = raw | mask
    else:
        value = raw & ~mask
    m.d.comb += Value.cast(out).eq(value)
    return out
