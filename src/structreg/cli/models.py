"""``structreg models``: the models bundled with the package (``--model builtin:NAME``)."""

from __future__ import annotations

import argparse
import json

NAME = "models"
HELP = "list the pretrained models bundled with the package (use them as --model builtin:NAME)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def run(args: argparse.Namespace) -> int:
    from ..pretrained import bundled_models

    models = bundled_models()
    if args.json:
        rows = [
            {
                "name": m.spec,
                "file": str(m.path),
                "size_bytes": m.size_bytes(),
                "sha256": m.sha256,
                "description": m.description,
                "trained_on": m.trained_on,
                "command": m.command,
                "scores": m.scores,
            }
            for m in models
        ]
        print(json.dumps(rows, indent=1))
        return 0
    for m in models:
        size = m.size_bytes()
        print(f"{m.spec}  ({size / 1e6:.1f} MB{'' if size else ', MISSING'})")
        print(f"  {m.description}")
        print(f"  trained on: {m.trained_on}")
        print(f"  made by:    {m.command}")
        for bench, scores in m.scores.items():
            shown = ", ".join(
                f"{method} {value:.3f}"
                for method, value in scores.items()
                if isinstance(value, float)
            )
            what = ", ".join(scores.get("structures", []))
            print(f"  {bench} ({scores.get('pairs', '?')} pairs, mean Dice {what}): {shown}")
        check = m.check
        if check:
            print(
                f"  check: mean Dice {check['dice']['mean']:.4f} on {check['pairs']} pairs of "
                f"{check['data']} (seed {check['seed']}, {check['subjects']} subjects, "
                f"{check['split']} split)"
            )
    return 0
