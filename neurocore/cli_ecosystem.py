"""``neurocore nir …`` and ``neurocore plot …``: NIR export/import and spike plots.

Registered by :func:`add_parsers` from :mod:`neurocore.cli`.  A SOURCE is a core image
(``.ncimg``, from ``neurocore convert``), a torch file (``.pt``: a whole ``nn.Sequential`` or
a ``state_dict`` of ``--model``), or, when omitted, the cached named ``--model``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["add_parsers", "add_evaluate_options", "evaluate_codings_command"]


def add_evaluate_options(p) -> None:
    """Options of ``neurocore evaluate``/``demo`` for the golden backend and the codings."""
    from .sw.codings import DEFAULT_RATE_T

    p.add_argument("--backend", choices=["numpy", "torch"], default="numpy",
                   help="golden-model backend (bit-exact with each other)")
    p.add_argument("--device", default="cpu", help="torch device for --backend torch")
    p.add_argument("--coding", nargs="+", choices=["quartz", "rate"],
                   help="compare codings: one table of accuracy, steps, spikes and SynOps "
                   "per inference, and a PNG of accuracy against SynOps")
    p.add_argument("--rate-t", type=int, nargs="+", default=list(DEFAULT_RATE_T),
                   help="input steps of the rate code (with --coding rate)")
    p.add_argument("--input", choices=["poisson", "current"], default="poisson",
                   help="rate-code input spike trains (default poisson)")
    p.add_argument("--seed", type=int, default=None,
                   help="Poisson seed (default $NEUROCORE_RATE_SEED or 0)")


def evaluate_codings_command(args, data_and_model) -> int:
    """``neurocore evaluate --coding …``: the codings table, its PNG and docs block."""
    from .bench.report import update_doc_section
    from .sw.codings import codings_table, evaluate_codings, plot_codings, rate_seed

    data, name, model = data_and_model(args)
    plan = {c: list(args.t if c == "quartz" else args.rate_t) for c in args.coding}
    seed = rate_seed() if args.seed is None else args.seed
    print(f"model {name} on {data.name}: {len(data.y_test)} test images; codings {plan}; "
          f"rate input {args.input} (seed {seed}); golden backend {args.backend}")
    rows = evaluate_codings(model, data, plan, percentile=args.percentile,
                            input_coding=args.input, seed=seed, backend=args.backend,
                            device=args.device, progress=not args.quiet)
    table = codings_table(rows)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{name}_codings.png"
    plot_codings(png, rows, f"{name}: accuracy against SynOps")
    print(f"wrote {png}")
    if args.update_docs:
        doc = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
        update_doc_section(doc, f"codings_{name}", f"Command: `neurocore evaluate --model {name}"
                           f" --coding {' '.join(args.coding)} --t {' '.join(map(str, args.t))}"
                           f" --rate-t {' '.join(map(str, args.rate_t))} --input {args.input}"
                           f" --seed {seed}` (percentile {args.percentile}).\n\n{table}")
    return 0


def _program(args, data):
    """The program SOURCE names: an image as stored, or a model converted at ``--t-max``."""
    import torch

    from .sw.convert import from_model
    from .sw.image import load_program
    from .sw.models import MODELS, load_or_train

    src = getattr(args, "source", None)
    if src and Path(src).suffix != ".pt":
        return load_program(src)
    if src:
        obj = torch.load(src, map_location="cpu", weights_only=False)
        if isinstance(obj, torch.nn.Module):
            model = obj.eval()
        elif isinstance(obj, dict):
            model = MODELS[args.model][0]()
            model.load_state_dict(obj)
            model.eval()
        else:
            raise ValueError(f"{src}: holds a {type(obj).__name__}, not an nn.Sequential or "
                             "a state_dict")
    else:
        model = load_or_train(args.model, args.cache, data=data)
    return from_model(model, args.t_max, data.x_train, percentile=args.percentile,
                      coding=getattr(args, "coding", "quartz"))


def _nir_export(args) -> int:
    import nir

    from .sw.datasets import load_digits_split
    from .sw.nir_export import to_nir

    program = _program(args, load_digits_split())
    from_image = bool(args.source) and Path(args.source).suffix != ".pt"
    if not args.flat and not from_image:
        from .sw.nir_layers import to_nir_layers
        ex = to_nir_layers(program)
        nir.write(args.output, ex.graph)
        kinds = sorted({type(n).__name__ for n in ex.graph.nodes.values()})
        print(f"wrote {args.output}: {len(ex.populations)} CubaLIF populations "
              f"({', '.join(ex.populations)}), nodes {', '.join(kinds)}; NIR step τ of the "
              f"output is core step τ + {ex.output_offset} (docs/nir.md)")
        return 0
    ex = to_nir(program.config)
    nir.write(args.output, ex.graph)
    cx = ex.graph.nodes["cx"]
    print(f"wrote {args.output}: CubaLIF population of {cx.v_threshold.size} neurons "
          f"({ex.compartments.size} compartments + {ex.n_relays} delay relays), "
          f"{ex.input_axons.size} inputs (core axons {ex.input_axons.tolist()[:8]}…), "
          f"{ex.graph.nodes['output'].output_type['output'][0]} outputs; a host spike of core "
          "step t is NIR input at step t+1 (docs/nir.md)"
          + ("; an image holds no torch layers, so the graph is flat" if from_image else ""))
    return 0


def _nir_import(args) -> int:
    from .sw.image import save_config
    from .sw.nir_import import from_nir

    program = from_nir(args.graph, dt=args.dt)
    print(program.report_text())
    s = program.config.summary()
    print(f"{s['compartments_used']} compartments, {s['synapses_used']} synapses, "
          f"{program.n_inputs} inputs, {program.n_outputs} outputs")
    if args.output:
        save_config(args.output, program.config)
        print(f"wrote {args.output}")
    return 0


def _plot(args) -> int:
    from .golden.core import GoldenCore
    from .sw.datasets import load_digits_split
    from .sw.plots import plot_raster, plot_timing

    data = load_digits_split()
    program = _program(args, data)
    core = GoldenCore(program.config, backend=args.backend)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.kind == "raster":
        if not 0 <= args.sample < len(data.y_test):
            raise ValueError(f"--sample {args.sample} is outside the test split "
                             f"(0…{len(data.y_test) - 1})")
        raster = program.encode(data.x_test[args.sample:args.sample + 1])
        res = core.run(raster[0])
        pred = program.decode(res.outputs[None])["predicted"][0]
        plot_raster(out, program, res.spikes, raster[0],
                    f"test image {args.sample} (label {int(data.y_test[args.sample])}, "
                    f"core class {pred})")
    else:
        raster = program.encode(data.x_test[:args.images])
        plot_timing(out, program, core.run(raster).spikes,
                    f"first-spike times per layer, {len(raster)} test images")
    print(f"wrote {out}")
    return 0


def _source_args(p):
    p.add_argument("source", nargs="?", help="image (.ncimg) or model (.pt); default: the "
                   "cached --model")
    p.add_argument("--model", default="digits_cnn", choices=["digits_cnn", "digits_mlp"])
    p.add_argument("--cache", metavar="DIR", help="checkpoint cache")
    p.add_argument("--t-max", type=int, default=16, help="T when SOURCE is a model")
    p.add_argument("--percentile", type=float, default=99.0)


def add_parsers(sub) -> None:
    """Add the ``nir`` and ``plot`` command groups to an argparse subparsers object."""
    nir_p = sub.add_parser("nir", help="NIR (Neuromorphic Intermediate Representation) in/out")
    nsub = nir_p.add_subparsers(dest="nir_command", required=True)
    p = nsub.add_parser("export", help="write a converted network as a NIR graph")
    _source_args(p)
    p.add_argument("-o", "--output", required=True, help="NIR file to write (.nir)")
    p.add_argument("--flat", action="store_true",
                   help="one CubaLIF population of every compartment with Linear maps (what an "
                        "IMAGE always gives: it holds no torch layers); by default a model is "
                        "written per layer, with Conv2d/SumPool2d/Flatten/Linear edges")
    p.set_defaults(func=_nir_export)
    p = nsub.add_parser("import", help="map a NIR graph onto the core; print the report")
    p.add_argument("graph", help="NIR file")
    p.add_argument("--dt", type=float, default=1e-4, help="time step of the graph (s)")
    p.add_argument("-o", "--output", help="also write the core config (.ncimg)")
    p.set_defaults(func=_nir_import)
    plot_p = sub.add_parser("plot", help="spike raster or first-spike times on the golden core")
    psub = plot_p.add_subparsers(dest="kind", required=True)
    for kind, helptext in (("raster", "spike raster per layer of one test image"),
                           ("timing", "first-spike-time histogram per layer")):
        p = psub.add_parser(kind, help=helptext)
        _source_args(p)
        p.add_argument("--coding", choices=["quartz", "rate"], default="quartz")
        p.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
        p.add_argument("-o", "--output", default=str(Path("build") / "demo" / f"{kind}.png"))
        if kind == "raster":
            p.add_argument("--sample", type=int, default=0, help="test image index")
        else:
            p.add_argument("--images", type=int, default=100, help="test images")
        p.set_defaults(func=_plot)
