"""Registering NIfTI files with a trained model and writing NIfTI results.

Inputs of any size and spacing are preprocessed to the model's grid (resampled
in-plane, cropped/padded, normalised); the displacement found there is mapped
back to the fixed image's grid (vectors rescaled to its voxels) and the original
moving image and labels are warped at their own resolution, so outputs overlay
the fixed image in any viewer. A 3-D model registers whole volumes (a true 3-D
field); a 2-D model registers 3-D volumes slice by slice along their last axis,
with a zero through-plane displacement.

Outputs in ``out_dir`` (all written atomically, on the fixed image's affine):

| file | content |
|---|---|
| ``moved.nii.gz`` | moving image warped onto the fixed image (original intensities) |
| ``moved_labels.nii.gz`` | moving labels warped (nearest), when given |
| ``disp.nii.gz`` | displacement in mm, ITK/ANTs convention (LPS vector NIfTI) |
| ``inverse_disp.nii.gz`` | displacement of the inverse transform, same convention |
| ``velocity.nii.gz`` | stationary velocity field in mm per unit time, same convention |
| ``jacobian_det.nii.gz`` | determinant of the Jacobian of the transform |
| ``z.json`` | latent code μ per slice, with the slice index |
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import metrics
from ..core.ops import jacobian_det, warp
from ..data.defaults import DEFAULT_SPACING
from ..data.labels import CARDIAC_LABELS
from ..data.preprocess import PreprocessRecord, preprocess_pair, to_original
from ..errors import DataError
from ..io.fields import write_itk_displacement
from ..io.files import atomic_folder, atomic_write_text
from ..io.grids import same_grid, sample_at, source_coordinates, voxel_grid, world_displacement
from ..io.nifti import Volume, read_image, read_labels, to_file_layout, write_image, write_labels
from ..methods.base import warp_array
from ..methods.ours import CVAERegistrar


def _stack_slices(
    arrays: Sequence[np.ndarray],
    records: Sequence[PreprocessRecord],
    shape: tuple[int, ...],
    field: bool,
    dtype: Any,
) -> np.ndarray:
    """Reassemble per-slice arrays (mapped back to source grids) into the original volume."""
    ndim = len(shape)
    if records[0].slice_axis is None:
        return arrays[0].astype(dtype)
    axis = records[0].slice_axis
    out = np.zeros(((ndim,) if field else ()) + tuple(shape), dtype=dtype)
    for arr, rec in zip(arrays, records, strict=True):
        index: list[Any] = [slice(None)] * ndim
        index[axis] = rec.slice_index
        if field:
            # in-plane components go to the record's axes; through-plane stays 0
            for c, ax in enumerate(rec.axes):
                out[(ax, *index)] = arr[c]
        else:
            out[tuple(index)] = arr
    return out


OUTPUTS = frozenset(
    {
        "moved.nii.gz",
        "moved_labels.nii.gz",
        "disp.nii.gz",
        "inverse_disp.nii.gz",
        "velocity.nii.gz",
        "jacobian_det.nii.gz",
        "z.json",
    }
)
"""The files of a registration's output folder (the folder is replaced whole)."""


def _check_out(out_dir: str | os.PathLike) -> None:
    """Refuse an output folder that holds anything but a registration's outputs: it
    is replaced whole, and other files must not be lost."""
    out = Path(out_dir)
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    others = sorted(p.name for p in out.iterdir() if p.name not in OUTPUTS)
    if others:
        raise DataError(
            f"{out} holds other files ({', '.join(others[:3])}"
            f"{' ...' if len(others) > 3 else ''}); write the outputs to a new or "
            f"empty folder, or to one that holds only earlier outputs"
        )


def _read_inputs(
    moving_path: str | os.PathLike,
    fixed_path: str | os.PathLike,
    labels_path: str | os.PathLike | None,
    frame: int | None,
) -> tuple[Volume, Volume, Volume | None]:
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


def _warp_original(
    moving: Volume, fixed: Volume, disp: np.ndarray, *, labels: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The original moving image (or label map) at its own resolution, sampled at
    ``x + disp(x)`` of the fixed grid through the world mapping of the affines, and
    the displacement (fixed voxels) to the world points sampled, for export."""
    if same_grid(moving, fixed):
        if not labels:
            return warp_array(moving.data, disp)[0], disp
        data = torch.from_numpy(moving.data.astype(np.float64))[None, None]
        moved = warp(data, torch.from_numpy(disp)[None], mode="nearest")[0, 0].numpy()
        return moved.round().astype(np.int16), disp
    coords, inside = source_coordinates(moving, fixed, voxel_grid(fixed.shape) + disp)
    moved = sample_at(moving.data, coords, inside, order=0 if labels else 1)
    exported = world_displacement(moving, fixed, coords)
    return (moved.round().astype(np.int16) if labels else moved.astype(np.float32)), exported


def write_registration(
    model: Any,
    moving_path: str | os.PathLike,
    fixed_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    moving_labels_path: str | os.PathLike | None = None,
    spacing: Sequence[float] = DEFAULT_SPACING,
    pair_id: str = "pair",
    frame: int | None = None,
) -> dict[str, Any]:
    """Register one NIfTI pair with a trained CVAE and write the outputs (see module doc).

    The images may lie on different grids (shape, spacing, orientation, field of
    view): the moving image meets the fixed one in world space, and every output
    is on the fixed grid, in the fixed file's layout (``H×W``, ``H×W×1``, ...).
    ``frame`` selects the time frame of 4-D inputs.

    Returns a summary dict: ``out``, ``files`` written, ``slices`` and the
    ``folding_pct`` and ``seconds`` of the registration.
    """
    _check_out(out_dir)
    moving, fixed, labels = _read_inputs(moving_path, fixed_path, moving_labels_path, frame)
    size = tuple(model.config.image_size)
    if len(size) == 3:  # a 3-D model registers whole volumes
        if fixed.ndim != 3 or moving.ndim != 3:
            raise DataError(
                f"a 3-D model ({'x'.join(map(str, size))}) registers 3-D volumes; "
                f"got a {moving.ndim}-D moving and a {fixed.ndim}-D fixed image"
            )
        n_slices = None
    else:  # a 2-D model registers a volume slice by slice along its last axis
        n_slices = fixed.shape[-1] if fixed.ndim == 3 else None
    centre = (CARDIAC_LABELS["LV myocardium"], CARDIAC_LABELS["LV blood pool"])
    pairs = preprocess_pair(
        moving,
        fixed,
        pair_id=pair_id,
        size=size,
        spacing=tuple(spacing),
        n_slices=n_slices,
        moving_labels=labels,
        centre_labels=centre if labels is not None else None,
    )
    records = [PreprocessRecord.from_dict(p.meta["preprocess"]) for p in pairs]
    m = torch.from_numpy(np.stack([p.moving for p in pairs]))[:, None]
    f = torch.from_numpy(np.stack([p.fixed for p in pairs]))[:, None]
    result = CVAERegistrar(model).register(m, f)

    def back(field: torch.Tensor) -> np.ndarray:
        per_slice = [
            to_original(field[i].cpu().numpy().astype(np.float64), rec, kind="field")
            for i, rec in enumerate(records)
        ]
        return _stack_slices(per_slice, records, fixed.shape, True, np.float64)

    assert result.inverse_disp is not None and result.velocity is not None and result.z is not None
    disp, inverse, velocity = back(result.disp), back(result.inverse_disp), back(result.velocity)
    moved, exported = _warp_original(moving, fixed, disp, labels=False)
    det = jacobian_det(torch.from_numpy(disp)[None])[0, 0].numpy().astype(np.float32)
    # every output is written into a temporary folder that replaces out_dir whole:
    # a failure never leaves a mix of new and old outputs
    with atomic_folder(out_dir) as out:
        affine = fixed.affine
        written = ["moved.nii.gz"]
        write_image(out / "moved.nii.gz", to_file_layout(moved, fixed), affine=affine)
        if labels is not None:
            moved_labels, _ = _warp_original(labels, fixed, disp, labels=True)
            write_labels(
                out / "moved_labels.nii.gz", to_file_layout(moved_labels, fixed), affine=affine
            )
            written.append("moved_labels.nii.gz")
        # disp.nii.gz maps the fixed grid to the original moving image (world mapping
        # included); the inverse and the velocity are the registration's own, on the fixed grid
        for name, field in (("disp", exported), ("inverse_disp", inverse), ("velocity", velocity)):
            write_itk_displacement(out / f"{name}.nii.gz", field, affine)
            written.append(f"{name}.nii.gz")
        write_image(out / "jacobian_det.nii.gz", to_file_layout(det, fixed), affine=affine)
        written.append("jacobian_det.nii.gz")
        codes = [
            {"slice": rec.slice_index, "z": [round(float(v), 6) for v in code]}
            for rec, code in zip(records, result.z.cpu(), strict=True)
        ]
        atomic_write_text(out / "z.json", json.dumps({"pair": pair_id, "codes": codes}, indent=1))
        written.append("z.json")
    return {
        "out": str(out_dir),
        "files": written,
        "slices": len(pairs),
        metrics.FOLDING: metrics.folding_percent(disp),
        "seconds": result.seconds,
    }
