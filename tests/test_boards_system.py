"""Full system in simulation: the host driver (sw/host.py) runs digits inference on the
iCEBreaker design (UART bridge + neurocore, synapses on the SPRAM model) in Verilator.

The digits MLP is converted for the iCEBreaker geometry and saved as an image; the host side
loads it with ``sw.image.load_program`` and talks the framed protocol over a bit-level UART
(4 clock cycles per bit) through :class:`~neurocore.sw.transport.SimTransport`, exactly the
code path of a real board.  Classes, first-spike steps and every output event must equal
the golden model's.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurocore.boards import sim_system
from neurocore.boards.presets import board_geometry
from neurocore.golden.core import GoldenCore
from neurocore.sw.convert import from_model
from neurocore.sw.image import save_program
from neurocore.sw.models import load_or_train

T = 16
N_SAMPLES = 8


@pytest.fixture(scope="module")
def mlp_program(digits, model_cache):
    model = load_or_train("digits_mlp", model_cache, data=digits)
    return from_model(model, T, digits.x_train, geometry=board_geometry("icebreaker"))


def test_digits_mlp_on_the_icebreaker_design_equals_golden(mlp_program, digits, tmp_path, seed):
    program = mlp_program
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(digits.y_test), N_SAMPLES, replace=False))
    x = digits.x_test[idx].numpy().reshape(N_SAMPLES, -1)
    image = save_program(tmp_path / "digits_mlp.ncimg", program)

    report = sim_system.run(program.config.geometry, "neurocore.sw.host:infer_samples",
                            {"image": str(image), "samples": x.tolist()}, divisor=4,
                            spram=("synapses",), name="digits_mlp")
    assert report["failure"] is None, report["failure"]
    res = report["result"]

    raster = program.encode(x)
    gold_out = GoldenCore(program.config).run(raster).outputs
    gold = program.decode(gold_out)
    for i, r in enumerate(res["samples"]):
        assert r["predicted"] == gold["predicted"][i], (seed, int(idx[i]))
        assert r["first_spike"] == gold["first_spike"][i].tolist(), (seed, int(idx[i]))
        events = sorted((int(o), int(t)) for t, o in zip(*np.nonzero(gold_out[i]))
                        for _ in range(gold_out[i][t, o]))
        assert sorted(map(tuple, r["events"])) == events, (seed, int(idx[i]))
    assert res["resends"] == 0 and report["framing"] == 0
    core_errors, bridge_flags = res["status"][:2]
    assert (core_errors, bridge_flags) == (0, 0)
    accuracy = float(np.mean(np.array([r["predicted"] for r in res["samples"]])
                             == digits.y_test[idx].numpy()))
    print(f"\nfull system (icebreaker geometry, T={T}): {N_SAMPLES} digits, accuracy "
          f"{accuracy:.2f}, {res['words_written']} words loaded in {res['frames']} frames; "
          f"{report['sim_cycles']} cycles simulated in {report['wall_s']:.1f} s "
          f"(build {report['build_s']:.1f} s); {report['bytes_written']} bytes to the board, "
          f"{report['bytes_read']} back")
