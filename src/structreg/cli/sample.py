"""``structreg sample``: deform an image with codes sampled from the prior."""

from __future__ import annotations

import argparse

from .options import add_device, add_model, add_out, positive

NAME = "sample"
HELP = (
    "deform an image with codes sampled from the prior z ~ N(0, I) or from the aggregate "
    "posterior of the model's training codes"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument(
        "--moving", required=True, help="image to deform (NIfTI; a volume for a 3-D model)"
    )
    p.add_argument("--n", type=int, default=8, help="number of samples (default: 8)")
    p.add_argument(
        "--prior",
        choices=("normal", "aggregate"),
        default="normal",
        help="normal: z ~ N(0, scale² I); aggregate: the Gaussian fitted to the model's "
        "training codes, stored beside the model as <model file>.prior.npz (default: normal)",
    )
    p.add_argument(
        "--prior-file",
        help="with --prior aggregate: the prior file (default: the one stored with the model)",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="spread of the codes: standard deviation of N(0, scale² I), or a factor on the "
        "aggregate prior's spread about its mean (default: 1)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--fixed",
        help="fixed image of the pair: also write the registration "
        "uncertainty map (spread over z ~ q(z | M, F))",
    )
    p.add_argument(
        "--posterior-samples",
        type=int,
        default=16,
        help="codes drawn for the uncertainty map (default: 16)",
    )
    p.add_argument("--frame", type=int, default=None, help="time frame of 4-D inputs")
    add_out(p)
    add_device(p)


def run(args: argparse.Namespace) -> int:
    import math

    from ..analysis.sampling import sample_files
    from ..core import metrics
    from ..errors import UsageError
    from ..training.checkpoint import load_model
    from ..training.run import model_spacing

    positive("--n", args.n)
    if not (math.isfinite(args.scale) and args.scale >= 0):
        raise UsageError(f"--scale must be a finite number >= 0, got {args.scale}")
    positive("--posterior-samples", args.posterior_samples, minimum=2)
    if args.prior_file and args.prior != "aggregate":
        raise UsageError("--prior-file needs --prior aggregate")
    model, _ = load_model(args.model, args.device, method="ours")
    prior = None
    if args.prior == "aggregate":
        from ..analysis.prior import load_aggregate_prior, prior_path

        path = args.prior_file or prior_path(args.model)
        prior = load_aggregate_prior(path, model.config.code_dim)
    summary = sample_files(
        model,
        args.moving,
        args.out,
        args.n,
        scale=args.scale,
        seed=args.seed,
        spacing=model_spacing(args.model),
        frame=args.frame,
        fixed_path=args.fixed,
        posterior_samples=args.posterior_samples,
        prior=prior,
    )
    worst = max(summary[metrics.FOLDING])
    print(f"{args.n} samples, worst {worst:.3f} % non-positive Jacobian -> {summary['out']}")
    if "uncertainty_max_mm" in summary:
        print(f"uncertainty map: max std of |u| {summary['uncertainty_max_mm']:.3f} mm")
    return 0
