"""``structreg interpolate``: decode codes between no motion and a pair's deformation."""

from __future__ import annotations

import argparse

from .options import add_device, add_model, add_out, positive

NAME = "interpolate"
HELP = "decode codes between no motion and a pair's deformation (e.g. partial contractions)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument("--moving", required=True, help="moving image (NIfTI; a volume for a 3-D model)")
    p.add_argument("--fixed", required=True, help="fixed image (NIfTI)")
    p.add_argument("--steps", type=int, default=6, help="frames from t = 0 to 1 (default: 6)")
    p.add_argument("--frame", type=int, default=None, help="time frame of 4-D inputs")
    add_out(p)
    add_device(p)


def run(args: argparse.Namespace) -> int:
    from ..analysis.sampling import interpolate_files
    from ..core import metrics
    from ..training.checkpoint import load_model
    from ..training.run import model_spacing

    positive("--steps", args.steps, minimum=2)
    model, _ = load_model(args.model, args.device, method="ours")
    summary = interpolate_files(
        model,
        args.moving,
        args.fixed,
        args.out,
        args.steps,
        spacing=model_spacing(args.model),
        frame=args.frame,
    )
    print(
        f"{len(summary['t'])} frames, worst {max(summary[metrics.FOLDING]):.3f} % "
        f"non-positive Jacobian -> {summary['out']}"
    )
    return 0
