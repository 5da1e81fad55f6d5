"""``structreg train``: train a registration model (ours or VoxelMorph-2) on a data set."""

from __future__ import annotations

import argparse
from typing import Any

from ..data.defaults import DEFAULT_SIZE, DEFAULT_SPACING
from ..data.spec import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION
from .options import add_data_options, add_device, label_table_from_args

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


def _ids(pairs: list[Any]) -> str:
    ids = [p.id for p in pairs]
    return ", ".join(ids) if len(ids) <= 8 else f"{', '.join(ids[:6])}, ... {ids[-1]}"


def split_for_training(
    args: argparse.Namespace, size: tuple[int, ...]
) -> tuple[list[Any], list[Any], str]:
    """``(train pairs, validation pairs, how they were split)`` for ``structreg train``.

    ``--split all``: every pair, no validation. Data with their own split (a pairs
    CSV's ``split`` column): its train and val rows. Other pairs CSVs: a
    subject-wise ``--val-fraction`` held out, nothing for testing. Phantoms and
    ACDC: the subject-wise train and val splits (a test split stays held out).
    """
    from ..data.dataset import split_by_subject
    from ..data.spec import has_own_split, load_pairs, parse_data_spec
    from ..errors import UsageError

    if not 0 <= args.val_fraction < 1:
        raise UsageError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.split not in (None, "train", "all"):
        raise UsageError(f"train --split takes train (default) or all, got {args.split}")
    spec = parse_data_spec(args.data)
    common = dict(
        seed=args.seed,
        size=size,
        spacing=args.spacing,
        n_subjects=args.subjects,
        n_slices=args.slices,
        label_table=label_table_from_args(args),
        val_fraction=args.val_fraction,
    )
    every = load_pairs(spec, split="all", **common)
    if args.split == "all":
        return every, [], "all pairs, no validation"
    if has_own_split(every):
        return (
            [p for p in every if p.meta["split"] == "train"],
            [p for p in every if p.meta["split"] == "val"],
            "the data's split column",
        )
    # a pairs CSV keeps every subject for training and validation; phantoms and
    # ACDC keep their subject-wise test split held out
    test_fraction = 0.0 if spec.kind == "pairs" else DEFAULT_TEST_FRACTION
    parts = split_by_subject(
        every, seed=args.seed, val_fraction=args.val_fraction, test_fraction=test_fraction
    )
    how = f"subject-wise, {args.val_fraction:g} of the subjects for validation"
    if test_fraction:
        how += f", {test_fraction:g} held out for testing"
    return parts["train"], parts["val"], how


def cached_split(args: argparse.Namespace, cache: Any) -> tuple[Any, list[Any], str]:
    """``(streamed training pairs, validation pairs in memory, how)`` of a cache: its
    own split (``--split all``: every pair streamed, no validation); ``--subjects N``
    keeps the first N subjects."""
    from ..errors import UsageError

    if args.split not in (None, "train", "all"):
        raise UsageError(f"train --split takes train (default) or all, got {args.split}")

    def chosen(split: str) -> list[int]:
        return cache.indices(split, args.subjects)

    if args.split == "all":
        return cache.dataset(chosen("all"), ()), [], "all pairs, no validation (streamed)"
    val = cache.pairs(chosen("val"))
    return cache.dataset(chosen("train"), ()), val, "the cache's split (training pairs streamed)"


def _init_defaults(args: argparse.Namespace) -> Any:
    """The ``--init`` model's run config (with ``train.init`` cleared); fills
    ``args.size`` / ``args.spacing`` from its data settings when not given."""
    from ..training.checkpoint import read_model
    from ..training.config import with_train
    from ..training.run import model_data_settings

    saved = read_model(args.init)[0]["config"]
    settings = model_data_settings(args.init)
    if args.size is None:
        args.size = tuple(settings.size)
    if args.spacing is None:
        args.spacing = tuple(settings.spacing)
    return with_train(saved, init="")


def _voxelmorph_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """Split ``--set`` overrides into (VoxelMorph-2's ones, the rest): ``model.KEY=...``
    and bare keys of :class:`VoxelMorphConfig` go to VoxelMorph-2's config, where
    :func:`~structreg.training.config.apply_overrides` reads them (its ``ndim``
    follows ``--size`` and is refused)."""
    from dataclasses import fields

    from ..errors import UsageError
    from ..models.voxelmorph import VoxelMorphConfig

    own = {f.name for f in fields(VoxelMorphConfig)}
    model, rest = [], []
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        name = key.removeprefix("model.")
        if name != key or key in own:
            if name == "ndim":
                raise UsageError(f"--set {item}: VoxelMorph-2's ndim follows --size")
            model.append(item)
        else:
            rest.append(item)
    return model, rest


def _model_config(args: argparse.Namespace, config: Any, overrides: list[str]) -> Any:
    """The network's settings: our CVAE's ``config.model``, or for ``--method
    voxelmorph`` a :class:`VoxelMorphConfig` of the grid's dimension with the
    VoxelMorph-2 ``[model]`` overrides (``--set model.smoothness=0``)."""
    from ..models.voxelmorph import VoxelMorphConfig
    from ..training.config import RunConfig, apply_overrides

    if args.method != "voxelmorph":
        return config.model
    ndim = len(config.model.image_size)
    base = RunConfig(model=VoxelMorphConfig(ndim=ndim), train=config.train, method="voxelmorph")
    return apply_overrides(base, overrides).model


def _run_config(args: argparse.Namespace) -> tuple[Any, Any]:
    """The run's :class:`~structreg.training.config.RunConfig` and its network's
    settings (:func:`_model_config`): ``--config`` (else the ``--init`` model's, else
    the defaults) with the grid, ``--set`` and ``--device``; fills ``args.size`` /
    ``args.spacing`` when not given."""
    from ..configs import resolve_config
    from ..errors import UsageError
    from ..training.checkpoint import init_weights
    from ..training.config import apply_overrides, load_config, with_train

    base = None
    if args.init:
        if args.method != "ours":
            raise UsageError("--init fine-tunes our CVAE; it takes --method ours")
        base = _init_defaults(args)
        if base.method != "ours":
            raise UsageError(f"--init {args.init} is a {base.method} model, not one of ours")
    if args.size is None:
        args.size = DEFAULT_SIZE
    if args.spacing is None:
        args.spacing = DEFAULT_SPACING
    vm_overrides, given = (
        _voxelmorph_overrides(list(args.overrides))
        if args.method == "voxelmorph"
        else ([], list(args.overrides))
    )
    overrides = [f"model.image_size={list(args.size)}"] + given
    overrides += [f"train.device={args.device}"] if args.device else []
    if args.config:
        config = load_config(resolve_config(args.config), overrides)
    elif base is not None:
        config = apply_overrides(base, overrides)
    else:
        config = load_config(None, overrides)
    if args.init:
        config = with_train(config, init=str(args.init))
        init_weights(args.init, config)  # refuses other model settings before any work
    return config, _model_config(args, config, vm_overrides)


def _cache_grid(args: argparse.Namespace) -> Any:
    """The opened cache of a ``cache:DIR`` spec (None for other data); fills the grid
    from it and refuses another one."""
    from ..data.cache import open_cache
    from ..data.spec import grid_spacing, parse_data_spec
    from ..errors import DataError

    spec = parse_data_spec(args.data)
    if spec.kind != "cache":
        return None
    cache = open_cache(spec.path)
    if args.size is not None and (
        tuple(args.size) != cache.shape
        or (args.spacing is not None and grid_spacing(args.size, args.spacing) != cache.spacing)
    ):
        raise DataError(
            f"{args.data} holds {'x'.join(map(str, cache.shape))} voxels at "
            f"{'x'.join(f'{v:g}' for v in cache.spacing)} mm; --size/--spacing must match"
        )
    args.size, args.spacing = cache.shape, cache.spacing
    return cache


def run(args: argparse.Namespace) -> int:
    from ..training.distributed import from_env, launch, launched_by_torchrun, without_option

    if args.nproc is not None and not launched_by_torchrun():
        return launch(args.nproc, without_option(args._argv, "--nproc"), args.device)
    dist = from_env()
    return dist.run(lambda: _train(args, dist))


def _train(args: argparse.Namespace, dist: Any) -> int:
    from ..errors import ConfigError, DataError, UsageError
    from ..models.cvae import ModelConfig
    from ..training.config import resolve_device
    from ..training.distributed import restart_count
    from ..training.engine import train
    from ..training.run import DataSettings, RunFolder

    say = print if dist.is_main else (lambda *a, **k: None)
    cache = _cache_grid(args)
    config, model_config = _run_config(args)
    if not isinstance(config.model, ModelConfig):
        raise ConfigError("train: the config's [model] table must describe our CVAE")
    size = tuple(config.model.image_size)
    run_folder = RunFolder(args.out)
    if restart_count() and not args.resume:
        if run_folder.checkpoint.is_file():
            say(f"restarted by torchrun: resuming {run_folder.path} from its last checkpoint")
            args.resume = True
        elif dist.is_main and run_folder.discard_unstarted():  # only rank 0 writes
            say(f"restarted by torchrun before the first checkpoint: starting {args.out} over")
    if run_folder.holds_run() and not args.resume:
        raise UsageError(
            f"{run_folder.path} already holds a run; use --resume to continue it or another --out"
        )
    dist.init(resolve_device(config.train.device))
    if cache is not None:
        train_pairs, val_pairs, how = cached_split(args, cache)
        if args.in_memory:
            train_pairs = cache.pairs(train_pairs.indices)
            how = how.replace("streamed", "in memory")
        spacing = cache.spacing
    else:
        train_pairs, val_pairs, how = split_for_training(args, size)
        spacing = tuple(train_pairs[0].spacing) if train_pairs else ()
    if not len(train_pairs):
        raise DataError(f"no training pairs in {args.data}")
    procs = f" in {dist.world_size} processes" if dist.enabled else ""
    say(
        f"training {args.method} on {len(train_pairs)} pairs{procs}, validating on "
        f"{len(val_pairs)} ({how})"
    )
    if cache is None:
        say(f"  train: {_ids(train_pairs)}")
    if val_pairs:
        say(f"  val: {_ids(val_pairs)}")
    history = train(
        model_config,
        config.train,
        train_pairs,
        val_pairs,
        run_folder.path,
        resume=args.resume,
        method=args.method,
        data_settings=DataSettings(
            size=size,
            spacing=tuple(spacing),
            data=args.data,
            seed=args.seed,
            subjects=args.subjects,
            slices=args.slices,
        ),
        dist=dist,
    )
    last = history[-1] if history else {}
    say(f"done: step {last.get('step')}, loss {last.get('loss')}; run folder {run_folder.path}")
    return 0
