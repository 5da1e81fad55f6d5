"""Export of displacement fields for ITK / ANTs / SimpleITK.

Our fields are ``(ndim, *S)`` in voxels of the array. ITK's
``DisplacementFieldTransform`` wants, at each voxel, the displacement in physical
millimetres in ITK's LPS world frame, so that ``T(p) = p + d(p)`` and resampling
reads ``moving(T(p))``. With the NIfTI affine ``A`` (voxel index -> RAS mm) the
vector is ``d = diag(-1, -1, 1) · A[:n, :n] · u``. ITK (5.4, via SimpleITK) reads
the components of a vector NIfTI as they are stored, so they are written already
in LPS. The file is a 5-D NIfTI ``(*S, [1,] 1, ndim)`` with intent VECTOR.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import DataError
from .files import atomic_path

NIFTI_INTENT_VECTOR = 1007


def disp_to_physical_lps(disp: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Voxel displacement ``(ndim, *S)`` -> physical LPS displacement ``(*S, ndim)`` in mm.

    Args:
        disp: ``(ndim, *S)`` displacement in voxels, channel ``c`` along axis ``c``.
        affine: ``(4, 4)`` NIfTI voxel-to-RAS affine of the grid ``S``.
    """
    disp = np.asarray(disp, dtype=np.float64)
    ndim = disp.shape[0]
    if ndim not in (2, 3) or disp.ndim != ndim + 1:
        raise DataError(
            f"disp_to_physical_lps: disp must be (ndim, *S) with ndim 2 or 3, got {disp.shape}"
        )
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise DataError(f"disp_to_physical_lps: affine must be 4x4, got {affine.shape}")
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])[:ndim, :ndim]
    matrix = ras_to_lps @ affine[:ndim, :ndim]
    return np.einsum("cd,d...->...c", matrix, disp)


def physical_lps_to_disp(field: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Inverse of :func:`disp_to_physical_lps`: ``(*S, ndim)`` mm -> ``(ndim, *S)`` voxels."""
    field = np.asarray(field, dtype=np.float64)
    ndim = field.shape[-1]
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])[:ndim, :ndim]
    matrix = np.linalg.inv(ras_to_lps @ np.asarray(affine, dtype=np.float64)[:ndim, :ndim])
    return np.einsum("cd,...d->c...", matrix, field)


def write_itk_displacement(
    path: str | os.PathLike,
    disp: np.ndarray,
    affine: np.ndarray,
    layout: tuple[int, ...] | None = None,
) -> None:
    """Write a voxel displacement ``(ndim, *S)`` as an ITK/ANTs displacement-field NIfTI.

    ``antsApplyTransforms -t path`` or ``sitk.DisplacementFieldTransform`` on the
    file reproduce ``moved(x) = moving(x + disp(x))`` (written atomically). A field
    on a 2-D grid is written with its two in-plane components as ``(H, W, 1, 1, 2)``,
    which ITK reads as a 2-D field whatever the layout of the image files (a slice
    stored as ``H×W×1`` is read by ITK as 3-D: take its slice, ``image[:, :, 0]``).
    """
    import nibabel as nib

    disp = np.asarray(disp)
    if disp.ndim == 3:  # a 2-D grid: the in-plane components
        disp = disp[:2]
    vectors = disp_to_physical_lps(disp, affine).astype(np.float32)
    ndim = vectors.shape[-1]
    spatial = vectors.shape[:-1]
    # NIfTI vector layout: x, y, z, t (1), components
    pad = (1,) * (3 - ndim)
    data = vectors.reshape(*spatial, *pad, 1, ndim)
    image = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    image.header.set_intent(NIFTI_INTENT_VECTOR)
    image.header.set_xyzt_units("mm")
    with atomic_path(path) as tmp:
        nib.save(image, str(tmp))
