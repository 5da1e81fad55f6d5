"""``structreg classify``: classify groups from latent codes (CCA + SVM)."""

from __future__ import annotations

import argparse

from .options import add_out, positive

NAME = "classify"
HELP = "classify groups from latent codes: CCA + SVM with cross-validation"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--codes", required=True, help="codes CSV written by structreg embed")
    add_out(p)
    p.add_argument(
        "--components", type=int, default=5, help="CCA components fed to the SVM (default: 5)"
    )
    p.add_argument(
        "--folds",
        type=int,
        default=10,
        help="cross-validation folds, grouped by subject (default: 10)",
    )
    p.add_argument("--seed", type=int, default=0, help="fold shuffling seed (default: 0)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..analysis.latent import cca_scatter, classify_codes, read_codes_csv
    from ..errors import DataError
    from ..io.files import atomic_write_text

    positive("--components", args.components)
    positive("--folds", args.folds, minimum=2)
    codes = read_codes_csv(args.codes)
    missing = sum(g is None for g in codes.groups)
    if missing:
        raise DataError(f"{args.codes}: {missing} of {len(codes)} rows have no group")
    result = classify_codes(
        codes.mu,
        codes.groups,
        codes.subjects,
        n_components=args.components,
        folds=args.folds,
        seed=args.seed,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "accuracy.md", result.to_markdown())
    cca_scatter(codes.mu, codes.groups, out / "cca_scatter.png")
    print(
        f"accuracy {result.accuracy_mean:.3f} ± {result.accuracy_std:.3f} over "
        f"{result.n_folds} folds (chance {result.chance:.3f}); wrote {out}/accuracy.md and "
        f"cca_scatter.png"
    )
    return 0
