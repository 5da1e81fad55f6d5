"""``structreg embed``: encode the pairs of a data set into latent codes."""

from __future__ import annotations

import argparse

from .options import (
    add_data_options,
    add_device,
    add_model,
    data_summary,
    load_pairs_from_args,
    positive,
)

NAME = "embed"
HELP = "encode the pairs of a data set into latent codes (mu, sigma) in a CSV file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_options(p, split="all", grid_from_model=True)
    add_model(p)
    p.add_argument("--out", required=True, help="codes CSV file to write")
    add_device(p)
    p.add_argument("--batch-size", type=int, default=64, help="pairs per pass (default: 64)")
    p.add_argument(
        "--prior-out",
        help="also fit the aggregate posterior of these codes (use the training split) and "
        "write it to this file; beside the model as <model file stem>.prior.npz it is what "
        "structreg sample --prior aggregate reads",
    )
    p.add_argument(
        "--no-features",
        action="store_true",
        help="leave out the deformation features (feature_* columns: each labelled "
        "structure's area ratio under the model's registration; written when every pair "
        "has labels), the baseline structreg classify reports beside the codes",
    )


def run(args: argparse.Namespace) -> int:
    from ..analysis.features import deformation_features
    from ..analysis.latent import encode_pairs, write_codes_csv
    from ..errors import DataError, UsageError
    from ..training.checkpoint import load_model
    from ..training.run import model_spacing

    positive("--batch-size", args.batch_size)
    model, _ = load_model(args.model, args.device, method="ours")
    model_size = tuple(model.config.image_size)
    if args.size is not None and tuple(args.size) != model_size:
        raise UsageError(
            f"--size {'x'.join(map(str, args.size))} differs from the model's image "
            f"size {'x'.join(map(str, model_size))}; leave --size out"
        )
    spacing = tuple(args.spacing) if args.spacing else model_spacing(args.model)
    pairs = load_pairs_from_args(args, size=model_size, spacing=spacing)
    if not pairs:
        raise DataError(f"no pairs in {args.data} ({args.split} split)")
    mu, sigma = encode_pairs(model, pairs, batch_size=args.batch_size)
    labelled = all(p.moving_labels is not None for p in pairs)
    features = (
        deformation_features(model, pairs, args.batch_size)
        if labelled and not args.no_features
        else None
    )
    write_codes_csv(args.out, pairs, mu, sigma, features)
    print(data_summary(pairs))
    extra = f" and {len(features)} deformation features" if features else ""
    print(f"wrote {args.out} ({len(pairs)} codes of dimension {mu.shape[1]}{extra})")
    if args.prior_out:
        from ..analysis.prior import fit_aggregate_prior

        fit_aggregate_prior(mu, sigma).save(args.prior_out)
        print(f"wrote {args.prior_out} (aggregate prior of {len(pairs)} codes)")
    return 0
