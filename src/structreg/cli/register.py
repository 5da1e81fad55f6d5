"""``structreg register``: register NIfTI pairs with a trained model, write NIfTI results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..io_utils import inside, safe_name
from .options import add_device, add_model, add_out

NAME = "register"
HELP = "register NIfTI pairs with a trained model and write NIfTI results"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument("--moving", help="moving image (NIfTI, any layout and grid)")
    p.add_argument("--fixed", help="fixed image (NIfTI); outputs are on its grid")
    p.add_argument("--moving-labels", help="moving label map (NIfTI), warped too")
    p.add_argument(
        "--frame",
        type=int,
        default=None,
        help="time frame of 4-D inputs (a pairs CSV may give a frame column)",
    )
    p.add_argument("--data", help="batch mode: pairs:FILE.csv (one output folder per row)")
    p.add_argument(
        "--split",
        default="all",
        choices=("train", "val", "test", "all"),
        help="batch mode: only the rows of this split of the CSV's split column "
        "(default: all rows)",
    )
    add_out(p)
    add_device(p)


Job = tuple[str, str | Path, str | Path, str | Path | None, int | None]


def _jobs(args: argparse.Namespace) -> list[Job]:
    from ..errors import UsageError

    if args.data is None and not (args.moving and args.fixed):
        raise UsageError("give --moving and --fixed, or --data pairs:FILE.csv")
    if args.data is None:
        return [("pair", args.moving, args.fixed, args.moving_labels, args.frame)]
    from ..data.pairs import read_pairs_csv
    from ..data.spec import parse_data_spec

    spec = parse_data_spec(args.data)
    if spec.kind != "pairs":
        raise UsageError(f"register --data takes pairs:FILE.csv, got {args.data}")
    # a missing file fails its own pair, like a corrupt one; the others go on
    rows = read_pairs_csv(spec.path, check_files=False)
    if args.split != "all":
        if not any(row.split for row in rows):
            raise UsageError(f"--split {args.split}: {spec.path} has no split column")
        rows = [row for row in rows if row.split == args.split]
    print(f"{args.data}: {len(rows)} pairs ({args.split} split)")
    taken: set[str] = set()  # one output folder per row: safe, unique names
    return [
        (
            safe_name(row.id or f"pair{i:04d}", taken),
            row.moving,
            row.fixed,
            row.moving_labels,
            row.frame if row.frame is not None else args.frame,
        )
        for i, row in enumerate(rows)
    ]


def run(args: argparse.Namespace) -> int:
    from ..apply import write_registration
    from ..errors import StructregError
    from ..evaluation import metrics
    from ..training.checkpoint import load_model
    from ..training.run import model_spacing

    jobs = _jobs(args)
    model, _ = load_model(args.model, args.device, method="ours")
    spacing = model_spacing(args.model)
    batch = len(jobs) > 1 or args.data is not None
    failures = 0
    for name, moving, fixed, labels, frame in jobs:
        out = inside(args.out, name) if batch else Path(args.out)
        try:
            summary = write_registration(
                model,
                moving,
                fixed,
                out,
                moving_labels_path=labels,
                spacing=spacing,
                pair_id=name,
                frame=frame,
            )
        except (StructregError, OSError) as exc:
            if not batch:
                raise
            failures += 1
            print(f"structreg: error: {name}: {' '.join(str(exc).split())}", file=sys.stderr)
            continue
        print(
            f"{name}: {summary['slices']} slice(s), {summary[metrics.FOLDING]:.3f} % "
            f"non-positive Jacobian, {summary['seconds'] * 1e3:.0f} ms -> {summary['out']}"
        )
    if batch:
        print(f"{len(jobs) - failures} registered, {failures} failed")
    return 1 if failures else 0
