"""``structreg tune``: choose a method's settings by a grid search on validation pairs."""

from __future__ import annotations

import argparse

from .options import add_data_options, add_device, add_out, load_pairs_from_args

NAME = "tune"
HELP = "choose a method's settings by a grid search on validation pairs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_options(p, split="val")
    p.add_argument(
        "--method",
        default="lcc-demons",
        help="the method spec the grid's options are added to (default: lcc-demons)",
    )
    p.add_argument(
        "--grid",
        action="append",
        nargs="+",
        metavar="KEY V",
        help="an option and its values as in a spec, e.g. --grid max_step 0.5 1 2 "
        "(repeatable); default for lcc-demons: sigma_fluid 0.5 1 2, sigma_diffusion 1 1.5 "
        "2.5, max_step 0.5 1 2, iterations 40/30/20 100/60/40",
    )
    p.add_argument(
        "--max-folding",
        type=float,
        default=0.5,
        help="largest mean %% of pixels with det J <= 0 a chosen setting may have (default 0.5)",
    )
    add_out(p)
    add_device(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import DataError, UsageError
    from ..evaluation.evaluate import write_rows_csv
    from ..evaluation.tuning import LCC_DEMONS_GRID, format_tuning, parse_grid, tune
    from ..io.files import atomic_write_text
    from ..methods import parse_method_spec
    from ..training.config import resolve_device

    if args.grid:
        grid = parse_grid(args.grid)
    elif parse_method_spec(args.method).name == "lcc-demons":
        grid = LCC_DEMONS_GRID
    else:
        raise UsageError("--grid is needed for methods other than lcc-demons")
    pairs = load_pairs_from_args(args)
    if not pairs:
        raise DataError(f"no pairs in {args.data} ({args.split} split)")
    result = tune(
        args.method,
        grid,
        pairs,
        device=str(resolve_device(args.device)),
        max_folding=args.max_folding,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_rows_csv(out / "tuning.csv", result.rows)
    summary = format_tuning(result, len(pairs), args.max_folding)
    atomic_write_text(out / "tuning.md", summary)
    if result.best:
        atomic_write_text(out / "best.txt", result.best + "\n")
    print(summary)
    print(f"wrote {out}/tuning.md, tuning.csv" + (" and best.txt" if result.best else ""))
    return 0 if result.best else 1
