"""Images on different grids meet in the fixed image's world space.

Every :class:`~structreg.io.nifti.Volume` carries its NIfTI affine (voxel index ->
RAS mm). The voxel mapping from a *target* grid to a *source* grid is
``inv(A_source) @ A_target``; sampling the source there puts it on the target
grid (other shape, spacing, orientation - RAS or LPS storage, flipped axes, an
oblique sform - or field of view). A 2-D volume is the slice ``k = 0`` of its 3-D
affine. Two 2-D slices meet in the plane: a point of the target slice is
projected onto the source slice along the source's through-plane axis (slices
of one location at different heights, or of different subjects, still meet);
slices more than 45 degrees apart are refused. :func:`world_displacement` gives
the displacement to the world point actually sampled, through-plane part
included, so ITK tools applied to the original source reproduce the sampling.

Only images of one dimensionality meet (2-D with 2-D, 3-D with 3-D), and their
fields of view must overlap; anything else is a :class:`DataError`.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .nifti import Volume, check_same_ndim

__all__ = [
    "resample_into",
    "same_grid",
    "sample_at",
    "source_coordinates",
    "voxel_mapping",
]


def same_grid(a: Volume, b: Volume, atol: float = 1e-4) -> bool:
    """True when ``a`` and ``b`` have one array shape and (to ``atol`` mm) one affine."""
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=atol)


def voxel_mapping(source: Volume, target: Volume) -> np.ndarray:
    """``(4, 4)`` matrix mapping target voxel indices to source voxel indices."""
    return _inverse(source.affine, source) @ target.affine


def source_coordinates(
    source: Volume, target: Volume, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Map target voxel positions into the source's voxel indices.

    Args:
        points: ``(ndim, *S)`` positions in target voxel indices (``ndim`` = the
            target's data dimensionality, 2 or 3).
    Returns:
        ``(coords (ndim, *S), inside (*S) bool)``: source voxel indices along the
        source's data axes, and whether each point lies in the source's field of
        view (for a 2-D source: also within half a voxel of its slice).
    """
    ndim = points.shape[0]
    homogeneous = np.zeros((4, *points.shape[1:]))
    homogeneous[:ndim] = points
    homogeneous[3] = 1.0
    mapped = np.einsum("ij,j...->i...", voxel_mapping(source, target), homogeneous)
    coords = mapped[: source.ndim]  # a 2-D source: projected onto its slice (k = 0)
    extent = np.asarray(source.shape, dtype=np.float64).reshape(-1, *([1] * (ndim)))
    inside = np.all((coords >= -0.5) & (coords <= extent - 0.5), axis=0)
    return coords, inside


def world_displacement(source: Volume, target: Volume, coords: np.ndarray) -> np.ndarray:
    """Displacement from each target voxel to the world point the source is sampled at.

    Args:
        coords: ``(source.ndim, *S)`` source voxel indices sampled for the target
            voxels ``S`` (:func:`source_coordinates` of ``x + u(x)``).
    Returns:
        ``(3, *S)`` for 2-D grids (the third component leaves the target's slice when
        the two slices are not coplanar), ``(3, *S)`` for 3-D, in target voxel units
        along the target's three voxel axes.
    """
    shape = coords.shape[1:]
    src = np.zeros((4, *shape))
    src[: source.ndim] = coords
    src[3] = 1.0
    world = np.einsum("ij,j...->i...", source.affine, src)[:3]
    grid = np.zeros((4, *shape))
    grid[: len(shape)] = voxel_grid(shape)
    grid[3] = 1.0
    here = np.einsum("ij,j...->i...", target.affine, grid)[:3]
    return np.einsum("ij,j...->i...", _inverse(target.affine[:3, :3], target), world - here)


def _inverse(matrix: np.ndarray, volume: Volume) -> np.ndarray:
    """``inv(matrix)`` of ``volume``'s affine; a singular one is a :class:`DataError`."""
    try:
        inverse = np.linalg.inv(matrix)
    except np.linalg.LinAlgError:
        inverse = np.full_like(matrix, np.nan)
    if not np.isfinite(inverse).all():
        raise DataError(f"{volume.path or 'image'}: singular affine")
    return inverse


def _normal(volume: Volume) -> np.ndarray:
    n = np.cross(volume.affine[:3, 0], volume.affine[:3, 1])
    length = float(np.linalg.norm(n))
    if not length > 0 or not np.isfinite(length):
        raise DataError(f"{volume.path or 'image'}: singular affine")
    return n / length


def sample_at(
    array: np.ndarray, coords: np.ndarray, inside: np.ndarray, *, order: int, outside: float = 0.0
) -> np.ndarray:
    """Sample ``array`` at voxel ``coords`` (``(ndim, *S)``); ``order`` 0 for labels,
    1 for images (border values just outside the grid); ``outside`` beyond it."""
    from scipy.ndimage import map_coordinates

    values = map_coordinates(
        np.asarray(array, dtype=np.float64), coords, order=order, mode="nearest"
    )
    return np.where(inside, values, outside)


def voxel_grid(shape: tuple[int, ...]) -> np.ndarray:
    """``(ndim, *shape)`` float64 voxel indices of a grid (channel ``c`` = index along ``c``)."""
    return np.stack(np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij"))


def _check_meet(source: Volume, target: Volume) -> None:
    """A :class:`DataError` unless the two images can meet: one dimensionality, and
    2-D slices within 45 degrees of one plane."""
    check_same_ndim(source, target)
    if source.ndim == 2:
        cosine = abs(float(_normal(source) @ _normal(target)))
        if cosine < np.cos(np.pi / 4):
            angle = np.degrees(np.arccos(min(1.0, cosine)))
            raise DataError(
                f"{source.path or 'moving'} and {target.path or 'fixed'}: the "
                f"slices lie in planes {angle:.0f} degrees apart (e.g. sagittal and "
                f"axial); 2-D slices must show the same plane"
            )


def resample_into(source: Volume, target: Volume, *, labels: bool = False) -> Volume:
    """``source`` sampled on ``target``'s grid through the affines (world space).

    Images are interpolated linearly, label maps (``labels=True``) by nearest
    neighbour; voxels outside the source's field of view are 0. The result has
    the target's shape, affine, spacing and file layout. Images of another
    dimensionality, slices of another plane and fields of view that do not overlap
    are a :class:`DataError`.
    """
    _check_meet(source, target)
    coords, inside = source_coordinates(source, target, voxel_grid(target.shape))
    if not inside.any():
        raise DataError(
            f"{source.path or 'moving'} and {target.path or 'fixed'}: the fields "
            f"of view do not overlap in world space (check the NIfTI affines)"
        )
    values = sample_at(source.data, coords, inside, order=0 if labels else 1)
    data = values.astype(np.int16 if labels else np.float32)
    return Volume(data, target.affine.copy(), tuple(target.spacing), source.path, target.file_shape)
