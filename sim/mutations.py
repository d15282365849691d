"""Fault injection for the RTL regression: corrupt one field of one word of a loaded image.

:func:`find_mutation` picks a synapse ``weight``, a synapse ``delay`` or a profile threshold
``vth`` and a new value such that the golden model's run *changes* (u, v or output events):
the regression then loads the original image, overwrites that one word through the
configuration port and must report a mismatch against the original golden run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..golden.compare import first_mismatch
from ..golden.core import GoldenCore
from ..golden.network import CoreConfig
from ..spec.words import memories, pack, unpack

__all__ = ["Mutation", "NoMutation", "find_mutation", "KINDS"]

KINDS = ("weight", "delay", "threshold")


@dataclass(frozen=True)
class Mutation:
    kind: str
    memory: str
    address: int
    field: str
    old: int
    new: int
    word: int          # the corrupted word to write

    def describe(self) -> str:
        return f"{self.memory}[{self.address}].{self.field}: {self.old} -> {self.new}"


def find_mutation(config: CoreConfig, inputs: np.ndarray, kind: str, seed: int,
                  tries: int = 200) -> Mutation:
    """Return a one-field corruption of ``config`` that changes the golden run of ``inputs``."""
    if kind not in KINDS:
        raise ValueError(f"mutation kind must be one of {KINDS}, not {kind!r}")
    g = config.geometry
    rng = np.random.default_rng(seed)
    base = GoldenCore(config).run(inputs, record=("u", "v"))
    words = config.to_words()
    if kind == "threshold":
        memory, field = "profiles", "vth"
        candidates = np.unique(config.mem["compartments"]["profile"])
    else:
        memory, field = "synapses", kind
        candidates = np.unique(config.synapse_list().address)
    layout = memories(g)[memory].layout
    width = {n: f.width for n, f in layout}
    for _ in range(tries):
        if candidates.size == 0:
            break
        addr = int(rng.choice(candidates))
        fields = unpack(layout, words[memory][addr:addr + 1])
        old = int(fields[field][0])
        if kind == "delay":
            new = (old + int(rng.integers(1, g.n_delay_slots))) % g.n_delay_slots
        elif kind == "threshold" and rng.random() < 0.3:
            new = 0 if old else (1 << width[field]) - 1
        else:
            new = old ^ (1 << int(rng.integers(0, width[field])))
        fields[field] = np.array([new])
        word = int(pack(layout, fields, memory=memory)[0])
        mutated = {k: v.copy() for k, v in words.items()}
        mutated[memory][addr] = word
        try:
            cfg2 = CoreConfig.from_words(g, mutated)
        except ValueError:
            continue
        run = GoldenCore(cfg2).run(inputs, record=("u", "v"))
        if first_mismatch(base, run, fields=("u", "v", "outputs")) is not None:
            return Mutation(kind, memory, addr, field, old, new, word)
    raise NoMutation(f"seed {seed}: no {kind} corruption changes the golden run")


class NoMutation(RuntimeError):
    """No corruption of the requested kind changes this network's golden run."""
