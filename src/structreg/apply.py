"""Registering NIfTI files with a trained model and writing NIfTI results.

Inputs of any size and spacing are preprocessed to the model's grid (resampled
in-plane, cropped/padded, normalised); the displacement found there is mapped
back to the fixed image's grid (vectors rescaled to its voxels) and the original
moving image and labels are warped at their own resolution, so outputs overlay
the fixed image in any viewer. 3-D volumes are registered slice by slice along
their last axis (the model is 2-D); the through-plane displacement is zero.

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

from .data.defaults import DEFAULT_SPACING
from .data.fields import write_itk_displacement
from .data.io import check_same_ndim, read_image, read_labels, write_image, write_labels
from .data.labels import CARDIAC_LABELS
from .data.preprocess import PreprocessRecord, preprocess_pair, to_original
from .errors import DataError
from .evaluation import metrics
from .io_utils import atomic_write_text
from .methods.base import warp_array
from .methods.ours import CVAERegistrar
from .ops import warp


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


def write_registration(
    model: Any,
    moving_path: str | os.PathLike,
    fixed_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    moving_labels_path: str | os.PathLike | None = None,
    spacing: Sequence[float] = DEFAULT_SPACING,
    pair_id: str = "pair",
) -> dict[str, Any]:
    """Register one NIfTI pair with a trained CVAE and write the outputs (see module doc).

    Returns a summary dict: ``out``, ``files`` written, ``slices`` and the
    ``folding_pct`` and ``seconds`` of the registration.
    """
    moving, fixed = read_image(moving_path), read_image(fixed_path)
    check_same_ndim(moving, fixed)
    if moving.shape != fixed.shape:
        raise DataError(
            f"{Path(moving_path).name} {moving.shape} and {Path(fixed_path).name} "
            f"{fixed.shape}: moving and fixed must share one grid (same array shape)"
        )
    labels = None
    if moving_labels_path is not None:
        labels = read_labels(moving_labels_path)
        if labels.shape != moving.shape:
            raise DataError(
                f"{Path(moving_labels_path).name}: label map shape {labels.shape} "
                f"differs from the moving image {moving.shape}"
            )
    size = tuple(model.config.image_size)
    n_slices = moving.shape[-1] if moving.ndim == 3 else None
    pairs = preprocess_pair(
        moving,
        fixed,
        pair_id=pair_id,
        size=size,
        spacing=tuple(spacing),
        n_slices=n_slices,
        moving_labels=labels,
        centre_labels=(CARDIAC_LABELS["LV myocardium"], CARDIAC_LABELS["LV blood pool"])
        if labels
        else None,
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
        return _stack_slices(per_slice, records, moving.shape, True, np.float64)

    assert result.inverse_disp is not None and result.velocity is not None and result.z is not None
    disp, inverse, velocity = back(result.disp), back(result.inverse_disp), back(result.velocity)
    disp_t = torch.from_numpy(disp)[None]
    moved, det = warp_array(moving.data, disp)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    affine = fixed.affine
    written = []
    write_image(out / "moved.nii.gz", moved, affine=affine)
    written.append("moved.nii.gz")
    if labels is not None:
        moved_labels = (
            warp(
                torch.from_numpy(labels.data.astype(np.float64))[None, None], disp_t, mode="nearest"
            )[0, 0]
            .numpy()
            .round()
            .astype(np.int16)
        )
        write_labels(out / "moved_labels.nii.gz", moved_labels, affine=affine)
        written.append("moved_labels.nii.gz")
    for name, field in (("disp", disp), ("inverse_disp", inverse), ("velocity", velocity)):
        write_itk_displacement(out / f"{name}.nii.gz", field, affine)
        written.append(f"{name}.nii.gz")
    write_image(out / "jacobian_det.nii.gz", det, affine=affine)
    written.append("jacobian_det.nii.gz")
    codes = [
        {"slice": rec.slice_index, "z": [round(float(v), 6) for v in code]}
        for rec, code in zip(records, result.z.cpu(), strict=True)
    ]
    atomic_write_text(out / "z.json", json.dumps({"pair": pair_id, "codes": codes}, indent=1))
    written.append("z.json")
    return {
        "out": str(out),
        "files": written,
        "slices": len(pairs),
        metrics.FOLDING: metrics.folding_percent(disp),
        "seconds": result.seconds,
    }
