"""The structreg ``safetensors`` model file: its name, its metadata and how it is read.

A model file holds a network's weights without pickle, plus metadata (all strings,
as the format requires)::

    {"format": "structreg", "format_version": "1", "config": RunConfig.to_dict() as JSON,
     "data": DataSettings.to_dict() as JSON, "digest": SHA-256 of the weights,
     "state_digest": SHA-256 of the config and step (checkpoint.state_digest), "step": "N"}

Files written before ``state_digest`` existed (the bundled models) are read without it.

:func:`read_safetensors` gives the same checkpoint dict as
:func:`structreg.training.checkpoint.read_checkpoint`; the writer is
:func:`structreg.training.export.export_safetensors`, the data settings are read by
:func:`structreg.training.run.safetensors_data_settings`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError
from .config import RunConfig

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SAFETENSORS_SUFFIX",
    "is_safetensors",
    "read_safetensors",
    "safetensors_metadata",
]

SAFETENSORS_SUFFIX = ".safetensors"
FORMAT = "structreg"
FORMAT_VERSION = "1"


def is_safetensors(path: str | os.PathLike) -> bool:
    """True for a ``.safetensors`` path."""
    return str(path).lower().endswith(SAFETENSORS_SUFFIX)


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The metadata of a ``safetensors`` file (empty when it has none); a file that is
    not readable as one is a :class:`CheckpointError` naming it."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({type(exc).__name__})"
        ) from None


def read_safetensors(path: str | os.PathLike) -> dict[str, Any]:
    """A structreg ``safetensors`` file as a checkpoint dict (``config`` a
    :class:`RunConfig`, ``state_dict``, ``digest``, ``step``; no training state)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    meta = safetensors_metadata(path)
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: not a structreg model file (format {FORMAT} "
            f"{FORMAT_VERSION} expected in its metadata)"
        )
    try:
        stored_config = json.loads(meta["config"])
        config = RunConfig.from_dict(stored_config)
        step = int(meta.get("step", "0"))
    except (KeyError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{path}: invalid config in the metadata ({exc})") from None
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors' own error type, a truncated file
        raise CheckpointError(
            f"{path}: unreadable safetensors data ({' '.join(str(exc).split())[:160]})"
        ) from None
    return {
        "format_version": 1,
        "config": config,
        "state_dict": state,
        "optimizer": None,
        "step": step,
        "rng": None,
        "loop": None,
        "digest": meta.get("digest"),
        "state_digest": meta.get("state_digest"),
        "stored_config": stored_config,
    }
