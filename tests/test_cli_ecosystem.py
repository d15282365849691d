"""``neurocore nir export|import`` and ``neurocore plot raster|timing`` end to end."""

import nir
import numpy as np

from neurocore.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def test_nir_cli_export_writes_a_readable_graph_and_import_names_the_problem(
        tmp_path, model_cache, digits_cnn, capsys):
    out = tmp_path / "net.nir"
    assert main(["nir", "export", "--flat", "--cache", str(model_cache), "--t-max", "8", "-o",
                 str(out)]) == 0
    graph = nir.read(out)
    assert type(graph.nodes["cx"]).__name__ == "CubaLIF"
    assert np.all(graph.nodes["cx"].v_threshold == 1)
    assert "NIR input at step t+1" in capsys.readouterr().out
    # the exported graph is recurrent: from_nir maps chains only, and says where it stops
    assert main(["nir", "import", str(out)]) == 2
    assert "node 'cx': feeds" in capsys.readouterr().err


def test_nir_cli_export_layers_writes_conv_and_pool_nodes(tmp_path, model_cache, digits_cnn,
                                                          capsys):
    out = tmp_path / "layers.nir"
    assert main(["nir", "export", "--cache", str(model_cache), "--t-max", "8",
                 "-o", str(out)]) == 0
    kinds = {type(n).__name__ for n in nir.read(out).nodes.values()}
    assert {"Conv2d", "SumPool2d", "Flatten", "Linear", "CubaLIF"} <= kinds, kinds
    assert "output is core step τ +" in capsys.readouterr().out


def test_plot_cli_raster_and_timing_write_pngs(tmp_path, model_cache, digits_cnn, capsys):
    raster, timing = tmp_path / "raster.png", tmp_path / "timing.png"
    assert main(["plot", "raster", "--cache", str(model_cache), "--t-max", "8", "--sample", "5",
                 "-o", str(raster)]) == 0
    assert main(["plot", "timing", "--cache", str(model_cache), "--t-max", "8", "--images", "20",
                 "--backend", "torch", "-o", str(timing)]) == 0
    assert raster.read_bytes()[:8] == PNG and timing.read_bytes()[:8] == PNG
    assert main(["plot", "raster", "--cache", str(model_cache), "--sample", "9999",
                 "-o", str(raster)]) == 2
    assert "--sample 9999 is outside the test split" in capsys.readouterr().err


def test_plot_first_spike_times_per_layer(digits_program_t16, digits):
    from neurocore.golden.core import GoldenCore
    from neurocore.sw.plots import first_spike_times

    program, _ = digits_program_t16
    res = GoldenCore(program.config).run(program.encode(digits.x_test[:4]))
    times = first_spike_times(program, res.spikes)
    assert list(times) == list(program.neuron_ids)
    first = times[next(iter(times))]
    assert first.size == 4 * len(program.neuron_ids[next(iter(times))])
    # Quartz: every hidden neuron fires exactly once, by the rectifier at the latest
    assert (first >= 0).all() and first.max() <= 3 * (program.t_max - 1)
