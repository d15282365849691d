"""Per-step comparison of the RTL against the golden model and the cycle model.

:func:`step_mismatch` returns a message naming the first divergence of one step (the step,
the cycle, the compartment or output event, the field, expected and actual values), or None.
Within a step the state (``u`` then ``v``, compartment by compartment) is checked before the
output events and the step length, because a wrong state is the cause of wrong events.
:func:`state_mismatch` compares only the state (for runs that read it back every N steps).
"""

from __future__ import annotations

import numpy as np

from ..spec.cycle_model import StepSchedule
from ..spec.schedule import write_cycle
from .driver import StepResult

__all__ = ["step_mismatch", "state_mismatch", "counter_mismatch", "CLOCK_NS"]

#: Clock period of the simulations (ns): messages give the time of a cycle in the waves.
CLOCK_NS = 10


def _tail(seed, waves) -> str:
    return (f"; seed {seed}" if seed is not None else "") + \
        (f"; waves {waves}" if waves else "; waves: rerun with WAVES=1")


def _state(t, exp_u, exp_v, got_u, got_v, where, tail, geometry=None) -> str | None:
    """First compartment (in index order; u before v) whose state differs, or None."""
    e_u, a_u, e_v, a_v = (np.asarray(z, dtype=np.int64) for z in (exp_u, got_u, exp_v, got_v))
    bad = (e_u != a_u) | (e_v != a_v)
    if not bad.any():
        return None
    cx = int(np.flatnonzero(bad)[0])
    name, e, a = ("u", e_u, a_u) if e_u[cx] != a_u[cx] else ("v", e_v, a_v)
    at = where(write_cycle(cx, geometry)) if geometry is not None else "its write-back"
    return (f"step {t}, {at}, compartment {cx}, "
            f"field {name}: expected {int(e[cx])}, actual {int(a[cx])}{tail}")


def _where(start_cycle: int, ns_per_cycle: float | None):
    def where(rel):
        k = start_cycle + rel
        at = f", t = {(k - 0.5) * ns_per_cycle:g} ns" if ns_per_cycle else ""
        return f"cycle {rel} of the step (simulation cycle {k}{at})"
    return where


def state_mismatch(t: int, exp_u: np.ndarray, exp_v: np.ndarray, got_u: np.ndarray,
                   got_v: np.ndarray, *, start_cycle: int = 0, seed=None,
                   waves: str | None = None, ns_per_cycle: float | None = None,
                   geometry=None) -> str | None:
    """Compare u and v of every compartment after step ``t`` (read back after the step)."""
    return _state(t, exp_u, exp_v, got_u, got_v, _where(start_cycle, ns_per_cycle),
                  _tail(seed, waves), geometry)


def step_mismatch(t: int, exp_u: np.ndarray | None, exp_v: np.ndarray | None,
                  sched: StepSchedule, got: StepResult, got_u: np.ndarray | None,
                  got_v: np.ndarray | None, *, start_cycle: int = 0, seed=None,
                  waves: str | None = None, ns_per_cycle: float | None = None,
                  geometry=None) -> str | None:
    """Compare step ``t``; ``start_cycle`` is the absolute simulation cycle of its start.

    With ``exp_u = None`` the state is not compared (only events and the step length).
    With ``ns_per_cycle``, messages also give the simulation time of the middle of the cycle
    (simulation cycle ``k`` spans ``[(k-1)·T, k·T]`` after the first clock edge at 0).
    """
    where = _where(start_cycle, ns_per_cycle)
    tail = _tail(seed, waves)
    if exp_u is not None:
        msg = _state(t, exp_u, exp_v, got_u, got_v, where, tail, geometry)
        if msg:
            return msg
    for k in range(max(len(sched.events), len(got.events))):
        e = sched.events[k] if k < len(sched.events) else None
        a = got.events[k] if k < len(got.events) else None
        if e != a:
            cyc = (e or a)[1]
            return (f"step {t}, {where(cyc)}, output event #{k}, field (id, cycle): "
                    f"expected {e}, actual {a} ({len(sched.events)} expected events, "
                    f"{len(got.events)} actual){tail}")
    if sched.cycles != got.cycles:
        return (f"step {t}, {where(min(sched.cycles, got.cycles) - 1)}, field step cycles: "
                f"expected {sched.cycles}, actual {got.cycles}{tail}")
    return None


def counter_mismatch(expected: dict[str, int], actual: dict[str, int], *, what: str,
                     seed=None, waves: str | None = None) -> str | None:
    """First hardware counter (in ``COUNTERS`` order) that differs from the cycle model."""
    for name, e in expected.items():
        if actual.get(name) != e:
            return (f"{what}, counter {name}: expected {e} (cycle model), actual "
                    f"{actual.get(name)} (RTL){_tail(seed, waves)}")
    return None
