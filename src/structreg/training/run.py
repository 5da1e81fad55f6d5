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

The lock: the training that holds it refreshes its time stamp every
:data:`LOCK_REFRESH_S` seconds. A lock is stale, and taken over with a warning, when its
holder is a process of this host that no longer runs, a process of another host that
has not refreshed it for :data:`LOCK_STALE_S` seconds, or when the file names no holder
at all (garbage) and is older than :data:`LOCK_WRITE_S` seconds; any other lock refuses
the training, naming its holder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.defaults import DEFAULT_SIZE, DEFAULT_SPACING
from ..errors import CheckpointError, RunExistsError, StructregWarning
from ..io.files import atomic_write_text, is_leftover

__all__ = [
    "LOCK_REFRESH_S",
    "LOCK_STALE_S",
    "LOCK_WRITE_S",
    "DataSettings",
    "RunFolder",
    "data_fingerprint",
    "model_data_settings",
    "model_spacing",
    "safetensors_data_settings",
]


LOCK_REFRESH_S = 30.0
"""How often a training refreshes its lock's time stamp (seconds)."""
LOCK_STALE_S = 600.0
"""A lock of another host not refreshed for this long (seconds) is stale."""
LOCK_WRITE_S = 10.0
"""A lock that names no holder and is older than this (seconds) is garbage, not one
being written."""


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

    STARTED = (CONFIG, DATA, LOG, LOCK, TENSORBOARD)
    """What a training writes when it starts, before its first checkpoint."""

    def is_unstarted(self) -> bool:
        """True when the folder holds what a training writes when it starts (config,
        data settings, log, lock, TensorBoard events, temporary files of its writes) and
        nothing else: no checkpoint, no best model, no other file."""
        if not self.path.is_dir() or self.path.is_symlink():
            return False
        entries = list(self.path.iterdir())
        ours = [
            e
            for e in entries
            if (e.name in self.STARTED and not e.is_symlink())
            or any(is_leftover(e.name, name) for name in self.STARTED)
        ]
        return bool(entries) and len(ours) == len(entries)

    def discard_unstarted(self) -> list[Path]:
        """Remove a training that was killed before its first checkpoint.

        Such a folder (:meth:`is_unstarted`) holds no state to resume, yet a new
        training refuses the non-empty folder. Nothing is removed when the folder
        holds a checkpoint, a best model or any other file. Returns the removed paths.

        Raises:
            RunExistsError: a live training holds the folder's lock.
        """
        if not self.is_unstarted():
            return []
        self.clear_stale_lock()  # a live training is named and refused
        self.clean_temporary_files()
        entries = list(self.path.iterdir())
        if not self.is_unstarted():
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
        """Hold the folder's exclusive training lock (``train.lock``: PID and host),
        refreshed every :data:`LOCK_REFRESH_S` seconds while held.

        A second process gets a :class:`RunExistsError` naming the holder; a stale or
        garbage lock is taken over with a warning (:meth:`clear_stale_lock`).
        """
        self.path.mkdir(parents=True, exist_ok=True)
        mine = f"{os.getpid()} {socket.gethostname()}\n"
        path = self.path / self.LOCK
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self.clear_stale_lock()  # a live holder is refused here
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(mine)
            break
        else:  # pragma: no cover - other processes keep taking the stale lock first
            raise RunExistsError(f"{self.path} is in use: could not take {path}; try again")
        stop = threading.Event()
        beat = threading.Thread(
            target=_refresh, args=(path, mine, stop), name="structreg-lock", daemon=True
        )
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            with contextlib.suppress(OSError):
                if path.read_text() == mine:
                    path.unlink()

    def clear_stale_lock(self) -> None:
        """Take over a stale lock (remove it, with a :class:`StructregWarning` naming its
        holder and why it is stale: see the module doc); refuse a live one, naming its
        PID and host (nothing to do without a lock)."""
        path = self.path / self.LOCK
        try:
            text, age = path.read_text(errors="replace"), time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return
        except OSError:
            text, age = "", time.time()
        holder = _holder(text)
        stale = _stale(holder, age)
        if stale is None:
            pid, host = holder or (-1, "")
            wait = (
                f"a lock naming no holder, written {age:.0f} s ago"
                if holder is None
                else f"PID {pid} on host {host}, refreshed {max(age, 0):.0f} s ago"
            )
            raise RunExistsError(
                f"{self.path} is in use: another training ({wait}) holds {path}; wait for "
                f"it or choose another --out"
            )
        warnings.warn(
            f"{self.path}: taking over the stale lock {path.name} ({stale})",
            StructregWarning,
            stacklevel=2,
        )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

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


def _refresh(path: Path, mine: str, stop: threading.Event) -> None:
    """Touch the lock ``path`` every :data:`LOCK_REFRESH_S` seconds while it is ``mine``,
    until ``stop`` is set (the lock's holder is seen to be alive)."""
    while not stop.wait(LOCK_REFRESH_S):
        with contextlib.suppress(OSError):
            if path.read_text() == mine:
                os.utime(path)


def _holder(text: str) -> tuple[int, str] | None:
    """``(pid, host)`` of a lock file's text, None when it names no holder."""
    pid_text, _, host = text.strip().partition(" ")
    if (
        not (pid_text.isascii() and pid_text.isdigit())
        or not host
        or not host.isprintable()
        or " " in host
    ):
        return None
    return int(pid_text), host


def _stale(holder: tuple[int, str] | None, age: float) -> str | None:
    """Why a lock of ``holder`` last written ``age`` seconds ago is stale, or None when
    it may belong to a live training."""
    if holder is None:
        return f"it names no holder and is {age:.0f} s old" if age >= LOCK_WRITE_S else None
    pid, host = holder
    if host == socket.gethostname():
        return None if _alive(pid) else f"its holder, PID {pid}, no longer runs on this host"
    if age >= LOCK_STALE_S:
        return (
            f"its holder, PID {pid} on host {host}, has not refreshed it for {age / 60:.0f} minutes"
        )
    return None


def _alive(pid: int) -> bool:
    """True when a process ``pid`` runs on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True
