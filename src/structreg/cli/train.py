"""``structreg train``: train a registration model (ours or VoxelMorph-2) on a data set."""

from __future__ import annotations

import argparse

from .options import add_data_options, add_device, load_pairs_from_args

NAME = "train"
HELP = "train a registration model on a data set"
TRAINABLE = ("ours", "voxelmorph")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_options(p, split="train")
    p.add_argument(
        "--method",
        default="ours",
        choices=TRAINABLE,
        help="ours (the CVAE, default) or voxelmorph (the VoxelMorph-2 baseline: NCC "
        "+ 1.5 smoothness; uses the config's [train] table)",
    )
    p.add_argument(
        "--config",
        default=None,
        help="TOML file with [model] and [train] tables, or a bundled config name: "
        "cardiac, brain, demo (default: built-in defaults)",
    )
    p.add_argument("--out", required=True, help="run folder (created; refused if it holds a run)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out exactly where it stopped"
    )
    add_device(p, default=None)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.steps=500 (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    from ..configs import resolve_config
    from ..errors import ConfigError, DataError, UsageError
    from ..models.cvae import ModelConfig
    from ..models.voxelmorph import VoxelMorphConfig
    from ..training.config import load_config
    from ..training.engine import train
    from ..training.run import DataSettings, RunFolder

    overrides = [f"model.image_size={list(args.size)}"] + list(args.overrides)
    overrides += [f"train.device={args.device}"] if args.device else []
    config = load_config(resolve_config(args.config) if args.config else None, overrides)
    if not isinstance(config.model, ModelConfig):
        raise ConfigError("train: the config's [model] table must describe our CVAE")
    size = tuple(config.model.image_size)
    train_pairs = load_pairs_from_args(args, split="train", size=size)
    val_pairs = load_pairs_from_args(args, split="val", size=size)
    if not train_pairs:
        raise DataError(f"no training pairs in {args.data}")
    run_folder = RunFolder(args.out)
    if run_folder.holds_run() and not args.resume:
        raise UsageError(
            f"{run_folder.path} already holds a run; use --resume to continue it or another --out"
        )
    model_config = VoxelMorphConfig(ndim=len(size)) if args.method == "voxelmorph" else config.model
    run_folder.write_data_settings(
        DataSettings(
            size=size,
            spacing=tuple(train_pairs[0].spacing),
            data=args.data,
            seed=args.seed,
            subjects=args.subjects,
            slices=args.slices,
        )
    )
    print(f"training {args.method} on {len(train_pairs)} pairs, validating on {len(val_pairs)}")
    history = train(
        model_config,
        config.train,
        train_pairs,
        val_pairs,
        run_folder.path,
        resume=args.resume,
        method=args.method,
    )
    last = history[-1] if history else {}
    print(f"done: step {last.get('step')}, loss {last.get('loss')}; run folder {run_folder.path}")
    return 0
