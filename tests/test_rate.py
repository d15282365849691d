"""The rate-coded baseline on the same core: reset by subtraction, seeded inputs, accuracy, and
the Quartz-vs-rate table (``neurocore evaluate --coding quartz rate``)."""

import numpy as np
import pytest

from neurocore.cli import main
from neurocore.golden.core import GoldenCore
from neurocore.spec.geometry import CoreGeometry
from neurocore.sw.codings import codings_table, evaluate_codings, synops_ratio
from neurocore.sw.convert import from_model
from neurocore.sw.layers import WeightStage
from neurocore.sw.rate import compile_rate

G = CoreGeometry.preset("small")


def _one_neuron(w: float, coding="current"):
    stage = WeightStage("fc", np.array([[w]]), np.zeros(1), False, (1,))
    return compile_rate([stage], (1,), 40, G, input_coding=coding)


@pytest.mark.parametrize("w", [0.75, 0.3, 1.0])
def test_rate_neuron_is_if_with_reset_by_subtraction(w):
    program = _one_neuron(w)
    S, W = program.layers[0].scale, int(program.integers["fc"]["W"][0, 0])
    raster = program.encode(np.ones((1, 1)))
    assert raster[0, :40, 0].all() and not raster[0, 40:, 0].any()
    spikes = GoldenCore(program.config).run(raster).spikes[0][:, program.neuron_ids["fc"][0]]
    # integer reference: input of step k lands at k + 1; fire when u ≥ S, then u −= S
    u, want = 0, []
    for t in range(program.n_steps):
        u += W if 1 <= t <= 40 else 0
        want.append(u >= S)
        u -= S if u >= S else 0
    assert spikes.tolist() == want
    assert spikes.sum() == (40 * W) // S


def test_rate_poisson_input_is_seeded_and_has_the_right_rate(seed):
    program = _one_neuron(0.5, "poisson")
    x = np.array([[0.3]])
    a, b = program.encode(x, seed=seed), program.encode(x, seed=seed)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, program.encode(x, seed=seed + 1))
    big = program.encode(np.full((200, 1), 0.3), seed=seed)[:, :40, 0]
    assert abs(big.mean() - 0.3) < 0.03, f"seed {seed}: Poisson rate {big.mean():.3f}"


def test_rate_input_outside_range_and_unknown_coding_rejected():
    program = _one_neuron(0.5)
    with pytest.raises(ValueError, match=r"input value -0.5 \(sample 0, input 0\)"):
        program.encode(np.array([[-0.5]]))
    stage = WeightStage("fc", np.array([[0.5]]), np.zeros(1), False, (1,))
    with pytest.raises(ValueError, match="'morse'"):
        compile_rate([stage], (1,), 8, G, input_coding="morse")


def test_rate_digits_cnn_accuracy_on_the_core(digits_cnn, digits):
    program = from_model(digits_cnn, 32, digits.x_train, coding="rate", input_coding="current")
    n = 120
    res = GoldenCore(program.config, backend="torch").run(program.encode(digits.x_test[:n]))
    acc = (program.decode(res.outputs)["predicted"] == digits.y_test[:n].numpy()).mean() * 100
    print(program.fit_report())
    print(f"rate code, T=32, constant-current input: {acc:.2f} % on {n} test images")
    assert acc >= 95.0


def test_rate_vs_quartz_table_and_ratio(digits_cnn, digits, seed):
    rows = evaluate_codings(digits_cnn, digits, {"quartz": [8], "rate": [16]}, seed=seed,
                            limit=60, progress=False)
    assert [(r.coding, r.t_max) for r in rows] == [("quartz", 8), ("rate", 16)]
    q, r = rows
    assert r.synops > 2 * q.synops, f"seed {seed}: rate {r.synops} vs Quartz {q.synops} SynOps"
    assert r.steps == 16 + 3 + 2 * 2 * 2 and q.steps == 40
    table = codings_table(rows, tolerance=100.0)
    assert "| rate | 16 |" in table and "rate/Quartz SynOps" in table
    assert synops_ratio(rows, tolerance=100.0)["ratio"] == pytest.approx(r.synops / q.synops)
    assert "No ratio" in codings_table(rows, tolerance=-100.0)


def test_rate_cli_evaluate_prints_one_table_and_writes_the_png(tmp_path, model_cache, capsys,
                                                                digits_cnn):
    rc = main(["evaluate", "--cache", str(model_cache), "--coding", "quartz", "rate", "--t", "4",
               "--rate-t", "4", "--backend", "torch", "--quiet", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "| quartz | 4 |" in out and "| rate | 4 |" in out and "SynOps/inf" in out
    png = tmp_path / "digits_cnn_codings.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
