"""The training engine's hooks: validation, the log (its columns:
:func:`log_columns`), checkpoints, progress.

:func:`default_hooks` gives them in the order they must run after each step:
validation adds its metrics to the step's row and says whether the model
improved; the log writes the row; checkpoints write ``best.pt`` when it improved
and ``checkpoint.pt`` on the checkpoint cadence and at the last step; the
progress display goes last.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn

from ..core import metrics
from ..core.layers import evaluating
from ..core.ops import warp
from .config import TrainConfig
from .logger import TrainLogger, read_log
from .loop import Engine, Hook
from .tasks import TrainingTask

__all__ = [
    "CheckpointHook",
    "LogHook",
    "ProgressHook",
    "ValidationHook",
    "default_hooks",
    "log_columns",
    "validate",
    "validation_score",
]


def log_columns(task: TrainingTask) -> tuple[str, ...]:
    """The columns of ``train_log.csv`` for a method."""
    return (
        "step",
        "epoch",
        "loss",
        *task.terms,
        "val_loss",
        *(f"val_{t}" for t in task.val_terms),
        "val_dice",
        "val_dice_before",
        "val_folding_pct",
        "step_time_s",
    )


def _nanmean(x: torch.Tensor) -> float:
    x = x[~torch.isnan(x)]
    return float(x.mean()) if x.numel() else math.nan


def _label_values(data: dict[str, Any]) -> list[int]:
    if data.get("fixed_labels") is None or data.get("moving_labels") is None:
        return []
    values = torch.cat([data["fixed_labels"].unique(), data["moving_labels"].unique()]).unique()
    return [int(v) for v in values if int(v) != 0]


def _dice_table(moved: torch.Tensor, fixed: torch.Tensor, labels: list[int]) -> torch.Tensor:
    """``(N, len(labels))`` float64 Dice per pair and label value (NaN where absent)."""
    a, b = moved.cpu().numpy(), fixed.cpu().numpy()
    return torch.tensor(
        [[metrics.dice(a[i], b[i], [value]) for value in labels] for i in range(a.shape[0])],
        dtype=torch.float64,
    )


@torch.no_grad()
def validate(
    task: TrainingTask,
    model: nn.Module,
    data: dict[str, Any],
    config: TrainConfig,
    batch_size: int | None = None,
) -> dict[str, float]:
    """Deterministic registration (eval mode) of a validation set.

    Args:
        data: :func:`structreg.data.collate_pairs` output (tensors on the model's
            device).
    Returns:
        ``val_loss`` and ``val_<term>`` (the task's objective, deterministically),
        ``val_dice`` (mean over pairs and the non-zero label values present of the
        Dice of the warped moving labels against the fixed labels; NaN without
        labels), ``val_dice_before`` (same without registration) and
        ``val_folding_pct`` (% of pixels with det J ≤ 0).
    """
    n = data["moving"].shape[0]
    batch_size = batch_size or config.batch_size
    labels = _label_values(data)
    sums: dict[str, float] = {f"val_{k}": 0.0 for k in ("loss", *task.val_terms)}
    folding = 0.0
    dices, dices_before = [], []
    with evaluating(model):
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            moving, fixed = data["moving"][sl], data["fixed"][sl]
            mask = data["mask"][sl] if data.get("mask") is not None else None
            disp, parts = task.evaluate(model, moving, fixed, mask, config)
            m = moving.shape[0]
            for key, value in parts.items():
                sums[f"val_{key}"] += value * m
            folding += float(np.sum(metrics.batch_folding_percent(disp)))
            if labels:
                ml, fl = data["moving_labels"][sl], data["fixed_labels"][sl]
                moved = warp(ml.to(disp.dtype), disp, mode="nearest").round().long()
                dices.append(_dice_table(moved, fl, labels))
                dices_before.append(_dice_table(ml, fl, labels))
    result = {k: v / n for k, v in sums.items()}
    result[f"val_{metrics.FOLDING}"] = folding / n
    result["val_dice"] = _nanmean(torch.cat(dices)) if dices else math.nan
    result["val_dice_before"] = _nanmean(torch.cat(dices_before)) if dices_before else math.nan
    return result


def validation_score(result: dict[str, float], monitor: str = "dice") -> float:
    """The score (higher is better) that picks ``best.pt`` and drives early stopping:
    ``monitor="dice"``: the validation Dice, or minus the validation loss where the
    pairs have no labels; ``monitor="loss"``: minus the validation loss."""
    if monitor == "dice" and math.isfinite(result["val_dice"]):
        return result["val_dice"]
    return -result["val_loss"]


class ValidationHook(Hook):
    """Validates every ``val_every`` steps and at the last step; keeps the best score
    (:func:`validation_score` of ``train.monitor``).

    Also ends training early: after ``patience`` validations in a row without an
    improvement above ``min_delta``, or once the training wall time reaches
    ``max_seconds`` (checked before validating, so the last step is validated).

    Under DDP rank 0 validates and decides; its decisions (stop, best, improved)
    are broadcast, so every rank leaves the loop at the same step.
    """

    def on_start(self, engine: Engine) -> None:
        # a resumed run whose time budget is already spent trains no further step
        cfg = engine.train_config
        if cfg.max_seconds and engine.state.seconds >= cfg.max_seconds:
            engine.stop(f"time budget of {cfg.max_seconds:g} s reached")

    def after_step(self, engine: Engine, row: dict[str, Any]) -> None:
        cfg = engine.train_config
        dist = engine.dist
        if cfg.max_seconds and not engine.last_step:
            spent = engine.state.seconds + time.perf_counter() - engine.step_started
            stop = dist.broadcast(spent >= cfg.max_seconds)
            if stop:
                engine.stop(f"time budget of {cfg.max_seconds:g} s reached")
        due = (cfg.val_every and engine.state.step % cfg.val_every == 0) or engine.last_step
        if not engine.has_validation or not due:
            return
        if dist.is_main:
            self._validate(engine, row)
        state = engine.state
        decided = (state.best, state.since_best, state.stopped, engine.improved)
        state.best, state.since_best, state.stopped, engine.improved = dist.broadcast(decided)

    @staticmethod
    def _validate(engine: Engine, row: dict[str, Any]) -> None:
        cfg = engine.train_config
        assert engine.val_data is not None
        result = validate(engine.task, engine.model, engine.val_data, cfg, engine.batch_size)
        row.update(result)
        score = validation_score(result, cfg.monitor)
        state = engine.state
        if state.best is None or score > state.best:
            if state.best is None or score > state.best + cfg.min_delta:
                state.since_best = 0
            else:
                state.since_best += 1
            state.best, engine.improved = score, True
        else:
            state.since_best += 1
        if cfg.patience and state.since_best >= cfg.patience and not engine.last_step:
            engine.stop(
                f"no validation improvement above {cfg.min_delta:g} in {cfg.patience} "
                f"validations (best {state.best:.4g})"
            )


class LogHook(Hook):
    """``train_log.csv`` (and TensorBoard): one row per step, with its wall time."""

    def __init__(self) -> None:
        self.logger: TrainLogger | None = None

    def on_start(self, engine: Engine) -> None:
        if not engine.dist.is_main:  # rank 0 logs the global batch's terms
            return
        run = engine.run_folder
        engine.rows = read_log(run.log_file, engine.state.step) if engine.state.step else []
        tensorboard = run.tensorboard if engine.train_config.tensorboard else None
        self.logger = TrainLogger(run.log_file, log_columns(engine.task), engine.rows, tensorboard)

    def after_step(self, engine: Engine, row: dict[str, Any]) -> None:
        row["step_time_s"] = time.perf_counter() - engine.step_started
        engine.state.seconds += row["step_time_s"]
        if self.logger is not None:
            self.logger.log(row)

    def close(self, engine: Engine) -> None:
        if self.logger is not None:
            self.logger.close()


class CheckpointHook(Hook):
    """``best.pt`` when validation improved (or, without validation, at the end);
    ``checkpoint.pt`` every ``checkpoint_every`` steps and at the last step."""

    def after_step(self, engine: Engine, row: dict[str, Any]) -> None:
        if engine.improved:
            engine.save(engine.run_folder.best, with_state=False)
        every = engine.train_config.checkpoint_every
        if (every and engine.state.step % every == 0) or engine.last_step:
            engine.save(engine.run_folder.checkpoint, with_state=True)

    def on_end(self, engine: Engine) -> None:
        if not engine.has_validation:  # no validation: "best" is the final model
            engine.save(engine.run_folder.best, with_state=False)


class ProgressHook(Hook):
    """A progress bar on a terminal; elsewhere one plain line every ``every`` steps
    (and at the end), so a batch job's log stays small."""

    def __init__(self, stream: TextIO | None = None, every: int = 50) -> None:
        self.stream = stream
        self.every = every
        self.bar: Any = None

    def on_start(self, engine: Engine) -> None:
        stream = self.stream or sys.stderr
        self.stream = stream
        if stream.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=engine.max_steps,
                initial=engine.state.step,
                dynamic_ncols=True,
                desc="train",
                unit="step",
                file=stream,
            )

    @staticmethod
    def _summary(row: dict[str, Any]) -> dict[str, str]:
        out = {"loss": f"{row['loss']:.3g}"}
        out.update({k: f"{row[k]:.3g}" for k in ("lcc", "kl", "ncc") if k in row})
        if "val_dice" in row and math.isfinite(row["val_dice"]):
            out["dice"] = f"{row['val_dice']:.3f}"
        return out

    def after_step(self, engine: Engine, row: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(self._summary(row), refresh=False)
        elif engine.state.step % self.every == 0 or engine.last_step:
            text = ", ".join(f"{k} {v}" for k, v in self._summary(row).items())
            assert self.stream is not None
            print(
                f"train: step {engine.state.step}/{engine.max_steps}: {text}",
                file=self.stream,
                flush=True,
            )

    def on_end(self, engine: Engine) -> None:
        if engine.state.stopped is not None:
            assert self.stream is not None
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            print(
                f"train: stopped at step {engine.state.step}/{engine.max_steps}: "
                f"{engine.state.stopped}",
                file=self.stream,
                flush=True,
            )

    def close(self, engine: Engine) -> None:
        if self.bar is not None:
            self.bar.close()


def default_hooks(progress: bool = True) -> list[Hook]:
    """Validation, log, checkpoints and (when ``progress``) progress, in that order."""
    hooks: list[Hook] = [ValidationHook(), LogHook(), CheckpointHook()]
    if progress:
        hooks.append(ProgressHook())
    return hooks
