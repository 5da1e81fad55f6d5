"""``structreg reproduce``: every table and figure of the README, from scratch."""

from __future__ import annotations

import argparse

from .options import add_out

NAME = "reproduce"
HELP = "regenerate every README table and figure (demo, comparisons, latent, real pairs)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_out(p, default="runs/results")
    p.add_argument(
        "--budget",
        default="standard",
        choices=("quick", "standard", "full"),
        help="quick: every stage at a reduced size, well under an hour on a 2-core CPU "
        "(a check, not the README's numbers); standard: the README's protocol (300 "
        "training steps; about 3.1 h on a 2-core CPU); full: every learned method "
        "trained until it stops improving (meant for a GPU) (default: standard)",
    )
    p.add_argument(
        "--benchmarks",
        default="benchmarks",
        help="the repository's benchmarks/ folder, for the latent experiments and the "
        "real-image benchmark; 'none' leaves them out (default: benchmarks)",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="STAGE",
        help="run only the stages whose name starts with this (repeatable)",
    )
    p.add_argument("--list", action="store_true", help="print the stages' commands and exit")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import InputError
    from ..reproduce import plan, reproduce

    bench = None if args.benchmarks == "none" else Path(args.benchmarks)
    if bench is not None and not (bench / "latent_experiments.py").is_file():
        raise InputError(
            f"no benchmarks folder at {bench} (run from the repository, or --benchmarks none)"
        )
    if args.list:
        for stage in plan(args.out, args.budget, bench):
            print(f"{stage.name}: {stage.command}")
        return 0
    results = reproduce(args.out, args.budget, bench, only=args.only)
    print(f"wrote {results}")
    return 0
