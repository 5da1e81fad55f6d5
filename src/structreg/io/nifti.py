"""NIfTI reading and writing (nibabel) that keeps the affine and the voxel spacing.

Arrays keep the NIfTI index order (``(H, W)`` or ``(H, W, D)``; no channel axis).
Images are returned as float32, label maps as int16. Every layout of a 2-D image
is read as 2-D: ``H×W``, ``H×W×1`` (the most common way slices are stored) and
``H×W×1×1``; stacks ``H×W×S`` stay 3-D; a 4-D file with several frames needs a
frame index (``--frame``), one frame is read as 3-D (or 2-D). The stored shape is
kept in :attr:`Volume.file_shape`, so outputs are written back in the input's
layout (:func:`to_file_layout`). Every problem with an input file (missing, not a
NIfTI, truncated, NaN/Inf, non-integer or unexpected labels, complex or other
non-real data, no voxels, a header claiming more voxels than memory holds - refused
before anything is allocated -, a non-finite or singular affine, voxel sizes outside
:data:`VOXEL_MM`) raises :class:`DataError` (a ``ValueError``) whose message is one
line naming the file. Writes are atomic (:func:`structreg.io.files.atomic_path`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError, InputError  # DataError is also imported from here
from .files import atomic_path, memory_shortfall

if TYPE_CHECKING:
    import nibabel as nib

    _NiftiImage = nib.Nifti1Image | nib.Nifti2Image

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_INT16 = np.iinfo(np.int16)
VOXEL_MM = (1e-6, 1e5)
"""The voxel sizes (mm, from the affine and the header) an image may have: a nanometre
to 100 m; anything else is a broken header."""


@dataclass
class Volume:
    """An array read from a NIfTI file with its geometry.

    Attributes:
        data: ``(H, W)`` or ``(H, W, D)`` array (float32 image or int16 label map).
        affine: ``(4, 4)`` float64 voxel-to-world (RAS, mm) matrix.
        spacing: mm per voxel along each axis of ``data``.
        path: the file it was read from ('' for arrays built in memory).
        file_shape: the array shape as stored in the file (one frame), e.g.
            ``(H, W, 1)`` for a slice read as ``(H, W)``; None: ``data.shape``.
    """

    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, ...]
    path: str = ""
    file_shape: tuple[int, ...] | None = None

    @property
    def layout(self) -> tuple[int, ...]:
        """The stored shape outputs on this grid are written in."""
        return tuple(self.file_shape) if self.file_shape is not None else self.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


def _name(path: str | os.PathLike) -> str:
    return str(path)


def is_nifti_path(path: str | os.PathLike) -> bool:
    """True when ``path`` ends in ``.nii`` or ``.nii.gz`` (case-insensitive)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _load_nifti(path: Path) -> _NiftiImage:
    """Open ``path`` with nibabel and check it is a NIfTI-1/2 image."""
    import nibabel as nib

    try:
        found = path.is_file()
    except (OSError, ValueError) as exc:  # a name too long, a NUL character
        raise DataError(f"{_name(path)!r}: not a usable file name ({_one_line(exc)})") from None
    if not found:
        raise DataError(f"{_name(path)}: file not found")
    if not is_nifti_path(path):
        raise DataError(f"{_name(path)}: not a NIfTI file (expected .nii or .nii.gz)")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for unreadable files
        raise DataError(
            f"{_name(path)}: not a readable NIfTI file (truncated, corrupt or "
            f"another format: {_one_line(exc)})"
        ) from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise DataError(f"{_name(path)}: not a NIfTI file ({type(img).__name__})")
    return img


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _read_array(img: _NiftiImage, path: Path, frame: int | None) -> np.ndarray:
    """The voxel array (scaling applied) with a single time frame selected; the header's
    data type and size are checked first (nothing is allocated for a refused file)."""
    shape = tuple(int(n) for n in img.shape)
    if len(shape) not in (2, 3, 4):
        raise DataError(f"{_name(path)}: expected a 2-D, 3-D or 4-D image, got shape {shape}")
    _check_header_data(img, shape, path)
    try:
        if len(shape) == 4:
            frame = _check_frame(shape, frame, path)
            data = np.asanyarray(img.dataobj[..., frame])
        else:
            if frame not in (None, 0):
                raise DataError(
                    f"{_name(path)}: frame {frame} requested from a {len(shape)}-D image"
                )
            data = np.asanyarray(img.dataobj)
    except DataError:
        raise
    except Exception as exc:  # EOFError, zlib.error, OSError on truncated data
        raise DataError(
            f"{_name(path)}: truncated or corrupt NIfTI data ({_one_line(exc)})"
        ) from None
    return np.asarray(data)


def _check_header_data(img: _NiftiImage, shape: tuple[int, ...], path: Path) -> None:
    """Refuse, from the header alone, data that is not real numbers, that has no
    voxels, or whose frame would not fit in memory (as stored plus float32)."""
    dtype = np.dtype(img.get_data_dtype())
    if dtype.kind == "c":
        raise DataError(
            f"{_name(path)}: complex-valued data ({dtype}); structreg reads real-valued "
            f"images (save the magnitude or the real part)"
        )
    if dtype.kind not in "biuf":
        raise DataError(f"{_name(path)}: unsupported data type {dtype} (expected real numbers)")
    frame = shape[:3]
    if min(frame) < 1:
        raise DataError(f"{_name(path)}: the image has no voxels (shape {shape})")
    voxels = float(np.prod(frame, dtype=np.float64))
    short = memory_shortfall(voxels * (dtype.itemsize + 4))
    if short is not None:
        raise DataError(
            f"{_name(path)}: the header claims {'x'.join(map(str, frame))} voxels ({short}); "
            f"not reading it"
        )


def _frame_shape(img: _NiftiImage) -> tuple[int, ...]:
    """The stored shape of one frame (a single-frame 4-D file keeps its trailing 1)."""
    shape = tuple(int(n) for n in img.shape)
    return shape if len(shape) < 4 or shape[3] == 1 else shape[:3]


def _squeeze(data: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """Drop trailing singleton axes beyond the first two: ``H×W×1`` -> ``H×W``.

    Returns the array and the stored shape to write outputs back in.
    """
    stored = tuple(data.shape)
    shape = list(stored)
    while len(shape) > 2 and shape[-1] == 1:
        shape.pop()
    return data.reshape(shape), stored


def to_file_layout(array: np.ndarray, volume: Volume) -> np.ndarray:
    """``array`` (of ``volume``'s data shape) reshaped to the file layout it came from."""
    return np.asarray(array).reshape(volume.layout)


def _check_frame(shape: tuple[int, ...], frame: int | None, path: Path) -> int:
    n = shape[3]
    if frame is None:
        if n != 1:
            raise DataError(f"{_name(path)}: 4-D image with {n} frames; give a frame index")
        return 0
    if not -n <= frame < n:
        raise DataError(f"{_name(path)}: frame {frame} out of range for {n} frames")
    return frame % n


def _spacing(img: _NiftiImage, ndim: int) -> tuple[float, ...]:
    zooms = tuple(float(z) for z in img.header.get_zooms()[:ndim])
    low, high = VOXEL_MM
    if len(zooms) != ndim or not all(np.isfinite(zooms)) or min(zooms) <= 0:
        raise DataError(f"invalid voxel spacing {zooms}")
    if min(zooms) < low or max(zooms) > high:
        raise DataError(
            f"invalid voxel spacing {zooms} (voxel sizes must lie in {low:g}..{high:g} mm)"
        )
    return zooms


def check_affine(affine: np.ndarray, ndim: int, name: str) -> None:
    """Refuse (:class:`DataError` naming ``name``) a voxel-to-world affine that is not
    finite, whose first ``ndim`` axes are singular (no world position can be mapped
    back to a voxel), or whose voxel sizes lie outside :data:`VOXEL_MM`."""
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise DataError(f"{name}: the affine (sform/qform) is not a finite 4x4 matrix")
    axes = affine[:3, :ndim]
    sizes = np.linalg.norm(axes, axis=0)
    volume = abs(np.linalg.det(axes)) if ndim == 3 else np.linalg.norm(np.cross(*axes.T))
    if not sizes.all() or volume <= 1e-9 * float(np.prod(sizes)):
        raise DataError(
            f"{name}: singular affine (its voxel axes are degenerate: the sform/qform "
            f"cannot be inverted)"
        )
    low, high = VOXEL_MM
    if sizes.min() < low or sizes.max() > high:
        text = "x".join(f"{v:g}" for v in sizes)
        raise DataError(
            f"{name}: voxel size {text} mm in the affine lies outside {low:g}..{high:g} mm "
            f"(a broken sform/qform)"
        )


def read_image(path: str | os.PathLike, *, frame: int | None = None) -> Volume:
    """Read a float32 image; NaN or Inf values are an error.

    Args:
        path: ``.nii`` or ``.nii.gz`` file, 2-D, 3-D or 4-D.
        frame: time frame of a 4-D file (required when it has more than one).
    Returns:
        :class:`Volume` with ``data`` ``(H, W)`` or ``(H, W, D)`` float32.
    """
    path = Path(path)
    return volume_from_image(_load_nifti(path), name=str(path), frame=frame)


def volume_from_image(
    img: Any,
    *,
    name: str = "image",
    labels: bool = False,
    frame: int | None = None,
    allowed: Iterable[int] | None = None,
) -> Volume:
    """A nibabel NIfTI image (in memory or opened from a file) as a :class:`Volume`.

    Args:
        img: a ``nibabel`` spatial image (2-D, 3-D or 4-D).
        name: the file's path or a name for messages (``Volume.path``).
        labels: read an int16 label map (non-integer values are an error), else a
            float32 image (NaN or Inf values are an error).
        frame: time frame of a 4-D image (required when it has more than one).
        allowed: permitted label values, or None.
    """
    path = Path(name)
    raw, _ = _squeeze(_read_array(img, path, frame))
    if labels:
        data = labels_to_int16(raw, name)
        if allowed is not None:
            check_labels(data, allowed, name)
    else:
        data = raw.astype(np.float32, copy=False)
        if not np.isfinite(data).all():
            bad = int((~np.isfinite(data)).sum())
            raise DataError(f"{_name(path)}: image contains {bad} NaN/Inf values")
    affine = np.asarray(img.affine, dtype=np.float64)
    check_affine(affine, data.ndim, _name(path))
    return Volume(data, affine, _file_spacing(img, data, path), name, _frame_shape(img))


def _file_spacing(img: _NiftiImage, data: np.ndarray, path: Path) -> tuple[float, ...]:
    try:
        return _spacing(img, data.ndim)
    except DataError as exc:
        raise DataError(f"{_name(path)}: {exc}") from None


def read_labels(
    path: str | os.PathLike, *, frame: int | None = None, allowed: Iterable[int] | None = None
) -> Volume:
    """Read an int16 label map; non-integer values (or values outside ``allowed``) are an error.

    Args:
        path: ``.nii`` or ``.nii.gz`` file, 2-D, 3-D or 4-D.
        frame: time frame of a 4-D file (required when it has more than one).
        allowed: permitted label values (e.g. ``{0, 1, 2, 3}`` for ACDC), or None.
    Returns:
        :class:`Volume` with ``data`` ``(H, W)`` or ``(H, W, D)`` int16.
    """
    path = Path(path)
    return volume_from_image(
        _load_nifti(path), name=str(path), labels=True, frame=frame, allowed=allowed
    )


def labels_to_int16(values: np.ndarray, name: str) -> np.ndarray:
    """Convert an integer-valued array to int16; anything else raises :class:`DataError`."""
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        ints = values
    else:
        if not np.isfinite(values).all():
            raise DataError(f"{name}: label map contains NaN/Inf values")
        ints = np.rint(values)
        if not np.array_equal(ints, values):
            raise DataError(
                f"{name}: label map has non-integer values (e.g. {_first_fraction(values)})"
            )
    if ints.size and (ints.min() < _INT16.min or ints.max() > _INT16.max):
        raise DataError(f"{name}: label values outside the int16 range")
    return ints.astype(np.int16)


def _first_fraction(values: np.ndarray) -> float:
    flat = values.ravel()
    return float(flat[np.flatnonzero(flat != np.rint(flat))[0]])


def check_labels(labels: np.ndarray, allowed: Iterable[int], name: str) -> None:
    """Raise :class:`DataError` naming ``name`` when ``labels`` holds values outside ``allowed``."""
    allowed = sorted({int(a) for a in allowed})
    present = np.unique(labels)
    unexpected = [int(v) for v in present if int(v) not in allowed]
    if unexpected:
        raise DataError(f"{name}: unexpected label values {unexpected} (allowed: {allowed})")


def check_same_ndim(moving: Volume, fixed: Volume) -> None:
    """Raise :class:`DataError` naming both files when their dimensionality differs."""
    if moving.ndim != fixed.ndim:
        raise DataError(
            f"{moving.path or 'moving'} is {moving.ndim}-D "
            f"{moving.shape} but {fixed.path or 'fixed'} is {fixed.ndim}-D "
            f"{fixed.shape}: moving and fixed must have the same dimensionality"
        )


def check_same_grid(reference: Volume, other: Volume) -> None:
    """Raise :class:`DataError` naming both files when their array shapes differ."""
    if reference.shape != other.shape:
        raise DataError(
            f"{other.path or 'image'} has shape {other.shape} but "
            f"{reference.path or 'reference'} has shape {reference.shape}: "
            f"they must share one voxel grid"
        )


def spacing_affine(spacing: Sequence[float]) -> np.ndarray:
    """A ``(4, 4)`` diagonal affine for voxel ``spacing`` (mm), origin at 0."""
    affine = np.eye(4)
    for axis, s in enumerate(list(spacing)[:3]):
        affine[axis, axis] = float(s)
    return affine


def write_image(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    affine: np.ndarray | None = None,
    spacing: Sequence[float] | None = None,
) -> Path:
    """Atomically write a float32 image (any ``(H, W[, D[, C]])`` array) as NIfTI.

    ``affine`` wins over ``spacing``; without either the grid is 1 mm isotropic.
    """
    return _write(path, np.asarray(data, dtype=np.float32), affine, spacing)


def write_labels(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    affine: np.ndarray | None = None,
    spacing: Sequence[float] | None = None,
) -> Path:
    """Atomically write an int16 label map as NIfTI (values must be integers)."""
    return _write(path, labels_to_int16(data, str(path)), affine, spacing)


def _write(
    path: str | os.PathLike,
    data: np.ndarray,
    affine: np.ndarray | None,
    spacing: Sequence[float] | None,
) -> Path:
    import nibabel as nib

    if not is_nifti_path(path):
        raise InputError(f"{path}: output must end in .nii or .nii.gz")
    if affine is None:
        affine = spacing_affine(spacing if spacing is not None else [1.0] * min(data.ndim, 3))
    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm", "sec")
    if spacing is not None:
        zooms = list(img.header.get_zooms())
        n = min(len(spacing), len(zooms))
        zooms[:n] = [float(s) for s in list(spacing)[:n]]
        img.header.set_zooms(zooms)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)
