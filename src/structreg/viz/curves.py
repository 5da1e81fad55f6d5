"""Learning curves of trained runs: validation Dice and loss against steps and seconds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..training.logger import read_log
from ..training.run import RunFolder

__all__ = ["Curve", "learning_curve", "learning_curves_figure"]


class Curve:
    """A run's validation history.

    Attributes:
        step: ``(K,)`` steps at which validation ran.
        seconds: ``(K,)`` cumulative training wall time at those steps (s; steps and
            validations, from ``step_time_s`` of ``train_log.csv``).
        dice: ``(K,)`` validation Dice (NaN without labels).
        loss: ``(K,)`` validation loss (the method's own objective).
    """

    def __init__(
        self, step: np.ndarray, seconds: np.ndarray, dice: np.ndarray, loss: np.ndarray
    ) -> None:
        self.step, self.seconds, self.dice, self.loss = step, seconds, dice, loss

    @property
    def relative_loss(self) -> np.ndarray:
        """``(loss − loss₀) / |loss₀|``: the loss change since the first validation, so
        that methods with objectives on different scales share an axis."""
        if not len(self.loss) or self.loss[0] == 0:
            return self.loss * math.nan
        return (self.loss - self.loss[0]) / abs(self.loss[0])


def _value(row: dict[str, Any], key: str) -> float:
    value = row.get(key)
    return float(value) if isinstance(value, (int, float)) else math.nan


def learning_curve(run_dir: str | Path) -> Curve:
    """The validation history of a run folder's ``train_log.csv``.

    Raises:
        FileNotFoundError: the folder holds no ``train_log.csv``.
    """
    log = RunFolder(run_dir).log_file
    if not log.is_file():
        raise FileNotFoundError(f"no training log {log}")
    rows = read_log(log, 10**12)
    seconds = np.cumsum([_value(r, "step_time_s") for r in rows])
    picked = [
        (r, s) for r, s in zip(rows, seconds, strict=True) if math.isfinite(_value(r, "val_loss"))
    ]
    return Curve(
        np.array([_value(r, "step") for r, _ in picked]),
        np.array([s for _, s in picked]),
        np.array([_value(r, "val_dice") for r, _ in picked]),
        np.array([_value(r, "val_loss") for r, _ in picked]),
    )


def learning_curves_figure(
    panels: Mapping[str, Mapping[str, str | Path]],
    out: str | Path,
    colours: Sequence[str] = (),
    references: Mapping[str, Mapping[str, float]] | None = None,
) -> Path:
    """One row per data set, columns: validation Dice against steps and against
    seconds, and the relative validation loss against steps.

    Args:
        panels: data-set title -> {method label -> run folder}.
        out: the figure's path (PNG, PDF or SVG).
        references: data-set title -> {label -> validation Dice}, drawn as dashed
            horizontal lines on the Dice panels (e.g. no registration, a model before
            fine-tuning).
    """
    from matplotlib.figure import Figure

    from .figures import save_figure

    colours = list(colours) or ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
    fig = Figure(figsize=(13.5, 3.1 * len(panels)))
    axes = fig.subplots(len(panels), 3, squeeze=False)
    for row, (title, runs) in zip(axes, panels.items(), strict=True):
        for j, (label, run_dir) in enumerate(runs.items()):
            c = learning_curve(run_dir)
            style = {"color": colours[j % len(colours)], "label": label, "marker": ".", "lw": 1.2}
            row[0].plot(c.step, c.dice, **style)
            row[1].plot(c.seconds, c.dice, **style)
            row[2].plot(c.step, c.relative_loss, **style)
        for k, (label, value) in enumerate((references or {}).get(title, {}).items()):
            for ax in row[:2]:
                ax.axhline(value, color="0.4", ls=("--", ":", "-.")[k % 3], lw=1, label=label)
        row[0].set_ylabel(f"{title}\nvalidation Dice")
        row[1].set_ylabel("validation Dice")
        row[2].set_ylabel("validation loss, change\nsince first validation")
        row[0].set_xlabel("step")
        row[1].set_xlabel("training wall time (s)")
        row[2].set_xlabel("step")
        for ax in row:
            ax.grid(alpha=0.3)
        handles, labels = row[0].get_legend_handles_labels()
        row[2].legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return save_figure(fig, out)
