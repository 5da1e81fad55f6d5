"""Models that ship inside the package: ``--model builtin:NAME``.

Each bundled model is a structreg ``safetensors`` file (weights, run config, data
settings and weights digest; :mod:`structreg.training.export`) in this package's
folder, described by one entry of ``models.json``:

| key | meaning |
|---|---|
| ``file`` | the ``.safetensors`` file next to ``models.json`` |
| ``sha256`` | SHA-256 of that file (checked on load) |
| ``description`` | one line: what the model registers |
| ``trained_on`` | the data spec, subjects and steps it was trained with |
| ``command`` | the results stage (``experiments/reproduce.py``) and the command that trained it |
| ``provenance`` | optional: the anatomies/subjects it was trained on, the held-out subject, the |
|           | label rule and the model it was fine-tuned from |
| ``scores`` | test scores of the reproduce run (``{benchmark: {method: mean Dice, ...}}``) |
| ``check`` | a quick reproduction (:mod:`structreg.evaluation.model_check`): data spec, |
|           | subjects, split, pairs and the Dice the model gives there (the tests redo it) |

Nothing is downloaded: a name that is not in ``models.json``, or a file missing from
an installation, is a one-line error.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, UsageError

__all__ = [
    "BUILTIN_PREFIX",
    "BundledModel",
    "bundled_models",
    "bundled_model",
    "file_sha256",
    "is_builtin",
    "resolve_model",
]

#: The prefix of a bundled model's name on the command line (``builtin:brain``).
BUILTIN_PREFIX = "builtin:"
#: The folder of the bundled files (this package).
FOLDER = Path(__file__).resolve().parent
MANIFEST = FOLDER / "models.json"


@dataclass(frozen=True)
class BundledModel:
    """One entry of ``models.json`` (see the module doc)."""

    name: str
    file: str
    sha256: str
    description: str
    trained_on: str
    command: str
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    check: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """The model file inside the installed package."""
        return FOLDER / self.file

    @property
    def spec(self) -> str:
        """``builtin:NAME``."""
        return f"{BUILTIN_PREFIX}{self.name}"

    def size_bytes(self) -> int:
        """The model file's size (0 when it is missing)."""
        return self.path.stat().st_size if self.path.is_file() else 0


@lru_cache(maxsize=1)
def _manifest() -> dict[str, BundledModel]:
    try:
        entries = json.loads(MANIFEST.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{MANIFEST}: unreadable bundled-model list ({exc})") from None
    return {name: BundledModel(name=name, **entry) for name, entry in entries.items()}


def bundled_models() -> list[BundledModel]:
    """Every bundled model, in the order of ``models.json``."""
    return list(_manifest().values())


def is_builtin(spec: str | os.PathLike) -> bool:
    """True for ``builtin:NAME``."""
    return isinstance(spec, str) and spec.startswith(BUILTIN_PREFIX)


def bundled_model(spec: str) -> BundledModel:
    """The entry of ``builtin:NAME`` (or ``NAME``); a usage error for unknown names."""
    name = spec[len(BUILTIN_PREFIX) :] if is_builtin(spec) else spec
    models = _manifest()
    if name not in models:
        known = ", ".join(f"{BUILTIN_PREFIX}{n}" for n in models) or "none"
        raise UsageError(f"unknown bundled model {spec!r} (bundled: {known})")
    return models[name]


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=8)
def _verified(path: str, sha256: str, mtime_ns: int) -> None:
    if file_sha256(path) != sha256:
        raise CheckpointError(
            f"{path}: the bundled model file does not match its SHA-256 in models.json "
            f"(damaged installation; reinstall structreg)"
        )


def resolve_model(spec: str | os.PathLike) -> str | os.PathLike:
    """``--model`` as a path: ``builtin:NAME`` becomes the bundled file (checked
    against its SHA-256), anything else is returned unchanged.

    Raises:
        UsageError: an unknown name. CheckpointError: the file is missing or damaged.
    """
    if not is_builtin(spec):
        return spec
    entry = bundled_model(str(spec))
    path = entry.path
    if not path.is_file():
        raise CheckpointError(
            f"{spec}: {path.name} is missing from this installation (reinstall structreg)"
        )
    _verified(str(path), entry.sha256, path.stat().st_mtime_ns)
    return path
