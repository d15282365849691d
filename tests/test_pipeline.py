"""Pipelined Quartz programs (docs/quartz.md §3.6, docs/spec.md §11): images run back to
back, a new one every ``stream_period`` steps with no clear, and every image's prediction
equals the unpipelined program's.

The digits CNN runs its whole test split; the MNIST-shaped ConvNet (``mnist_convnet_digits``
on the 28×28 digits) runs ``NEUROCORE_PIPELINE_IMAGES`` images (default
:data:`CONVNET_IMAGES`; ``make pipeline-long`` runs more), test images first, then training
images (predictions need no labels).  Each run prints the steps per image, unpipelined and
pipelined.
"""

import os

import numpy as np
import pytest
import torch

from neurocore.bench.pipeline import STREAMS, T_MAX as T
from neurocore.golden.core import GoldenCore
from neurocore.sw.compiler import MappingError
from neurocore.sw.convert import from_model
from neurocore.sw.image import load_program, save_program

#: Images of the MNIST-shaped ConvNet compared in ``make test``; ``make pipeline-long`` runs
#: 1000 (12 minutes on two shared cores).
CONVNET_IMAGES = int(os.environ.get("NEUROCORE_PIPELINE_IMAGES", "100"))


def _unpipelined(program, x):
    return program.decode(GoldenCore(program.config).run(program.encode(x)).outputs)


def _same_per_image(ref, pip, what):
    bad = np.flatnonzero(ref["predicted"] != pip["predicted"])
    assert bad.size == 0, (f"{what}: images {bad[:10].tolist()} differ: unpipelined "
                           f"{ref['predicted'][bad[:10]].tolist()}, pipelined "
                           f"{pip['predicted'][bad[:10]].tolist()}")
    # stronger: every output's first spike (the whole decoded vector) is the same
    np.testing.assert_array_equal(ref["first_spike"], pip["first_spike"], err_msg=what)


@pytest.fixture(scope="module")
def pipelined_digits(digits_program_t16, digits):
    program, model = digits_program_t16
    return program, from_model(model, T, digits.x_train, pipelined=True)


def _compare_streams(ref_prog, pip, x, label: str) -> tuple[int, int, dict]:
    """Images ``x`` one at a time on ``ref_prog`` and as a stream on ``pip``: the same
    predictions image by image; prints and returns (steps per image, stream period, the
    stream's result)."""
    got = pip.run_stream(x, streams=STREAMS)
    _same_per_image(_unpipelined(ref_prog, x), got, label)
    P, n = pip.stream_period, ref_prog.n_steps
    print(f"{label}, {len(x)} images: {n} steps per image unpipelined, {P} pipelined "
          f"({n / P:.2f}x)")
    return n, P, got


def test_digits_cnn_pipelined_equals_unpipelined(pipelined_digits, digits):
    ref_prog, pip = pipelined_digits
    x = digits.x_test
    n, P, got = _compare_streams(ref_prog, pip, x, "digits CNN")
    assert pip.n_steps == n and P < n
    assert f"{n} steps per inference, pipelined: a new image every {P} steps" in pip.fit_report()
    assert "pipelined" not in ref_prog.fit_report()
    g = pip.config.geometry
    pr = pip.config.mem["profiles"]
    used = np.unique(pip.config.mem["compartments"]["profile"])
    assert (pr["reset_interval"][used] == P).all()
    assert g.reset_bits == P.bit_length()
    # one stream, back to back, gives the same as many streams
    one = pip.run_stream(x[:6], streams=1)
    np.testing.assert_array_equal(one["first_spike"], got["first_spike"][:6])
    # the torch backend runs the periodic reset to the same spikes
    torch_run = pip.run_stream(x[:20], streams=4, backend="torch")
    np.testing.assert_array_equal(torch_run["first_spike"],
                                  pip.run_stream(x[:20], streams=4)["first_spike"])


def test_pipelined_program_image_round_trip(pipelined_digits, digits, tmp_path):
    _, pip = pipelined_digits
    back = load_program(save_program(tmp_path / "pip.ncimg", pip))
    assert (back.stream_period, back.stream_readout) == (pip.stream_period, pip.stream_readout)
    assert back.config.geometry == pip.config.geometry
    x = digits.x_test[:8]
    np.testing.assert_array_equal(back.run_stream(x, 2)["first_spike"],
                                  pip.run_stream(x, 2)["first_spike"])


def test_stored_stream_fields_are_checked(pipelined_digits, tmp_path):
    """A loaded program's stream period must fit the reset fields, equal the profiles' reset
    interval and leave the output window inside one period."""
    import json

    from image_helpers import reseal, split

    from neurocore.sw.image import ImageFormatError
    _, pip = pipelined_digits
    path = save_program(tmp_path / "p.ncimg", pip)
    _, _, meta, payload, _ = split(path.read_bytes())
    g = pip.config.geometry
    cases = [({"stream_period": g.max_reset_interval + 1},
              f"'stream_period': {g.max_reset_interval + 1} is outside [0, "
              f"{g.max_reset_interval}]"),
             ({"stream_readout": pip.n_steps - pip.stream_period - 1},
              f"'stream_readout': {pip.n_steps - pip.stream_period - 1} leaves "
              f"{pip.stream_period + 1} output steps, more than stream_period "
              f"{pip.stream_period}"),
             ({"stream_period": pip.stream_period + 1},
              f"'stream_period': {pip.stream_period + 1} does not match the profiles' reset "
              f"intervals [{pip.stream_period}]")]
    for change, message in cases:
        bad = json.loads(json.dumps(meta))
        bad["program"].update(change)
        path.write_bytes(reseal(json.dumps(bad).encode(), payload))
        with pytest.raises(ImageFormatError, match=message.replace("[", r"\[")):
            load_program(path)
    # without the fields (as before format 4) the program reads as unpipelined, which its
    # resetting profiles contradict (a real pre-4 image has no reset fields: test_image.py)
    old = json.loads(json.dumps(meta))
    del old["program"]["stream_period"], old["program"]["stream_readout"]
    path.write_bytes(reseal(json.dumps(old).encode(), payload))
    with pytest.raises(ImageFormatError,
                       match=r"'stream_period': 0 does not match the profiles' reset "
                             rf"intervals \[{pip.stream_period}\]"):
        load_program(path)


def test_stream_errors(digits_program_t16, pipelined_digits, digits):
    ref_prog, model = digits_program_t16
    with pytest.raises(ValueError, match="not pipelined"):
        ref_prog.run_stream(digits.x_test[:2])
    _, pip = pipelined_digits
    with pytest.raises(ValueError, match="streams must be an integer in 1..2"):
        pip.encode_stream(digits.x_test[:2], streams=3)
    g = pip.config.geometry
    with pytest.raises(MappingError, match=rf"reset interval of {pip.stream_period} steps.*"
                                           rf"reset_bits=0; {g.reset_bits} needed"):
        from_model(model, T, digits.x_train, pipelined=True, geometry=g.replace(reset_bits=0))
    with pytest.raises(ValueError, match="pipelined=True needs coding='quartz'"):
        from_model(model, T, digits.x_train, pipelined=True, coding="rate")
    with pytest.raises(ValueError, match="geometry 'ulx3s' names a board, which also allows "
                                         "its chip 'ulx3s', whose cores have none: pass "
                                         "'ulx3s-reset'"):
        from_model(model, T, digits.x_train[:16], pipelined=True, geometry="ulx3s")


def test_mnist_convnet_pipelined_equals_unpipelined(model_cache):
    from neurocore.sw.datasets import load_digits28_split
    from neurocore.sw.models import load_or_train
    data = load_digits28_split()
    model = load_or_train("mnist_convnet_digits", model_cache, data=data)
    ref_prog = from_model(model, T, data.x_train)
    pip = from_model(model, T, data.x_train, pipelined=True)
    x = torch.cat([data.x_test, data.x_train])[:CONVNET_IMAGES]
    assert len(x) == CONVNET_IMAGES, f"only {len(x)} images available"
    n, P, _ = _compare_streams(ref_prog, pip, x, "MNIST-shaped ConvNet")
    assert P < n


@pytest.mark.lava
def test_pipelined_stream_on_lava_matches_golden(pipelined_digits, digits):
    """A stream of three digits images back to back on the pipelined program: golden = Lava
    (``LIFReset`` per stage), spikes, u and v at every step, and the stream decodes to the
    unpipelined predictions.  One Lava run."""
    from neurocore.golden.compare import first_mismatch
    from neurocore.sim.lava_harness import run_lava
    ref_prog, pip = pipelined_digits
    x = digits.x_test[:3]
    raster = pip.encode_stream(x)
    golden = GoldenCore(pip.config).run(raster, record=("u", "v"))
    lava = run_lava(pip.config, raster, record=("u", "v"))
    msg = first_mismatch(golden, lava, actual_name="lava")
    assert msg is None, msg
    _same_per_image(_unpipelined(ref_prog, x), pip.decode_stream(lava.outputs, len(x)),
                    "digits CNN on Lava")


def test_pipeline_bench_reports_identical_predictions_and_the_gain(model_cache, digits_cnn):
    """bench/pipeline.py (``make bench-pipeline``) on a few digits images: the row it writes
    comes from a run in which both programs agree, and the gain is the step ratio."""
    from neurocore.bench.pipeline import markdown, measure
    r = measure("digits_cnn", images=12, cache=model_cache)
    assert r["identical"] and r["images"] == 12
    assert r["gain"] == r["steps_unpipelined"] / r["stream_period"] > 1
    text = markdown([r])
    assert "identical pipelined and unpipelined: **yes**" in text
    assert f"the first 12 of {r['test_images']} test images of digits_cnn, 12 streams" in text, text
