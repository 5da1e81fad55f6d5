"""``structreg demo``: the built-in demonstration (what ``make demo`` runs)."""

from __future__ import annotations

import argparse

from .options import add_device, add_out

NAME = "demo"
HELP = "run the built-in demonstration and write OUT/report.md"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_out(p, default="runs/demo")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--subjects",
        type=int,
        default=250,
        help="phantom subjects, split 70/10/20 by subject (default: 250)",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="training steps (default: the bundled demo.toml's)"
    )
    add_device(p, default=None)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    report = run_demo(
        args.out, seed=args.seed, subjects=args.subjects, steps=args.steps, device=args.device
    )
    print(f"wrote {report}")
    return 0
