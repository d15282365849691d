"""``neurocore board run``: a program image on a board (or the system simulation) over link v2.

:func:`run_images` is the host session: load the image's config and encoder tables
(:meth:`~neurocore.sw.host.NeurocoreHost.load_encoder`), then send the pixels in batches of
``batch`` images (:meth:`~neurocore.sw.host.NeurocoreHost.infer_batch`) with a tqdm progress
bar showing images/s.  It runs on a serial port in this process, or, with port ``sim``,
inside the Verilator system simulation of the image's board geometry
(:func:`neurocore.boards.sim_system.run`).  :func:`compare` checks the replies against the
golden model on ``program.encode(pixels / 255)`` and the labels.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["DATASETS", "load_pixels", "run_images", "compare", "board_for_geometry"]

#: ``--dataset`` choices: the test split of each, as float images in [0, 1].
DATASETS = ("digits", "digits28")


def load_pixels(dataset: str, images: int | None):
    """(pixels (N, inputs) uint8, labels (N,)) of the first ``images`` test images."""
    from .datasets import load_digits28_split, load_digits_split
    from .pixels import to_pixels

    loaders = {"digits": load_digits_split, "digits28": load_digits28_split}
    if dataset not in loaders:
        raise ValueError(f"--dataset {dataset!r} is not one of {', '.join(DATASETS)}")
    data = loaders[dataset]()
    n = len(data.y_test) if images is None else min(int(images), len(data.y_test))
    if n < 1:
        raise ValueError(f"--images {images} selects no image")
    x = data.x_test[:n].numpy().reshape(n, -1)
    return to_pixels(x), data.y_test[:n].numpy()


def run_images(transport, image: str, pixels, batch: int, *, progress: bool = True,
               timeout: float | None = 2.0) -> dict:
    """Run ``pixels`` through the board in batches; JSON-able replies, timing, link bytes."""
    from tqdm import tqdm

    from .host import NeurocoreHost
    from .image import load_program

    program = load_program(image)
    px = np.asarray(pixels, dtype=np.uint8)
    host = NeurocoreHost(transport, timeout=timeout)
    host.load_encoder(program)
    w0, r0 = getattr(transport, "bytes_written", 0), getattr(transport, "bytes_read", 0)
    pred, first, counts = [], [], []
    resends = 0
    t0 = time.perf_counter()
    with tqdm(total=len(px), unit="img", disable=not progress, desc="board") as bar:
        for i in range(0, len(px), batch):
            base = bar.n
            r = host.infer_batch(program, px[i:i + batch],
                                 progress=lambda k: bar.update(base + k - bar.n))
            pred += r.predicted.tolist()
            first += r.first_spike.tolist()
            counts += r.counts.tolist()
            resends += r.resends
    seconds = time.perf_counter() - t0
    return {"predicted": pred, "first_spike": first, "counts": counts, "resends": resends,
            "seconds": seconds, "window": host.window(px.shape[1]),
            "bytes_written": getattr(transport, "bytes_written", 0) - w0,
            "bytes_read": getattr(transport, "bytes_read", 0) - r0}


def board_for_geometry(geometry) -> str:
    """The board preset whose geometry ``geometry`` is; ValueError naming it otherwise."""
    from ..boards.presets import BOARD_GEOMETRIES, board_geometry

    for name in BOARD_GEOMETRIES:
        if board_geometry(name) == geometry:
            return name
    raise ValueError(f"image geometry {geometry.name!r} is not a board's (convert with "
                     f"--geometry {' or '.join(BOARD_GEOMETRIES)})")


def compare(program, pixels, labels, result: dict) -> dict:
    """Accuracy against ``labels`` and mismatches against the golden model."""
    from ..golden.core import GoldenCore
    from .pixels import pixel_values

    out = GoldenCore(program.config).run(program.encode(pixel_values(pixels))).outputs
    gold = program.decode(out)
    pred = np.asarray(result["predicted"])
    first = np.asarray(result["first_spike"])
    mismatches = [int(i) for i in np.flatnonzero(
        (pred != gold["predicted"]) | (first != gold["first_spike"]).any(axis=1))]
    return {"accuracy": float((pred == labels).mean()),
            "golden_accuracy": float((gold["predicted"] == labels).mean()),
            "mismatches": mismatches}
