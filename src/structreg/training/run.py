"""The run folder: the one place that knows its file names and its data settings.

A run folder holds:

| file | content |
|---|---|
| ``config.toml`` | the resolved :class:`~structreg.training.config.RunConfig` |
| ``data.json`` | the :class:`DataSettings` the model was trained on (grid, data spec) |
| ``train_log.csv`` | one row per step (see :mod:`structreg.training.logger`) |
| ``checkpoint.pt`` | the latest checkpoint, with the training state for ``--resume`` |
| ``best.pt`` | the best validation model (what registration loads) |
| ``tensorboard/`` | TensorBoard events, when TensorBoard is installed |
| ``train.lock`` | PID and host of the process training in the folder (while it runs) |

Commands that take ``--model RUN`` accept the folder or one of its checkpoint
files; :meth:`RunFolder.of_model` finds the folder either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.defaults import DEFAULT_SIZE, DEFAULT_SPACING
from ..errors import CheckpointError, RunExistsError
from ..io.files import atomic_write_text

__all__ = [
    "DataSettings",
    "RunFolder",
    "data_fingerprint",
    "model_data_settings",
    "model_spacing",
    "safetensors_data_settings",
]


@dataclass(frozen=True)
class DataSettings:
    """The data a run was trained on.

    Attributes:
        size: processed image size in voxels (the model's grid).
        spacing: processed voxel spacing in mm.
        data: the data spec (``phantom:cardiac``, ``pairs:FILE.csv``, ...), if known.
        seed: the phantom and split seed.
        subjects, slices: the ``--subjects`` / ``--slices`` options, if given.
        fingerprint: digest of the training and validation pairs (ids and image
            contents) and the seed (:func:`data_fingerprint`); ``--resume`` refuses
            other data.
    """

    size: tuple[int, ...] = DEFAULT_SIZE
    spacing: tuple[float, ...] = DEFAULT_SPACING
    data: str | None = None
    seed: int | None = None
    subjects: int | None = None
    slices: int | None = None
    fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists for tuples)."""
        out = {
            "data": self.data,
            "size": list(self.size),
            "spacing": list(self.spacing),
            "seed": self.seed,
            "subjects": self.subjects,
            "slices": self.slices,
        }
        if self.fingerprint is not None:
            out["fingerprint"] = self.fingerprint
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSettings:
        """Inverse of :meth:`to_dict`; missing keys keep their defaults."""
        return cls(
            size=tuple(int(v) for v in data.get("size", DEFAULT_SIZE)),
            spacing=tuple(float(v) for v in data.get("spacing", DEFAULT_SPACING)),
            data=data.get("data"),
            seed=data.get("seed"),
            subjects=data.get("subjects"),
            slices=data.get("slices"),
            fingerprint=data.get("fingerprint"),
        )


class RunFolder:
    """A training run's folder (see the module doc for its files)."""

    CONFIG = "config.toml"
    DATA = "data.json"
    LOG = "train_log.csv"
    CHECKPOINT = "checkpoint.pt"
    BEST = "best.pt"
    TENSORBOARD = "tensorboard"
    LOCK = "train.lock"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @classmethod
    def of_model(cls, run_dir_or_file: str | os.PathLike) -> RunFolder:
        """The run folder of ``--model``: the folder itself, or a checkpoint file's folder."""
        path = Path(run_dir_or_file)
        return cls(path if path.is_dir() else path.parent)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def config_file(self) -> Path:
        return self.path / self.CONFIG

    @property
    def data_file(self) -> Path:
        return self.path / self.DATA

    @property
    def log_file(self) -> Path:
        return self.path / self.LOG

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def best(self) -> Path:
        return self.path / self.BEST

    @property
    def tensorboard(self) -> Path:
        return self.path / self.TENSORBOARD

    def holds_run(self) -> bool:
        """True when the folder holds a resumable checkpoint."""
        return self.checkpoint.exists()

    def clean_temporary_files(self) -> list[Path]:
        """Remove what a killed atomic write of this folder's own files left behind
        (``.checkpoint.pt.XXXX.tmp.pt`` and the like; nothing else). Returns them."""
        removed = []
        for name in (self.CHECKPOINT, self.BEST, self.CONFIG, self.DATA, self.LOG):
            for stale in self.path.glob(f".{name}.*.tmp*"):
                if stale.is_file():
                    stale.unlink()
                    removed.append(stale)
        return removed

    def discard_unstarted(self) -> list[Path]:
        """Remove a training that was killed before its first checkpoint.

        Such a folder holds only what a training writes when it starts (config, data
        settings, log, lock, TensorBoard events) and no state to resume, yet a new
        training refuses the non-empty folder. Nothing is removed when the folder
        holds a checkpoint, a best model or any other file. Returns the removed paths.

        Raises:
            RunExistsError: a live training holds the folder's lock.
        """
        if not self.path.is_dir() or self.holds_run() or self.best.exists():
            return []
        self.clear_stale_lock()  # a live training is named and refused
        self.clean_temporary_files()
        started = {self.CONFIG, self.DATA, self.LOG, self.LOCK, self.TENSORBOARD}
        entries = list(self.path.iterdir())
        if not entries or any(e.name not in started for e in entries):
            return []
        for entry in entries:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        return entries

    def is_empty(self) -> bool:
        """True when the folder is missing or holds nothing."""
        return not self.path.exists() or not any(self.path.iterdir())

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's exclusive training lock (``train.lock``: PID and host).

        A second process gets a :class:`RunExistsError` naming the holder; a lock
        left by a dead process of this host is taken over.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        mine = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(2):
            try:
                fd = os.open(self.path / self.LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self.clear_stale_lock()
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(mine)
            break
        else:  # pragma: no cover - a race with another process taking the stale lock
            self.clear_stale_lock()
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                if (self.path / self.LOCK).read_text() == mine:
                    (self.path / self.LOCK).unlink()

    def clear_stale_lock(self) -> None:
        """Remove the lock of a dead process of this host; refuse a live one, naming its
        PID and host (nothing to do without a lock)."""
        path = self.path / self.LOCK
        if not path.exists():
            return
        try:
            pid_text, _, host = path.read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            pid, host = -1, ""
        if host == socket.gethostname() and not _alive(pid):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        raise RunExistsError(
            f"{self.path} is in use: another training (PID {pid} on host "
            f"{host or 'unknown'}) holds {path}; wait for it or choose another "
            f"--out"
        )

    def model_file(self) -> Path:
        """``best.pt``, else ``checkpoint.pt``; ``FileNotFoundError`` when neither exists."""
        for path in (self.best, self.checkpoint):
            if path.is_file():
                return path
        raise FileNotFoundError(f"no {self.BEST} or {self.CHECKPOINT} in run folder {self.path}")

    def read_data_settings(self) -> DataSettings:
        """The run's :class:`DataSettings` (defaults when ``data.json`` is absent)."""
        if not self.data_file.is_file():
            return DataSettings()
        try:
            return DataSettings.from_dict(json.loads(self.data_file.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"{self.data_file}: unreadable run data settings ({' '.join(str(exc).split())})"
            ) from None

    def write_data_settings(self, settings: DataSettings) -> Path:
        """Atomically write ``data.json``."""
        self.path.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(self.data_file, json.dumps(settings.to_dict(), indent=1))


def model_data_settings(run_dir_or_file: str | os.PathLike) -> DataSettings:
    """The data settings a model was trained with: its run folder's ``data.json``, or
    the metadata of a ``.safetensors`` model file (also a bundled ``builtin:NAME``)."""
    from ..pretrained import resolve_model
    from .safetensors_format import is_safetensors

    run_dir_or_file = resolve_model(run_dir_or_file)
    if is_safetensors(run_dir_or_file):
        return safetensors_data_settings(run_dir_or_file)
    return RunFolder.of_model(run_dir_or_file).read_data_settings()


def safetensors_data_settings(path: str | os.PathLike) -> DataSettings:
    """The data settings stored in a structreg ``safetensors`` file (its ``data``
    metadata; :mod:`structreg.training.safetensors_format`)."""
    from .safetensors_format import safetensors_metadata

    meta = safetensors_metadata(Path(path))
    try:
        return DataSettings.from_dict(json.loads(meta.get("data", "{}")))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid data settings in the metadata ({exc})") from None


def model_spacing(run_dir_or_file: str | os.PathLike) -> tuple[float, ...]:
    """The processed spacing (mm) a model was trained with."""
    return model_data_settings(run_dir_or_file).spacing


def data_fingerprint(train_pairs: Any, val_pairs: Sequence[Any] | None, seed: int) -> str:
    """SHA-256 of the pairs' ids and image contents (train and validation, in order)
    and the seed: what a resumed run must train on again. ``train_pairs``: a list of
    pairs or streamed :class:`~structreg.data.cache.CachedPairs` (their cache's digest
    and indices)."""
    from ..data.cache import CachedPairs

    digest = hashlib.sha256(f"seed {seed}\n".encode())

    if isinstance(train_pairs, CachedPairs):  # streamed: the cache's digest and indices
        digest.update(f"cache {train_pairs.fingerprint()}\n".encode())
        train_pairs = []
    for split, pairs in (("train", train_pairs), ("val", val_pairs or [])):
        for pair in pairs:
            digest.update(f"{split} {pair.id}\n".encode())
            for array in (
                pair.moving,
                pair.fixed,
                pair.moving_labels,
                pair.fixed_labels,
                pair.mask,
            ):
                if array is not None:
                    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _alive(pid: int) -> bool:
    """True when a process ``pid`` runs on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
