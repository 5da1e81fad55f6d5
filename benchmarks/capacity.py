"""What caps the Dice of ours: the code's size, the decoder, or the velocity's form?

Runs trained with the same data, steps and weights but one model switch changed
(``model.latent_dim``, ``model.velocity_scales``, ``model.velocity_smoothing``) are
registered, without and with per-pair refinement of the code, on the
inter-subject brain phantom's test split and on the real inter-subject brain
slices of ``real_brains.py``. The reference run (the first) is also refined with
its decoder's last layers adapted per pair (``adapt_decoder = 1, 2``): if adapting
the decoder gains much more than refining ``z`` alone, the decoder's range (what
the codes can express) is what caps the Dice.

Prints one markdown table (mean tissue Dice, % det J <= 0, seconds per pair) and
writes it to ``OUT/capacity.md``.

    .venv/bin/python benchmarks/capacity.py --out DIR --refine 10,20,50 \\
        --run d144=runs/sweep/lam200 --run d32=runs/sweep/d32 ...
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_brains import real_pairs


def _mean_dice(rows: list[dict], method: str) -> float:
    keys = [k for k in rows[0] if k.startswith("dice ")]
    per_pair = [
        np.mean([float(r[k]) for k in keys if r.get(k) not in (None, "")])
        for r in rows
        if r["method"] == method and not r.get("error")
    ]
    return float(np.mean(per_pair)) if per_pair else float("nan")


def _mean(rows: list[dict], method: str, key: str) -> float:
    v = [float(r[key]) for r in rows if r["method"] == method and r.get(key) not in (None, "")]
    return float(np.mean(v)) if v else float("nan")


def _last_val_dice(run: Path) -> float:
    with (run / "train_log.csv").open() as fh:
        dice = [r["val_dice"] for r in csv.DictReader(fh) if r.get("val_dice")]
    return float(dice[-1]) if dice else float("nan")


def _model_text(run: Path) -> str:
    from structreg.training.config import load_config
    from structreg.training.run import RunFolder

    model = load_config(RunFolder(run).config_file).model
    parts = [f"d {model.latent_dim}"]
    if model.velocity_scales > 1:
        parts.append(f"{model.velocity_scales} velocity scales")
    if model.velocity_smoothing:
        parts.append(f"v smoothed σ {model.velocity_smoothing:g}")
    if model.antisymmetric:
        parts.append("antisymmetric v")
    return ", ".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", required=True, help="NAME=RUN_DIR (repeatable)")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--refine",
        default="10,20,50",
        help="refinement steps, comma-separated: all on the first run, the last on the others",
    )
    p.add_argument("--adapt", default="1,2", help="decoder layers adapted on the first run")
    p.add_argument("--phantom-pairs", type=int, default=40, help="test pairs of the phantom")
    args = p.parse_args()

    import torch

    from structreg.core.metrics import FOLDING, SECONDS
    from structreg.data.dataset import split_by_subject
    from structreg.data.spec import load_pairs
    from structreg.evaluation.evaluate import evaluate
    from structreg.io.files import atomic_write_text
    from structreg.methods import build_method
    from structreg.training.run import model_data_settings

    torch.manual_seed(0)
    runs = [(name, Path(path)) for name, _, path in (r.partition("=") for r in args.run)]
    # test pairs of the 400-subject split that no run trained or validated on (a run
    # on more subjects splits them otherwise)
    seen: set[str] = set()
    test: list = []
    for n in sorted({model_data_settings(path).subjects or 400 for _, path in runs} | {400}):
        splits = split_by_subject(load_pairs("phantom:brain-inter", split="all", n_subjects=n))
        seen |= {q.id for q in splits["train"] + splits["val"]}
        test = splits["test"] if n == 400 else test
    phantom = [q for q in test if q.id not in seen][: args.phantom_pairs]
    real = real_pairs()
    steps = [int(n) for n in args.refine.split(",") if n]
    lines = [
        f"Mean tissue Dice on {len(phantom)} inter-subject phantom test pairs and "
        f"{len(real)} real pairs; refinement at most {steps[-1]} steps unless named "
        f"(early stopping on the objective).",
        "",
        "| run | model | val Dice (training) | variant | phantom Dice | real Dice "
        "| real % det J ≤ 0 | real s / pair |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, (name, run) in enumerate(runs):
        last = steps[-1]
        variants = [("plain", f"ours:{run}")]
        variants += [
            (f"refined {n}", f"ours:{run},refine={n}") for n in (steps if i == 0 else [last])
        ]
        if i == 0:
            variants += [
                (f"refined {last} + decoder {k}", f"ours:{run},refine={last},adapt_decoder={k}")
                for k in args.adapt.split(",")
                if k
            ]
        for variant, spec in variants:
            method = build_method(f"{spec},label=ours")
            rows_p, _ = evaluate(phantom, [method], progress=False)
            rows_r, _ = evaluate(real, [method], progress=False)
            lines.append(
                f"| {name} | {_model_text(run)} | {_last_val_dice(run):.3f} | {variant} | "
                f"{_mean_dice(rows_p, 'ours'):.3f} | {_mean_dice(rows_r, 'ours'):.3f} | "
                f"{_mean(rows_r, 'ours', FOLDING):.3f} | {_mean(rows_r, 'ours', SECONDS):.3f} |"
            )
            print(lines[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "capacity.md", text)
    print(text)


if __name__ == "__main__":
    main()
