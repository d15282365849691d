"""Pipelined schedule of a Quartz program (docs/spec.md §11, docs/quartz.md §3.6).

Every stage (a weight layer with its clock compartments, or a max-pool relay) is busy with one
image only during its *span*: from the earliest step at which anything of the image can reach
one of its compartments to the last step at which anything of the image can reach one, or
at which one of its spikes is read.  With a periodic reset of every stage's profiles at the
start of its span, interval ``P`` = the longest span, a new image can enter every ``P``
steps: the state of image ``k`` is cleared before image ``k + 1`` reaches the stage, and
nothing of image ``k`` arrives after that.

The spans are bounds, not measurements, so that a pipelined run equals the unpipelined one on
every input the program accepts:

- **earliest arrival**: host inputs at ``idx(input_max)`` (``encode`` rejects larger values);
  a weight layer's neurons spike no earlier than the first step at which the sum of their
  *positive* synaptic amounts, each integrated from its earliest possible arrival, exceeds
  ``vth`` (a non-leaky IF neuron from the cleared state, u and v in range, §3.3); a max-pool
  relay spikes at its first input's arrival; a spike arrives one step later.
- **latest arrival**: host inputs at ``idx(INPUT_MIN)``; a rectified layer's neurons spike by
  ``Q`` (the rectifier, whose amount assumes inputs no earlier than the layer's ``idx(x_max)``:
  a rectified layer whose inputs can arrive earlier raises :class:`MappingError`) and their
  self-inhibition arrives at ``Q + 1``; a relay's self-inhibition one step after its last input.
- **readout**: the output layer's spikes are read up to ``n_steps − 1`` (the unpipelined
  window).  Its neurons have no self-inhibition in a pipelined program (it only suppresses
  second spikes, which decoding ignores), so nothing arrives there after its clocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..golden.quartz import INPUT_MIN, TimeGrid, encode

__all__ = ["StreamSchedule", "stream_schedule"]


@dataclass(frozen=True)
class StreamSchedule:
    """``period``: steps between two images; ``spans[name]``: (first, last) step of stage
    ``name``'s span for an image entering at step 0; ``readout``: the first step of the
    output stage's span (its spikes before it are none)."""

    period: int
    spans: dict
    readout: int

    def offset(self, name: str) -> int:
        """Reset offset of stage ``name``'s profiles: its span's first step mod the period."""
        return self.spans[name][0] % self.period


def _earliest_spikes(W: np.ndarray, arrive: np.ndarray, clocks: list, vth: int,
                     t_end: int) -> np.ndarray:
    """Per neuron, the first step ``t ≤ t_end`` at which ``Σ`` positive amounts, each from its
    earliest arrival on, integrated twice (u, then v) exceeds ``vth`` (else ``t_end + 1``).

    ``W``: integer data amounts (n_out, n_in); ``arrive``: earliest arrival step per input;
    ``clocks``: (step, amounts per neuron) of the clock synapses.
    """
    Wp = np.clip(W, 0, None)
    times, inverse = np.unique(arrive, return_inverse=True)
    onehot = np.zeros((arrive.size, times.size), dtype=np.int64)
    onehot[np.arange(arrive.size), inverse] = 1
    events = {int(t): Wp @ onehot[:, i] for i, t in enumerate(times)}
    for t, amounts in clocks:
        events[int(t)] = events.get(int(t), 0) + np.clip(amounts, 0, None)
    n = W.shape[0]
    first = np.full(n, t_end + 1, dtype=np.int64)
    cur = np.zeros(n, dtype=np.int64)
    v = np.zeros(n, dtype=np.int64)
    for t in range(min(events), t_end + 1):
        if t in events:
            cur = cur + events[t]
        v += cur
        first[(v > vth) & (first > t_end)] = t
    return first


def stream_schedule(layers: list, t_max: int, first_window: int, n_steps: int,
                    input_max: float, hidden_max: float, error) -> StreamSchedule:
    """The pipelined schedule of compiled ``layers`` (the compiler's per-stage records with
    ``stage``, ``window`` and, for weight layers, the integers ``W``, ``B``, ``C``, ``rect``
    and ``vth``).  ``error(message)`` builds the exception for a layer that cannot be
    bounded."""
    grid = TimeGrid(t_max)
    host_lo = first_window + int(encode(np.array([input_max]), t_max)[0])
    host_hi = first_window + int(encode(np.array([INPUT_MIN]), t_max)[0])
    spans = {}
    arrive = None            # earliest arrival step of each input of the current stage
    latest = host_hi         # latest arrival step of any of its data inputs
    # the layer time from which the scale choice expects a layer's inputs: idx(x_max)
    expect = {"first": int(encode(np.array([input_max]), t_max)[0]),
              "hidden": int(encode(np.array([hidden_max]), t_max)[0])}
    first_weight = True
    n_in = None
    for i, lay in enumerate(layers):
        st, W0 = lay.stage, lay.window
        if arrive is None:
            n_in = lay.W.shape[1] if lay.W is not None else int(st.groups.max()) + 1
            arrive = np.full(n_in, host_lo, dtype=np.int64)
        lo_data, hi_data = int(arrive.min()), latest
        if lay.W is None:    # max-pool relay: spikes when its first input arrives
            spikes = arrive[st.groups].min(axis=1)
            spans[st.name] = (lo_data, hi_data + 1)
            arrive, latest = spikes + 1, hi_data + 1
            continue
        output = i == len(layers) - 1
        want = expect["first" if first_weight else "hidden"]
        if st.rectify and lo_data < W0 + want:   # the output layer needs no rectifier bound
            raise error(f"{st.name}: pipelining needs its inputs from layer time {want} on, "
                        f"but an early spike upstream can reach it at layer time "
                        f"{lo_data - W0}; its rectifier bound does not hold, so the span of "
                        "its image is unbounded")
        one, sync, rect = W0 + grid.t_max - 1, W0 + grid.readout, W0 + grid.rectify_step
        clocks = [(one, lay.B), (sync, lay.C)]
        if st.rectify:
            clocks.append((rect, lay.rect))
        last_read = n_steps - 1 if output else W0 + grid.rectify_step
        spikes = _earliest_spikes(lay.W, arrive, clocks, lay.vth, last_read)
        clock_lo = one if first_weight else one - 1   # relay clocks fire a step early
        first_weight = False
        lo = min(lo_data, clock_lo)
        hi = max(hi_data, n_steps - 1 if output else rect + 1, sync)
        spans[st.name] = (lo, hi)
        arrive, latest = spikes + 1, rect + 1
    period = max(hi - lo + 1 for lo, hi in spans.values())
    return StreamSchedule(period=int(period), spans=spans, readout=spans[layers[-1].stage.name][0])
