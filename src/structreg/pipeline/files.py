"""Registering image files with any method and writing the outputs as files.

:func:`write_registration` reads a moving and a fixed image file (and optionally the
moving labels), registers them with :func:`~structreg.pipeline.registration.register_volumes`
and writes :meth:`~structreg.pipeline.registration.Registration.save`'s files into an
output folder that is replaced whole (atomically: a failure never leaves a mix of new
and old outputs). An input file that lies in that folder, and an output folder that is
a symbolic link, are refused before anything is read (replacing the folder would
destroy the input, or replace the link).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core import metrics
from ..errors import DataError
from ..io.files import check_inputs_outside
from ..io.nifti import Volume, read_image, read_labels
from ..methods.affine import AffineOptions
from ..methods.base import Registrar
from .field import FieldOptions
from .registration import OUTPUTS, check_out, register_volumes

__all__ = ["OUTPUTS", "cohort_pairs", "read_pair", "write_registration"]


def read_pair(
    moving_path: str | os.PathLike,
    fixed_path: str | os.PathLike,
    labels_path: str | os.PathLike | None = None,
    frame: int | None = None,
) -> tuple[Volume, Volume, Volume | None]:
    """Read the moving and fixed images (the ``frame`` of 4-D files) and the moving
    label map; a label map of another shape than the moving image is a :class:`DataError`."""
    moving = read_image(moving_path, frame=frame)
    fixed = read_image(fixed_path, frame=frame)
    labels = None
    if labels_path is not None:
        labels = read_labels(labels_path, frame=frame)
        if labels.shape != moving.shape:
            raise DataError(
                f"{Path(labels_path).name}: label map shape {labels.shape} "
                f"differs from the moving image {moving.shape}"
            )
    return moving, fixed, labels


def write_registration(
    registrar: Registrar,
    moving_path: str | os.PathLike,
    fixed_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    moving_labels_path: str | os.PathLike | None = None,
    pair_id: str = "pair",
    frame: int | None = None,
    affine: AffineOptions | None = None,
    field: FieldOptions | None = None,
) -> dict[str, Any]:
    """Register one pair of image files and write the outputs into ``out_dir``.

    Args:
        registrar: any registration method.
        moving_path, fixed_path: image files (any layout and grid); every output is
            on the fixed grid, in the fixed file's layout (``H×W``, ``H×W×1``, ...).
        out_dir: the output folder (new, or holding only earlier outputs; no input
            file may lie in it).
        moving_labels_path: a label map of the moving image, warped too.
        affine: a rigid-then-affine stage first (its settings), or None.
        field: the field stage on the fixed grid last (its settings), or None.
        pair_id: the pair's name (``z.json``).
        frame: the time frame of 4-D inputs.
    Returns:
        A summary dict: ``out``, ``files`` written, ``slices``, the ``folding_pct``
        and the ``seconds`` of the registration.
    """
    if Path(out_dir).is_symlink():
        raise DataError(
            f"{out_dir} is a symbolic link; the output folder is replaced whole, so give "
            f"the folder itself ({Path(out_dir).resolve()})"
        )
    check_inputs_outside(out_dir, (moving_path, fixed_path, moving_labels_path))
    check_out(out_dir)
    moving, fixed, labels = read_pair(moving_path, fixed_path, moving_labels_path, frame)
    registration = register_volumes(
        registrar,
        moving,
        fixed,
        moving_labels=labels,
        pair_id=pair_id,
        affine=affine,
        field=field,
    )
    written = registration.save(out_dir)
    return {
        "out": str(out_dir),
        "files": written,
        "slices": len(registration.slices),
        metrics.FOLDING: registration.folding_pct,
        "seconds": registration.seconds,
    }


def cohort_pairs(
    registrar: Registrar,
    files: Sequence[tuple[str, str | os.PathLike, str | os.PathLike, int | None]],
    affine: AffineOptions | None = None,
) -> list[Any]:
    """The pairs of image files a method registers, on its grid (for an adaptation):
    ``files`` holds ``(name, moving, fixed, frame)``; each moving image is aligned to
    its fixed one by an affine stage first when ``affine`` is given. Pairs whose files
    cannot be read are left out (their own registration reports them)."""
    from ..errors import StructregError
    from ..methods.affine import affine_align
    from .registration import aligned_volume, prepare_pairs

    pairs: list[Any] = []
    for name, moving_path, fixed_path, frame in files:
        try:
            moving, fixed, _ = read_pair(moving_path, fixed_path, None, frame)
        except (StructregError, OSError):
            continue
        if affine is not None:
            moving = aligned_volume(moving, fixed, affine_align(moving, fixed, affine))
        pairs += prepare_pairs(registrar, moving, fixed, name)
    return pairs
