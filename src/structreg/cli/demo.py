"""``structreg demo``: the built-in demonstration (what ``make demo`` runs)."""

from __future__ import annotations

import argparse

from .options import add_device

NAME = "demo"
HELP = "run the built-in demonstration and write OUT/report.md"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", default=None, help="output folder (default: runs/demo, 3-D: runs/demo3d)"
    )
    p.add_argument(
        "--dims",
        type=int,
        choices=(2, 3),
        default=2,
        help="2: the cardiac slice demo (default); 3: whole-brain volumes with a 3-D model",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--subjects",
        type=int,
        default=None,
        help="phantom subjects, split 70/10/20 by subject (default: 250; 3-D: 400)",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="training steps (default: the bundled demo.toml's)"
    )
    add_device(p, default=None)


def run(args: argparse.Namespace) -> int:
    from ..pipeline.demo import run_demo

    report = run_demo(
        args.out or ("runs/demo3d" if args.dims == 3 else "runs/demo"),
        seed=args.seed,
        subjects=args.subjects,
        steps=args.steps,
        device=args.device,
        dims=args.dims,
    )
    print(f"wrote {report}")
    return 0
