"""Preprocessing as in the paper, with every step recorded and invertible.

Steps (Krebs et al. 2018, Data): robust intensity normalisation, selection of the
central slices of a volume, in-plane resampling to a target spacing (2 mm) and
crop/pad to a target size (100 x 100), centred on a label centroid (cardiac: the
LV) when labels are known, else on the image centre.

Geometry. Resampling and cropping together are one axis-aligned affine map per
axis ``c`` between a processed voxel index ``p`` and a source voxel index ``o``
(voxel centres, pixel edges of the two grids aligned at the origin)::

    o = scale[c] * (p + offset[c] + 0.5) - 0.5,   scale = target_spacing / source_spacing

where ``offset`` is the crop start in the resampled grid (negative means padding).
:class:`PreprocessRecord` stores it (and the slice, the affine, the intensity
ranges) as plain JSON-serialisable values; :func:`to_processed` applies it and
:func:`to_original` maps a processed image, label map or displacement field
(vectors rescaled) back to the original grid. Processed voxels outside the
source image's extent are padding (0).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError, InputError
from ..io.nifti import Volume, check_same_grid, check_same_ndim
from .defaults import DEFAULT_SIZE, DEFAULT_SPACING
from .pair import Pair

DEFAULT_SLICES = 9  # the paper uses 7-11 slices around the centre of each volume
DEFAULT_PERCENTILES = (1.0, 99.0)
KINDS = ("image", "labels", "mask", "field")


@dataclass
class PreprocessRecord:
    """Everything needed to map a processed array back to the original image grid.

    Attributes:
        original_shape: array shape of the file as read (2-D or 3-D).
        original_spacing: mm per voxel along each axis of ``original_shape``.
        affine: ``4 x 4`` voxel-to-world matrix of the original file (rows).
        slice_axis, slice_index: the original axis and index of the 2-D slice taken
            from a 3-D volume, or None when the whole array was used.
        target_spacing: mm per processed voxel, one entry per processed axis.
        size: processed array shape.
        offset: crop start in the resampled grid per processed axis (< 0: padding).
        resampled_shape: shape of the full resampled grid (informative).
        intensity: image role (``"moving"``, ``"fixed"``) -> ``(lo, hi)`` original
            intensities mapped to 0 and 1.
    """

    original_shape: tuple[int, ...]
    original_spacing: tuple[float, ...]
    affine: tuple[tuple[float, ...], ...]
    slice_axis: int | None
    slice_index: int | None
    target_spacing: tuple[float, ...]
    size: tuple[int, ...]
    offset: tuple[int, ...]
    resampled_shape: tuple[int, ...]
    intensity: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def axes(self) -> tuple[int, ...]:
        """Original axes that become the processed axes, in order."""
        return tuple(a for a in range(len(self.original_shape)) if a != self.slice_axis)

    @property
    def source_shape(self) -> tuple[int, ...]:
        """Shape of the (sliced) original grid that :func:`to_original` returns."""
        return tuple(self.original_shape[a] for a in self.axes)

    @property
    def source_spacing(self) -> tuple[float, ...]:
        return tuple(self.original_spacing[a] for a in self.axes)

    @property
    def scale(self) -> tuple[float, ...]:
        """Source voxels per processed voxel along each processed axis."""
        return tuple(t / s for t, s in zip(self.target_spacing, self.source_spacing, strict=False))

    def source_coordinates(self, index: Sequence[float]) -> np.ndarray:
        """Source voxel coordinates of processed voxel ``index`` (one entry per axis)."""
        a, b = _axis_maps(self)
        return a * np.asarray(index, dtype=np.float64) + b

    def processed_affine(self) -> np.ndarray:
        """``(4, 4)`` voxel-to-world matrix of the processed grid.

        Processed voxel ``(p0, p1[, p2])`` (third index 0 for a slice) maps to the
        same world point as the original voxel it was sampled from.
        """
        affine = np.asarray(self.affine, dtype=np.float64)
        a, b = _axis_maps(self)
        origin = np.zeros(4)
        origin[3] = 1.0
        out = np.zeros((4, 4))
        for c, axis in enumerate(self.axes):
            out[:, c] = affine[:, axis] * a[c]
            origin[axis] = b[c]
        if self.slice_axis is not None:
            origin[self.slice_axis] = self.slice_index
        spare = [ax for ax in range(3) if ax not in self.axes[:3]]
        for c, axis in zip(range(len(self.axes), 3), spare, strict=False):
            out[:, c] = affine[:, axis]
        out[:, 3] = affine @ origin
        return out

    def to_dict(self) -> dict[str, Any]:
        """A dict of plain JSON types (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessRecord:
        """Rebuild a record written by :meth:`to_dict` (also after a JSON round trip)."""
        d = dict(data)
        for key in ("original_shape", "size", "offset", "resampled_shape"):
            d[key] = tuple(int(v) for v in d[key])
        for key in ("original_spacing", "target_spacing"):
            d[key] = tuple(float(v) for v in d[key])
        d["affine"] = tuple(tuple(float(v) for v in row) for row in d["affine"])
        d["intensity"] = {k: (float(v[0]), float(v[1])) for k, v in d.get("intensity", {}).items()}
        return cls(**d)


# ---------------------------------------------------------------------------- geometry


def _axis_maps(record: PreprocessRecord) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis ``(a, b)`` with source index ``o = a * p + b`` for processed index ``p``."""
    a = np.asarray(record.scale, dtype=np.float64)
    b = a * (np.asarray(record.offset, dtype=np.float64) + 0.5) - 0.5
    return a, b


def plan_geometry(
    original_shape: Sequence[int],
    original_spacing: Sequence[float],
    *,
    target_spacing: Sequence[float] = DEFAULT_SPACING,
    size: Sequence[int] = DEFAULT_SIZE,
    centre: Sequence[float] | None = None,
    affine: np.ndarray | None = None,
    slice_axis: int | None = None,
    slice_index: int | None = None,
) -> PreprocessRecord:
    """Plan resampling to ``target_spacing`` and a crop/pad to ``size`` around ``centre``.

    Args:
        original_shape, original_spacing: shape and mm spacing of the array as read.
        target_spacing: processed mm per voxel, one per processed axis (the axes of
            ``original_shape`` without ``slice_axis``).
        size: processed shape, one per processed axis.
        centre: crop centre in source voxel coordinates (processed axes); default:
            the image centre.
        affine: original ``(4, 4)`` voxel-to-world matrix (default: diagonal spacing).
        slice_axis, slice_index: the slice taken from a volume, if any.
    """
    original_shape = tuple(int(n) for n in original_shape)
    original_spacing = tuple(float(s) for s in original_spacing)
    if slice_axis is not None:
        slice_axis = slice_axis % len(original_shape)
    axes = [a for a in range(len(original_shape)) if a != slice_axis]
    size, target_spacing = _check_plan(axes, size, target_spacing)
    source_shape = [original_shape[a] for a in axes]
    scale = [t / original_spacing[a] for t, a in zip(target_spacing, axes, strict=True)]
    if centre is None:
        centre = [(n - 1) / 2 for n in source_shape]
    # centre in resampled voxels, then the crop start that puts it in the middle
    resampled_centre = [(o + 0.5) / s - 0.5 for o, s in zip(centre, scale, strict=False)]
    offset = tuple(
        int(np.floor(r - (n - 1) / 2 + 0.5)) for r, n in zip(resampled_centre, size, strict=False)
    )
    resampled = tuple(max(1, int(round(n / s))) for n, s in zip(source_shape, scale, strict=True))
    if affine is None:
        affine = np.diag([*original_spacing[:3], *[1.0] * (4 - min(3, len(original_spacing)))])
    return PreprocessRecord(
        original_shape=original_shape,
        original_spacing=original_spacing,
        affine=tuple(tuple(float(v) for v in row) for row in np.asarray(affine)),
        slice_axis=slice_axis,
        slice_index=None if slice_index is None else int(slice_index),
        target_spacing=target_spacing,
        size=size,
        offset=offset,
        resampled_shape=resampled,
    )


def _check_plan(
    axes: list[int], size: Sequence[int], target_spacing: Sequence[float]
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    size = tuple(int(n) for n in size)
    target_spacing = tuple(float(s) for s in target_spacing)
    if len(size) != len(axes) or len(target_spacing) != len(axes):
        raise InputError(
            f"size {size} and spacing {target_spacing} need {len(axes)} entries "
            f"for a {len(axes)}-D processed grid"
        )
    if min(size) < 1 or min(target_spacing) <= 0:
        raise InputError(f"size {size} and spacing {target_spacing} must be positive")
    return size, target_spacing


def _sample(
    array: np.ndarray, coords: list[np.ndarray], order: int, zero_outside: bool = True
) -> np.ndarray:
    """Sample ``array`` at per-axis coordinate vectors (outer grid); 0 outside its extent
    (``zero_outside=False``: its edge values carried on)."""
    from scipy.ndimage import map_coordinates

    grids = np.meshgrid(*coords, indexing="ij")
    out = map_coordinates(array, np.stack(grids), order=order, mode="nearest", prefilter=False)
    if not zero_outside:
        return out
    inside = np.ones(out.shape, dtype=bool)
    for g, n in zip(grids, array.shape, strict=True):
        inside &= (g >= -0.5) & (g < n - 0.5)
    out[~inside] = 0
    return out


def _resample(
    array: np.ndarray, coords: list[np.ndarray], kind: str, vector_scale: np.ndarray
) -> np.ndarray:
    """Resample an image / label map / mask / field ``(ndim, *S)`` at ``coords``."""
    if kind not in KINDS:
        raise InputError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "field":
        return np.stack(
            [
                _sample(np.asarray(array[c], dtype=np.float32), coords, 1)
                * np.float32(vector_scale[c])
                for c in range(len(coords))
            ]
        )
    if kind == "image":
        return _sample(np.asarray(array, dtype=np.float32), coords, 1)
    dtype = np.uint8 if kind == "mask" else np.int16
    return _sample(np.asarray(array).astype(dtype, copy=False), coords, 0).astype(dtype)


def _check_shape(array: np.ndarray, shape: tuple[int, ...], kind: str, where: str) -> None:
    expected = (len(shape), *shape) if kind == "field" else shape
    if tuple(np.shape(array)) != tuple(expected):
        raise DataError(
            f"{where}: expected a {kind} of shape {tuple(expected)}, got {tuple(np.shape(array))}"
        )


def to_processed(array: np.ndarray, record: PreprocessRecord, kind: str = "image") -> np.ndarray:
    """Resample and crop/pad a source-grid array onto the processed grid.

    Args:
        array: ``record.source_shape`` image (linear), label map (nearest, int16),
            mask (nearest, uint8), or ``(ndim, *source_shape)`` field in source voxels.
        record: the plan from :func:`plan_geometry`.
        kind: ``"image"``, ``"labels"``, ``"mask"`` or ``"field"``.
    Returns:
        ``record.size`` array (``(ndim, *size)`` in processed voxels for a field).
    """
    _check_shape(array, record.source_shape, kind, "to_processed")
    a, b = _axis_maps(record)
    coords = [a[c] * np.arange(n) + b[c] for c, n in enumerate(record.size)]
    return _resample(array, coords, kind, 1.0 / a)


#: The least width (source voxels) of the band outside the processed region over which a
#: field mapped back by :func:`to_original` fades to zero.
FIELD_TAPER_MIN = 8.0


def to_original(array: np.ndarray, record: PreprocessRecord, kind: str = "image") -> np.ndarray:
    """Map a processed array back to the original (sliced) grid: inverse of :func:`to_processed`.

    Args:
        array: ``record.size`` image / label map / mask, or a ``(ndim, *size)``
            displacement field in processed voxels.
        record: the record of the processed array.
        kind: ``"image"``, ``"labels"``, ``"mask"`` or ``"field"``.
    Returns:
        ``record.source_shape`` array (a field ``(ndim, *source_shape)`` in source
        voxels: each component multiplied by ``record.scale``). Voxels outside the
        cropped region are 0, but a field's: there its edge vectors fade to zero over a
        band (:func:`_field_back`), so that the transform does not fold at the region's
        faces. Intensities stay normalised (see :func:`denormalise`).
    """
    _check_shape(array, record.size, kind, "to_original")
    a, b = _axis_maps(record)
    coords = [(np.arange(n) - b[c]) / a[c] for c, n in enumerate(record.source_shape)]
    if kind == "field":
        return _field_back(np.asarray(array), coords, record.size, a)
    return _resample(array, coords, kind, a)


def _field_back(
    field: np.ndarray, coords: list[np.ndarray], size: Sequence[int], a: np.ndarray
) -> np.ndarray:
    """:func:`to_original` of a field ``(ndim, *size)``: sampled at ``coords`` (processed
    voxels), its vectors scaled by ``a`` into source voxels. Outside the processed box the
    box's edge vectors carry on and fade linearly to zero over a band of
    ``max(FIELD_TAPER_MIN, 2 × the largest vector)`` source voxels, so the field has no
    step at the box's faces (a step would fold the transform there: det J < 0) and the
    band's own fall-off stretches or compresses by at most a half. Each field fades by
    its own band: beyond the box a displacement, its inverse and its velocity are
    extrapolations and no longer exact counterparts of each other."""
    out = np.stack(
        [
            _sample(np.asarray(field[c], dtype=np.float32), coords, 1, zero_outside=False)
            * np.float32(a[c])
            for c in range(len(coords))
        ]
    )
    outside = np.zeros(out.shape[1:], dtype=np.float32)  # squared distance, source voxels
    for c, (g, n) in enumerate(zip(coords, size, strict=True)):
        d = np.maximum(0.0, np.maximum(-0.5 - g, g - (n - 0.5))) * abs(a[c])
        shape = [1] * len(coords)
        shape[c] = len(g)
        outside += (d.astype(np.float32) ** 2).reshape(shape)  # broadcast along the others
    if outside.any():
        band = max(FIELD_TAPER_MIN, 2.0 * float(np.sqrt((out**2).sum(0)).max()))
        out *= np.clip(1.0 - np.sqrt(outside) / np.float32(band), 0.0, 1.0)
    return out


def processed_region(record: PreprocessRecord) -> np.ndarray:
    """Boolean ``record.source_shape`` mask of source voxels covered by the processed grid."""
    return to_original(np.ones(record.size, dtype=np.uint8), record, "mask").astype(bool)


# ---------------------------------------------------------------------------- intensities


def normalise_intensity(
    image: np.ndarray, percentiles: Sequence[float] = DEFAULT_PERCENTILES
) -> tuple[np.ndarray, tuple[float, float]]:
    """Map the ``percentiles`` (e.g. 1st and 99th) of ``image`` to 0 and 1, clipped.

    Returns the float32 image in [0, 1] and the ``(lo, hi)`` original intensities used.
    """
    lo, hi = (float(v) for v in np.percentile(image, percentiles))
    if not hi > lo:  # constant image
        hi = lo + 1.0
    out = (np.asarray(image, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(out, 0.0, 1.0), (lo, hi)


def denormalise(image: np.ndarray, intensity_range: Sequence[float]) -> np.ndarray:
    """Undo :func:`normalise_intensity` (up to the clipping): ``lo + image * (hi - lo)``."""
    lo, hi = intensity_range
    return np.asarray(image, dtype=np.float32) * np.float32(hi - lo) + np.float32(lo)


# ---------------------------------------------------------------------------- slices, centres


def central_slices(n_total: int, n_slices: int) -> tuple[int, ...]:
    """Indices of the ``n_slices`` central slices of ``n_total`` (all when fewer)."""
    if n_slices < 1:
        raise InputError(f"n_slices must be >= 1, got {n_slices}")
    n = min(int(n_slices), int(n_total))
    start = (n_total - n) // 2
    return tuple(range(start, start + n))


def label_centroid(
    labels: np.ndarray, values: Sequence[int], slice_axis: int | None = None
) -> tuple[float, ...] | None:
    """Centroid (voxels) of the voxels whose label is in ``values``, or None when there are none.

    With ``slice_axis`` the region is projected along it first and the centroid has
    one entry per remaining axis.
    """
    region = np.isin(labels, np.asarray(values))
    projected = region if slice_axis is None else region.any(axis=slice_axis)
    if not projected.any():
        return None
    return tuple(float(c.mean()) for c in np.nonzero(projected))


# ---------------------------------------------------------------------------- pipeline


@dataclass
class _Inputs:
    moving: Volume
    fixed: Volume
    moving_labels: Volume | None
    fixed_labels: Volume | None
    mask: Volume | None


def _check_inputs(inputs: _Inputs) -> None:
    check_same_ndim(inputs.moving, inputs.fixed)
    for image, extra in (
        (inputs.moving, inputs.moving_labels),
        (inputs.fixed, inputs.fixed_labels),
        (inputs.moving, inputs.mask),
    ):
        if extra is not None:
            check_same_ndim(image, extra)
            check_same_grid(image, extra)


def align_to_fixed(inputs: _Inputs) -> _Inputs:
    """The moving image, its labels and mask resampled into the fixed image's world
    grid when the two grids differ (see :mod:`structreg.io.grids`)."""
    from ..io.grids import resample_into, same_grid

    if same_grid(inputs.moving, inputs.fixed):
        return inputs
    fixed = inputs.fixed
    return _Inputs(
        moving=resample_into(inputs.moving, fixed),
        fixed=fixed,
        moving_labels=None
        if inputs.moving_labels is None
        else resample_into(inputs.moving_labels, fixed, labels=True),
        fixed_labels=inputs.fixed_labels,
        mask=None if inputs.mask is None else resample_into(inputs.mask, fixed, labels=True),
    )


def preprocess_pair(
    moving: Volume,
    fixed: Volume,
    *,
    pair_id: str,
    moving_labels: Volume | None = None,
    fixed_labels: Volume | None = None,
    mask: Volume | None = None,
    subject: str | None = None,
    group: str | None = None,
    size: Sequence[int] = DEFAULT_SIZE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    n_slices: int | None = DEFAULT_SLICES,
    slice_axis: int = -1,
    centre_labels: Sequence[int] | None = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    meta: dict[str, Any] | None = None,
) -> list[Pair]:
    """Turn a moving/fixed pair of 2-D images or 3-D volumes into preprocessed :class:`Pair` s.

    A moving image on another grid than the fixed one (shape, spacing,
    orientation, field of view) is first resampled into the fixed image's world
    grid through the affines, with its labels and mask (nearest neighbour); the
    pairs then live on the fixed grid. Label maps and masks must share their
    image's grid. 2-D images give one pair. 3-D volumes give one 2-D pair per central slice
    along ``slice_axis`` (``n_slices`` of them), or, with ``n_slices=None``, one
    3-D pair (then ``size`` and ``spacing`` need three entries). Intensities are
    normalised per volume; moving and fixed share one geometry (crop centred on
    the centroid of ``centre_labels`` in the moving labels when given and
    present, else the image centre). Each pair's ``meta["preprocess"]`` holds its
    :class:`PreprocessRecord` as a dict; ``meta`` entries are added to it.

    Returns:
        Pairs with ``S = size`` arrays and ``spacing`` = the target spacing (mm).
    """
    inputs = _Inputs(moving, fixed, moving_labels, fixed_labels, mask)
    _check_inputs(inputs)
    inputs = align_to_fixed(inputs)
    mov, mov_range = normalise_intensity(inputs.moving.data, percentiles)
    fix, fix_range = normalise_intensity(inputs.fixed.data, percentiles)
    axis, slices = _slice_selection(inputs.moving, n_slices, slice_axis)
    indices: tuple[int | None, ...] = (None,) if axis is None else slices
    centre = _crop_centre(inputs.moving_labels, centre_labels, axis, slices)
    source = _PairSource(
        inputs, mov, fix, mov_range, fix_range, pair_id, subject, group, _file_meta(inputs, meta)
    )
    return [
        _slice_pair(source, _plan_slice(source, size, spacing, centre, axis, index), axis, index)
        for index in indices
    ]


@dataclass
class _PairSource:
    """What the pairs of one :func:`preprocess_pair` call share: the inputs (moving
    already on the fixed grid), their normalised intensities ``mov``, ``fix`` (the
    original grid, float32 in [0, 1]) with the ``(lo, hi)`` ranges used, and the
    pair id, subject, group and metadata (source files and the caller's entries)."""

    inputs: _Inputs
    mov: np.ndarray
    fix: np.ndarray
    mov_range: tuple[float, float]
    fix_range: tuple[float, float]
    pair_id: str
    subject: str | None
    group: str | None
    meta: dict[str, Any]


def _slice_selection(
    moving: Volume, n_slices: int | None, slice_axis: int
) -> tuple[int | None, tuple[int, ...]]:
    """``(axis, slices)``: the original axis 2-D slices are taken along and the indices of
    the central ``n_slices`` along it, or ``(None, ())`` for a 2-D image or
    ``n_slices=None`` (the whole array is one pair)."""
    axis: int | None = None
    slices: tuple[int, ...] = ()
    if moving.ndim != 2 and n_slices is not None:
        axis = slice_axis % moving.ndim
        slices = central_slices(moving.shape[axis], n_slices)
    return axis, slices


def _file_meta(inputs: _Inputs, meta: dict[str, Any] | None) -> dict[str, Any]:
    """The source file of each input (None when absent) followed by ``meta``'s entries."""
    moving_labels, fixed_labels, mask = inputs.moving_labels, inputs.fixed_labels, inputs.mask
    return {
        "moving_file": inputs.moving.path,
        "fixed_file": inputs.fixed.path,
        "moving_labels_file": moving_labels.path if moving_labels else None,
        "fixed_labels_file": fixed_labels.path if fixed_labels else None,
        "mask_file": mask.path if mask else None,
        **(meta or {}),
    }


def _plan_slice(
    source: _PairSource,
    size: Sequence[int],
    spacing: Sequence[float],
    centre: tuple[float, ...] | None,
    axis: int | None,
    index: int | None,
) -> PreprocessRecord:
    """The record of slice ``index`` along ``axis`` (the whole array for None): its
    geometry (:func:`plan_geometry`, errors named after the moving file or the pair
    id) and the intensity ranges."""
    moving = source.inputs.moving
    try:
        record = plan_geometry(
            moving.shape,
            moving.spacing,
            target_spacing=spacing,
            size=size,
            centre=centre,
            affine=moving.affine,
            slice_axis=axis,
            slice_index=index,
        )
    except ValueError as exc:
        raise DataError(f"{moving.path or source.pair_id}: {exc}") from None
    record.intensity = {"moving": source.mov_range, "fixed": source.fix_range}
    return record


def _slice_pair(
    source: _PairSource, record: PreprocessRecord, axis: int | None, index: int | None
) -> Pair:
    """The :class:`Pair` of slice ``index`` along ``axis`` (the whole array for None)
    on the processed grid of ``record``."""
    inputs = source.inputs
    mask = None if inputs.mask is None else inputs.mask.data != 0
    return Pair(
        moving=to_processed(_take(source.mov, axis, index), record, "image"),
        fixed=to_processed(_take(source.fix, axis, index), record, "image"),
        spacing=tuple(record.target_spacing),
        id=source.pair_id if axis is None else f"{source.pair_id}_slice{index:02d}",
        subject=source.subject,
        group=source.group,
        moving_labels=_maybe(_data(inputs.moving_labels), axis, index, record, "labels"),
        fixed_labels=_maybe(_data(inputs.fixed_labels), axis, index, record, "labels"),
        mask=_maybe(mask, axis, index, record, "mask"),
        meta={**source.meta, "preprocess": record.to_dict()},
    )


def _take(array: np.ndarray, axis: int | None, index: int | None) -> np.ndarray:
    """Slice ``index`` along ``axis`` of ``array``, or ``array`` itself (``axis`` None)."""
    if axis is None or index is None:
        return array
    return np.take(array, index, axis=axis)


def _data(vol: Volume | None) -> np.ndarray | None:
    return None if vol is None else vol.data


def _maybe(
    array: np.ndarray | None,
    axis: int | None,
    index: int | None,
    record: PreprocessRecord,
    kind: str,
) -> np.ndarray | None:
    """:func:`to_processed` of the slice of ``array`` (None stays None)."""
    return None if array is None else to_processed(_take(array, axis, index), record, kind)


def _crop_centre(
    labels: Volume | None,
    values: Sequence[int] | None,
    axis: int | None,
    slices: tuple[int, ...],
) -> tuple[float, ...] | None:
    """Centroid of ``values`` in ``labels`` over the selected slices (processed axes)."""
    if labels is None or values is None:
        return None
    data = labels.data
    if axis is not None:
        data = np.take(data, list(slices), axis=axis)
    return label_centroid(data, values, slice_axis=axis)
