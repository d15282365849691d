"""Pipelined against unpipelined Quartz on the golden model (docs/quartz.md §3.6, spec §11).

For the digits CNN (bundled digits, 8×8) and the MNIST-shaped ConvNet (``mnist_convnet_digits``
on the digits at 28×28), both trained as the package trains them, the program is converted at
T = 16 twice: one image at a time (a clear between images) and ``pipelined=True`` (a periodic
reset per stage, a new image every ``stream_period`` steps).  The test images run through
both; before a figure is written every image's prediction and every output's first spike
must be equal.  The table gives the steps per image of each and their ratio: the golden
model's step counts, not a hardware measurement (the RTL's cycles: tests/test_rtl_reset.py).

Run ``python -m neurocore.bench.pipeline`` (``make bench-pipeline``); ``--update-docs`` writes
the table into docs/performance.md.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np

from ..golden.core import GoldenCore
from ..sw.convert import from_model
from ..sw.datasets import load_digits28_split, load_digits_split
from ..sw.models import load_or_train
from .report import publish

ROOT = Path(__file__).resolve().parent.parent
T_MAX = 16
#: Independent streams (batch rows) the images are spread over; each runs back to back.
STREAMS = 20
#: (model name, its data loader) of the table's rows.
NETWORKS = {"digits_cnn": load_digits_split, "mnist_convnet_digits": load_digits28_split}


def measure(name: str, images: int | None = None, cache=None) -> dict:
    """Convert ``name`` both ways, run its first ``images`` test images (all when None)
    through both, and return the step counts and whether every prediction agrees."""
    data = NETWORKS[name]()
    model = load_or_train(name, cache, data=data)
    plain = from_model(model, T_MAX, data.x_train)
    piped = from_model(model, T_MAX, data.x_train, pipelined=True)
    x = data.x_test if images is None else data.x_test[:images]
    ref = plain.decode(GoldenCore(plain.config).run(plain.encode(x)).outputs)
    streams = min(STREAMS, len(x))
    got = piped.run_stream(x, streams=streams)
    same = bool(np.array_equal(ref["predicted"], got["predicted"])
                and np.array_equal(ref["first_spike"], got["first_spike"]))
    y = data.y_test[:len(x)].numpy()
    return {"network": name, "images": len(x), "test_images": len(data.x_test),
            "streams": streams, "t_max": T_MAX,
            "steps_unpipelined": int(plain.n_steps), "stream_period": int(piped.stream_period),
            "gain": plain.n_steps / piped.stream_period, "identical": same,
            "accuracy": float((got["predicted"] == y).mean()) * 100}


def markdown(rows: list[dict]) -> str:
    every = all(r["images"] == r["test_images"] for r in rows)
    images = ("every test image of each network" if every else
              "the first " + ", ".join(f"{r['images']} of {r['test_images']}" for r in rows)
              + " test images of " + ", ".join(r["network"] for r in rows))
    counts = sorted({r["streams"] for r in rows})
    streams = " or ".join(str(n) for n in counts) + (" stream" if counts == [1] else " streams")
    lines = [f"Command: `python -m neurocore.bench.pipeline --update-docs` (`make bench-pipeline`)"
             f"; T={T_MAX}; golden model; {images}, {streams} side by side. Predictions and "
             "every output's first spike identical pipelined and unpipelined: **"
             + ("yes" if all(r["identical"] for r in rows) else "NO")
             + "**. Step counts of the golden model (RTL cycles: below); the "
             "unpipelined figure leaves out the host's clear between images.", "",
             "| network | test images | steps per image, one at a time | steps per image, "
             "pipelined (stream period) | gain | accuracy (pipelined) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['images']} | {r['steps_unpipelined']} | "
                     f"{r['stream_period']} | **{r['gain']:.2f}×** | {r['accuracy']:.1f} % |")
    lines += ["", f"Machine: {platform.machine()}, Python {platform.python_version()}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=None,
                    help="test images per network (default: the whole test split)")
    ap.add_argument("--cache", default=None, help="model checkpoint cache (default: the "
                    "package's cache, $NEUROCORE_CACHE)")
    ap.add_argument("--update-docs", action="store_true",
                    help="write the table into docs/performance.md")
    args = ap.parse_args(argv)
    rows = [measure(name, args.images, args.cache) for name in NETWORKS]
    ok = all(r["identical"] for r in rows)
    publish(ROOT, "pipeline", {"rows": rows}, markdown(rows), args.update_docs and ok)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
