"""``structreg transport``: apply the deformation encoded from one pair to another image."""

from __future__ import annotations

import argparse

from .options import add_device, add_model, add_out

NAME = "transport"
HELP = "apply the deformation encoded from one pair to another image"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument(
        "--source-moving",
        required=True,
        help="source pair: moving image (NIfTI; a volume for a 3-D model)",
    )
    p.add_argument("--source-fixed", required=True, help="source pair: fixed image (NIfTI)")
    p.add_argument("--target", required=True, help="image the deformation is applied to")
    p.add_argument("--target-fixed", help="the target's own fixed image (shown in the figure)")
    p.add_argument("--frame", type=int, default=None, help="time frame of 4-D inputs")
    add_out(p)
    add_device(p)


def run(args: argparse.Namespace) -> int:
    from ..analysis.transport import transport_files
    from ..core import metrics
    from ..training.checkpoint import load_model
    from ..training.run import model_spacing

    model, _ = load_model(args.model, args.device, method="ours")
    summary = transport_files(
        model,
        args.source_moving,
        args.source_fixed,
        args.target,
        args.out,
        target_fixed=args.target_fixed,
        spacing=model_spacing(args.model),
        frame=args.frame,
    )
    print(
        f"transported: {summary[metrics.FOLDING]:.3f} % non-positive Jacobian -> {summary['out']}"
    )
    return 0
