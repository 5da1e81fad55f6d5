"""``structreg adapt``: fine-tune a model on a cohort's own pairs, without labels."""

from __future__ import annotations

import argparse

from .options import add_affine, add_data_options, add_device

NAME = "adapt"
HELP = "fine-tune a trained model on a cohort's own pairs (no labels) into a new run"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        help="the model to start from: a run folder, checkpoint or .safetensors file, or a "
        "bundled model (builtin:cardiac, builtin:brain); ours or VoxelMorph-2",
    )
    add_data_options(
        p,
        split="all",
        grid_from_model=True,
        grid_help="default and required: the model's grid",
    )
    p.add_argument("--out", required=True, help="the new run folder (new or empty)")
    add_affine(p, "with --data pairs:FILE.csv: align each pair first, as register --affine does")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="train.KEY=VALUE",
        # the values of structreg.training.adapt.ADAPT_DEFAULTS (a test ties them; not
        # imported here: parsing must not load torch)
        help="a training setting (repeatable): train.steps (the most steps, default 150), "
        "train.val_every (how often the cohort's objective is checked, default 30), "
        "train.patience (checks without improvement before it stops, default 2), "
        "train.lr (default 0.0002), ...; the network's settings are the model's",
    )
    add_device(p)


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..training.adapt import adapt_model
    from ..training.run import model_data_settings
    from .options import load_pairs_from_args

    grid = model_data_settings(args.model)
    if args.size and tuple(args.size) != tuple(grid.size):
        raise UsageError(f"--size: adaptation keeps the model's grid {grid.size}")
    if args.affine is None:
        pairs = load_pairs_from_args(args, size=tuple(grid.size), spacing=tuple(grid.spacing))
    else:
        pairs = _aligned_pairs(args)
    if not pairs:
        raise UsageError(f"no pairs in {args.data}")
    if not all(p.mask is not None for p in pairs):
        print("the data have no masks (for every pair): the objective's mask term is off")
    done = adapt_model(
        args.model,
        pairs,
        args.out,
        overrides={"device": args.device},
        settings=args.set,
        progress=True,
    )
    why = f", stopped early: {done.stopped}" if done.stopped else ""
    print(
        f"adapted {args.model} to {len(pairs)} pairs in {done.steps} steps{why}: objective "
        f"{done.initial:.4f} -> {done.final:.4f}, {done.seconds:.1f} s; model: {done.run}"
    )
    return 0


def _aligned_pairs(args: argparse.Namespace) -> list:
    """``--affine``: the rows of a pairs CSV read, aligned and brought onto the grid."""
    from ..api import registrar_for
    from ..data.pairs import read_pairs_csv
    from ..data.spec import parse_data_spec
    from ..errors import UsageError
    from ..methods.affine import AffineOptions
    from ..pipeline.files import cohort_pairs

    spec = parse_data_spec(args.data)
    if spec.kind != "pairs":
        raise UsageError(
            f"--affine adapts to image files: give --data pairs:FILE.csv, not {args.data}"
        )
    rows = read_pairs_csv(spec.path)
    files = [
        (row.id or f"pair{i:04d}", row.moving, row.fixed, row.frame) for i, row in enumerate(rows)
    ]
    registrar = registrar_for(args.model, device="cpu")
    pairs = cohort_pairs(registrar, files, AffineOptions(metric=args.affine))
    print(f"{args.data}: {len(pairs)} pairs, each aligned by an affine stage ({args.affine})")
    return pairs
