"""What bf16 autocast costs in quality: the same training in float32 and in bfloat16.

Trains the bundled ``demo`` config (the cardiac network, 100x100, d = 144, batch 50)
twice from the same seed on the cardiac phantom - once with ``train.precision =
float32``, once with ``bfloat16`` (encoder and decoder under bf16 autocast; the
exponentiation, warping and LCC in float32) - and prints, from each run's last
validation, the validation Dice, the % of pixels with det J <= 0, the training
loss, and the seconds per step, with the differences.

    .venv/bin/python benchmarks/precision_quality.py [--steps 150] [--subjects 120] [--size 64x64]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def _last(run: Path) -> dict[str, float]:
    with open(run / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    val = [r for r in rows if r.get("val_dice")]
    times = [float(r["step_time_s"]) for r in rows[2:] if not r.get("val_dice")]
    return {
        "dice": float(val[-1]["val_dice"]),
        "before": float(val[-1]["val_dice_before"]),
        "folding": float(val[-1]["val_folding_pct"]),
        "loss": float(rows[-1]["loss"]),
        "step": statistics.median(times),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--subjects", type=int, default=120)
    p.add_argument("--size", default="100x100", help="grid (HxW; the network is built for it)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("float32", "bfloat16"):
            out = Path(tmp) / precision
            cmd = [sys.executable, "-m", "structreg", "train", "--config", "demo",
                   "--data", "phantom:cardiac", "--subjects", str(args.subjects),
                   "--size", args.size,
                   "--out", str(out), "--device", args.device,
                   "--set", f"train.steps={args.steps}", "--set", "train.tensorboard=false",
                   "--set", f"train.val_every={args.steps}",
                   "--set", f"train.precision={precision}"]  # fmt: skip
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            results[precision] = _last(out)
    a, b = results["float32"], results["bfloat16"]
    print(f"# precision_quality: demo config at {args.size}, {args.steps} steps, "
          f"{args.subjects} subjects, "
          f"device {args.device}, torch {torch.__version__}")  # fmt: skip
    print("| precision | val Dice (before) | % det J ≤ 0 | final loss | s/step |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['dice']:.4f} ({r['before']:.4f}) | {r['folding']:.4f} | "
              f"{r['loss']:.3f} | {r['step']:.3f} |")  # fmt: skip
    print(f"| bf16 − f32 | {b['dice'] - a['dice']:+.4f} | {b['folding'] - a['folding']:+.4f} | "
          f"{b['loss'] - a['loss']:+.3f} | × {a['step'] / b['step']:.2f} speed |")  # fmt: skip


if __name__ == "__main__":
    main()
