"""Adaptation: fine-tuning a trained model on a cohort's own pairs, without labels.

The paper's protocol is to train on the cohort one studies, with its unsupervised
objective. :func:`adapt_model` does that from a trained model: the model's own run
settings (network, λ, KL weight, LCC window) with ``train.init`` set to the model,
the cohort as training data and - to know when to stop - the same cohort as the
validation set, scored by the objective itself (``train.monitor = "loss"``): no
labels are read. Training stops when the objective has not improved for
``patience`` validations, or at ``steps``; ``best.pt`` holds the lowest objective.

A small cohort is used whole: a batch never holds more pairs than the cohort, and
the engine's epoch permutation never repeats a pair inside a batch. The mask term
of the objective is kept only when every pair has a mask.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..data.pair import Pair
from ..errors import InputError
from .checkpoint import read_model
from .config import RunConfig, TrainConfig, apply_overrides
from .engine import train_run
from .run import DataSettings, model_data_settings

__all__ = [
    "ADAPT_DEFAULTS",
    "Adaptation",
    "adapt_model",
    "adaptation_config",
    "cohort_objective",
]

ADAPT_DEFAULTS = {
    "steps": 150,
    "batch_size": 8,
    "val_every": 30,
    "patience": 2,
    "min_delta": 0.5,
    "lr": 2e-4,
    "identical_rate": 0.0,
    "channels_last": True,
}
"""Step budget, pairs per step (at most the cohort's), objective checks (every
``val_every`` steps on the cohort; a check improves when the objective fell by more than
``min_delta``, in the objective's units), early-stopping patience and Adam step size of
an adaptation, chosen by the time to the plateau of the one-pass Dice on 20 validation
pairs (docs/results/speed.md). A step costs in proportion to its pairs: batches of 8 give
a 20-pair cohort 2.5 steps for the time of one whole-cohort step. Larger step sizes (5e-4
to 2e-3) first raise the objective (a fresh optimiser moves every weight at once) and
reach the plateau later; batches of 4 need as many pair-steps, less steadily. On the
brain cohort the Dice reaches its plateau after about 140 steps while the objective
still falls slowly, so the 150-step budget ends the run; the check rule (every 30 steps,
patience 2, ``min_delta`` 0.5) stops cohorts whose objective flattens earlier. No
identical pairs (a model trained with ``identical_rate`` adapts on the cohort's own
pairs only). The networks run channels-last (``train.channels_last``): on this project's
2-core CPU a step took 0.70x as long as in the standard layout, for the same objective to
float rounding. An adaptation writes no TensorBoard log unless ``--set
train.tensorboard=true``."""


@dataclass(frozen=True)
class Adaptation:
    """What an adaptation did.

    Attributes:
        run: the adapted model: the run folder (its ``best.pt``), or the model it
            started from when no check lowered the objective.
        steps: steps trained; ``stopped``: the reason it stopped before the budget
            (``""``: it used the whole budget).
        initial, final: the cohort's objective before and after (lower is better).
        seconds: wall time of the adaptation.
        mask: whether the objective's mask term was used.
    """

    run: str
    steps: int
    stopped: str
    initial: float
    final: float
    seconds: float
    mask: bool


def adaptation_config(
    model: str | os.PathLike,
    n_pairs: int,
    *,
    masks: bool,
    overrides: dict[str, Any] | None = None,
    settings: Sequence[str] = (),
) -> RunConfig:
    """The run configuration of an adaptation of ``model`` to a cohort of ``n_pairs``.

    Args:
        model: the model to start from (a run folder, checkpoint, ``.safetensors`` file
            or ``builtin:NAME``).
        n_pairs: the cohort's size (the batch is at most this).
        masks: every pair has a mask (else the mask term is off).
        overrides: :class:`TrainConfig` fields to set (e.g. ``{"steps": 100}``), over
            :data:`ADAPT_DEFAULTS` and the model's own training settings.
        settings: ``train.KEY=VALUE`` lines applied last (``structreg adapt --set``);
            the network's settings (``model.*``) are the model's and cannot change.
    """
    if n_pairs < 1:
        raise InputError("adapt: no pairs to adapt to")
    checkpoint, _ = read_model(model)
    config: RunConfig = checkpoint["config"]
    given = {**ADAPT_DEFAULTS, **(overrides or {})}
    unknown = sorted(set(given) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise InputError(f"adapt: unknown training setting(s) {', '.join(unknown)}")
    batch = int(given.pop("batch_size", None) or config.train.batch_size)
    train = replace(
        config.train,
        init=str(model),
        epochs=0,
        batch_size=min(batch, n_pairs),
        mask_weight=config.train.mask_weight if masks else 0.0,
        monitor="loss",
        max_seconds=0.0,
        frozen_norm=True,
        tensorboard=False,
        **given,
    )
    fixed = [s for s in settings if s.split("=", 1)[0].strip().startswith("model.")]
    if fixed:
        raise InputError(f"adapt: {fixed[0]}: the network's settings are the model's")
    config = apply_overrides(replace(config, train=train), list(settings))
    if config.train.batch_size > n_pairs:
        raise InputError(
            f"adapt: batch_size {config.train.batch_size} exceeds the cohort's {n_pairs} pairs"
        )
    return config


def cohort_objective(
    model: str | os.PathLike, pairs: Sequence[Pair], config: RunConfig, device: str = "cpu"
) -> float:
    """The mean training objective (the task's deterministic loss, eval mode) of
    ``model`` on ``pairs`` under ``config``'s weights (lower is better)."""
    from ..data.pair import collate_pairs
    from .checkpoint import load_model
    from .hooks import validate
    from .tasks import task_for

    net, _ = load_model(model, device, method=config.method)
    data = collate_pairs(list(pairs))
    data = {k: v.to(device) if hasattr(v, "to") else v for k, v in data.items()}
    return validate(task_for(config.method), net, data, config.train)["val_loss"]


def adapt_model(
    model: str | os.PathLike,
    pairs: Sequence[Pair],
    out: str | os.PathLike,
    *,
    overrides: dict[str, Any] | None = None,
    settings: Sequence[str] = (),
    progress: bool = False,
) -> Adaptation:
    """Fine-tune ``model`` on ``pairs`` into the new run folder ``out``.

    Args:
        model: the model to start from.
        pairs: the cohort, on the model's grid (``model_data_settings(model)``);
            their labels are dropped, never read.
        out: a new or empty run folder.
        overrides: training settings over :data:`ADAPT_DEFAULTS` (``steps``,
            ``val_every``, ``patience``, ``lr``, ``device``, ...).
        settings: ``train.KEY=VALUE`` lines applied last (``--set``).
        progress: show a progress bar.
    Returns:
        :class:`Adaptation` (the objectives measured on the cohort before and after).
    """
    from .config import resolve_device

    cohort = [replace(p, moving_labels=None, fixed_labels=None) for p in pairs]
    masks = bool(cohort) and all(p.mask is not None for p in cohort)
    given = {**ADAPT_DEFAULTS, **(overrides or {})}
    no_steps = _steps(given, settings) == 0  # the model unchanged (a run needs a step)
    given["steps"] = max(int(given["steps"]), 1)
    settings = [s for s in settings if not (no_steps and _is_steps(s))]
    config = adaptation_config(model, len(cohort), masks=masks, overrides=given, settings=settings)
    grid = model_data_settings(model)
    size = tuple(getattr(config.model, "image_size", ()) or grid.size)
    bad = [p.id for p in cohort if tuple(p.moving.shape) != size]
    if bad:
        raise InputError(f"adapt: pair {bad[0]} is not on the model's grid {size}")
    device = str(resolve_device(config.train.device))
    t0 = time.perf_counter()
    initial = cohort_objective(model, cohort, config, device)
    if no_steps:
        return _unchanged(model, out, initial, time.perf_counter() - t0, masks)
    data = DataSettings(size=size, spacing=tuple(grid.spacing), data="adapt")
    rows = train_run(config, cohort, cohort, out, progress=progress, data_settings=data)
    final = cohort_objective(out, cohort, config, device)
    stopped = "the objective stopped improving" if len(rows) < config.train.steps else ""
    if not final < initial:  # never worse than the model itself
        run, final = str(model), initial
        stopped = "the objective did not improve: the model is kept unchanged"
    else:
        run = str(out)
    return Adaptation(
        run=run,
        steps=len(rows),
        stopped=stopped,
        initial=initial,
        final=final,
        seconds=time.perf_counter() - t0,
        mask=masks,
    )


def _unchanged(
    model: str | os.PathLike, out: str | os.PathLike, objective: float, seconds: float, mask: bool
) -> Adaptation:
    """An adaptation of 0 steps: the model written unchanged as ``out/model.safetensors``."""
    from pathlib import Path

    from .export import export_safetensors
    from .run import RunFolder

    folder = RunFolder(out)
    if folder.path.exists() and not folder.is_empty():
        raise InputError(f"adapt: {folder.path} is not empty; adapt into a new or empty folder")
    folder.path.mkdir(parents=True, exist_ok=True)
    file = export_safetensors(model, Path(out) / "model.safetensors")
    return Adaptation(str(file), 0, "", objective, objective, seconds, mask)


def _is_steps(setting: str) -> bool:
    return setting.split("=", 1)[0].strip() in ("steps", "train.steps")


def _steps(given: dict[str, Any], settings: Sequence[str]) -> int:
    """The step budget: the last ``steps`` setting, else the overrides'."""
    for setting in reversed(settings):
        if _is_steps(setting) and "=" in setting:
            try:
                return int(setting.split("=", 1)[1])
            except ValueError:
                raise InputError(f"adapt: {setting}: steps must be an int") from None
    return int(given["steps"])
