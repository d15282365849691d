"""The ``neurocore`` command: convert, evaluate and report Quartz networks.

``neurocore demo`` runs the digits flow end to end (train or load the cached CNN, convert it
for T ∈ {4, 8, 16, 32}, run the test split on the golden core, print the table, write CSV and
PNG).  ``neurocore convert`` writes a core image and prints its fit report; ``neurocore
report`` prints the fit report of an image; ``neurocore evaluate`` is ``demo`` with choices.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]

DEFAULT_T = (4, 8, 16, 32)
DEFAULT_OUT = Path("build") / "demo"


def _data_and_model(args):
    from .sw.datasets import load_mnist_idx
    from .sw.models import default_data, load_or_train

    if args.mnist:
        data = load_mnist_idx(args.mnist)
        name = "mnist_convnet"
    else:
        name = args.model
        data = default_data(name)
    return data, name, load_or_train(name, args.cache, data=data)


def _evaluate(args) -> int:
    from .bench.report import update_doc_section
    from .sw.evaluate import evaluate, markdown_table, plot_accuracy, write_csv

    if args.coding:
        from .cli_ecosystem import evaluate_codings_command
        return evaluate_codings_command(args, _data_and_model)
    data, name, model = _data_and_model(args)
    print(f"model {name} on {data.name}: {len(data.y_test)} test images; T = {args.t}")
    rows = evaluate(model, data, tuple(args.t), percentile=args.percentile,
                    progress=not args.quiet, backend=args.backend)
    table = markdown_table(rows)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / f"{name}_accuracy.csv", rows)
    plot_accuracy(out / f"{name}_accuracy.png", rows, f"{name}: accuracy against T")
    print(f"wrote {out / f'{name}_accuracy.csv'} and {out / f'{name}_accuracy.png'}")
    if args.update_docs:
        doc = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
        update_doc_section(doc, f"eval_{name}", f"Command: `neurocore evaluate --model {name}"
                           f" --t {' '.join(map(str, args.t))}` (percentile {args.percentile})."
                           f"\n\n{table}")
    return 0


def _convert(args) -> int:
    from .sw.convert import from_model
    from .sw.image import save_program, write_hex

    data, name, model = _data_and_model(args)
    program = from_model(model, args.t_max, data.x_train, percentile=args.percentile,
                         geometry=args.geometry, dense=args.dense, pipelined=args.pipelined)
    print(program.fit_report())
    save_program(args.out, program)
    print(f"wrote {args.out}")
    if args.hex and program.partition is not None:   # one folder per chip core
        for k, core in enumerate(program.chip_config().cores):
            write_hex(Path(args.hex) / f"core{k}", core)
        print(f"wrote hex memories of {len(program.chip_config().cores)} chip cores to "
              f"{args.hex}/core<k>")
    elif args.hex:
        write_hex(args.hex, program.config)
        print(f"wrote hex memories to {args.hex}")
    return 0


def _board_run(args) -> int:
    from .sw.board_run import board_for_geometry, compare, load_pixels, run_images
    from .sw.image import load_program

    if args.batch < 1:
        raise UsageError(f"--batch {args.batch} must be at least 1")
    program = load_program(args.image)          # before the port: a bad image costs nothing
    pixels, labels = load_pixels(args.dataset, args.images)
    kwargs = {"image": str(args.image), "batch": args.batch, "progress": not args.quiet}
    if args.port == "sim":
        from .boards import sim_system

        board = board_for_geometry(program.config.geometry)
        print(f"{len(pixels)} {args.dataset} images on the {board} system simulation "
              f"(Verilator, {sim_system.SIM_DIVISOR} cycles per bit)")
        report = sim_system.run(program.config.geometry, "neurocore.sw.board_run:run_images",
                                {**kwargs, "pixels": pixels.tolist(), "timeout": None},
                                divisor=sim_system.SIM_DIVISOR,
                                spram=sim_system.board_spram(board), name="board_run")
        if report["failure"]:
            raise OSError(report["failure"])
        result = report["result"]
        cycles = report["sim_cycles"]
        print(f"simulated {cycles} clock cycles (loading the image included)")
    else:
        from .sw.transport import open_serial

        with open_serial(args.port, args.baud) as port:
            result = run_images(port, **kwargs, pixels=pixels)
    n = len(pixels)
    print(f"{n} images in {result['seconds']:.2f} s ({n / result['seconds']:.1f} img/s), "
          f"{result['bytes_written'] / n:.1f} bytes per image to the board, "
          f"{result['bytes_read'] / n:.1f} back; credit window {result['window']} frames; "
          f"{result['resends']} resends")
    cmp = compare(program, pixels, labels, result)
    print(f"accuracy {cmp['accuracy'] * 100:.2f} % (golden {cmp['golden_accuracy'] * 100:.2f} "
          f"%); {len(cmp['mismatches'])} mismatches against golden"
          + (f": images {cmp['mismatches'][:20]}" if cmp["mismatches"] else ""))
    return 1 if cmp["mismatches"] else 0


def _report(args) -> int:
    from .sw.image import load_program

    print(load_program(args.image).fit_report())
    return 0


class UsageError(ValueError):
    """A command-line argument that cannot work (a path of the wrong kind, an unknown name)."""


def _file_to_write(option: str, path) -> None:
    """``path`` may be created or replaced as a file: not a directory, its folder exists."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{option} {p} is a directory; give a file name")
    if not p.parent.is_dir():
        raise UsageError(f"{option} {p}: folder {p.parent} does not exist")


def _folder(option: str, path, *, must_exist: bool = False) -> None:
    """``path`` is (or may become) a folder: not an existing file."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{option} {p} is a file, not a folder")
    if must_exist and not p.is_dir():
        raise UsageError(f"{option} {p} does not exist")


def _file_to_read(option: str, path) -> None:
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{option} {p} is a directory, not a file")
    if not p.exists():
        raise UsageError(f"{option} {p} does not exist")


def _check_arguments(args) -> None:
    """Check every path and name before any long work (training, conversion, evaluation)."""
    from .spec.geometry import CHIP_PRESETS, PRESETS, RESET_SUFFIX

    if getattr(args, "cache", None):
        _folder("--cache", args.cache)
    if getattr(args, "mnist", None):
        _folder("--mnist", args.mnist, must_exist=True)
    if args.command == "convert":
        _file_to_write("--out", args.out)
        if args.hex:
            _folder("--hex", args.hex)
        known = {**PRESETS, **CHIP_PRESETS, **{n + RESET_SUFFIX: g for n, g in PRESETS.items()}}
        if args.geometry is not None and args.geometry not in known:
            raise UsageError(f"--geometry {args.geometry!r} is not a preset; known: "
                             f"{', '.join(sorted(known))}")
    elif args.command in ("report", "board"):
        _file_to_read("image", args.image)
    elif args.command in ("nir", "plot"):
        if getattr(args, "graph", None):
            _file_to_read("graph", args.graph)
        if getattr(args, "output", None) and Path(args.output).is_dir():
            raise UsageError(f"--output {args.output} is a directory; give a file name")
    else:
        _folder("--out", args.out)


def _common(p, t_default):
    from .sw.models import BUNDLED_DATA, MODELS

    bundled = [name for name, (_, _, dataset) in MODELS.items() if dataset in BUNDLED_DATA]
    p.add_argument("--model", default="digits_cnn", choices=bundled,
                   help="named model on data that ship with neurocore (default digits_cnn; "
                   "mnist_convnet_digits: the MNIST ConvNet on the digits at 28x28)")
    p.add_argument("--mnist", metavar="DIR", help="use MNIST IDX files in DIR and mnist_convnet")
    p.add_argument("--cache", metavar="DIR", help="checkpoint cache (default $NEUROCORE_CACHE "
                   "or ~/.cache/neurocore)")
    p.add_argument("--percentile", type=float, default=None,
                   help="activation-normalisation percentile")


def main(argv=None) -> int:
    from .sw.convert import DEFAULT_PERCENTILE

    ap = argparse.ArgumentParser(prog="neurocore", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name, helptext in (("demo", "the digits flow end to end"),
                           ("evaluate", "accuracy table against T")):
        p = sub.add_parser(name, help=helptext)
        _common(p, DEFAULT_T)
        p.add_argument("--t", type=int, nargs="+", default=list(DEFAULT_T), help="values of T")
        p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder for CSV and PNG")
        p.add_argument("--update-docs", action="store_true",
                       help="write the table into docs/performance.md")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        from .cli_ecosystem import add_evaluate_options
        add_evaluate_options(p)
        p.set_defaults(func=_evaluate)
    p = sub.add_parser("convert", help="convert a model and write its core image")
    _common(p, None)
    p.add_argument("--t-max", type=int, default=16)
    p.add_argument("--geometry", default=None,
                   help="geometry preset (default: fitted); a board name (ulx3s, icebreaker) "
                        "places a network its single core cannot hold on the board's chip")
    p.add_argument("--dense", action="store_true",
                   help="map convolutions as dense synapse lists, not conv descriptors (needed "
                        "for a geometry without conv memory)")
    p.add_argument("--pipelined", action="store_true",
                   help="give every layer a periodic reset so that images run back to back, "
                        "a new one every stream_period steps (docs/spec.md §11); needs a "
                        "geometry with reset fields: the fitted one, or a preset's '-reset' "
                        "variant (e.g. ulx3s-reset)")
    p.add_argument("--out", required=True, help="image file to write (.ncimg)")
    p.add_argument("--hex", metavar="DIR", help="also write $readmemh files into DIR")
    p.set_defaults(func=_convert)
    from .cli_ecosystem import add_parsers
    add_parsers(sub)
    p = sub.add_parser("board", help="run an image on a board over host link v2")
    bsub = p.add_subparsers(dest="board_command", required=True)
    p = bsub.add_parser("run", help="batches of test images through the on-chip encoder; "
                        "accuracy and mismatches against golden")
    from .sw.board_run import DATASETS
    p.add_argument("image", help="program image (.ncimg) converted for a board geometry")
    p.add_argument("--port", required=True,
                   help="serial port (e.g. /dev/ttyUSB1), or 'sim' for the Verilator system "
                        "simulation of the image's board")
    p.add_argument("--dataset", default="digits", choices=DATASETS,
                   help="test split to run (default digits; digits28: the digits at 28x28)")
    p.add_argument("--images", type=int, default=None, help="first N test images (default all)")
    p.add_argument("--batch", type=int, default=64, help="images per batch (default 64)")
    p.add_argument("--baud", type=int, default=115200, help="serial baud (the bitstream's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_board_run)
    p = sub.add_parser("report", help="print the fit report of an image")
    p.add_argument("image")
    p.set_defaults(func=_report)
    args = ap.parse_args(argv)
    if getattr(args, "percentile", None) is None and hasattr(args, "percentile"):
        args.percentile = DEFAULT_PERCENTILE
    try:
        _check_arguments(args)
        return args.func(args)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        message = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
        print(f"neurocore: error: {' '.join(message.splitlines())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
