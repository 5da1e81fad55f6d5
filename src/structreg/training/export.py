"""Trained models as ``safetensors`` files: weights without pickle, with the config,
the data settings and the weights' digest in the metadata.

``structreg export --model RUN --out model.safetensors`` writes one; every command
that takes ``--model`` also accepts such a file (:func:`read_safetensors` gives the
same checkpoint dict as :func:`structreg.training.checkpoint.read_checkpoint`).

Metadata (all strings, as the format requires)::

    {"format": "structreg", "format_version": "1", "config": RunConfig.to_dict() as JSON,
     "data": DataSettings.to_dict() as JSON, "digest": SHA-256 of the weights, "step": "N"}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError
from ..io.files import atomic_write
from .config import RunConfig
from .run import DataSettings, model_data_settings

__all__ = [
    "SAFETENSORS_SUFFIX",
    "export_safetensors",
    "is_safetensors",
    "read_safetensors",
    "safetensors_data_settings",
]

SAFETENSORS_SUFFIX = ".safetensors"
FORMAT = "structreg"
FORMAT_VERSION = "1"


def is_safetensors(path: str | os.PathLike) -> bool:
    """True for a ``.safetensors`` path."""
    return str(path).lower().endswith(SAFETENSORS_SUFFIX)


def export_safetensors(run_dir_or_file: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the model of a run (``best.pt``, else ``checkpoint.pt``, or a checkpoint
    file) as a ``safetensors`` file with its config, data settings and digest."""
    from safetensors.torch import save_file

    from .checkpoint import build_model, read_model, weights_digest

    if not is_safetensors(out):
        raise CheckpointError(f"{out}: the exported file must end in {SAFETENSORS_SUFFIX}")
    checkpoint, path = read_model(run_dir_or_file)
    build_model(checkpoint, path)  # refuses corrupted or mismatched weights
    state = {k: v.contiguous() for k, v in checkpoint["state_dict"].items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(checkpoint["config"].to_dict()),
        "data": json.dumps(model_data_settings(run_dir_or_file).to_dict()),
        "digest": weights_digest(state),
        "step": str(checkpoint["step"]),
    }
    return atomic_write(out, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def _metadata(path: Path) -> dict[str, str]:
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
    meta = _metadata(path)
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: not a structreg model file (format {FORMAT} "
            f"{FORMAT_VERSION} expected in its metadata)"
        )
    try:
        config = RunConfig.from_dict(json.loads(meta["config"]))
        step = int(meta.get("step", "0"))
    except (KeyError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{path}: invalid config in the metadata ({exc})") from None
    state = load_file(str(path))
    return {
        "format_version": 1,
        "config": config,
        "state_dict": state,
        "optimizer": None,
        "step": step,
        "rng": None,
        "loop": None,
        "digest": meta.get("digest"),
    }


def safetensors_data_settings(path: str | os.PathLike) -> DataSettings:
    """The data settings stored in a structreg ``safetensors`` file."""
    meta = _metadata(Path(path))
    try:
        return DataSettings.from_dict(json.loads(meta.get("data", "{}")))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid data settings in the metadata ({exc})") from None
