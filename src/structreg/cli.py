"""``structreg <command>``: the command-line interface.

Heavy imports (torch, nibabel, matplotlib) happen inside the command handlers,
after argument parsing, so ``structreg --help`` is instant. Every user-facing
failure (bad input, missing file, tampered checkpoint) is reported as one line
``structreg: error: ...`` with a non-zero exit status and no traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from . import __version__


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


# name -> (help, add_arguments(parser), run(args) -> int)
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                           Callable[[argparse.Namespace], int]]] = {}


# group name -> help, for nested commands such as ``structreg data preview``
_GROUPS: dict[str, str] = {"data": "look at and check data sets"}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``run(args) -> int`` as the handler of ``structreg <name>``.

    A two-word ``name`` (``"data preview"``) registers a subcommand of a command
    group (``structreg data preview``); describe new groups in ``_GROUPS``.
    """
    def decorate(run: Callable[[argparse.Namespace], int]):
        _COMMANDS[name] = (help, add_arguments, run)
        return run
    return decorate


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--subjects", type=int, default=250,
                   help="phantom subjects, split 70/10/20 by subject (default: 250)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps (default: the bundled demo.toml's)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N (default: auto)")


@command("demo", "run the built-in demonstration and write OUT/report.md", _demo_args)
def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    report = run_demo(args.out, seed=args.seed, subjects=args.subjects, steps=args.steps,
                      device=args.device)
    print(f"wrote {report}")
    return 0


def _train_args(p: argparse.ArgumentParser) -> None:
    from .data.spec import add_data_arguments

    add_data_arguments(p, split="train")
    p.add_argument("--config", default=None,
                   help="TOML file with [model] and [train] tables, or a bundled config name: "
                        "cardiac, brain, demo (default: built-in defaults)")
    p.add_argument("--out", required=True, help="run folder (created; refused if it holds a run)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out exactly where it stopped")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N (default: from config)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.steps=500 (repeatable)")
    p.add_argument("--method", default="cvae", choices=["cvae", "voxelmorph"],
                   help="cvae (ours, default) or voxelmorph (the VoxelMorph-2 baseline: NCC + "
                        "1.5 smoothness; uses train.steps, lr, batch_size, seed, device)")


@command("train", "train a registration model on a data set", _train_args)
def _run_train(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .apply import RUN_DATA_FILE
    from .configs import resolve_config
    from .data.spec import load_pairs_from_args
    from .io_utils import atomic_write_text
    from .training.config import load_config
    from .training.loop import train

    overrides = [f"model.image_size={list(args.size)}"] + list(args.overrides)
    overrides += [f"train.device={args.device}"] if args.device else []
    config = load_config(resolve_config(args.config) if args.config else None, overrides)
    size = tuple(config.model.image_size)
    train_pairs = load_pairs_from_args(args, split="train", size=size)
    val_pairs = load_pairs_from_args(args, split="val", size=size)
    if not train_pairs:
        raise CLIError(f"no training pairs in {args.data}")
    out = Path(args.out)
    if ((out / "checkpoint.pt").exists() or (out / "voxelmorph.pt").exists()) and not args.resume:
        raise CLIError(f"{out} already holds a run; use --resume to continue it or another --out")
    out.mkdir(parents=True, exist_ok=True)
    data = {"data": args.data, "size": list(size), "spacing": list(train_pairs[0].spacing),
            "seed": args.seed, "subjects": args.subjects, "slices": getattr(args, "slices", None)}
    atomic_write_text(out / RUN_DATA_FILE, json.dumps(data, indent=1))
    print(f"training on {len(train_pairs)} pairs, validating on {len(val_pairs)}")
    if args.method == "voxelmorph":
        from .baselines.voxelmorph import train_voxelmorph
        from .training.config import resolve_device

        t = config.train
        train_voxelmorph(train_pairs, out, steps=t.steps, batch_size=t.batch_size, seed=t.seed,
                         lr=t.lr, device=str(resolve_device(t.device)))
        print(f"done: run folder {out}")
        return 0
    history = train(config.model, config.train, train_pairs, val_pairs, out, resume=args.resume)
    last = history[-1] if history else {}
    print(f"done: step {last.get('step')}, loss {last.get('loss')}; run folder {out}")
    return 0


def _register_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="run folder or checkpoint file")
    p.add_argument("--moving", help="moving image (NIfTI)")
    p.add_argument("--fixed", help="fixed image (NIfTI)")
    p.add_argument("--moving-labels", help="moving label map (NIfTI), warped too")
    p.add_argument("--data", help="batch mode: pairs:FILE.csv (one output folder per row)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")


@command("register", "register NIfTI pairs with a trained model and write NIfTI results",
         _register_args)
def _run_register(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .apply import read_run_data, register_files
    from .training.checkpoint import load_model

    if args.data is None and not (args.moving and args.fixed):
        raise CLIError("give --moving and --fixed, or --data pairs:FILE.csv")
    jobs = []
    if args.data is not None:
        from .data.pairs import read_pairs_csv
        from .data.spec import parse_data_spec

        spec = parse_data_spec(args.data)
        if spec.kind != "pairs":
            raise CLIError(f"register --data takes pairs:FILE.csv, got {args.data}")
        for i, row in enumerate(read_pairs_csv(spec.path)):
            name = row.id or f"pair{i:04d}"
            jobs.append((name, row.moving, row.fixed, row.moving_labels))
    else:
        jobs.append(("pair", args.moving, args.fixed, args.moving_labels))
    model, _ = load_model(args.model, args.device)
    spacing = read_run_data(Path(args.model) if Path(args.model).is_dir()
                            else Path(args.model).parent).get("spacing", [2.0, 2.0])
    failures = 0
    for name, moving, fixed, labels in jobs:
        out = Path(args.out) / name if len(jobs) > 1 or args.data else Path(args.out)
        try:
            summary = register_files(model, moving, fixed, out, moving_labels_path=labels,
                                     spacing=spacing, pair_id=name)
        except (ValueError, OSError) as exc:
            if len(jobs) == 1:
                raise
            failures += 1
            print(f"structreg: error: {name}: {' '.join(str(exc).split())}", file=sys.stderr)
            continue
        print(f"{name}: {summary['slices']} slice(s), {summary['folding_percent']:.3f} % "
              f"non-positive Jacobian, {summary['seconds'] * 1e3:.0f} ms -> {summary['out']}")
    return 1 if failures else 0


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    from .data.spec import add_data_arguments

    add_data_arguments(p, split="test")
    p.add_argument("--methods", required=True,
                   help="comma-separated: ours:RUN_DIR, lcc-demons, voxelmorph:RUN_DIR, identity")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--figure-pairs", type=int, default=4, help="pairs in the panel (default: 4)")


@command("evaluate", "compare methods on a data set: per-pair CSV, Table-1 markdown, figures",
         _evaluate_args)
def _run_evaluate(args: argparse.Namespace) -> int:
    from .data.spec import load_pairs_from_args
    from .evaluation.evaluate import load_methods, parse_methods, run_evaluation
    from .training.config import resolve_device

    specs = parse_methods(args.methods)
    device = str(resolve_device(args.device))
    methods = load_methods(specs, device=device)
    pairs = load_pairs_from_args(args)
    if not pairs:
        raise CLIError(f"no pairs in {args.data} ({args.split} split)")
    summary = run_evaluation(pairs, methods, args.out, n_figure=args.figure_pairs)
    print(summary["table"])
    print(f"wrote {args.out}/table.md, pairs.csv and figures ({len(pairs)} pairs, "
          f"{summary['failed']} failed runs)")
    return 1 if summary["failed"] else 0


def _data_preview_args(p: argparse.ArgumentParser) -> None:
    from .data.spec import add_data_arguments

    add_data_arguments(p, split="all")
    p.add_argument("--out", required=True, help="figure file (.png, .pdf or .svg)")
    p.add_argument("--n", type=int, default=8, help="number of pairs shown (default: 8)")


@command("data preview", "draw moving/fixed pairs of a data set with label contours and groups",
         _data_preview_args)
def _run_data_preview(args: argparse.Namespace) -> int:
    from .data.spec import load_pairs_from_args, parse_data_spec
    from .viz.figures import figure_format, pair_grid

    if args.n < 1:
        raise CLIError(f"--n must be >= 1, got {args.n}")
    figure_format(args.out)
    spec = parse_data_spec(args.data)
    overrides = {"n_subjects": args.n} if spec.kind == "phantom" and args.subjects is None else {}
    pairs = load_pairs_from_args(args, **overrides)
    out = pair_grid(pairs, args.out, n=args.n, title=f"{spec} ({args.split} split)")
    print(_data_summary(pairs))
    print(f"wrote {out}")
    return 0


def _data_summary(pairs) -> str:
    """One line: pairs, subjects, shape, spacing and pairs per group."""
    from collections import Counter

    subjects = {p.subject if p.subject is not None else p.id for p in pairs}
    groups = Counter(str(p.group) for p in pairs)
    shape = "x".join(str(n) for n in pairs[0].moving.shape)
    spacing = "x".join(f"{s:g}" for s in pairs[0].spacing)
    labelled = sum(p.moving_labels is not None and p.fixed_labels is not None for p in pairs)
    per_group = ", ".join(f"{g} {n}" for g, n in sorted(groups.items()))
    return (f"{len(pairs)} pairs from {len(subjects)} subjects, {shape} voxels at {spacing} mm, "
            f"{labelled} with labels; groups: {per_group}")


# ---------------------------------------------------------------------------- analysis

def _embed_args(p: argparse.ArgumentParser) -> None:
    from .data.spec import add_data_arguments

    add_data_arguments(p, split="all")
    p.set_defaults(spacing=None, size=None)  # defaults: the run's spacing and the model's size
    for action in p._actions:
        if action.dest == "spacing":
            action.help = "processed voxel spacing in mm (default: the run's, from data.json)"
        elif action.dest == "size":
            action.help = "processed image size (default and only choice: the model's)"
    p.add_argument("--model", required=True, help="run folder or checkpoint file")
    p.add_argument("--out", required=True, help="codes CSV file to write")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--batch-size", type=int, default=64, help="pairs per pass (default: 64)")


@command("embed", "encode the pairs of a data set into latent codes (mu, sigma) in a CSV file",
         _embed_args)
def _run_embed(args: argparse.Namespace) -> int:
    from .analysis.latent import encode_pairs, write_codes_csv
    from .analysis.transport import run_spacing
    from .data.spec import load_pairs_from_args
    from .training.checkpoint import load_model

    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")
    model, _ = load_model(args.model, args.device)
    model_size = tuple(model.config.image_size)
    if args.size is not None and tuple(args.size) != model_size:
        raise CLIError(f"--size {'x'.join(map(str, args.size))} differs from the model's image "
                       f"size {'x'.join(map(str, model_size))}; leave --size out")
    spacing = tuple(args.spacing) if args.spacing else tuple(run_spacing(args.model))
    pairs = load_pairs_from_args(args, size=tuple(model.config.image_size), spacing=spacing)
    if not pairs:
        raise CLIError(f"no pairs in {args.data} ({args.split} split)")
    mu, sigma = encode_pairs(model, pairs, batch_size=args.batch_size)
    write_codes_csv(args.out, pairs, mu, sigma)
    print(f"{_data_summary(pairs)}")
    print(f"wrote {args.out} ({len(pairs)} codes of dimension {mu.shape[1]})")
    return 0


def _classify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--codes", required=True, help="codes CSV written by structreg embed")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--components", type=int, default=5,
                   help="CCA components fed to the SVM (default: 5)")
    p.add_argument("--folds", type=int, default=10,
                   help="cross-validation folds, grouped by subject (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="fold shuffling seed (default: 0)")


@command("classify", "classify groups from latent codes: CCA + SVM with cross-validation",
         _classify_args)
def _run_classify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .analysis.latent import cca_scatter, classify_codes, read_codes_csv
    from .io_utils import atomic_write_text

    if args.components < 1:
        raise CLIError(f"--components must be >= 1, got {args.components}")
    if args.folds < 2:
        raise CLIError(f"--folds must be >= 2, got {args.folds}")
    codes = read_codes_csv(args.codes)
    missing = sum(g is None for g in codes.groups)
    if missing:
        raise CLIError(f"{args.codes}: {missing} of {len(codes)} rows have no group")
    result = classify_codes(codes.mu, codes.groups, codes.subjects,
                            n_components=args.components, folds=args.folds, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "accuracy.md", result.to_markdown())
    cca_scatter(codes.mu, codes.groups, out / "cca_scatter.png")
    print(f"accuracy {result.accuracy_mean:.3f} ± {result.accuracy_std:.3f} over "
          f"{result.n_folds} folds (chance {result.chance:.3f}); wrote {out}/accuracy.md and "
          f"cca_scatter.png")
    return 0


def _transport_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="run folder or checkpoint file")
    p.add_argument("--source-moving", required=True, help="source pair: moving image (2-D NIfTI)")
    p.add_argument("--source-fixed", required=True, help="source pair: fixed image (2-D NIfTI)")
    p.add_argument("--target", required=True, help="image the deformation is applied to")
    p.add_argument("--target-fixed", help="the target's own fixed image (shown in the figure)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")


@command("transport", "apply the deformation encoded from one pair to another image",
         _transport_args)
def _run_transport(args: argparse.Namespace) -> int:
    from .analysis.transport import run_spacing, transport_files
    from .training.checkpoint import load_model

    model, _ = load_model(args.model, args.device)
    summary = transport_files(model, args.source_moving, args.source_fixed, args.target,
                              args.out, target_fixed=args.target_fixed,
                              spacing=run_spacing(args.model))
    print(f"transported: {summary['folding_percent']:.3f} % non-positive Jacobian -> "
          f"{summary['out']}")
    return 0


def _sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="run folder or checkpoint file")
    p.add_argument("--moving", required=True, help="image to deform (2-D NIfTI)")
    p.add_argument("--n", type=int, default=8, help="number of samples (default: 8)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="standard deviation of the prior codes (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--fixed", help="fixed image of the pair: also write the registration "
                                   "uncertainty map (spread over z ~ q(z | M, F))")
    p.add_argument("--posterior-samples", type=int, default=16,
                   help="codes drawn for the uncertainty map (default: 16)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")


@command("sample", "deform an image with codes sampled from the prior z ~ N(0, I)", _sample_args)
def _run_sample(args: argparse.Namespace) -> int:
    import math

    from .analysis.sampling import sample_files
    from .analysis.transport import run_spacing
    from .training.checkpoint import load_model

    if args.n < 1:
        raise CLIError(f"--n must be >= 1, got {args.n}")
    if not (math.isfinite(args.scale) and args.scale >= 0):
        raise CLIError(f"--scale must be a finite number >= 0, got {args.scale}")
    if args.posterior_samples < 2:
        raise CLIError(f"--posterior-samples must be >= 2, got {args.posterior_samples}")
    model, _ = load_model(args.model, args.device)
    summary = sample_files(model, args.moving, args.out, args.n, scale=args.scale,
                           seed=args.seed, spacing=run_spacing(args.model),
                           fixed_path=args.fixed, posterior_samples=args.posterior_samples)
    worst = max(summary["folding_percent"])
    print(f"{args.n} samples, worst {worst:.3f} % non-positive Jacobian -> {summary['out']}")
    if "uncertainty_max_mm" in summary:
        print(f"uncertainty map: max std of |u| {summary['uncertainty_max_mm']:.3f} mm")
    return 0


def _interpolate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="run folder or checkpoint file")
    p.add_argument("--moving", required=True, help="moving image (2-D NIfTI)")
    p.add_argument("--fixed", required=True, help="fixed image (2-D NIfTI)")
    p.add_argument("--steps", type=int, default=6, help="frames from t = 0 to 1 (default: 6)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")


@command("interpolate", "decode codes between no motion and a pair's deformation "
                        "(e.g. partial contractions)", _interpolate_args)
def _run_interpolate(args: argparse.Namespace) -> int:
    from .analysis.sampling import interpolate_files
    from .analysis.transport import run_spacing
    from .training.checkpoint import load_model

    if args.steps < 2:
        raise CLIError(f"--steps must be >= 2, got {args.steps}")
    model, _ = load_model(args.model, args.device)
    summary = interpolate_files(model, args.moving, args.fixed, args.out, args.steps,
                                spacing=run_spacing(args.model))
    print(f"{len(summary['t'])} frames, worst {max(summary['folding_percent']):.3f} % "
          f"non-positive Jacobian -> {summary['out']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="structreg",
        description="Learned diffeomorphic registration with a structured deformation encoding.",
    )
    parser.add_argument("--version", action="version", version=f"structreg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, (help_text, add_arguments, run) in _COMMANDS.items():
        parent, _, child = name.partition(" ")
        target = sub
        if child:
            if parent not in groups:
                group_help = _GROUPS.get(parent, f"{parent} commands")
                gp = sub.add_parser(parent, help=group_help, description=group_help)
                gp.set_defaults(_parser=gp)
                groups[parent] = gp.add_subparsers(dest=f"{parent}_command", metavar="COMMAND")
            target = groups[parent]
        p = target.add_parser(child or name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 failure, 2 usage/input error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        (getattr(args, "_parser", None) or parser).print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except CLIError as exc:
        print(f"structreg: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, RuntimeError, ImportError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"structreg: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("structreg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
