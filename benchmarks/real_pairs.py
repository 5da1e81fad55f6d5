"""Registration of REAL inter-subject brain slices: ours (with and without per-pair
refinement of the code) against ANTs SyN, DIPY SyN, LCC-Demons and no registration.

The pairs are made offline by ``real_brains.py`` (dipy's real T1 coronal slice and a real
subject's axial T1 against the MNI152 template, both directions, 20 pairs, 100 x 100 at
2 mm, tissue labels by one intensity rule). All methods run in one process on the same CPU;
the table gives mean tissue Dice, % det J <= 0 and seconds per pair, and the lines after it
check the targets:

* ours without refinement: Dice at or above ANTs SyN's in at most 0.1x its time per pair;
* ours with refinement: Dice at or above DIPY SyN's, 0 % folding, in less time than ANTs.

    .venv/bin/python benchmarks/real_pairs.py --model runs/results/brain_inter --out DIR \\
        [--refine 100] [--adapt-decoder 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_brains import TISSUES, real_pairs


def _mean_dice(rows: list[dict], method: str) -> float:
    from structreg.core import metrics
    from structreg.evaluation.evaluate import values

    per_tissue = [values(rows, method, metrics.dice_key(t)).mean() for t in TISSUES]
    return float(np.mean(per_tissue))


def _mean(rows: list[dict], method: str, key: str) -> float:
    from structreg.evaluation.evaluate import values

    v = values(rows, method, key)
    return float(v.mean()) if len(v) else float("nan")


def summary_lines(rows: list[dict], names: list[str], pairs: list) -> list[str]:
    """Mean tissue Dice per set of pairs and method, then the targets."""
    from structreg.core import metrics

    sets = sorted({p.group for p in pairs})
    lines = [
        "",
        "Mean tissue Dice (CSF, GM, WM averaged) per set of pairs:",
        "",
        "| method | "
        + " | ".join(f"{s} ({sum(p.group == s for p in pairs)})" for s in sets)
        + " | all | % det J ≤ 0 | s / pair |",
        "|---|" + "---|" * (len(sets) + 3),
    ]
    for m in names:
        cells = []
        for s in sets:
            ids = {p.id for p in pairs if p.group == s}
            cells.append(f"{_mean_dice([r for r in rows if r['id'] in ids], m):.3f}")
        lines.append(
            f"| {m} | " + " | ".join(cells) + f" | {_mean_dice(rows, m):.3f} | "
            f"{_mean(rows, m, metrics.FOLDING):.3f} | {_mean(rows, m, metrics.SECONDS):.3f} |"
        )
    d = {m: _mean_dice(rows, m) for m in names}
    t = {m: _mean(rows, m, metrics.SECONDS) for m in names}
    fold = {m: _mean(rows, m, metrics.FOLDING) for m in names}
    if {"ours", "ours-refined", "ants-syn", "dipy-syn"} <= set(names):
        ok1 = d["ours"] >= d["ants-syn"] and t["ours"] <= 0.1 * t["ants-syn"]
        ok2 = (
            d["ours-refined"] >= d["dipy-syn"]
            and fold["ours-refined"] == 0
            and t["ours-refined"] < t["ants-syn"]
        )
        lines += [
            "",
            f"Target 1 (ours ≥ ANTs SyN's Dice in ≤ 0.1× its time): "
            f"{'met' if ok1 else 'NOT met'} — Dice {d['ours']:.3f} vs {d['ants-syn']:.3f}, "
            f"{t['ours']:.3f} s vs {t['ants-syn']:.3f} s per pair.",
            f"Target 2 (refined ≥ DIPY SyN's Dice, 0 % folding, faster than ANTs): "
            f"{'met' if ok2 else 'NOT met'} — Dice {d['ours-refined']:.3f} vs "
            f"{d['dipy-syn']:.3f}, folding {fold['ours-refined']:.3f} %, "
            f"{t['ours-refined']:.3f} s vs {t['ants-syn']:.3f} s per pair.",
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="ours: a run folder or model file")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--refine", type=int, default=100, help="refinement steps (default 100)")
    parser.add_argument("--adapt-decoder", type=int, default=0, help="decoder layers adapted")
    parser.add_argument(
        "--methods",
        action="append",
        default=None,
        help="method specs to run instead of the default list (repeatable; "
        "default: identity, ants-syn, dipy-syn, lcc-demons, ours, ours refined)",
    )
    parser.add_argument(
        "--extra", action="append", default=[], help="one more method spec (repeatable)"
    )
    args = parser.parse_args()

    import torch

    from structreg.methods import build_methods

    torch.manual_seed(0)
    pairs = real_pairs()
    refined = f"ours:{args.model},refine={args.refine},label=ours-refined"
    if args.adapt_decoder:
        refined += f",adapt_decoder={args.adapt_decoder}"
    specs = args.methods or [
        "identity",
        "ants-syn",
        "dipy-syn",
        "lcc-demons",
        f"ours:{args.model}",
        refined,
    ]
    specs += args.extra
    report(pairs, build_methods(specs), Path(args.out), primary="ours")


def report(pairs: list, methods: list, out: Path, primary: str) -> None:
    """Evaluate ``methods`` on ``pairs`` into ``out`` and write and print its table with
    the target lines (``out/table.md``)."""
    from structreg.evaluation.evaluate import run_evaluation
    from structreg.io.files import atomic_write_text

    summary = run_evaluation(pairs, methods, out, progress=False, primary=primary)
    names = [m.name for m in methods]
    text = summary["table"] + "\n".join(summary_lines(summary["rows"], names, pairs)) + "\n"
    atomic_write_text(out / "table.md", text)
    print(text)


if __name__ == "__main__":
    main()
