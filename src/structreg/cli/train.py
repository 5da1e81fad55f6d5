"""``structreg train``: train a registration model (ours or VoxelMorph-2) on a data set.

The options are parsed here; the work (grid, configuration, torchrun restarts, data
split, training) is :func:`structreg.training.job.train_from_options`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..data.defaults import DEFAULT_SIZE, DEFAULT_SPACING
from ..data.spec import DEFAULT_VAL_FRACTION
from .options import add_data_options, add_device

if TYPE_CHECKING:
    from ..training.job import TrainOptions

NAME = "train"
HELP = "train a registration model on a data set"
TRAINABLE = ("ours", "voxelmorph")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_options(
        p,
        split="train",
        grid_from_model=True,
        grid_help=f"default: the --init model's, else {'x'.join(map(str, DEFAULT_SIZE))} "
        f"voxels at {DEFAULT_SPACING[0]:g} mm",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=DEFAULT_VAL_FRACTION,
        help="fraction of subjects held out for validation when the data have no "
        f"split of their own (default: {DEFAULT_VAL_FRACTION}); --split all "
        "trains on every pair without validation",
    )
    _add_model_options(p)
    _add_run_options(p)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """``--method``, ``--config`` and ``--init``: what is trained, from which settings."""
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
        "cardiac, brain, brain-inter, brain3d, cardiac3d, demo (default: the --init model's "
        "settings, else built-in defaults)",
    )
    p.add_argument(
        "--init",
        default=None,
        metavar="MODEL",
        help="fine-tune: start from this model's weights (run folder, checkpoint or "
        ".safetensors file, or builtin:NAME) instead of a random initialisation; its "
        "model settings, grid and train settings are the defaults (train.init)",
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """``--out``, ``--resume``, ``--device``, ``--in-memory``, ``--nproc`` and ``--set``."""
    p.add_argument("--out", required=True, help="run folder (created; refused if it holds a run)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out exactly where it stopped"
    )
    add_device(p, default=None)
    p.add_argument(
        "--in-memory",
        action="store_true",
        help="with --data cache:DIR: load the training pairs into memory instead of "
        "streaming them from disk",
    )
    p.add_argument(
        "--nproc",
        type=int,
        default=None,
        metavar="K",
        help="train in K processes on this machine (DistributedDataParallel through "
        "torchrun: one per GPU, gloo on CPUs); train.batch_size is per process. For "
        "several machines run torchrun yourself (README)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.steps=500 (repeatable); with "
        "--method voxelmorph, model.* keys set VoxelMorph-2's (e.g. model.smoothness=0)",
    )


def train_options(args: argparse.Namespace) -> TrainOptions:
    """The :class:`~structreg.training.job.TrainOptions` of the parsed command line."""
    from ..training.job import TrainOptions

    return TrainOptions(
        out=args.out,
        data=args.data,
        split=args.split,
        seed=args.seed,
        size=args.size,
        spacing=args.spacing,
        subjects=args.subjects,
        slices=args.slices,
        labels=args.labels,
        label_table=args.label_table,
        val_fraction=args.val_fraction,
        method=args.method,
        config=args.config,
        init=args.init,
        resume=args.resume,
        device=args.device,
        in_memory=args.in_memory,
        overrides=tuple(args.overrides),
    )


def run(args: argparse.Namespace) -> int:
    """Train in this process (or, with ``--nproc K``, in K processes under torchrun)."""
    from ..training.distributed import from_env, launch, launched_by_torchrun, without_option
    from ..training.job import train_from_options

    if args.nproc is not None and not launched_by_torchrun():
        return launch(args.nproc, without_option(args.argv, "--nproc"), args.device)
    dist = from_env()
    options = train_options(args)
    dist.run(lambda: train_from_options(options, dist))
    return 0
