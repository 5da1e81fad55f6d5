"""``structreg export``: write a trained model as a ``safetensors`` file."""

from __future__ import annotations

import argparse

from .options import add_model

NAME = "export"
HELP = "write a trained model's weights, config and digest as a .safetensors file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument("--out", required=True, help="the .safetensors file to write")


def run(args: argparse.Namespace) -> int:
    from ..training.export import export_safetensors

    out = export_safetensors(args.model, args.out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); use it as --model {out}")
    return 0
