"""Write a converted Quartz program as a layered NIR graph (docs/nir.md, "Per-layer export").

One ``CubaLIF`` population per stage of the torch model (Conv2d/Linear neurons, max-pool relays,
shaped like the stage's output) and the model's own connections between them: ``Conv2d`` with
the integer kernel, ``SumPool2d`` for a max-pool's relay inputs (weight 1 from each window
input), ``Flatten`` + ``Linear`` for a Linear layer.  What else the core holds is written as
extra edges, entry for entry: the clock compartments (``ONE``/``SYNC``/``RECT`` relays and
timers) are ``(m, 1, 1)`` populations, and a dense map from a population ``S`` into a shaped
population ``(C, H, W)`` is a ``Conv2d`` on ``S`` gathered to ``(n_S, 1, 1)`` (a kernel the size
of ``S``'s map) with an ``H × W`` kernel and padding ``H − 1``, ``W − 1`` (each output position
reads its own kernel tap): bias, counter-weight, rectifier and self-inhibition synapses.

Timing: a NIR edge delivers within the step, a core synapse one step (plus its delay) later.
Every compartment gets an offset ``k`` (its NIR step is the core step minus ``k``) with
``k(target) = k(source) + 1 + delay`` on every edge; host spikes have ``k = 0``.  A timer (a
non-leaky compartment driven by one source) whose spike must come ``δ`` NIR steps later than
its input offset gives is written with its threshold raised by ``δ`` steps of its current.
Anything that fits no single offset raises :class:`~neurocore.sw.nir_export.NirExportError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .layers import MaxPoolStage, WeightStage, stages_of
from .nir_export import DT, TAU_INF, NirExportError, _check_params

__all__ = ["LayerNirExport", "to_nir_layers", "batched_flatten"]

_HOST = -1          # source id of a host axon in the compartment graph


@dataclass
class LayerNirExport:
    """The layered graph and how to drive it (see the module docstring for the timing)."""

    graph: object
    input_shape: tuple             # NIR input: the image channels, then one per host clock
    input_axons: np.ndarray        # core axon of each flattened image input
    clock_axons: np.ndarray        # core axon of each host clock channel (read at pixel 0)
    output_offset: int             # NIR output step τ is core step τ + output_offset
    populations: dict              # name → core compartments (flattened population order)

    def inputs_from_raster(self, raster: np.ndarray) -> np.ndarray:
        """Core host raster (B, T, n_axons) → NIR input (T, B, *input_shape)."""
        r = np.asarray(raster)
        B, T = r.shape[:2]
        x = np.zeros((T, B, int(np.prod(self.input_shape))), dtype=np.float32)
        n_img = self.input_axons.size
        x[:, :, :n_img] = r[:, :, self.input_axons].transpose(1, 0, 2)
        if len(self.input_shape) == 3:
            hw = self.input_shape[1] * self.input_shape[2]
            cols = n_img + hw * np.arange(self.clock_axons.size)
        else:
            cols = n_img + np.arange(self.clock_axons.size)
        x[:, :, cols] = r[:, :, self.clock_axons].transpose(1, 0, 2)
        return x.reshape((T, B) + tuple(self.input_shape))

    def outputs_to_core(self, events: np.ndarray, n_steps: int) -> np.ndarray:
        """NIR output events (B, T, n_out) → core steps (B, n_steps, n_out), shifted."""
        out = np.zeros((events.shape[0], n_steps, events.shape[2]), dtype=events.dtype)
        k = self.output_offset
        n = min(events.shape[1], n_steps - k)
        out[:, k:k + n] = events[:, :n]
        return out


def _edges(syn, R):
    """Compartment graph: {(source, target, delay): contribution}; source _HOST-axon coded."""
    senders: dict[int, list[int]] = {}
    for c, a in zip(*np.nonzero(R)):
        senders.setdefault(int(a), []).extend([int(c)] * int(R[c, a]))
    out: dict[tuple, int] = {}
    for a, t, d, w in zip(syn.axon, syn.target, syn.delay, syn.contribution):
        for s in senders.get(int(a), [_HOST - int(a)]):
            key = (s, int(t), int(d))
            out[key] = out.get(key, 0) + int(w)
    return out


def _src(s: int) -> int:
    """Compartment graph node of an edge source: the compartment, or _HOST for host axons."""
    return s if s >= 0 else _HOST


def _offsets(edges, p, stages: list) -> tuple[dict, dict]:
    """Per-compartment NIR offset, and the threshold raise (in steps) of compensated timers.

    The stages' neurons sit one step apart (stage ``i`` at ``i + 1``: its data arrive one step
    after the previous stage's spikes); the other compartments take the offset their targets
    need (or, without targets, the one their inputs give).  A compartment whose inputs would
    give a later offset than it has must be a timer: ``δ`` steps of its constant current are
    added to its threshold.
    """
    k = {_HOST: 0}
    for i, ids in enumerate(stages):
        k.update({int(c): i + 1 for c in ids})
    changed = True
    while changed:
        changed = False
        for (s, t, d) in edges:
            s = _src(s)
            if s == t:
                continue
            if s not in k and t in k:
                k[s], changed = k[t] - 1 - d, True
        if not changed:
            for (s, t, d) in edges:
                s = _src(s)
                if s != t and s in k and t not in k:
                    k[t], changed = k[s] + 1 + d, True
                    break
    raise_by: dict[int, int] = {}
    for (s, t, d) in edges:
        s2 = _src(s)
        if s2 == t:
            if d:
                raise NirExportError(f"compartment {t}: a delayed synapse onto itself")
            continue
        late = k[s2] + 1 + d - k[t]
        if late == 0:
            continue
        inputs = {src for (src, tt, _d) in edges if tt == t and src != t}
        if (late < 0 or p["du_eff"][t] != 0 or p["dv"][t] != 0 or p["bias_mant"][t] != 0
                or len(inputs) != 1 or raise_by.get(t, late) != late):
            src = f"host axon {_HOST - s}" if s < 0 else f"compartment {s}"
            raise NirExportError(f"synapse {src} → compartment {t} (delay {d}) fits no NIR "
                                 f"offsets, and compartment {t} is not a timer (one source, "
                                 "non-leaky, no bias) whose threshold could absorb the "
                                 "difference")
        raise_by[t] = late
    return k, raise_by


def _dense(edges, src_ids, tgt_ids) -> np.ndarray:
    """Integer contributions (len(tgt) × len(src)) of ``edges`` between two id lists."""
    si = {s: i for i, s in enumerate(src_ids)}
    ti = {t: i for i, t in enumerate(tgt_ids)}
    m = np.zeros((len(tgt_ids), len(src_ids)), dtype=np.int64)
    for (s, t, _d), w in edges.items():
        if s in si and t in ti:
            m[ti[t], si[s]] += w
    return m


def _conv_dense(kernel: np.ndarray, conv) -> np.ndarray:
    """Dense (n_out × n_in) matrix of ``conv2d(·, kernel)`` with the stage's stride/padding."""
    c_in, h, w = conv.in_shape
    eye = torch.eye(c_in * h * w, dtype=torch.float64).reshape(-1, c_in, h, w)
    y = F.conv2d(eye, torch.as_tensor(kernel, dtype=torch.float64), stride=conv.stride,
                 padding=conv.padding)
    return np.rint(y.reshape(c_in * h * w, -1).T.numpy()).astype(np.int64)


def _kernel_of(m: np.ndarray, conv) -> np.ndarray:
    """Read the integer kernel back from the dense data synapses ``m`` of a conv stage."""
    c_out, c_in = conv.kernel.shape[:2]
    kh, kw = conv.kernel.shape[2:]
    _, h, w = conv.in_shape
    _, ho, wo = conv.out_shape
    (sy, sx), (py, px) = conv.stride, conv.padding
    k = np.zeros((c_out, c_in, kh, kw), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            y = next(y for y in range(ho) if 0 <= y * sy + ky - py < h)
            x = next(x for x in range(wo) if 0 <= x * sx + kx - px < w)
            iy, ix = y * sy + ky - py, x * sx + kx - px
            rows = (np.arange(c_out) * ho + y) * wo + x
            cols = (np.arange(c_in) * h + iy) * w + ix
            k[:, :, ky, kx] = m[np.ix_(rows, cols)]
    return k


def to_nir_layers(program) -> LayerNirExport:
    """Layered NIR graph of a :class:`~neurocore.sw.compiler.QuartzProgram` from ``from_model``
    (it needs ``normalized_model`` for the stage shapes); see the module docstring."""
    import nir

    if program.normalized_model is None:
        raise NirExportError("a layered export needs the program's torch model (from_model); "
                             "an image holds only the core's memories: use to_nir")
    config = program.config
    config.validate()
    syn = config.synapse_list()
    R, O = config.route_matrices()
    edges = _edges(syn, R)
    stages = {_clean(st.name): st
              for st in stages_of(program.normalized_model, program.input_shape)}
    pop_ids = {_clean(name): np.asarray(ids, dtype=np.int64)
               for name, ids in program.neuron_ids.items()}
    layer_cx = np.concatenate(list(pop_ids.values()))
    targets = {t for (_s, t, _d) in edges}
    clock_cx = np.array(sorted(targets - set(layer_cx.tolist())), dtype=np.int64)
    used = np.concatenate([layer_cx, clock_cx])
    unplaced = {s for (s, _t, _d) in edges if s >= 0} - set(used.tolist())
    if unplaced:
        raise NirExportError(f"compartment {min(unplaced)} sends spikes but belongs to no "
                             "stage and receives none")
    p = _check_params(config, used)
    k, raise_by = _offsets(edges, p, list(pop_ids.values()))
    theta = p["vth"].astype(np.float64) + 0.5
    for s, late in raise_by.items():            # δ more steps of the timer's constant current
        theta[s] += late * sum(w for (src, t, _d), w in edges.items() if t == s and src != s)
    for name, ids in pop_ids.items():
        ks = {k[int(c)] for c in ids}
        if len(ks) != 1:
            raise NirExportError(f"stage {name}: its neurons sit at NIR offsets {sorted(ks)}")
        if np.unique(theta[ids]).size != 1:
            raise NirExportError(f"stage {name}: thresholds differ between its neurons")
    host_img = np.asarray(program.input_axons, dtype=np.int64)
    host_clk = np.array(sorted(program.clock_axons.values()), dtype=np.int64)
    first = next(iter(pop_ids))
    conv_input = isinstance(stages[first], WeightStage) and stages[first].conv is not None
    first_ids = set(pop_ids[first].tolist())
    for (src, t, _d) in edges:
        a = _HOST - src                                   # the host axon of a host edge
        if src < 0 and not (a in host_clk or (a in host_img and t in first_ids)):
            raise NirExportError(f"host axon {a} → compartment {t}: host axons feed the first "
                                 "stage (image) or are its clocks")
    # clock populations: one per (offset, decay of u), shaped (m, 1, 1) (flat after a flat
    # input), threshold 1
    clock_groups: dict[tuple, list[int]] = {}
    for c in clock_cx:
        clock_groups.setdefault((k[int(c)], int(p["du_eff"][c])), []).append(int(c))
    shapes: dict[str, tuple] = {}
    members: dict[str, np.ndarray] = {}
    norm: dict[str, np.ndarray] = {}                  # per-neuron divisor of incoming weights
    for name, ids in pop_ids.items():
        st = stages[name]
        shapes[name] = tuple(st.out_shape)
        members[name] = ids
        norm[name] = np.ones(ids.size)
    for i, (_key, ids) in enumerate(sorted(clock_groups.items())):
        name = f"clock{i}"
        members[name] = np.asarray(ids, dtype=np.int64)
        shapes[name] = (len(ids), 1, 1) if conv_input else (len(ids),)
        norm[name] = theta[members[name]]
    in_shape = tuple(program.input_shape)
    if conv_input:
        nir_in = (in_shape[0] + host_clk.size,) + in_shape[1:]
    else:
        nir_in = (host_img.size + host_clk.size,)

    nodes: dict[str, object] = {"input": nir.Input(input_type=np.array(nir_in))}
    edge_list: list[tuple[str, str]] = []
    flat_of: dict[str, str] = {}

    def add(name, node, *srcs):
        nodes[name] = node
        edge_list.extend((s, name) for s in srcs)
        return name

    def gathered(src: str) -> str:
        """A node giving ``src`` as (n, 1, 1): the population itself or a full-map Conv2d."""
        if src in flat_of:
            return flat_of[src]
        if src == "host_clocks":
            c, h, w = nir_in
            wt = np.zeros((host_clk.size, c, h, w))
            wt[np.arange(host_clk.size), in_shape[0] + np.arange(host_clk.size), 0, 0] = 1
            flat_of[src] = add("host_clocks", _conv(wt, (h, w)), "input")
            return flat_of[src]
        shp = shapes[src]
        if shp[1:] == (1, 1):
            flat_of[src] = src
            return src
        n = int(np.prod(shp))
        wt = np.eye(n).reshape((n,) + shp)
        flat_of[src] = add(f"{src}.gather", _conv(wt, shp[1:]), src)
        return flat_of[src]

    def dense_edge(src: str, tgt: str, m: np.ndarray, tag: str):
        """Write the float matrix m (n_tgt × n_src) from population/host part src into tgt."""
        shp = shapes[tgt]
        n_src = m.shape[1]
        if src == "host_clocks" and not conv_input:
            if len(shp) != 1:
                raise NirExportError(f"{tgt}: host clocks of a flat input cannot reach a "
                                     "shaped layer (NIR has no Unflatten)")
            wt = np.zeros((m.shape[0], nir_in[0]))
            wt[:, host_img.size:] = m
            add(f"{tgt}.{tag}", nir.Linear(weight=wt), "input")
            edge_list.append((f"{tgt}.{tag}", tgt))
            return
        if len(shapes.get(src, (0, 0, 0))) == 1 and len(shp) != 1:
            raise NirExportError(f"{src} → {tgt}: a flat layer cannot reach a shaped one "
                                 "(NIR has no Unflatten)")
        if len(shp) == 1:
            # a Flatten first also keeps snnTorch from reading a neuron ↔ Linear loop as its
            # own recurrent layer (docs/nir.md)
            g = src if len(shapes.get(src, (0, 0, 0))) == 1 else gathered(src)
            fl = add(f"{tgt}.{tag}.flatten", nir.Flatten(input_type={"input": np.array(
                shapes.get(g, (n_src, 1, 1)))}, start_dim=0), g)
            add(f"{tgt}.{tag}", nir.Linear(weight=m), fl)
            edge_list.append((f"{tgt}.{tag}", tgt))
            return
        g = gathered(src)
        c, h, w = shp
        wt = np.zeros((c, n_src, h, w))
        # output (c, y, x) reads tap (h-1-y, w-1-x) of the padded 1×1 input
        wt[:, :, ::-1, ::-1] = m.reshape(c, h, w, n_src).transpose(0, 3, 1, 2)
        add(f"{tgt}.{tag}", _conv(wt, (1, 1), padding=(h - 1, w - 1)), g)
        edge_list.append((f"{tgt}.{tag}", tgt))

    # ---- data connections of the model's stages -----------------------------------------
    done = set()                                   # (source id set name, target) pairs written
    prev = "input"
    prev_ids = host_img
    for name in pop_ids:
        st = stages[name]
        ids = members[name]
        m = _dense(edges, [_HOST - int(a) for a in prev_ids] if prev == "input" else prev_ids,
                   ids)
        if isinstance(st, MaxPoolStage):
            pool = np.zeros((ids.size, prev_ids.size), dtype=np.int64)
            for j, grp in enumerate(st.groups):
                pool[j, grp] = 1
            if not np.array_equal(m, pool):
                raise NirExportError(f"stage {name}: relay inputs are not a window sum")
            add(f"{name}.pool", nir.SumPool2d(kernel_size=np.array(st.kernel),
                                              stride=np.array(st.stride),
                                              padding=np.array([0, 0])), prev)
            rest = m - pool
        elif st.conv is not None:
            kern = _kernel_of(m, st.conv)
            data = _conv_dense(kern, st.conv)
            if prev == "input":
                kern = np.concatenate([kern, np.zeros((kern.shape[0], host_clk.size)
                                                      + kern.shape[2:], dtype=np.int64)], 1)
            add(f"{name}.conv", _conv(kern / norm[name][0], st.conv.in_shape[1:], st.conv.stride,
                                      st.conv.padding),
                prev)
            rest = m - data
        else:
            src = prev
            if len(shapes.get(prev, nir_in)) > 1:
                src = add(f"{name}.flatten", nir.Flatten(input_type={"input": np.array(
                    shapes.get(prev, nir_in))}, start_dim=0), prev)
            data = m
            wt = data / norm[name][:, None]
            if prev == "input":                     # the clock inputs follow the image's
                wt = np.concatenate([wt, np.zeros((wt.shape[0], host_clk.size))], 1)
            add(f"{name}.linear", nir.Linear(weight=wt), src)
            rest = m - data
        if rest.any():
            raise NirExportError(f"stage {name}: synapses from the previous stage that its "
                                 "torch layer does not hold")
        edge_list.append((f"{name}." + ("pool" if isinstance(st, MaxPoolStage) else
                                        "conv" if st.conv is not None else "linear"), name))
        done.add((prev, name))
        prev, prev_ids = name, ids
    # ---- everything else, dense --------------------------------------------------------
    sources = {"host_clocks": [_HOST - int(a) for a in host_clk]}
    sources.update({nm: members[nm].tolist() for nm in members})
    for tgt in members:
        for src, ids in sources.items():
            if (src, tgt) in done:
                continue
            m = _dense(edges, ids, members[tgt])
            if not m.any():
                continue
            tag = "self" if src == tgt else f"from_{src}"
            dense_edge(src, tgt, m / norm[tgt][:, None], tag)
    # ---- populations and output --------------------------------------------------------
    for name, ids in members.items():
        shp = shapes[name]
        n = ids.size
        ts = np.where(p["du_eff"][ids] == 0, TAU_INF, DT)
        th = theta[ids] / norm[name]
        tm = np.full(n, TAU_INF)
        nodes[name] = nir.CubaLIF(tau_syn=ts.reshape(shp), tau_mem=tm.reshape(shp),
                                  r=(tm / DT).reshape(shp), v_leak=np.zeros(shp),
                                  v_threshold=th.reshape(shp), v_reset=np.zeros(shp),
                                  w_in=(ts / DT).reshape(shp))
    out_pop = list(pop_ids)[-1]
    used_out = np.flatnonzero(O.sum(axis=0) > 0)
    n_out = int(used_out.max(initial=-1)) + 1
    w_out = O[members[out_pop], :n_out].T.astype(np.float64)
    if (O[np.setdiff1d(used, members[out_pop])] != 0).any():
        raise NirExportError("output routes from outside the last stage")
    src = out_pop
    if len(shapes[out_pop]) > 1:
        src = add("output.flatten", nir.Flatten(input_type={"input": np.array(
            shapes[out_pop])}, start_dim=0), out_pop)
    add("output_routes", nir.Linear(weight=w_out), src)
    add("output", nir.Output(output_type=np.array([n_out])), "output_routes")
    graph = nir.NIRGraph(nodes=nodes, edges=edge_list, type_check=False, metadata={
        "producer": "quartz-neurocore (layered)", "dt": DT,
        "offsets": {nm: int(k[int(members[nm][0])]) for nm in members},
        "timing": "NIR step τ of a population is core step τ + its offset"})
    return LayerNirExport(graph=graph, input_shape=nir_in, input_axons=host_img,
                          clock_axons=host_clk, output_offset=int(k[int(members[out_pop][0])]),
                          populations=members)


def batched_flatten(module: torch.nn.Module) -> torch.nn.Module:
    """Make an imported module's ``Flatten`` keep the batch axis; return the module.

    snnTorch 1.0.0 and nirtorch 2.6 map NIR's ``Flatten(start_dim=0)`` (NIR shapes have no
    batch axis) to ``torch.nn.Flatten(0)``, which flattens the batch too.
    """
    for m in module.modules():
        if isinstance(m, torch.nn.Flatten) and m.start_dim == 0:
            m.start_dim = 1
    return module


def _clean(stage_name: str) -> str:
    """Node name of a stage: ``model[3] (Conv2d)`` → ``model_3_conv2d``."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", stage_name).strip("_").lower()


def _conv(weight: np.ndarray, input_hw, stride=(1, 1), padding=(0, 0)):
    """A bias-free ``nir.Conv2d`` on ``input_hw`` maps."""
    import nir

    return nir.Conv2d(input_shape=tuple(int(v) for v in input_hw), weight=weight,
                      stride=np.array(stride),
                      padding=np.array(padding), dilation=np.array([1, 1]), groups=1,
                      bias=np.zeros(weight.shape[0]))
