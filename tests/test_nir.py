"""NIR out and in: the exported digits CNN runs in snnTorch with the golden core's classes, and
graphs written by snnTorch's own NIR export run on the golden core with the expected spikes."""

import contextlib
import io

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch import utils as snn_utils
from snntorch.export_nir import export_to_nir
from snntorch.import_nir import import_from_nir

from neurocore.golden.core import GoldenCore
from neurocore.sw.convert import from_model
from neurocore.sw.nir_export import NirExportError, run_imported, to_nir
from neurocore.sw.nir_import import NirImportError, from_nir

DT = 1e-4


def _quiet(fn, *args, **kw):
    """snnTorch's NIR code prints warnings for every node; keep the test log readable."""
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(divide="ignore"):
        return fn(*args, **kw)



def _agreement(program, golden, events) -> tuple[float, float]:
    """Class agreement (%) of NIR output ``events`` (B, T, n_out) with the golden run, and the
    share (%) of samples whose output events are identical."""
    n_out = events.shape[2]
    padded = np.zeros_like(golden.outputs)
    padded[:, :, :n_out] = events
    agree = (program.decode(padded)["predicted"]
             == program.decode(golden.outputs)["predicted"]).mean() * 100
    exact = (events == golden.outputs[:, :, :n_out]).all(axis=(1, 2)).mean() * 100
    return agree, exact

def test_nir_export_round_trip_and_snntorch_agree_with_golden_on_digits(digits_program_t16,
                                                                          digits, tmp_path):
    program, _ = digits_program_t16
    ex = to_nir(program.config)
    path = tmp_path / "digits.nir"
    nir.write(path, ex.graph)
    back = nir.read(path)
    assert set(back.nodes) == set(ex.graph.nodes) and sorted(back.edges) == sorted(ex.graph.edges)
    for name in ("host_synapses", "routes", "synapses", "output_routes"):
        np.testing.assert_array_equal(back.nodes[name].weight, ex.graph.nodes[name].weight)
    for key in ("tau_syn", "tau_mem", "v_threshold", "w_in", "r"):
        np.testing.assert_array_equal(getattr(back.nodes["cx"], key),
                                      getattr(ex.graph.nodes["cx"], key))
    net = _quiet(import_from_nir, back)
    raster = program.encode(digits.x_test)
    golden = GoldenCore(program.config, backend="torch").run(raster)
    events = run_imported(net, ex.inputs_from_raster(raster))
    agree, exact = _agreement(program, golden, events)
    print(f"snnTorch vs golden on {len(raster)} digits test images: class agreement "
          f"{agree:.2f} %, identical output events {exact:.2f} %")
    assert agree >= 99.0


def test_nir_export_rejects_what_floats_cannot_reproduce(digits_cnn, digits):
    rate = from_model(digits_cnn, 8, digits.x_train, coding="rate")
    with pytest.raises(NirExportError, match=r"compartment \d+: dv \(must be 0\); it is 4095"):
        to_nir(rate.config)


def _snn_chain(rng, betas):
    """Linear → Leaky → Linear → Leaky with weights on a 1/64 grid (exact on the core)."""
    sizes = [36, 16, 5]
    layers, mods = [], []
    for k, beta in enumerate(betas):
        lin = torch.nn.Linear(sizes[k], sizes[k + 1], bias=False)
        lin.weight.data = torch.as_tensor(rng.integers(-60, 61, lin.weight.shape) / 64,
                                          dtype=torch.float32)
        lif = snn.Leaky(beta=torch.full((sizes[k + 1],), beta), threshold=torch.ones(sizes[k + 1]),
                        reset_mechanism="zero", reset_delay=False, init_hidden=True,
                        output=k == len(betas) - 1)
        mods += [lin, lif]
        layers.append((lin, lif))
    return torch.nn.Sequential(*mods), layers


def test_nir_import_of_snntorch_export_gives_the_expected_spikes(seed):
    rng = np.random.default_rng(seed)
    net, layers = _snn_chain(rng, betas=(1.0, 0.5))
    graph = _quiet(export_to_nir, net, torch.zeros(1, 36), ignore_dims=[0])
    program = from_nir(graph, dt=DT)
    print(program.report_text())
    assert [r.kind for r in program.report] == ["LIF", "LIF"]
    assert max(r.weight_error for r in program.report) < 1e-6
    T, B = 24, 4
    x = (rng.random((B, T, 36)) < 0.3).astype(np.float32)
    snn_utils.reset(net)
    expected = [[] for _ in layers]
    with torch.no_grad():
        for t in range(T):
            h = torch.as_tensor(x[:, t])
            for k, (lin, lif) in enumerate(layers):
                out = lif(lin(h))
                h = out[0] if isinstance(out, tuple) else out
                expected[k].append(h.numpy() > 0)
    res = GoldenCore(program.config).run(program.encode(x))
    for k, name in enumerate(program.neuron_ids):
        want = np.stack(expected[k], axis=1)
        got = res.spikes[:, k + 1:k + 1 + T, program.neuron_ids[name]]
        assert want.any(), f"seed {seed}: layer {name} never spiked"
        assert np.array_equal(got, want), (f"seed {seed}: layer {name}: "
                                           f"{int((got != want).sum())} spikes differ")


def _conv_pool_graph(rng, v_reset=0.0, threshold=1.0, extra=None):
    conv_w = rng.integers(-6, 7, (2, 1, 3, 3)) / 4
    aff_w = rng.integers(-6, 7, (3, 2 * 2 * 2)) / 4
    nodes = {
        "input": nir.Input(input_type=np.array([1, 6, 6])),
        "conv": nir.Conv2d(input_shape=(6, 6), weight=conv_w, stride=1, padding=0, dilation=1,
                           groups=1, bias=np.zeros(2)),
        "if1": nir.IF(r=np.full(32, 1 / DT), v_threshold=np.full(32, threshold),
                      v_reset=np.full(32, v_reset)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                              padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0),
        "fc": nir.Affine(weight=aff_w, bias=np.array([0.25, 0.0, -0.25])),
        "if2": nir.IF(r=np.full(3, 1 / DT), v_threshold=np.ones(3), v_reset=np.zeros(3)),
        "output": nir.Output(output_type=np.array([3])),
    }
    order = ["input", "conv", "if1", "pool", "flat", "fc", "if2", "output"]
    if extra:
        nodes[extra[0]] = extra[1]
        order.insert(-1, extra[0])
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])),
                        type_check=False), conv_w, aff_w


def test_nir_import_conv_sumpool_affine_matches_an_if_reference(seed):
    """Conv2d, SumPool2d, Flatten and Affine (with bias) on IF neurons, against float IF."""
    rng = np.random.default_rng(seed)
    graph, conv_w, aff_w = _conv_pool_graph(rng)
    program = from_nir(graph, dt=DT)
    T, B = 20, 3
    x = (rng.random((B, T, 1, 6, 6)) < 0.4).astype(np.float64)
    conv = torch.nn.Conv2d(1, 2, 3, bias=False).double()
    conv.weight.data = torch.as_tensor(conv_w)
    # Float IF reference in core time: a spike sent at step c is integrated at c + 1, and
    # the Affine bias (a constant current) is integrated from step 0 on.
    v1, v2 = np.zeros((B, 2 * 4 * 4)), np.zeros((B, 3))
    s1 = np.zeros((B, 2 * 4 * 4), dtype=bool)
    s1_all, s2_all = [], []
    for c in range(T + 2):
        with torch.no_grad():
            i1 = (conv(torch.as_tensor(x[:, c - 1])).numpy().reshape(B, -1) if 1 <= c <= T
                  else np.zeros_like(v1))
        pooled = torch.nn.functional.avg_pool2d(
            torch.as_tensor(s1.reshape(B, 2, 4, 4).astype(np.float64)), 2).numpy() * 4
        v2 += pooled.reshape(B, -1) @ aff_w.T + np.array([0.25, 0.0, -0.25])
        v1 += i1
        s1, s2 = v1 > 1.0, v2 > 1.0
        v1[s1], v2[s2] = 0, 0
        s1_all.append(s1)
        s2_all.append(s2)
    res = GoldenCore(program.config).run(program.encode(x))
    ids = list(program.neuron_ids.values())
    got1 = res.spikes[:, :, ids[0]]
    got2 = res.spikes[:, :, ids[1]]
    assert np.stack(s1_all, 1).any() and np.stack(s2_all, 1).any(), f"seed {seed}: no spikes"
    assert np.array_equal(got1, np.stack(s1_all, 1)), f"seed {seed}: conv layer differs"
    assert np.array_equal(got2, np.stack(s2_all, 1)), f"seed {seed}: affine layer differs"


@pytest.mark.parametrize("kw, match", [
    (dict(v_reset=0.5), r"node 'if1': v_reset 0.5 .* resets v to 0"),
    (dict(threshold=1e9), r"node 'if1': .*thresholds up to 1e\+09 fit no scale .*17-bit"),
    (dict(extra=("delay", nir.Delay(delay=np.ones(3)))),
     r"node 'delay': Delay is not supported; supported: Affine"),
])
def test_nir_import_errors_name_the_node_and_the_limit(seed, kw, match):
    graph, _, _ = _conv_pool_graph(np.random.default_rng(seed), **kw)
    with pytest.raises(NirImportError, match=match):
        from_nir(graph, dt=DT)


def test_nir_layered_export_has_conv_nodes_round_trips_and_runs_in_snntorch(
        digits_program_t16, digits, tmp_path):
    from neurocore.sw.nir_layers import batched_flatten, to_nir_layers
    program, _ = digits_program_t16
    ex = to_nir_layers(program)
    kinds = {type(n).__name__ for n in ex.graph.nodes.values()}
    assert {"Conv2d", "SumPool2d", "Flatten", "Linear", "CubaLIF", "Input", "Output"} <= kinds
    for name in ("model_0_conv2d", "model_2_maxpool2d", "model_3_conv2d", "model_5_maxpool2d",
                 "model_7_linear"):
        assert type(ex.graph.nodes[name]).__name__ == "CubaLIF", name
    assert type(ex.graph.nodes["model_2_maxpool2d.pool"]).__name__ == "SumPool2d"
    assert ex.graph.nodes["model_3_conv2d.conv"].weight.shape == (16, 8, 3, 3)
    path = tmp_path / "digits_layers.nir"
    nir.write(path, ex.graph)
    back = nir.read(path)
    assert set(back.nodes) == set(ex.graph.nodes) and sorted(back.edges) == sorted(ex.graph.edges)
    for name, node in ex.graph.nodes.items():
        for key in ("weight", "v_threshold", "tau_syn", "w_in", "stride", "padding",
                    "kernel_size"):
            if getattr(node, key, None) is not None:
                np.testing.assert_array_equal(np.asarray(getattr(back.nodes[name], key)),
                                              np.asarray(getattr(node, key)), err_msg=name)
    net = batched_flatten(_quiet(import_from_nir, back))
    raster = program.encode(digits.x_test)
    golden = GoldenCore(program.config, backend="torch").run(raster)
    nir_events = run_imported(net, ex.inputs_from_raster(raster))
    events = ex.outputs_to_core(nir_events.reshape(nir_events.shape[:2] + (-1,)),
                                raster.shape[1])
    agree, exact = _agreement(program, golden, events)
    print(f"layered NIR in snnTorch vs golden on {len(raster)} digits test images: class "
          f"agreement {agree:.2f} %, identical output events {exact:.2f} %")
    # timing and extra synapses are exact (docs/nir.md): every image's events are the golden's
    assert exact == 100.0 and agree == 100.0, (agree, exact)


def test_nir_layered_export_needs_the_model(digits_program_t16):
    import dataclasses

    from neurocore.sw.nir_layers import to_nir_layers
    program, _ = digits_program_t16
    with pytest.raises(NirExportError, match="needs the program's torch model"):
        to_nir_layers(dataclasses.replace(program, normalized_model=None))


def test_nir_import_of_snntorch_conv_export_gives_the_expected_spikes(seed):
    """Conv2d → Leaky → AvgPool2d → Flatten → Linear → Leaky, written by snnTorch's own
    export_to_nir, runs on the golden core with snnTorch's spikes (shifted by the depth)."""
    rng = np.random.default_rng(seed)
    conv = torch.nn.Conv2d(1, 2, 3, bias=False)
    conv.weight.data = torch.as_tensor(rng.integers(-6, 7, (2, 1, 3, 3)) / 4, dtype=torch.float32)
    lin = torch.nn.Linear(8, 3, bias=False)
    lin.weight.data = torch.as_tensor(rng.integers(-8, 9, (3, 8)) / 2, dtype=torch.float32)

    def leaky(shape, out=False):
        return snn.Leaky(beta=torch.ones(shape), threshold=torch.ones(shape),
                         reset_mechanism="zero", reset_delay=False, init_hidden=True, output=out)

    lif1, lif2 = leaky((2, 4, 4)), leaky((3,), out=True)
    pool = torch.nn.AvgPool2d(2)
    net = torch.nn.Sequential(conv, lif1, pool, torch.nn.Flatten(), lin, lif2)
    graph = _quiet(export_to_nir, net, torch.zeros(1, 1, 6, 6), ignore_dims=[0])
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert {"Conv2d", "AvgPool2d", "Flatten", "Linear"} <= kinds, kinds
    program = from_nir(graph, dt=DT)
    print(program.report_text())
    assert [r.kind for r in program.report] == ["LIF", "LIF"]
    assert max(r.weight_error for r in program.report) < 1e-6
    T, B = 20, 3
    x = (rng.random((B, T, 1, 6, 6)) < 0.4).astype(np.float32)
    snn_utils.reset(net)
    want1, want2 = [], []
    with torch.no_grad():
        for t in range(T):
            h1 = lif1(conv(torch.as_tensor(x[:, t])))
            out = lif2(lin(pool(h1).flatten(1)))
            want1.append(h1.flatten(1).numpy() > 0)
            want2.append((out[0] if isinstance(out, tuple) else out).numpy() > 0)
    res = GoldenCore(program.config).run(program.encode(x))
    for k, (name, want) in enumerate(zip(program.neuron_ids, (want1, want2))):
        want = np.stack(want, axis=1)
        got = res.spikes[:, k + 1:k + 1 + T, program.neuron_ids[name]]
        assert want.any(), f"seed {seed}: layer {name} never spiked"
        assert np.array_equal(got, want), (f"seed {seed}: layer {name}: "
                                           f"{int((got != want).sum())} spikes differ")


def test_nir_layered_offsets_compensate_timers_only():
    """A compartment that must spike one NIR step later than its input gives: a timer
    (non-leaky, one source) gets one more step of its current; a relay raises."""
    from neurocore.sw.nir_layers import _offsets
    # host axon 5 → compartment 1 → stage neuron 0 (stage 0 sits at offset 1), and host axon
    # 6 → 0 directly: compartment 1 must sit at offset 0, its input would put it at 1
    edges = {(-6, 1, 0): 1, (1, 0, 0): 5, (-7, 0, 0): 3}
    zeros = np.zeros(2, dtype=np.int64)
    k, raise_by = _offsets(edges, dict(du_eff=zeros, dv=zeros, bias_mant=zeros), [[0]])
    assert (k[0], k[1], raise_by) == (1, 0, {1: 1})
    relay = dict(du_eff=np.array([0, 4096]), dv=zeros, bias_mant=zeros)
    with pytest.raises(NirExportError, match=r"synapse host axon 5 → compartment 1 \(delay 0\)"
                                             r" .* compartment 1 is not a timer"):
        _offsets(edges, relay, [[0]])
