"""Training a method into a run folder: :func:`train` (the library's entry point, from
the network's and the optimisation's settings) and :func:`train_run` (the same from a
resolved :class:`~structreg.training.config.RunConfig`).

Both claim the run folder first (refusing one that holds a run or other files unless
resuming, starting over one left by a training that stopped before its first
checkpoint, and taking its lock), then build an :class:`Engine`
(:mod:`structreg.training.loop`) with the default hooks
(:mod:`structreg.training.hooks`), restore or initialise it and run it. A training
that fails before its first checkpoint in a folder that was new or empty leaves it so.
:class:`Engine`, :class:`Hook`, :class:`LoopState` and :func:`log_columns` are
re-exported here.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from ..data.cache import CachedPairs
from ..data.pair import Pair
from ..errors import CheckpointError, RunExistsError, StructregWarning
from .config import RunConfig, TrainConfig, save_config
from .distributed import SINGLE, Dist
from .hooks import default_hooks, log_columns
from .loop import Engine, Hook, LoopState
from .run import DataSettings, RunFolder, data_fingerprint

__all__ = ["Engine", "Hook", "LoopState", "log_columns", "train", "train_run"]


def train(
    model_config: Any,
    train_config: TrainConfig,
    train_pairs: Sequence[Pair] | CachedPairs,
    val_pairs: Sequence[Pair] | None,
    out_dir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    method: str = "ours",
    data_settings: DataSettings | None = None,
    dist: Dist = SINGLE,
) -> list[dict[str, Any]]:
    """Train a method and write its run folder.

    Args:
        model_config: the network's settings (:class:`~structreg.models.cvae.ModelConfig`
            for ``ours``, :class:`~structreg.models.voxelmorph.VoxelMorphConfig` for
            ``voxelmorph``).
        train_config: the optimisation settings.
        train_pairs: training pairs (for ``ours`` all of spatial shape
            ``model_config.image_size``).
        val_pairs: validation pairs (may be empty/None: no validation).
        out_dir: run folder; receives ``config.toml`` (resolved settings),
            ``train_log.csv`` (columns :func:`log_columns`, one row per step,
            validation columns filled at validation steps), ``checkpoint.pt``
            (latest, for resuming) and ``best.pt`` (best validation Dice, or
            lowest validation loss without labels, or the final model without a
            validation set); ``tensorboard/`` when TensorBoard is installed.
        resume: continue from ``out_dir/checkpoint.pt`` up to ``train_config``'s
            step budget; the result equals an uninterrupted run with the same
            seed. Without ``resume`` an existing run folder is refused.
        progress: show a progress bar.
        method: ``"ours"`` or ``"voxelmorph"``.
        data_settings: what to record in ``data.json`` (the grid, the data spec);
            the data's fingerprint is added. A resume on data with another
            fingerprint is refused before anything is written.
        dist: this process's rank in a torchrun run (see :class:`Engine`); rank 0
            checks and locks the run folder and writes everything in it, the
            other ranks only train.
    Returns:
        The log rows (dicts keyed by :func:`log_columns`) from step 1 to the last
        (rank 0; the other ranks' rows hold only the training loss).
    """
    run = RunFolder(out_dir)
    with _claim(run, resume, dist) as resume:
        config = RunConfig(model=model_config, train=train_config, method=method)
        return _train_claimed(
            run, config, train_pairs, val_pairs, resume, progress, data_settings, dist
        )


def train_run(
    config: RunConfig,
    train_pairs: Sequence[Pair] | CachedPairs,
    val_pairs: Sequence[Pair] | None,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    data_settings: DataSettings | None = None,
    dist: Dist = SINGLE,
) -> list[dict[str, Any]]:
    """:func:`train` of a resolved run configuration (its method, network and training
    settings); the other arguments and the result as :func:`train`'s."""
    run = RunFolder(out_dir)
    with _claim(run, resume, dist) as resume:
        return _train_claimed(
            run, config, train_pairs, val_pairs, resume, progress, data_settings, dist
        )


@contextlib.contextmanager
def _claim(run: RunFolder, resume: bool, dist: Dist) -> Iterator[bool]:
    """Hold the run folder for a training; yields whether to resume.

    A folder left by a training that stopped before its first checkpoint is started
    over (with a warning; also when resuming: it holds nothing to resume). Otherwise a
    resume needs a checkpoint; on rank 0 (the other ranks only train) a folder that a
    live training holds, or that holds a run or other files (unless resuming), is
    refused; then the folder is locked and what killed writes left is removed. When the
    training fails before its first checkpoint in a folder that was new or empty, what
    it wrote is removed again."""
    unstarted = not run.checkpoint.is_file() and run.is_unstarted()
    if resume and not run.checkpoint.is_file() and not unstarted:
        raise FileNotFoundError(f"cannot resume: no {RunFolder.CHECKPOINT} in {run.path}")
    resume = resume and not unstarted
    if not dist.is_main:
        yield resume
        return
    run.clear_stale_lock()  # a live training here is named and refused first
    if unstarted and run.discard_unstarted():
        warnings.warn(
            f"{run.path}: a training there stopped before its first checkpoint; starting it over",
            StructregWarning,
            stacklevel=3,
        )
    if not resume and run.holds_run():
        raise RunExistsError(
            f"{run.path} already holds a run ({RunFolder.CHECKPOINT}); resume "
            f"it or choose another output folder"
        )
    if not resume and not run.is_empty():
        raise RunExistsError(
            f"{run.path} is not empty; train into a new or empty folder (or --resume a run)"
        )
    existed, held = run.path.exists(), False
    try:
        with run.lock():
            held = True
            run.clean_temporary_files()  # left by a write that a kill interrupted
            yield resume
    except BaseException:
        if held and not resume and not run.holds_run():
            _undo_start(run, existed)
        raise


def _undo_start(run: RunFolder, existed: bool) -> None:
    """Remove what a failed training wrote into a folder that was new or empty before
    it (its best model, the files of its start; the folder itself when it was new)."""
    with contextlib.suppress(OSError, RunExistsError):
        run.best.unlink(missing_ok=True)
        run.discard_unstarted()
        if not existed and run.is_empty():
            run.path.rmdir()


def _train_claimed(
    run: RunFolder,
    config: RunConfig,
    train_pairs: Sequence[Pair] | CachedPairs,
    val_pairs: Sequence[Pair] | None,
    resume: bool,
    progress: bool,
    data_settings: DataSettings | None,
    dist: Dist,
) -> list[dict[str, Any]]:
    """Build, initialise (or resume) and run the engine in a claimed run folder; rank 0
    writes the config and the data settings first."""
    fingerprint = data_fingerprint(train_pairs, val_pairs, config.train.seed)
    if resume:
        saved = run.read_data_settings().fingerprint
        if saved is not None and saved != fingerprint:
            raise CheckpointError(
                f"cannot resume {run.path}: the training data differ from "
                f"the run's (other pairs, contents, split or seed)"
            )
    hooks = default_hooks(progress=progress and dist.is_main)
    engine = Engine(config, train_pairs, val_pairs, run, hooks, dist=dist)
    engine.init()
    if resume:
        engine.resume()
    elif config.train.init:
        engine.start_from(config.train.init)
    if dist.is_main:
        run.path.mkdir(parents=True, exist_ok=True)
        save_config(config, run.config_file)
        if isinstance(train_pairs, CachedPairs):
            grid = (train_pairs.cache.shape, train_pairs.cache.spacing)
        else:
            grid = (tuple(train_pairs[0].moving.shape), tuple(train_pairs[0].spacing))
        settings = data_settings or DataSettings(size=grid[0], spacing=grid[1])
        run.write_data_settings(replace(settings, fingerprint=fingerprint))
    return engine.run()
