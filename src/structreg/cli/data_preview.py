"""``structreg data preview``: draw the pairs of a data set."""

from __future__ import annotations

import argparse

from .options import add_data_options, data_summary, load_pairs_from_args, positive, resolve_split

NAME = "data preview"
HELP = "draw moving/fixed pairs of a data set with label contours and groups"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_options(p, split="all")
    p.add_argument("--out", required=True, help="figure file (.png, .pdf or .svg)")
    p.add_argument("--n", type=int, default=8, help="number of pairs shown (default: 8)")


def run(args: argparse.Namespace) -> int:
    from ..data.spec import parse_data_spec
    from ..viz.figures import figure_format, pair_grid

    positive("--n", args.n)
    figure_format(args.out)
    spec = parse_data_spec(args.data)
    overrides = {"n_subjects": args.n} if spec.kind == "phantom" and args.subjects is None else {}
    pairs = load_pairs_from_args(args, **overrides)
    out = pair_grid(pairs, args.out, n=args.n, title=f"{spec} ({resolve_split(args)} split)")
    print(data_summary(pairs))
    print(f"wrote {out}")
    return 0
