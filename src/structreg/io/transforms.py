"""ITK transform files: an affine map written so that ITK, SimpleITK and ANTs read it.

ITK's transforms map points of the fixed (output) image's physical space to the moving
(input) image's, in LPS millimetres; an affine is stored as ``AffineTransform_double_D_D``
with the ``D × D`` matrix row by row and the translation as ``Parameters``, and the
centre of rotation as ``FixedParameters`` (here the origin, the translation holding the
rest).
"""

from __future__ import annotations

import os

import numpy as np

from .files import atomic_write_text

__all__ = ["itk_affine_text", "write_itk_affine"]

_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def itk_affine_text(world: np.ndarray, dims: int = 3) -> str:
    """The text of an ITK transform file of a world map.

    Args:
        world: ``(4, 4)`` map of fixed world points (RAS, mm) to moving world points.
        dims: 3, or 2 for images stored as 2-D arrays (the map must then keep the
            third world axis fixed: an in-plane map of an axial slice).
    """
    lps = _LPS @ np.asarray(world, dtype=np.float64) @ _LPS
    matrix, shift = lps[:dims, :dims], lps[:dims, 3]
    values = " ".join(f"{v:.17g}" for v in [*matrix.reshape(-1), *shift])
    return (
        "#Insight Transform File V1.0\n#Transform 0\n"
        f"Transform: AffineTransform_double_{dims}_{dims}\n"
        f"Parameters: {values}\nFixedParameters: {' '.join(['0'] * dims)}\n"
    )


def write_itk_affine(path: str | os.PathLike, world: np.ndarray, dims: int = 3) -> None:
    """Write :func:`itk_affine_text` atomically to ``path`` (``.tfm`` or ``.txt``)."""
    atomic_write_text(path, itk_affine_text(world, dims))
