"""``structreg classify``: classify groups from latent codes (CCA + SVM)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from .options import add_out, positive

NAME = "classify"
HELP = (
    "classify groups from latent codes: PCA + CCA + SVM, settings chosen by nested "
    "cross-validation, beside the deformation-feature baseline"
)


def _numbers(kind: Callable[[str], Any]) -> Callable[[str], tuple]:
    """argparse type: a comma-separated list of ``kind`` values."""

    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated numbers, got {text!r}"
            ) from None

    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--codes", required=True, help="codes CSV written by structreg embed")
    add_out(p)
    p.add_argument(
        "--components",
        type=_numbers(int),
        default=(5,),
        help="CCA components fed to the SVM, comma-separated choices (default: 5; capped "
        "by the groups)",
    )
    p.add_argument(
        "--pca",
        type=_numbers(int),
        default=(0, 10, 20, 40, 80),
        help="principal components kept before the CCA, comma-separated choices; 0: none "
        "(default: 0,10,20,40,80)",
    )
    p.add_argument(
        "--svm-c",
        type=_numbers(float),
        default=(0.1, 1.0, 10.0),
        help="SVM regularisation C, comma-separated choices (default: 0.1,1,10)",
    )
    p.add_argument(
        "--folds",
        type=int,
        default=10,
        help="outer cross-validation folds, grouped by subject (default: 10)",
    )
    p.add_argument(
        "--inner-folds",
        type=int,
        default=5,
        help="folds of the inner search that chooses the settings on each outer training "
        "part (default: 5)",
    )
    p.add_argument("--seed", type=int, default=0, help="fold shuffling seed (default: 0)")
    p.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the classifier on the codes file's deformation features (feature_*)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..analysis.latent import (
        SettingsGrid,
        cca_scatter,
        classify_codes,
        classify_features,
        read_codes_csv,
    )
    from ..errors import DataError, UsageError
    from ..io.files import atomic_write_text

    for name in ("components", "pca", "svm_c"):
        if not getattr(args, name):
            raise UsageError(f"--{name.replace('_', '-')} needs at least one value")
    positive("--folds", args.folds, minimum=2)
    positive("--inner-folds", args.inner_folds, minimum=2)
    grid = SettingsGrid(pca=args.pca, components=args.components, svm_c=args.svm_c)
    codes = read_codes_csv(args.codes)
    missing = sum(g is None for g in codes.groups)
    if missing:
        raise DataError(f"{args.codes}: {missing} of {len(codes)} rows have no group")
    options = {"folds": args.folds, "seed": args.seed, "inner_folds": args.inner_folds}
    result = classify_codes(codes.mu, codes.groups, codes.subjects, grid=grid, **options)
    text = result.to_markdown()
    baseline = None
    if codes.features and not args.no_baseline:
        baseline = classify_features(codes, grid, **options)
        text += "\n" + baseline.to_markdown("Baseline: the same classifier on deformation features")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "accuracy.md", text)
    title = f"latent codes on 3 CCA components (after PCA {result.pca or 'none'})"
    cca_scatter(codes.mu, codes.groups, out / "cca_scatter.png", title, result.pca)
    print(
        f"accuracy {result.accuracy_mean:.3f} ± {result.accuracy_std:.3f} over "
        f"{result.n_folds} folds (chance {result.chance:.3f}; settings {result.settings})"
        + (f"; deformation features {baseline.accuracy_mean:.3f}" if baseline else "")
        + f"; wrote {out}/accuracy.md and cca_scatter.png"
    )
    return 0
