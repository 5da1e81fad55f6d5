"""The training log: ``train_log.csv`` (one row per step, LF line ends throughout,
also across a resume) and optional TensorBoard (asked for but not
installed: a warning, once per log)."""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import StructregWarning
from ..io.files import atomic_write_text

__all__ = ["TrainLogger", "read_log"]


def _num(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def read_log(path: Path, max_step: int) -> list[dict[str, Any]]:
    """Rows of a ``train_log.csv`` up to ``max_step`` (numbers parsed), or ``[]``."""
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                step = int(row["step"])
            except (KeyError, ValueError):
                continue
            if step <= max_step:
                rows.append({k: _num(v) for k, v in row.items()})
    return rows


class TrainLogger:
    """Writes ``columns`` of each row to ``path`` (and to TensorBoard in ``tensorboard_dir``).

    The file is rewritten with the rows already covered (on resume: those up to the
    checkpoint's step, dropping any logged after it), then appended to row by row.
    """

    def __init__(
        self,
        path: Path,
        columns: Sequence[str],
        rows: Sequence[dict[str, Any]],
        tensorboard_dir: Path | None,
    ) -> None:
        self.path = path
        self.columns = tuple(columns)
        text = (
            ",".join(self.columns)
            + "\n"
            + "".join(",".join(_fmt(r.get(c)) for c in self.columns) + "\n" for r in rows)
        )
        atomic_write_text(self.path, text)
        self.fh = self.path.open("a", newline="", encoding="utf-8")
        self.writer = csv.writer(self.fh, lineterminator="\n")  # as the rows above
        self.tb = None if tensorboard_dir is None else _summary_writer(tensorboard_dir)

    def log(self, row: dict[str, Any]) -> None:
        """Append one row (and its finite float values to TensorBoard)."""
        self.writer.writerow([_fmt(row.get(c)) for c in self.columns])
        self.fh.flush()
        if self.tb is not None:
            for key in self.columns[2:]:
                value = row.get(key)
                if isinstance(value, float) and math.isfinite(value):
                    group = "val" if key.startswith("val_") else "train"
                    self.tb.add_scalar(f"{group}/{key}", value, row["step"])

    def close(self) -> None:
        """Close the file (and TensorBoard)."""
        self.fh.close()
        if self.tb is not None:
            self.tb.close()


def _summary_writer(folder: Path) -> Any:
    """A TensorBoard ``SummaryWriter`` logging into ``folder``, or None (with a
    :class:`StructregWarning`) when TensorBoard is not installed or cannot start."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn(
            "train.tensorboard = true, but TensorBoard is not installed (pip install "
            "tensorboard); logging to train_log.csv only",
            StructregWarning,
            stacklevel=3,
        )
        return None
    try:
        return SummaryWriter(log_dir=str(folder))
    except Exception as exc:  # an unwritable folder, a broken installation
        text = " ".join(str(exc).split()) or type(exc).__name__
        warnings.warn(
            f"TensorBoard could not start ({text}); logging to train_log.csv only",
            StructregWarning,
            stacklevel=3,
        )
        return None
