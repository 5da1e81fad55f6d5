"""Trained models as ``safetensors`` files: weights without pickle, with the config,
the data settings and the digests of the weights and of the config and step in the
metadata. A failed write (a full disk) is an ``OSError`` naming the file, which is
left as it was.

``structreg export --model RUN --out model.safetensors`` writes one; every command
that takes ``--model`` also accepts such a file (:func:`read_safetensors` gives the
same checkpoint dict as :func:`structreg.training.checkpoint.read_checkpoint`). The
file's format and its readers are in :mod:`structreg.training.safetensors_format`
(re-exported here).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import CheckpointError
from ..io.files import atomic_write
from .checkpoint import build_model, read_model, state_digest, weights_digest
from .run import model_data_settings, safetensors_data_settings
from .safetensors_format import (
    FORMAT,
    FORMAT_VERSION,
    SAFETENSORS_SUFFIX,
    is_safetensors,
    read_safetensors,
)

__all__ = [
    "SAFETENSORS_SUFFIX",
    "export_safetensors",
    "is_safetensors",
    "read_safetensors",
    "safetensors_data_settings",
]


def export_safetensors(run_dir_or_file: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the model of a run (``best.pt``, else ``checkpoint.pt``, or a checkpoint
    file) as a ``safetensors`` file with its config, data settings and digest."""
    from safetensors.torch import save_file

    if not is_safetensors(out):
        raise CheckpointError(f"{out}: the exported file must end in {SAFETENSORS_SUFFIX}")
    checkpoint, path = read_model(run_dir_or_file)
    build_model(checkpoint, path)  # refuses corrupted or mismatched weights
    state = {k: v.contiguous() for k, v in checkpoint["state_dict"].items()}
    exported = {"format_version": 1, "config": checkpoint["config"], "step": checkpoint["step"]}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(checkpoint["config"].to_dict()),
        "data": json.dumps(model_data_settings(run_dir_or_file).to_dict()),
        "digest": weights_digest(state),
        "state_digest": state_digest(exported),
        "step": str(checkpoint["step"]),
    }

    def write(tmp: Path) -> None:
        from safetensors import SafetensorError

        try:
            save_file(state, str(tmp), metadata=metadata)
        except SafetensorError as exc:  # a full disk, an I/O error
            raise OSError(f"{out}: could not be written ({' '.join(str(exc).split())})") from None

    return atomic_write(out, write)
