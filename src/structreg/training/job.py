"""A training job as ``structreg train`` describes it: from the command's options to a
trained run folder.

:class:`TrainOptions` holds the parsed options; :func:`train_from_options` resolves
the grid (a cache's, the ``--init`` model's or the default), the run configuration
(``--config``, ``--init``, ``--set``, ``--device``; VoxelMorph-2's network for
``--method voxelmorph``), turns a torchrun restart into a resume, splits the data
into training and validation pairs and trains them with
:func:`~structreg.training.engine.train_run` (which refuses a run folder that holds a
run unless resuming).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from ..configs import resolve_config
from ..data.cache import CachedPairs, PairCache, open_cache
from ..data.dataset import split_by_subject
from ..data.defaults import DEFAULT_SIZE, DEFAULT_SPACING
from ..data.pair import Pair
from ..data.spec import (
    DEFAULT_DATA,
    DEFAULT_TEST_FRACTION,
    DEFAULT_VAL_FRACTION,
    grid_spacing,
    has_own_split,
    label_table_option,
    load_pairs,
    parse_data_spec,
)
from ..errors import ConfigError, DataError, UsageError
from ..models.cvae import ModelConfig
from ..models.voxelmorph import VoxelMorphConfig
from .checkpoint import init_weights, read_model
from .config import RunConfig, apply_overrides, load_config, resolve_device, with_train
from .distributed import SINGLE, Dist, restart_count
from .engine import train_run
from .run import DataSettings, RunFolder, model_data_settings

__all__ = [
    "TrainOptions",
    "cached_split",
    "split_for_training",
    "train_from_options",
    "voxelmorph_overrides",
]

Say = Callable[[str], object]


@dataclass(frozen=True)
class TrainOptions:
    """The options of ``structreg train`` (see its ``--help``).

    Attributes:
        out: the run folder.
        data, split, seed, subjects, slices, labels, label_table: the data options
            (:func:`structreg.cli.options.add_data_options`).
        size, spacing: the grid in voxels and mm (None: the cache's, the ``--init``
            model's, else the default).
        val_fraction: subjects held out for validation when the data have no split.
        method: ``"ours"`` or ``"voxelmorph"``.
        config: a TOML file or a bundled config's name (None: the ``--init`` model's
            settings, else the defaults).
        init: a model to fine-tune (``train.init``), or None.
        resume: continue the run in ``out``.
        device: ``train.device`` (None: the config's).
        in_memory: load a cache's training pairs into memory instead of streaming them.
        overrides: ``--set KEY=VALUE`` items, in order.
    """

    out: str
    data: str = DEFAULT_DATA
    split: str | None = None
    seed: int = 0
    size: tuple[int, ...] | None = None
    spacing: tuple[float, ...] | None = None
    subjects: int | None = None
    slices: int | None = None
    labels: str | None = None
    label_table: str | None = None
    val_fraction: float = DEFAULT_VAL_FRACTION
    method: str = "ours"
    config: str | None = None
    init: str | None = None
    resume: bool = False
    device: str | None = None
    in_memory: bool = False
    overrides: tuple[str, ...] = ()


def train_from_options(
    options: TrainOptions, dist: Dist = SINGLE, say: Say = print
) -> list[dict[str, Any]]:
    """Train the run that ``options`` describe; returns the log rows
    (:func:`~structreg.training.engine.train`).

    ``dist``: this process's rank in a torchrun run (the process group is joined here,
    once the configuration is resolved); ``say``: where rank 0 reports what it does
    (the split, a restart, the end)."""
    if not dist.is_main:
        say = _silent
    cache, options = cache_grid(options)
    config, size, options = run_config(options)
    run = RunFolder(options.out)
    options = resume_after_restart(options, run, dist, say)
    dist.init(resolve_device(config.train.device))
    train_pairs, val_pairs, how, spacing = training_pairs(options, cache, size)
    procs = f" in {dist.world_size} processes" if dist.enabled else ""
    say(
        f"training {options.method} on {len(train_pairs)} pairs{procs}, validating on "
        f"{len(val_pairs)} ({how})"
    )
    if cache is None:
        say(f"  train: {_ids(train_pairs)}")  # type: ignore[arg-type]
    if val_pairs:
        say(f"  val: {_ids(val_pairs)}")
    history = train_run(
        config,
        train_pairs,
        val_pairs,
        run.path,
        resume=options.resume,
        data_settings=DataSettings(
            size=size,
            spacing=tuple(spacing),
            data=options.data,
            seed=options.seed,
            subjects=options.subjects,
            slices=options.slices,
        ),
        dist=dist,
    )
    last = history[-1] if history else {}
    say(f"done: step {last.get('step')}, loss {last.get('loss')}; run folder {run.path}")
    return history


def _silent(text: str) -> None:
    """``say`` on the ranks other than 0."""


def _ids(pairs: Sequence[Pair]) -> str:
    ids = [p.id for p in pairs]
    return ", ".join(ids) if len(ids) <= 8 else f"{', '.join(ids[:6])}, ... {ids[-1]}"


def cache_grid(options: TrainOptions) -> tuple[PairCache | None, TrainOptions]:
    """The opened cache of a ``cache:DIR`` spec (None for other data) and the options
    with its grid; another grid asked for is refused."""
    spec = parse_data_spec(options.data)
    if spec.kind != "cache":
        return None, options
    cache = open_cache(spec.path)
    size, spacing = options.size, options.spacing
    if size is not None and (
        tuple(size) != cache.shape
        or (spacing is not None and grid_spacing(size, spacing) != cache.spacing)
    ):
        raise DataError(
            f"{options.data} holds {'x'.join(map(str, cache.shape))} voxels at "
            f"{'x'.join(f'{v:g}' for v in cache.spacing)} mm; --size/--spacing must match"
        )
    return cache, replace(options, size=cache.shape, spacing=cache.spacing)


def run_config(options: TrainOptions) -> tuple[RunConfig, tuple[int, ...], TrainOptions]:
    """The run's configuration, the model grid's size and the options with the grid
    filled (the ``--init`` model's, else the default).

    The configuration is ``--config`` (else the ``--init`` model's, else the defaults)
    with the grid, ``--set`` and ``--device``; for ``--method voxelmorph`` its network
    is VoxelMorph-2 (:func:`method_config`)."""
    base = None
    if options.init:
        base, options = init_defaults(options)
    if options.size is None:
        options = replace(options, size=DEFAULT_SIZE)
    if options.spacing is None:
        options = replace(options, spacing=DEFAULT_SPACING)
    assert options.size is not None
    vm_overrides, given = (
        voxelmorph_overrides(options.overrides)
        if options.method == "voxelmorph"
        else ([], list(options.overrides))
    )
    overrides = [f"model.image_size={list(options.size)}"] + given
    overrides += [f"train.device={options.device}"] if options.device else []
    if options.config:
        config = load_config(resolve_config(options.config), overrides)
    elif base is not None:
        config = apply_overrides(base, overrides)
    else:
        config = load_config(None, overrides)
    if options.init:
        config = with_train(config, init=str(options.init))
        init_weights(options.init, config)  # refuses other model settings before any work
    trained = method_config(options.method, config, vm_overrides)
    if not isinstance(config.model, ModelConfig):
        raise ConfigError("train: the config's [model] table must describe our CVAE")
    return trained, tuple(config.model.image_size), options


def init_defaults(options: TrainOptions) -> tuple[RunConfig, TrainOptions]:
    """The ``--init`` model's run config (with ``train.init`` cleared) and the options
    with its grid where none was given; refuses anything but our CVAE."""
    if options.method != "ours":
        raise UsageError("--init fine-tunes our CVAE; it takes --method ours")
    assert options.init is not None
    saved = read_model(options.init)[0]["config"]
    settings = model_data_settings(options.init)
    if options.size is None:
        options = replace(options, size=tuple(settings.size))
    if options.spacing is None:
        options = replace(options, spacing=tuple(settings.spacing))
    base = with_train(saved, init="")
    if base.method != "ours":
        raise UsageError(f"--init {options.init} is a {base.method} model, not one of ours")
    return base, options


def voxelmorph_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``--set`` overrides into (VoxelMorph-2's ones, the rest): ``model.KEY=...``
    and bare keys of :class:`VoxelMorphConfig` go to VoxelMorph-2's config, where
    :func:`~structreg.training.config.apply_overrides` reads them (its ``ndim``
    follows ``--size`` and is refused)."""
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


def method_config(method: str, config: RunConfig, overrides: list[str]) -> RunConfig:
    """The configuration that trains ``method``: ``config`` for ours; for
    ``voxelmorph`` a :class:`VoxelMorphConfig` of the grid's dimension with VoxelMorph-2's
    ``[model]`` overrides (``--set model.smoothness=0``) and ``config``'s training."""
    if method != "voxelmorph":
        return config
    ndim = len(config.model.image_size)  # type: ignore[union-attr]
    base = RunConfig(model=VoxelMorphConfig(ndim=ndim), train=config.train, method="voxelmorph")
    model = apply_overrides(base, overrides).model
    return RunConfig(model=model, train=config.train, method="voxelmorph")


def resume_after_restart(
    options: TrainOptions, run: RunFolder, dist: Dist, say: Say
) -> TrainOptions:
    """After a torchrun restart the same command runs again: it resumes a run that
    holds a checkpoint, and rank 0 starts one killed before its first checkpoint over
    (:meth:`RunFolder.discard_unstarted`)."""
    if restart_count() and not options.resume:
        if run.checkpoint.is_file():
            say(f"restarted by torchrun: resuming {run.path} from its last checkpoint")
            return replace(options, resume=True)
        if dist.is_main and run.discard_unstarted():  # only rank 0 writes
            say(f"restarted by torchrun before the first checkpoint: starting {options.out} over")
    return options


def training_pairs(
    options: TrainOptions, cache: PairCache | None, size: tuple[int, ...]
) -> tuple[list[Pair] | CachedPairs, list[Pair], str, tuple[float, ...]]:
    """``(training pairs, validation pairs, how they were split, spacing in mm)``: a
    cache's (:func:`cached_split`; ``in_memory``: its training pairs read into memory)
    or the data spec's (:func:`split_for_training`); refuses no training pairs."""
    train_pairs: list[Pair] | CachedPairs
    if cache is not None:
        train_pairs, val_pairs, how = cached_split(options, cache)
        if options.in_memory:
            train_pairs = cache.pairs(train_pairs.indices)
            how = how.replace("streamed", "in memory")
        spacing = cache.spacing
    else:
        train_pairs, val_pairs, how = split_for_training(options, size)
        spacing = tuple(train_pairs[0].spacing) if train_pairs else ()
    if not len(train_pairs):
        raise DataError(f"no training pairs in {options.data}")
    return train_pairs, val_pairs, how, spacing


def _check_split(split: str | None) -> None:
    if split not in (None, "train", "all"):
        raise UsageError(f"train --split takes train (default) or all, got {split}")


def split_for_training(
    options: TrainOptions, size: tuple[int, ...]
) -> tuple[list[Pair], list[Pair], str]:
    """``(train pairs, validation pairs, how they were split)`` for ``structreg train``.

    ``--split all``: every pair, no validation. Data with their own split (a pairs
    CSV's ``split`` column): its train and val rows. Other pairs CSVs: a
    subject-wise ``--val-fraction`` held out, nothing for testing. Phantoms and
    ACDC: the subject-wise train and val splits (a test split stays held out).
    """
    if not 0 <= options.val_fraction < 1:
        raise UsageError(f"--val-fraction must be in [0, 1), got {options.val_fraction}")
    _check_split(options.split)
    spec = parse_data_spec(options.data)
    every = load_pairs(
        spec,
        split="all",
        seed=options.seed,
        size=size,
        spacing=options.spacing or DEFAULT_SPACING,
        n_subjects=options.subjects,
        n_slices=options.slices,
        label_table=label_table_option(options.labels, options.label_table),
        val_fraction=options.val_fraction,
    )
    if options.split == "all":
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
        every, seed=options.seed, val_fraction=options.val_fraction, test_fraction=test_fraction
    )
    how = f"subject-wise, {options.val_fraction:g} of the subjects for validation"
    if test_fraction:
        how += f", {test_fraction:g} held out for testing"
    return parts["train"], parts["val"], how


def cached_split(options: TrainOptions, cache: PairCache) -> tuple[CachedPairs, list[Pair], str]:
    """``(streamed training pairs, validation pairs in memory, how)`` of a cache: its
    own split (``--split all``: every pair streamed, no validation); ``--subjects N``
    keeps the first N subjects."""
    _check_split(options.split)

    def chosen(split: str) -> list[int]:
        return cache.indices(split, options.subjects)

    if options.split == "all":
        return cache.dataset(chosen("all"), ()), [], "all pairs, no validation (streamed)"
    val = cache.pairs(chosen("val"))
    return cache.dataset(chosen("train"), ()), val, "the cache's split (training pairs streamed)"
