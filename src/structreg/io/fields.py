"""Export of displacement fields for ITK / ANTs / SimpleITK.

Our fields are ``(ndim, *S)`` in voxels of the array. ITK's
``DisplacementFieldTransform`` wants, at each voxel, the displacement in physical
millimetres in ITK's LPS world frame, so that ``T(p) = p + d(p)`` and resampling
reads ``moving(T(p))``. With the NIfTI affine ``A`` (voxel index -> RAS mm) the
vector is ``d = diag(-1, -1, 1) · A[:n, :n] · u``. ITK (5.4, via SimpleITK) reads
the components of a vector NIfTI as they are stored, so they are written already
in LPS. The file is a 5-D NIfTI ``(X, Y, Z, 1, ndim)`` with intent VECTOR.

How ITK (and so ANTs, antspyx and SimpleITK) reads the files decides the layout:

- a scalar image stored ``H×W`` is 2-D; ``H×W×1`` and ``H×W×1×1`` are 3-D with
  one slice. A field must have the dimension of the images it is applied to
  (SimpleITK refuses a 2-D field for 3-D images; ANTs pads it to a 3-D field lying
  at ``z = 0`` mm, axial, and applies it wrongly without a word: no displacement
  for a slice elsewhere).
- a vector image's dimension is that of its last spatial axis longer than 1
  (``dim[4] > 1``: 4, ``dim[3] > 1``: 3, else 2), whatever ``dim[0]``: a field of
  one slice, ``(H, W, 1, 1, 3)``, is read as 2-D. A 3-D field for a one-slice
  image is therefore stored with its slice twice, ``(H, W, 2, 1, 3)`` on the
  image's affine: the image's slice is the field's first (``[:, :, :1]``).
- a 2-D image's frame: origin and axis directions are the LPS x and y components
  of the 3-D ones, each direction scaled back to unit length, and the spacing is
  ``pixdim`` (the 3-D length of each affine column). For a slice whose axes lie
  in the axial plane this is ``diag(-1, -1) · A[:2, :2]``; for an oblique slice
  (axes leaving the axial plane) it is ITK's own 2-D frame (:func:`itk_frame`),
  in which the 2-D vectors are written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from .files import atomic_path

NIFTI_INTENT_VECTOR = 1007
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


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
    affine = _check_affine(affine, "disp_to_physical_lps")
    matrix = _RAS_TO_LPS[:ndim, :ndim] @ affine[:ndim, :ndim]
    return np.einsum("cd,d...->...c", matrix, disp)


def physical_lps_to_disp(field: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Inverse of :func:`disp_to_physical_lps`: ``(*S, ndim)`` mm -> ``(ndim, *S)`` voxels."""
    field = np.asarray(field, dtype=np.float64)
    ndim = field.shape[-1]
    matrix = np.linalg.inv(_RAS_TO_LPS[:ndim, :ndim] @ np.asarray(affine, np.float64)[:ndim, :ndim])
    return np.einsum("cd,...d->c...", matrix, field)


def _check_affine(affine: np.ndarray, who: str) -> np.ndarray:
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise DataError(f"{who}: affine must be 4x4, got {affine.shape}")
    return affine


def itk_frame(affine: np.ndarray, ndim: int) -> np.ndarray:
    """The ``(ndim, ndim)`` matrix ITK maps a voxel step to LPS mm with, for a NIfTI
    of ``affine`` that ITK reads as ``ndim``-D (column ``c``: one voxel along axis ``c``).

    3-D: ``diag(-1, -1, 1) · A[:3, :3]``. 2-D: the LPS x and y components of each
    axis's direction (``A``'s column over its length), scaled to unit length, times
    the axis's spacing (the column's 3-D length, the ``pixdim`` nibabel writes);
    ``diag(-1, -1) · A[:2, :2]`` for a slice in the axial plane. A 2-D axis with
    no in-plane component gives a zero column (ITK refuses such files).
    """
    affine = _check_affine(affine, "itk_frame")
    lps = _RAS_TO_LPS @ affine[:3, :3]
    if ndim == 3:
        return lps
    if ndim != 2:
        raise DataError(f"itk_frame: ndim must be 2 or 3, got {ndim}")
    spacing = np.linalg.norm(affine[:3, :2], axis=0)
    in_plane = np.linalg.norm(lps[:2, :2], axis=0)
    scale = np.divide(spacing, in_plane, out=np.zeros(2), where=in_plane > 0)
    return lps[:2, :2] * scale


def itk_dims(layout: Sequence[int]) -> int:
    """The dimension ITK reads a scalar NIfTI of stored shape ``layout`` with: 2 for
    ``H×W``, 3 for ``H×W×D`` (``D`` may be 1) and for ``H×W×D×1``."""
    return 2 if len(layout) == 2 else 3


def itk_vectors(
    disp: np.ndarray, affine: np.ndarray, layout: Sequence[int] | None = None
) -> np.ndarray:
    """A voxel displacement as the vectors of an ITK displacement-field NIfTI.

    Args:
        disp: ``(c, *S)`` displacement in voxels of the grid ``S`` (2-D or 3-D);
            ``c`` is ``len(S)``, or 3 on a 2-D grid (the third component: across
            the slice, along the affine's third axis).
        affine: ``(4, 4)`` voxel-to-RAS affine of the grid.
        layout: the stored shape of the images the field is applied to, e.g.
            ``(H, W, 1)`` for ``S = (H, W)`` (:attr:`structreg.io.nifti.Volume.layout`);
            None: ``S``.
    Returns:
        ``(X, Y, Z, 1, n)`` float32 LPS mm, ``n`` = :func:`itk_dims` of ``layout``:
        ``(H, W, 1, 1, 2)`` for ``H×W``, ``(H, W, 2, 1, 3)`` for ``H×W×1`` (the
        slice twice), ``(H, W, D, 1, 3)`` for a volume.
    """
    disp = np.asarray(disp, dtype=np.float64)
    grid = tuple(disp.shape[1:])
    if len(grid) not in (2, 3) or disp.shape[0] not in {len(grid), 3}:
        raise DataError(f"write_itk_displacement: disp must be (ndim, *S), got {disp.shape}")
    layout = grid if layout is None else tuple(int(n) for n in layout)
    if [n for n in layout if n != 1] != [n for n in grid if n != 1] or layout[:2] != grid[:2]:
        raise DataError(
            f"write_itk_displacement: a field on a {'x'.join(map(str, grid))} grid does not "
            f"fit images stored as {'x'.join(map(str, layout))}"
        )
    ndim = itk_dims(layout)
    if ndim == 2:
        disp = disp[:2]
    elif disp.shape[0] == 2:  # an in-plane field of images ITK reads as 3-D
        disp = np.concatenate([disp, np.zeros_like(disp[:1])])
    vectors = np.einsum("cd,d...->...c", itk_frame(affine, ndim), disp).astype(np.float32)
    vectors = vectors.reshape(*layout[:2], -1, 1, ndim)  # NIfTI: x, y, z, t (1), components
    if ndim == 3 and vectors.shape[2] == 1:  # ITK reads a one-slice vector NIfTI as 2-D
        vectors = np.concatenate([vectors, vectors], axis=2)
    return vectors


def write_itk_displacement(
    path: str | os.PathLike,
    disp: np.ndarray,
    affine: np.ndarray,
    layout: Sequence[int] | None = None,
) -> None:
    """Write a voxel displacement ``(ndim, *S)`` as an ITK/ANTs displacement-field NIfTI.

    ``antsApplyTransforms -t path``, ``ants.apply_transforms`` or
    ``sitk.DisplacementFieldTransform`` on the file, applied to images stored in
    ``layout``, reproduce ``moved(x) = moving(x + disp(x))`` (written atomically,
    on ``affine``, intent VECTOR; vectors: :func:`itk_vectors`). A slice stored
    ``H×W`` gets a 2-D field ``(H, W, 1, 1, 2)``; one stored ``H×W×1`` (which ITK
    reads as 3-D) a 3-D field stored ``(H, W, 2, 1, 3)``, its slice twice.

    Args:
        disp: ``(c, *S)`` displacement in voxels of the grid (``c``: ``len(S)``,
            or 3 on a 2-D grid with a component across the slice).
        affine: ``(4, 4)`` voxel-to-RAS affine of the grid.
        layout: the stored shape of the images it applies to (the fixed image's
            :attr:`~structreg.io.nifti.Volume.layout`); None: ``S``.
    """
    import nibabel as nib

    vectors = itk_vectors(disp, affine, layout)
    image = nib.Nifti1Image(vectors, np.asarray(affine, dtype=np.float64))
    image.header.set_intent(NIFTI_INTENT_VECTOR)
    image.header.set_xyzt_units("mm")
    with atomic_path(path) as tmp:
        nib.save(image, str(tmp))
