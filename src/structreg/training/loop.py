"""The training loop: :class:`Engine`, one loop for every trainable method, extended by
:class:`Hook` s.

:class:`Engine` owns the state of a run - network, optimiser, data order, step -
and knows four things: :meth:`~Engine.init` (seed, build), :meth:`~Engine.resume`
(restore a checkpoint exactly), :meth:`~Engine.step` (one optimisation step on
the next batch) and :meth:`~Engine.run` (step until the budget is spent, calling
the hooks). Validation, checkpoints, the log and the progress bar are hooks
(:mod:`structreg.training.hooks`); what is optimised is the method's
:class:`~structreg.training.tasks.TrainingTask`. :func:`structreg.training.engine.train`
trains a run folder with them.

Determinism: weight initialisation, data order (an explicit ``torch.Generator``)
and the reparameterisation noise (another one) all derive from ``seed``; a
checkpoint stores the model, the optimizer, the step, the epoch's permutation and
position in it, and every RNG state, so a resumed run ends with the same weights
as an uninterrupted one (on CPU; CUDA kernels are not all deterministic).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.cache import CachedPairs
from ..data.pair import Pair, collate_pairs
from ..errors import (
    CheckpointError,
    DataError,
    InputError,
    NonFiniteError,
    TrainingError,
)
from ..models.cvae import ModelConfig
from .checkpoint import init_weights, read_checkpoint, save_checkpoint, verify_digest
from .config import RESUMABLE_CHANGES, ConfigError, RunConfig, TrainConfig, resolve_device
from .distributed import SINGLE, Dist, shard
from .rng import capture_rng, restore_rng, seed_everything
from .run import RunFolder
from .tasks import task_for, with_identical_pairs

__all__ = ["Engine", "Hook", "LoopState"]


@dataclass
class LoopState:
    """Where the loop is: steps done, epoch, position in the epoch's permutation,
    the best validation score so far (higher is better), the validations since
    it improved (early stopping), the training wall time so far, and whether
    training stopped before its step budget."""

    step: int = 0
    epoch: int = 0
    position: int = 0
    perm: torch.Tensor | None = None
    best: float | None = None
    since_best: int = 0
    seconds: float = 0.0
    stopped: str | None = None

    def loop_dict(self) -> dict[str, Any]:
        """The checkpoint's ``loop`` entry."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "perm": self.perm,
            "best": self.best,
            "since_best": self.since_best,
            "seconds": self.seconds,
            "stopped": self.stopped,
        }


class Hook:
    """Something the engine calls at the start, after every step, and at the end.

    ``after_step`` receives the step's log row and may add to it; hooks run in
    the order given. ``close`` runs even when training fails.
    """

    def on_start(self, engine: Engine) -> None:
        """Called once before the first step (after init/resume)."""

    def after_step(self, engine: Engine, row: dict[str, Any]) -> None:
        """Called after each optimisation step."""

    def on_end(self, engine: Engine) -> None:
        """Called once after the last step, when training succeeded."""

    def close(self, engine: Engine) -> None:
        """Called once at the end, also after a failure."""


def _prepare(
    pairs: Sequence[Pair], size: tuple[int, ...] | None, what: str, device: torch.device
) -> dict[str, Any]:
    if not pairs:
        raise DataError(f"train: no {what} pairs")
    for p in pairs:
        if not isinstance(p, Pair):
            raise InputError(
                f"train: {what} pairs must be structreg.data.Pair, got {type(p).__name__}"
            )
        if size is not None and tuple(p.moving.shape) != size:
            raise DataError(
                f"train: {what} pair {p.id} has shape {tuple(p.moving.shape)} but "
                f"the model is built for image_size {size} (resample the data or "
                f"set model.image_size)"
            )
    batch = collate_pairs(pairs)
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def _check_resume(saved: RunConfig, current: RunConfig, path: Path) -> None:
    if saved.method != current.method:
        raise CheckpointError(
            f"cannot resume from {path}: it trains {saved.method}, not {current.method}"
        )
    if saved.model != current.model:
        now, then = current.model.to_dict(), saved.model.to_dict()
        diff = [k for k, v in now.items() if then.get(k) != v]
        raise CheckpointError(
            f"cannot resume from {path}: model settings differ ({', '.join(diff)})"
        )
    s, c = saved.train.to_dict(), current.train.to_dict()
    diff = [k for k in c if s[k] != c[k] and k not in RESUMABLE_CHANGES]
    if diff:
        raise CheckpointError(
            f"cannot resume from {path}: train settings differ "
            f"({', '.join(f'{k}: {s[k]!r} -> {c[k]!r}' for k in diff)}); only "
            f"{', '.join(sorted(RESUMABLE_CHANGES))} may change"
        )


def _missing_key(key: str) -> DataError:
    return DataError(
        f"train: mask_weight > 0 but the training pairs have no {key}s"
        if key == "mask"
        else f"train: no {key} in the data"
    )


class Engine:
    """Trains the method of ``config`` on ``train_pairs`` into ``run``.

    Args:
        config: the run's method, network and training settings.
        train_pairs, val_pairs: data (all of the model's spatial shape for ``ours``);
            ``train_pairs`` may be streamed (:class:`~structreg.data.cache.CachedPairs`,
            read batch by batch by a DataLoader with ``train.workers`` processes).
        run: the run folder.
        hooks: called in order (see :class:`Hook`); every rank runs them (they
            write only on rank 0).
        dist: this process's rank in a torchrun run (default: one process).
            ``train.batch_size`` is then the per-process batch and the global
            batch ``batch_size × world_size``; each rank takes its share of every
            global batch (:func:`~structreg.training.distributed.shard`).
    """

    def __init__(
        self,
        config: RunConfig,
        train_pairs: Sequence[Pair] | CachedPairs,
        val_pairs: Sequence[Pair] | None,
        run: RunFolder,
        hooks: Sequence[Hook] = (),
        dist: Dist = SINGLE,
    ) -> None:
        self.config = config
        self.run_folder = run
        self.hooks = list(hooks)
        self.dist = dist
        self.task = task_for(config.method)
        self.device = dist.device(resolve_device(config.train.device))
        size = tuple(config.model.image_size) if isinstance(config.model, ModelConfig) else None
        t = config.train
        self.stream: CachedPairs | None = None
        self.train_data: dict[str, Any] | None = None
        self.n = self._take_training_data(train_pairs, size, self.task.batch_keys(t))
        # every rank knows whether there is validation; only rank 0 holds its pairs
        self.has_validation = bool(val_pairs)
        self.val_data = (
            _prepare(val_pairs, size, "validation", self.device)
            if val_pairs and dist.is_main
            else None
        )
        if self.n < dist.world_size:
            raise DataError(
                f"train: {self.n} training pairs cannot feed {dist.world_size} processes"
            )
        self.batch_size = min(t.batch_size, self.n // dist.world_size)  # per process
        self.global_batch = self.batch_size * dist.world_size
        self.per_epoch = self.n // self.global_batch
        self.max_steps = t.steps if t.steps > 0 else t.epochs * self.per_epoch
        self._stream_iter: Any = None
        self.state = LoopState()
        self.rows: list[dict[str, Any]] = []
        self.step_started = 0.0
        self.improved = False  # set by validation when this step's model is the best so far
        self.model: nn.Module
        self.optimizer: torch.optim.Optimizer
        self.shuffle: torch.Generator
        self.noise: torch.Generator

    def _take_training_data(
        self,
        train_pairs: Sequence[Pair] | CachedPairs,
        size: tuple[int, ...] | None,
        keys: Sequence[str],
    ) -> int:
        """Check the training data and keep them: streamed pairs as ``self.stream``, the
        others collated on the device as ``self.train_data``; returns their number."""
        if isinstance(train_pairs, CachedPairs):
            missing = [k for k in keys if k not in train_pairs.cache.arrays]
            if missing:
                raise _missing_key(missing[0])
            if size is not None and train_pairs.cache.shape != size:
                raise DataError(
                    f"train: the cache holds pairs of shape {train_pairs.cache.shape} but "
                    f"the model is built for image_size {size}"
                )
            if not len(train_pairs):
                raise DataError("train: no training pairs")
            self.stream = train_pairs.cache.dataset(train_pairs.indices, keys)
            return len(self.stream)
        self.train_data = _prepare(train_pairs, size, "training", self.device)
        for key in keys:
            if self.train_data.get(key) is None:
                raise _missing_key(key)
        return int(self.train_data["moving"].shape[0])

    @property
    def train_config(self) -> TrainConfig:
        return self.config.train

    def init(self) -> None:
        """Seed every RNG, build the network, its training wrapper and its optimiser.

        Under DDP every rank draws the same weights, data order and noise stream:
        each draws the noise of the whole global batch and uses its share, so the
        ranks' RNG states stay equal and K processes draw what one process would."""
        t = self.train_config
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        self.shuffle, self.noise = seed_everything(t.seed)
        model = self.task.build(self.config.model).to(self.device)
        if t.channels_last:
            from ..models.inference import channels_last

            model = channels_last(model, self.config.model.ndim)
        if self.dist.enabled and t.sync_batchnorm:
            if self.device.type != "cuda":
                raise ConfigError(
                    "train.sync_batchnorm needs CUDA devices (torch.nn.SyncBatchNorm); "
                    "on CPUs each process keeps its own batch statistics"
                )
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        part = (self.dist.rank, self.dist.world_size)
        net: nn.Module = self.task.training_module(model, t, part)
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            net = DistributedDataParallel(net, device_ids=ids)
        if t.compile:
            net = torch.compile(net)  # type: ignore[assignment]
        self.net = net
        self.optimizer = self.task.optimizer(self.model, t)

    def start_from(self, source: str) -> None:
        """Load the weights of ``source`` (``train.init``) into the fresh network."""
        self.model.load_state_dict(init_weights(source, self.config), strict=True)

    def resume(self) -> None:
        """Restore the run folder's checkpoint: weights, optimiser, RNGs, data order."""
        path = self.run_folder.checkpoint
        ckpt = read_checkpoint(path)
        _check_resume(ckpt["config"], self.config, path)
        verify_digest(ckpt, path)
        if ckpt["optimizer"] is None or ckpt["rng"] is None or ckpt.get("loop") is None:
            raise CheckpointError(f"cannot resume from {path}: it holds no training state")
        loop = ckpt["loop"]
        world = int(loop.get("world_size", 1))
        if world != self.dist.world_size:
            raise CheckpointError(
                f"cannot resume from {path}: it was trained by {world} process(es), now "
                f"{self.dist.world_size}; resume with the same number of processes"
            )
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        restore_rng(ckpt["rng"], self.shuffle, self.noise)
        self.state = LoopState(
            step=ckpt["step"],
            epoch=loop["epoch"],
            position=loop["position"],
            perm=loop["perm"],
            best=loop["best"],
            since_best=int(loop.get("since_best", 0)),
            seconds=float(loop.get("seconds", 0.0)),
        )
        perm = self.state.perm
        if perm is not None and perm.numel() != self.n:
            raise CheckpointError(
                f"cannot resume from {path}: it was trained on {perm.numel()} pairs, now {self.n}"
            )

    def training_state(self) -> dict[str, Any]:
        """The checkpoint's ``rng`` and ``loop`` entries, for exact resumption (under
        DDP rank 0's: every rank's data-order and noise generators are equal)."""
        loop = self.state.loop_dict()
        if self.dist.enabled:
            loop["world_size"] = self.dist.world_size
        return {"rng": capture_rng(self.shuffle, self.noise), "loop": loop}

    def save(self, path: Path, *, with_state: bool) -> None:
        """Checkpoint the model (and, ``with_state``, the optimiser and training state);
        under DDP only rank 0 writes."""
        if not self.dist.is_main:
            return
        if with_state:
            state = self.training_state()
            save_checkpoint(
                path,
                self.model,
                self.config,
                optimizer=self.optimizer,
                step=self.state.step,
                **state,
            )
        else:
            save_checkpoint(
                path, self.model, self.config, step=self.state.step, rng=None, loop=None
            )

    def _global_indices(self, position: int) -> torch.Tensor:
        assert self.state.perm is not None
        g = self.global_batch
        return self.state.perm[position * g : (position + 1) * g]

    def _stream_batches(self) -> Any:
        """This rank's batch indices from the current position on, epoch after epoch,
        for the streamed data's DataLoader (which runs ahead of training by its
        prefetch). Later epochs' permutations come from a copy of the data-order
        generator, so they are the ones the engine itself draws when it gets there."""
        assert self.state.perm is not None
        perm, start = self.state.perm, self.state.position
        ahead = torch.Generator().manual_seed(0)
        ahead.set_state(self.shuffle.get_state())
        g = self.global_batch
        while True:
            for p in range(start, self.per_epoch):
                yield shard(perm[p * g : (p + 1) * g], self.dist).tolist()
            perm, start = torch.randperm(self.n, generator=ahead), 0

    def _stream_loader(self) -> Any:
        """A DataLoader over the streamed data in the engine's order (the workers only
        read; they live for the whole run)."""
        from torch.utils.data import DataLoader

        workers = self.train_config.workers
        return DataLoader(
            self.stream,  # type: ignore[arg-type]
            batch_sampler=self._stream_batches(),
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=2 if workers else None,
        )

    def _next_batch(self) -> dict[str, torch.Tensor]:
        s = self.state
        if s.position == 0 or s.perm is None:
            s.perm = torch.randperm(self.n, generator=self.shuffle)
            s.position = 0
        idx = shard(self._global_indices(s.position), self.dist)
        if self.stream is not None:
            if self._stream_iter is None:
                self._stream_iter = iter(self._stream_loader())
            batch = next(self._stream_iter)
            got = batch.pop("index")
            if not torch.equal(got, idx):  # the loader must follow the engine's order
                raise TrainingError(
                    f"streamed data out of order at step {s.step + 1}: got pairs "
                    f"{got.tolist()}, expected {idx.tolist()}"
                )
            return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        assert self.train_data is not None
        idx = idx.to(self.device)
        return {
            k: self.train_data[k].index_select(0, idx)
            for k in self.task.batch_keys(self.train_config)
        }

    def step(self) -> dict[str, Any]:
        """One optimisation step on the next batch; returns its log row."""
        self.step_started = time.perf_counter()
        self.improved = False
        s = self.state
        t = self.train_config
        batch = with_identical_pairs(
            self._next_batch(), t.identical_rate, t.identical_noise, self.noise
        )
        row_epoch = s.epoch
        try:
            parts = self.task.train_step(
                self.model, self.optimizer, batch, self.train_config, self.noise, self.net
            )
        except NonFiniteError:  # an op saw NaN/Inf before the loss did
            parts = {"total": math.nan, **{t: math.nan for t in self.task.terms}}
        if self.dist.enabled:  # the global batch's terms, the same on every rank
            names = ["total", *self.task.terms]
            parts = dict(zip(names, self.dist.mean([parts[k] for k in names]), strict=True))
        if not math.isfinite(parts["total"]):
            raise TrainingError(
                f"training diverged at step {s.step + 1} (loss "
                f"{parts['total']}); try a smaller train.lr"
            )
        s.step += 1
        s.position += 1
        if s.position == self.per_epoch:
            s.position, s.epoch = 0, s.epoch + 1
        row: dict[str, Any] = {"step": s.step, "epoch": row_epoch, "loss": parts["total"]}
        row.update({t: parts[t] for t in self.task.terms})
        return row

    @property
    def last_step(self) -> bool:
        """True after the step that spends the budget, or when training stops here
        (early stopping, the time budget)."""
        return self.state.step == self.max_steps or self.state.stopped is not None

    def stop(self, reason: str) -> None:
        """End training after the current step (the hooks still see it as the last)."""
        self.state.stopped = reason

    def run(self) -> list[dict[str, Any]]:
        """Step until the budget is spent or training stops, calling the hooks;
        returns the log rows."""
        try:
            for hook in self.hooks:
                hook.on_start(self)
            while self.state.step < self.max_steps and self.state.stopped is None:
                row = self.step()
                for hook in self.hooks:
                    hook.after_step(self, row)
                self.rows.append(row)
            for hook in self.hooks:
                hook.on_end(self)
        finally:
            self._stream_iter = None  # ends the DataLoader's worker processes
            for hook in self.hooks:
                hook.close(self)
        return self.rows
