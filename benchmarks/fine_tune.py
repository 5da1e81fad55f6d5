"""Fine-tuning a trained model on a small cohort against training from scratch.

Two trainings on the same small data set with the same settings (the init model's
config: network, λ, β, learning rate, batch, seed) and the same step budget: one starts
from the init model's weights (``structreg train --init MODEL``), the other from a
random initialisation. Prints the validation Dice of both against step, the steps each
needs to reach given validation Dice levels, and writes their learning curves in one
figure (``fine_tune_curves.png``).

    .venv/bin/python benchmarks/fine_tune.py --init builtin:brain --out DIR \\
        [--data phantom:brain-inter --subjects 80 --seed 3 --val-fraction 0.25 \\
         --steps 150 --val-every 10]

The default cohort: 80 new inter-subject phantom subjects (seed 3; 44 training and
20 validation pairs, 16 held out); ``--data phantom:brain`` gives a longitudinal one.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np


def first_step_reaching(steps: list[float], dice: list[float], level: float) -> float:
    """The first validation step with Dice >= ``level`` (NaN if never)."""
    for s, d in zip(steps, dice, strict=True):
        if d >= level:
            return s
    return math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init", required=True, help="the model to fine-tune (builtin:NAME, run)")
    parser.add_argument("--out", required=True, help="folder for both runs and the figure")
    parser.add_argument(
        "--data", default="phantom:brain-inter", help="the small cohort's data spec"
    )
    parser.add_argument("--subjects", type=int, default=80)
    parser.add_argument("--seed", type=int, default=3, help="the cohort's phantom seed")
    parser.add_argument(
        "--val-fraction", type=float, default=0.25, help="subjects held out for validation"
    )
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--val-every", type=int, default=10)
    args = parser.parse_args(argv)

    from structreg.cli import main as structreg
    from structreg.core.metrics import dice_key
    from structreg.data.spec import load_pairs
    from structreg.evaluation.evaluate import evaluate
    from structreg.evaluation.evaluate import values as metric_values
    from structreg.methods.registry import build_method
    from structreg.training.checkpoint import read_model
    from structreg.training.config import save_config, with_train
    from structreg.training.run import RunFolder, model_data_settings
    from structreg.viz.curves import learning_curve, learning_curves_figure

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = read_model(args.init)[0]["config"]
    config_file = save_config(with_train(saved, init=""), out / "init_config.toml")
    grid = model_data_settings(args.init)
    size = "x".join(str(n) for n in grid.size)
    common = ["--data", args.data, "--subjects", str(args.subjects), "--seed", str(args.seed)]
    common += ["--val-fraction", str(args.val_fraction)]
    common += ["--size", size, "--spacing", str(grid.spacing[0]), "--config", str(config_file)]
    common += ["--set", f"train.steps={args.steps}", "--set", f"train.val_every={args.val_every}"]
    common += ["--set", "train.tensorboard=false", "--set", f"train.checkpoint_every={args.steps}"]
    runs = {"fine-tuned from " + str(args.init): out / "from_init", "from scratch": out / "scratch"}
    for label, run in runs.items():
        extra = ["--init", str(args.init)] if label != "from scratch" else []
        resume = ["--resume"] if RunFolder(run).holds_run() else []
        if structreg(["train", *common, *extra, "--out", str(run), *resume]) != 0:
            raise SystemExit(f"training '{label}' failed")

    # the init model on the validation pairs before any step (zero-shot)
    val = load_pairs(
        args.data,
        split="val",
        seed=args.seed,
        size=tuple(grid.size),
        spacing=tuple(grid.spacing),
        n_subjects=args.subjects,
        val_fraction=args.val_fraction,
    )
    # Dice per label value, averaged, as training's validation computes it
    values = sorted({int(v) for p in val for v in np.unique(p.fixed_labels) if v > 0})
    per_label = {f"label {v}": (v,) for v in values}
    method = build_method(f"ours:{args.init}")
    rows, _ = evaluate(val, [method], per_label, progress=False)
    zero_shot = float(
        np.mean([metric_values(rows, method.name, dice_key(k)).mean() for k in per_label])
    )
    print(
        f"\n{args.data} (seed {args.seed}, {args.subjects} subjects): {len(val)} validation pairs"
    )
    curves = {label: learning_curve(run) for label, run in runs.items()}
    first = read_first_validation(runs["from scratch"])
    print(f"validation Dice before registration: {first:.4f}")
    print(f"validation Dice of {args.init} before fine-tuning (zero-shot): {zero_shot:.4f}")
    print("\n| step | " + " | ".join(curves) + " |")
    print("|---|" + "---|" * len(curves))
    steps = curves["from scratch"].step
    for i, s in enumerate(steps):
        cells = [f"{c.dice[i]:.4f}" if i < len(c.dice) else "–" for c in curves.values()]
        print(f"| {int(s)} | " + " | ".join(cells) + " |")
    scratch = curves["from scratch"]
    best = float(max(scratch.dice))
    print("\nSteps to reach a validation Dice (first validation at or above it):\n")
    print("| validation Dice | " + " | ".join(curves) + " |")
    print("|---|" + "---|" * len(curves))
    for level in sorted({round(first + f * (best - first), 3) for f in (0.5, 0.9, 1.0)}):
        cells = []
        for c in curves.values():
            s = first_step_reaching(list(c.step), list(c.dice), level)
            cells.append("not reached" if math.isnan(s) else str(int(s)))
        print(f"| {level:.3f} | " + " | ".join(cells) + " |")
    title = f"{args.data}, {args.subjects} subjects"
    references = {title: {"no registration": first, f"{args.init} before fine-tuning": zero_shot}}
    figure = learning_curves_figure(
        {title: runs}, out / "fine_tune_curves.png", references=references
    )
    print(f"\nwrote {figure}")
    return 0


def read_first_validation(run: Path) -> float:
    """``val_dice_before`` of a run's first validation row."""
    from structreg.training.logger import read_log
    from structreg.training.run import RunFolder

    for row in read_log(RunFolder(run).log_file, 10**12):
        value = row.get("val_dice_before")
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return math.nan


if __name__ == "__main__":
    raise SystemExit(main())
