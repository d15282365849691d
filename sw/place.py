"""Place a compiled Quartz program on the cores of a chip (docs/spec.md §10).

:func:`place` walks the program's stages in network order and gives each a core: a stage
goes whole onto the core of the previous stage when it fits there (its input spikes then stay
inside the core), else it is split — a conv stage (its outputs a conv descriptor's group) by
whole output channels, so each core keeps one descriptor over its channels, any other stage
by runs of neurons, each sized to the room left after the previous one is placed — and each
piece goes to the core with room that already holds most of its input axons (each axon it
lacks is one more copy, and one more flit per spike), ties to the previous piece's core, then
to the lowest index.  A stage's clock compartments travel with
it.  Room is counted in compartments, synapse words (dense lists plus the kernel columns of
the channels), conv descriptors, axons, profiles, route words (an AXON route is one word per
core holding a copy of its axon, so each copy adds words to the cores of its sources, and
no list may pass ``max_routes``) and a static SOP estimate (balanced across
cores when the pieces allow; :func:`place`).  A piece that fits no core raises
:class:`MappingError` naming the stage and how much the chip lacks.

:func:`chip_load` estimates each core's synaptic operations, flits and flit hops per image
from a golden run of calibration images (an estimate: other images spike differently).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from ..golden.chip import ChipConfig, Partition
from ..golden.conv import conv_connections, scatter
from ..golden.core import GoldenCore
from ..spec.geometry import ChipGeometry
from ..spec.words import RouteKind
from .compiler import MappingError, QuartzProgram

__all__ = ["place", "chip_load", "SOP_SLACKS"]

#: A core may take this many times an even share of the network's static SOP estimate: the
#: first that lets the pieces pack is used (then none).
SOP_SLACKS = (1.05, 1.1, 1.25, 1.5, 2.0, 3.0)


class _Costs:
    """Per logical compartment: synapse words, the descriptors and axons that reach it."""

    def __init__(self, config):
        g = config.geometry
        n = g.n_compartments
        s = config.synapse_list(conv=False)
        self.words = np.bincount(s.target, minlength=n).astype(np.int64)
        pairs_a, pairs_t = [s.axon], [s.target]
        self.groups = []                              # (out_base, outputs, h·w) per descriptor
        for c in conv_connections(config):
            hw = c.out_shape[1] * c.out_shape[2]
            kh, kw = c.kernel_shape
            first = c.out_base + np.arange(c.out_shape[0]) * hw
            self.words[first] += c.in_channels * kh * kw
            self.groups.append((c.out_base, c.n_outputs, hw))
            j, target, _ = scatter(c)
            pairs_a.append(c.axons[j])
            pairs_t.append(target)
        a, t = np.concatenate(pairs_a), np.concatenate(pairs_t)
        self.reach = scipy.sparse.csr_matrix((np.ones(a.size, dtype=bool), (t, a)),
                                             shape=(n, g.n_axons))
        #: static SOP estimate: (axon, target) pairs into each compartment (a Quartz axon
        #: carries about one spike per image)
        self.sops = np.bincount(t, minlength=n).astype(np.int64)
        #: route words: OUTPUT routes per compartment, and AXON routes (compartment, axon),
        #: each one word per core holding a copy of the axon
        cx, kind, target, _ = config.route_list()
        out = kind == RouteKind.OUTPUT.value
        self.out_routes = np.bincount(cx[out], minlength=n).astype(np.int64)
        self.axon_routes = scipy.sparse.csr_matrix(
            (np.ones(int((~out).sum()), dtype=np.int64), (cx[~out], target[~out])),
            shape=(n, g.n_axons))
        self.axon_routes_csc = self.axon_routes.tocsc()

    def piece(self, ids: np.ndarray) -> tuple[int, int, set, np.ndarray]:
        """(compartments, words, descriptors, axons) of a piece."""
        descs = {i for i, (base, n, _) in enumerate(self.groups)
                 if ((ids >= base) & (ids < base + n)).any()}
        axons = np.unique(self.reach[ids].indices)
        return ids.size, int(self.words[ids].sum()), descs, axons


def _stage_pieces(program: QuartzProgram, costs: _Costs, live: np.ndarray):
    """[(stage name, [piece ids, ...] whole-stage first split)]: each stage with its clock
    compartments (the live ones between its neurons and the next stage's)."""
    stages = list(program.neuron_ids.items())
    starts = [int(ids[0]) for _, ids in stages] + [live.size]
    out = []
    conv_groups = {base: (n, hw) for base, n, hw in costs.groups}
    for i, (name, ids) in enumerate(stages):
        extra = np.flatnonzero(live[starts[i]:starts[i + 1]]) + starts[i]
        extra = extra[~np.isin(extra, ids)]
        ids = np.asarray(ids, dtype=np.int64)
        base = int(ids[0])
        if base in conv_groups and conv_groups[base][0] == ids.size:
            hw = conv_groups[base][1]
            split = [ids[c * hw:(c + 1) * hw] for c in range(ids.size // hw)]
        else:
            split = None   # runs of neurons, sized to the room left
        out.append((name, ids, extra, split))
    return out


def place(program: QuartzProgram, chip: ChipGeometry) -> tuple[Partition, str]:
    """A :class:`Partition` of ``program.config`` onto ``chip`` (see the module docstring) and
    a note on the SOP balance: every core's static SOP estimate (synapse pairs into its
    compartments) is capped at the first of :data:`SOP_SLACKS` times an even share under
    which the pieces pack, else left uncapped."""
    config = program.config
    live = config.live_compartments()
    costs = _Costs(config)
    share = int(costs.sops[live].sum()) / chip.n_cores
    for slack in SOP_SLACKS:
        try:
            part = _place(program, chip, costs, live, slack * share)
        except MappingError:
            continue
        return part, (f"SOPs balanced: each core at most {slack} x an even share of the "
                      f"static estimate ({share:.0f} synapse pairs)")
    part = _place(program, chip, costs, live, np.inf)
    return part, (f"SOPs not balanced: the pieces do not pack with each core at most "
                  f"{SOP_SLACKS[-1]} x an even share of the static estimate ({share:.0f} "
                  "synapse pairs)")


def _place(program, chip, costs, live, sop_cap) -> Partition:
    config = program.config
    g, cg = config.geometry, chip.core
    used_sops = np.zeros(chip.n_cores, dtype=np.int64)
    core_of = np.full(g.n_compartments, -1, dtype=np.int64)
    used_cx = np.zeros(chip.n_cores, dtype=np.int64)
    used_w = np.zeros(chip.n_cores, dtype=np.int64)
    used_r = np.zeros(chip.n_cores, dtype=np.int64)
    descs = [set() for _ in range(chip.n_cores)]
    profiles = [set() for _ in range(chip.n_cores)]
    profile_of = config.mem["compartments"]["profile"]
    axons = [np.zeros(g.n_axons, dtype=bool) for _ in range(chip.n_cores)]
    holders = np.zeros(g.n_axons, dtype=np.int64)   # cores holding a copy of each axon

    def route_words(k, ids, a):
        """(route words each core holds after putting ``ids`` on ``k``, the longest route
        list among the compartments that change): an AXON route to logical axon ``a`` is one
        word per core that holds a copy of ``a`` (golden/chip.py ``_add_routes``), so a new
        copy adds a word to every placed compartment that routes to it."""
        new = a[~axons[k][a]]
        after = holders.copy()
        after[new] += 1
        own = costs.out_routes[ids] + costs.axon_routes[ids] @ after
        words = used_r.copy()
        words[k] += int(own.sum())
        longest = int(own.max(initial=0))
        if new.size:
            delta = np.asarray(costs.axon_routes_csc[:, new].sum(axis=1)).ravel()
            hit = np.flatnonzero((delta > 0) & (core_of >= 0))
            if hit.size:
                words += np.bincount(core_of[hit], weights=delta[hit],
                                     minlength=chip.n_cores).astype(np.int64)
                longest = max(longest, int((costs.out_routes[hit]
                                            + costs.axon_routes[hit] @ after).max()))
        return words, longest

    def fits(k, ids):
        n, w, d, a = costs.piece(ids)
        new_axons = int((~axons[k][a]).sum())
        if not (used_cx[k] + n <= cg.n_compartments and used_w[k] + w <= cg.n_synapses
                and used_sops[k] + int(costs.sops[ids].sum()) <= sop_cap
                and len(descs[k] | d) <= cg.n_conv
                and len(profiles[k] | set(profile_of[ids].tolist())) <= cg.n_profiles
                and int(axons[k].sum()) + new_axons <= cg.n_axons):
            return False
        words, longest = route_words(k, ids, a)
        return bool((words <= cg.n_routes).all()) and longest <= cg.max_routes

    def put(k, ids):
        n, w, d, a = costs.piece(ids)
        words, _ = route_words(k, ids, a)
        used_r[:] = words
        holders[a[~axons[k][a]]] += 1
        core_of[ids] = k
        used_cx[k] += n
        used_w[k] += w
        used_sops[k] += int(costs.sops[ids].sum())
        descs[k] |= d
        profiles[k] |= set(profile_of[ids].tolist())
        axons[k][a] = True

    def order(prev, ids=None):
        """Cores to try: those already holding most of the piece's input axons first (fewer
        axon copies, fewer flits), then the previous piece's core, then by index."""
        if ids is None:
            return [prev] + [k for k in range(chip.n_cores) if k != prev]
        a = costs.piece(ids)[3]
        return sorted(range(chip.n_cores), key=lambda k: (int((~axons[k][a]).sum()), k != prev, k))

    current = 0
    stages = _stage_pieces(program, costs, live)
    for name, ids, extra, split in stages:
        whole = np.concatenate([ids, extra])
        if fits(current, whole):
            put(current, whole)
            continue
        if split is None:   # runs of neurons as large as the room left on a core allows
            current = _place_runs(ids, fits, put, order, current)
            if current is None:
                raise _overflow(chip, name, costs, live)
        else:
            for part in split:
                k = next((k for k in order(current, part) if fits(k, part)), None)
                if k is None:
                    raise _overflow(chip, name, costs, live)
                put(k, part)
                current = k
        if extra.size:
            k = next((k for k in order(current, extra) if fits(k, extra)), None)
            if k is None:
                raise _overflow(chip, name, costs, live)
            put(k, extra)
    missing = live & (core_of < 0)
    if missing.any():
        raise MappingError(f"compartment {int(np.flatnonzero(missing)[0])} belongs to no stage "
                           "and was not placed")
    return Partition(chip=chip, core_of=core_of)


def _place_runs(ids, fits, put, order, current):
    """Place ``ids`` in runs of neurons, each sized after the previous one is placed: as long
    as fits the first core of ``order(current)`` with room (binary search), then put on the
    first core of ``order(current, run)`` it fits.  Returns the last core used, or None when
    the next neuron fits no core (the caller names the stage)."""
    start = 0
    while start < ids.size:
        best = 0
        for k in order(current):
            lo, hi = 0, ids.size - start
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if fits(k, ids[start:start + mid]):
                    lo = mid
                else:
                    hi = mid - 1
            if lo:
                best = lo
                break
        if best == 0:
            return None
        run = ids[start:start + best]
        current = next(k for k in order(current, run) if fits(k, run))
        put(current, run)
        start += best
    return current


def _overflow(chip, name, costs, live) -> MappingError:
    """The error of a stage no core has room for: the network's totals against the chip's."""
    cg = chip.core
    need_cx, need_w = int(live.sum()), int(costs.words[live].sum())
    cap_cx, cap_w = chip.n_cores * cg.n_compartments, chip.n_cores * cg.n_synapses
    short = []
    if need_cx > cap_cx:
        short.append(f"{need_cx - cap_cx} compartments")
    if need_w > cap_w:
        short.append(f"{need_w - cap_w} synapse words")
    by = (f"short by {' and '.join(short)}" if short else
          "the totals fit, but the pieces do not pack into the cores' compartments, words, "
          "descriptors, axons and route words")
    return MappingError(
        f"{name} overflows chip {chip.name!r}: the network needs {need_cx} compartments and "
        f"{need_w} synapse words, the chip's {chip.n_cores} cores hold {cap_cx} and {cap_w} "
        f"({cg.n_compartments} and {cg.n_synapses} each); {by}")


def chip_load(program: QuartzProgram, chip_config: ChipConfig, images) -> dict:
    """Per-core synaptic operations, flits and flit hops (mesh distance) per image, averaged
    over ``images`` from a golden run of the logical network (an estimate for other
    images)."""
    cfg = program.config
    res = GoldenCore(cfg).run(program.encode(images))
    spikes = res.spikes.sum(axis=1).astype(np.int64)          # (B, n_compartments)
    R, _ = cfg.route_matrices(sparse=True)
    x = program.encode(images).sum(axis=1).astype(np.int64)   # host spikes per axon
    deliveries = x + np.asarray((scipy.sparse.csr_matrix(spikes) @ R).todense())
    sops = deliveries @ chip_config.fanout().T                # (B, n_cores)
    per_core = lambda w: np.stack([spikes[:, cxs] @ w[cxs]          # noqa: E731
                                   for cxs in chip_config.compartments], axis=1).mean(axis=0)
    flits = per_core(chip_config.remote_routes())
    hops = per_core(chip_config.remote_routes(hops=True))
    return {"images": int(spikes.shape[0]), "sops": [float(v) for v in sops.mean(axis=0)],
            "flits": [float(v) for v in flits], "hops": [float(v) for v in hops]}
