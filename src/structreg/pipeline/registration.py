"""One registration of two images in world space, by any registration method.

:func:`register_volumes` takes a moving and a fixed :class:`~structreg.io.nifti.Volume`
(arrays with their voxel-to-world affines; any shapes, spacings and orientations),
brings them onto the registration grid of the method (resampled in-plane,
cropped/padded, intensities normalised: :func:`~structreg.data.preprocess.preprocess_pair`),
registers them through the :class:`~structreg.methods.base.Registrar` contract, and maps
the result back onto the fixed image's grid: a :class:`Registration`, whose arrays all
lie on the fixed grid and whose :meth:`Registration.save` writes the output files.

A 3-D grid registers whole volumes (a true 3-D field); a 2-D grid registers a
3-D volume slice by slice along its last axis, with a zero through-plane
displacement. Labels never take part in the registration: they are only warped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import metrics
from ..core.ops import jacobian_det, warp
from ..data.pair import Pair
from ..data.preprocess import PreprocessRecord, preprocess_pair, to_original
from ..errors import DataError, InputError
from ..io.fields import write_itk_displacement
from ..io.files import atomic_folder, atomic_write_text, check_inputs_outside
from ..io.grids import same_grid, sample_at, source_coordinates, voxel_grid, world_displacement
from ..io.nifti import Volume, to_file_layout, write_image, write_labels
from ..io.transforms import write_itk_affine
from ..methods.affine import AffineOptions, AffineResult, affine_align
from ..methods.base import Registrar, RegistrationResult, warp_array
from .field import FieldOptions, refine_on_grid

__all__ = [
    "OUTPUTS",
    "Registration",
    "aligned_volume",
    "check_out",
    "prepare_pairs",
    "register_volumes",
    "registration_grid",
    "warp_volume",
]

OUTPUTS = frozenset(
    {
        "moved.nii.gz",
        "moved_labels.nii.gz",
        "disp.nii.gz",
        "inverse_disp.nii.gz",
        "velocity.nii.gz",
        "jacobian_det.nii.gz",
        "z.json",
        "affine.tfm",
    }
)
"""The files of a registration's output folder (the folder is replaced whole)."""


def check_out(out_dir: str | os.PathLike) -> None:
    """Refuse an output folder that holds anything but a registration's outputs: it
    is replaced whole, and other files must not be lost (:class:`DataError`)."""
    out = Path(out_dir)
    if out.is_symlink():
        raise DataError(f"{out}: is a symbolic link; write the outputs to a real folder")
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


def warp_volume(
    moving: Volume,
    fixed: Volume,
    disp: np.ndarray,
    *,
    labels: bool,
    voxels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp an image (or label map) of the moving grid onto the fixed grid.

    Args:
        moving: the image at its own resolution, with its affine.
        fixed: the fixed image's grid (only its geometry is used).
        disp: ``(ndim, *fixed.shape)`` displacement in fixed voxels (pull-back).
        labels: nearest-neighbour sampling and int16 output (else linear, float32).
        voxels: ``(moving.ndim, ndim + 1)`` map of fixed voxels to moving voxels applied
            after ``disp`` (an affine stage's :attr:`AffineResult.voxels`); None: the
            world mapping of the two affines.
    Returns:
        ``(moved, sampled)``: ``moved`` of ``fixed.shape``, sampled at ``x + disp(x)``
        mapped into the moving grid, and ``sampled``, the displacement (fixed voxels)
        to the points of the moving grid sampled, as exported.
    """
    if voxels is not None:
        coords, inside = _mapped(voxels, voxel_grid(fixed.shape) + disp, moving.shape)
    elif same_grid(moving, fixed):
        if not labels:
            return warp_array(moving.data, disp)[0], disp
        data = torch.from_numpy(moving.data.astype(np.float64))[None, None]
        moved = warp(data, torch.from_numpy(disp)[None], mode="nearest")[0, 0].numpy()
        return moved.round().astype(np.int16), disp
    else:
        coords, inside = source_coordinates(moving, fixed, voxel_grid(fixed.shape) + disp)
    moved = sample_at(moving.data, coords, inside, order=0 if labels else 1)
    exported = world_displacement(moving, fixed, coords)
    return (moved.round().astype(np.int16) if labels else moved.astype(np.float32)), exported


def _mapped(
    voxels: np.ndarray, points: np.ndarray, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """``points`` ``(ndim, *S)`` mapped by ``voxels`` into a grid of ``shape``: the
    coordinates and whether each lies inside (within half a voxel)."""
    n = points.shape[0]
    flat = points.reshape(n, -1)
    coords = (voxels[:, :n] @ flat + voxels[:, n : n + 1]).reshape(-1, *points.shape[1:])
    extent = np.asarray(shape, dtype=np.float64).reshape(-1, *[1] * n)
    inside = np.all((coords >= -0.5) & (coords <= extent - 0.5), axis=0)
    return coords, inside


def aligned_volume(moving: Volume, fixed: Volume, affine: AffineResult | None) -> Volume:
    """The moving image resampled onto the fixed grid through an affine stage (None:
    through the two images' world mapping; linear, 0 outside the moving image's field of
    view)."""
    zero = np.zeros((fixed.ndim, *fixed.shape))
    voxels = None if affine is None else affine.voxels
    moved, _ = warp_volume(moving, fixed, zero, labels=False, voxels=voxels)
    return Volume(moved, fixed.affine, fixed.spacing, fixed.path, fixed.file_shape)


def _stack_slices(
    arrays: Sequence[np.ndarray], records: Sequence[PreprocessRecord], shape: tuple[int, ...]
) -> np.ndarray:
    """Per-slice fields ``(2, H, W)`` (mapped back to source grids) reassembled into one
    ``(ndim, *shape)`` field; the through-plane component stays 0."""
    if records[0].slice_axis is None:
        return arrays[0].astype(np.float64)
    ndim, axis = len(shape), records[0].slice_axis
    out = np.zeros((ndim, *shape), dtype=np.float64)
    for arr, rec in zip(arrays, records, strict=True):
        index: list[Any] = [slice(None)] * ndim
        index[axis] = rec.slice_index
        for c, ax in enumerate(rec.axes):
            out[(ax, *index)] = arr[c]
    return out


@dataclass
class Registration:
    """A registration of a moving onto a fixed image, every array on the fixed grid.

    Attributes:
        moving, fixed: the two images as given (arrays with their affines).
        moved: ``fixed.shape`` float32, the moving image (original intensities)
            warped onto the fixed grid.
        disp_voxels: ``(ndim, *fixed.shape)`` float64 displacement in fixed voxels,
            ``moved(x) = moving(x + disp(x))`` (pull-back); channel ``c`` moves
            along array axis ``c``.
        inverse_voxels: the displacement of the inverse transform, or None for
            methods without one.
        velocity_voxels: the stationary velocity field (voxels per unit time), or None.
        sampled: ``disp_voxels`` plus the world mapping from the fixed to the moving
            grid (equal to ``disp_voxels`` when both share a grid): what ITK applies.
        codes: ``(n, d)`` latent code per registered slice (one row for a 2-D image
            or a 3-D model), or None for methods without a code.
        slices: the fixed array's index of each registered slice (None: whole image).
        seconds: wall time of the method's registration call.
        moved_labels: the moving label map warped (int16), when labels were given.
        pair_id: a name for the pair (written into ``z.json``).
        affine: the affine stage that ran before the deformable one, or None. Then
            ``disp_voxels``, ``inverse_voxels``, ``velocity_voxels`` and ``codes`` are
            the deformable stage's (between the affinely aligned moving image and
            the fixed one), while ``moved``, ``sampled`` and :meth:`warp` compose both.
    """

    moving: Volume
    fixed: Volume
    moved: np.ndarray
    disp_voxels: np.ndarray
    inverse_voxels: np.ndarray | None
    velocity_voxels: np.ndarray | None
    sampled: np.ndarray
    codes: np.ndarray | None
    slices: list[int | None]
    seconds: float
    moved_labels: np.ndarray | None = None
    pair_id: str = "pair"
    affine: AffineResult | None = None

    @property
    def voxels(self) -> np.ndarray | None:
        """The affine stage's map of fixed voxels to moving voxels, or None."""
        return None if self.affine is None else self.affine.voxels

    def _mm(self, field: np.ndarray | None) -> np.ndarray | None:
        if field is None:
            return None
        scale = np.asarray(self.fixed.spacing, dtype=np.float64)
        return field * scale.reshape((-1,) + (1,) * (field.ndim - 1))

    @property
    def displacement(self) -> np.ndarray:
        """``(ndim, *fixed.shape)`` displacement in mm along the fixed array's axes."""
        out = self._mm(self.disp_voxels)
        assert out is not None
        return out

    @property
    def inverse(self) -> np.ndarray | None:
        """``(ndim, *fixed.shape)`` inverse displacement in mm (None: the method has none)."""
        return self._mm(self.inverse_voxels)

    @property
    def velocity(self) -> np.ndarray | None:
        """``(ndim, *fixed.shape)`` stationary velocity in mm per unit time, or None."""
        return self._mm(self.velocity_voxels)

    @property
    def jacobian(self) -> np.ndarray:
        """``fixed.shape`` float32 determinant of the Jacobian of ``x + disp(x)``."""
        disp = torch.from_numpy(self.disp_voxels)[None]
        return jacobian_det(disp)[0, 0].numpy().astype(np.float32)

    @property
    def code(self) -> np.ndarray | None:
        """The latent code: ``(d,)`` for one registered image, ``(n, d)`` for n slices."""
        if self.codes is None:
            return None
        return self.codes[0] if len(self.codes) == 1 else self.codes

    @property
    def folding_pct(self) -> float:
        """Percentage of fixed voxels where ``det J <= 0``."""
        return float(metrics.folding_percent(self.disp_voxels))

    def warp(self, image: Volume | np.ndarray, *, labels: bool | None = None) -> np.ndarray:
        """Warp another image of the moving image's grid onto the fixed grid.

        Args:
            image: an array of the moving image's shape, or a :class:`Volume`
                (on any grid: the world mapping of its affine is used).
            labels: nearest-neighbour sampling (int16 output); None: for an
                integer or boolean array.
        Returns:
            ``fixed.shape`` array.
        """
        if not isinstance(image, Volume):
            data = np.asarray(image)
            if data.shape != self.moving.shape:
                raise InputError(
                    f"warp: an array of the moving image's shape {self.moving.shape} is "
                    f"needed, got {data.shape} (or give a Volume with its affine)"
                )
            image = Volume(data, self.moving.affine, self.moving.spacing)
        if labels is None:
            labels = image.data.dtype.kind in "biu"
        data = image.data if labels else image.data.astype(np.float32)
        volume = Volume(data, image.affine, image.spacing)
        if self.affine is not None and not same_grid(volume, self.moving):
            raise InputError("warp: with an affine stage, give an image of the moving grid")
        disp = self.disp_voxels
        return warp_volume(volume, self.fixed, disp, labels=labels, voxels=self.voxels)[0]

    def save(self, out_dir: str | os.PathLike) -> list[str]:
        """Write the outputs into ``out_dir`` (replaced whole; refused when it holds
        other files), all on the fixed image's affine and in its file layout:

        | file | content |
        |---|---|
        | ``moved.nii.gz`` | the moving image warped onto the fixed image |
        | ``moved_labels.nii.gz`` | the moving labels warped (nearest), when given |
        | ``disp.nii.gz`` | displacement in mm, ITK/ANTs convention (LPS vector NIfTI) |
        | ``inverse_disp.nii.gz`` | the inverse transform's displacement, same convention |
        | ``velocity.nii.gz`` | stationary velocity in mm per unit time, same convention |
        | ``jacobian_det.nii.gz`` | determinant of the Jacobian of the transform |
        | ``z.json`` | latent code per slice, with the slice index |
        | ``affine.tfm`` | the affine stage alone, an ITK transform file (fixed to moving) |

        ``disp.nii.gz`` maps the fixed grid to the original moving image (world
        mapping and affine stage included): it alone reproduces ``moved``. With an
        affine stage, ``inverse_disp.nii.gz`` and ``velocity.nii.gz`` are the
        deformable stage's. Fields and ``z.json`` a method does not produce are left
        out. Returns the
        names of the files written.
        """
        check_out(out_dir)
        inputs = [p for p in (self.moving.path, self.fixed.path) if p]
        check_inputs_outside(out_dir, inputs)
        fixed, affine = self.fixed, self.fixed.affine
        with atomic_folder(out_dir) as out:
            write_image(out / "moved.nii.gz", to_file_layout(self.moved, fixed), affine=affine)
            written = ["moved.nii.gz"]
            if self.moved_labels is not None:
                layout = to_file_layout(self.moved_labels, fixed)
                write_labels(out / "moved_labels.nii.gz", layout, affine=affine)
                written.append("moved_labels.nii.gz")
            fields = (
                ("disp", self.sampled),
                ("inverse_disp", self.inverse_voxels),
                ("velocity", self.velocity_voxels),
            )
            for name, field in fields:
                if field is not None:
                    write_itk_displacement(
                        out / f"{name}.nii.gz", field, affine, layout=fixed.layout
                    )
                    written.append(f"{name}.nii.gz")
            det = to_file_layout(self.jacobian, fixed)
            write_image(out / "jacobian_det.nii.gz", det, affine=affine)
            written.append("jacobian_det.nii.gz")
            if self.affine is not None:
                dims = 2 if len(fixed.layout) == 2 else 3
                write_itk_affine(out / "affine.tfm", self.affine.world, dims)
                written.append("affine.tfm")
            if self.codes is not None:
                rows = [
                    {"slice": s, "z": [round(float(v), 6) for v in code]}
                    for s, code in zip(self.slices, self.codes, strict=True)
                ]
                text = json.dumps({"pair": self.pair_id, "codes": rows}, indent=1)
                atomic_write_text(out / "z.json", text)
                written.append("z.json")
        return written


def _slices_of(moving: Volume, fixed: Volume, size: tuple[int, ...]) -> int | None:
    """How many slices a 2-D grid takes from a volume (None: the whole image)."""
    if len(size) == 3:  # a 3-D grid registers whole volumes
        if fixed.ndim != 3 or moving.ndim != 3:
            raise DataError(
                f"a 3-D model ({'x'.join(map(str, size))}) registers 3-D volumes; "
                f"got a {moving.ndim}-D moving and a {fixed.ndim}-D fixed image"
            )
        return None
    return fixed.shape[-1] if fixed.ndim == 3 else None


def registration_grid(
    registrar: Registrar, fixed: Volume
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """``(size, spacing)`` of the grid a method registers on: a trained model's grid
    (its ``model.config.image_size`` and its ``spacing`` attribute, mm), else the
    fixed image's own grid (methods that work at any size: no resampling)."""
    model = getattr(registrar, "model", None)
    spacing = getattr(registrar, "spacing", None)
    if model is not None and spacing is not None:
        return tuple(model.config.image_size), tuple(spacing)
    return fixed.shape, tuple(fixed.spacing)


def prepare_pairs(
    registrar: Registrar, moving: Volume, fixed: Volume, pair_id: str = "pair"
) -> list[Pair]:
    """The pair(s) a method registers: ``moving`` and ``fixed`` brought onto its
    :func:`registration_grid` (the moving image resampled into the fixed image's world
    grid first, then resampled, cropped/padded and normalised; one pair per slice of a
    volume for a 2-D grid). Each pair's ``meta["preprocess"]`` maps it back."""
    size, spacing = registration_grid(registrar, fixed)
    return preprocess_pair(
        moving,
        fixed,
        pair_id=pair_id,
        size=size,
        spacing=spacing,
        n_slices=_slices_of(moving, fixed, size),
    )


def register_volumes(
    registrar: Registrar,
    moving: Volume,
    fixed: Volume,
    *,
    moving_labels: Volume | None = None,
    pair_id: str = "pair",
    affine: AffineOptions | AffineResult | None = None,
    field: FieldOptions | None = None,
) -> Registration:
    """Register ``moving`` onto ``fixed`` with any method on its
    :func:`registration_grid`, and map the result back onto the fixed grid.

    Args:
        registrar: the method (:class:`~structreg.methods.base.Registrar`).
        moving, fixed: the images with their affines; the moving image meets the
            fixed one in world space (any grids).
        moving_labels: a label map on the moving image's grid, only warped.
        pair_id: a name for the pair.
        affine: an affine stage first: its settings (:func:`affine_align` runs here)
            or its result; None: the images are taken as aligned.
        field: then refine the method's velocity on the fixed grid
            (:mod:`structreg.pipeline.field`); the method must give a velocity.
    Returns:
        :class:`Registration` on the fixed grid.
    """
    if moving_labels is not None and moving_labels.shape != moving.shape:
        raise DataError(
            f"label map shape {moving_labels.shape} differs from the moving image {moving.shape}"
        )
    if isinstance(affine, AffineOptions):
        affine = affine_align(moving, fixed, affine)
    source = moving if affine is None else aligned_volume(moving, fixed, affine)
    pairs = prepare_pairs(registrar, source, fixed, pair_id)
    records = [PreprocessRecord.from_dict(p.meta["preprocess"]) for p in pairs]
    m = torch.from_numpy(np.stack([p.moving for p in pairs]))[:, None]
    f = torch.from_numpy(np.stack([p.fixed for p in pairs]))[:, None]
    result = registrar.register(m, f)
    registration = _map_back(result, records, moving, fixed, pair_id, affine)
    if field is not None:
        registration = _refined(registration, records, field, registrar)
    if moving_labels is not None:
        registration.moved_labels = registration.warp(moving_labels.data, labels=True)
    return registration


def _refined(
    registration: Registration,
    records: Sequence[PreprocessRecord],
    options: FieldOptions,
    registrar: Registrar,
) -> Registration:
    """``registration`` with its velocity refined on the fixed grid
    (:func:`~structreg.pipeline.field.refine_on_grid`, on the method's device when it has
    a model) and every field, the moved image and the seconds updated."""
    if registration.velocity_voxels is None:
        method = getattr(registrar, "name", "") or "this method"
        raise InputError(
            f"refine_field: {method} gives no velocity field to refine (ours and lcc-demons do)"
        )
    model = getattr(registrar, "model", None)
    device = next(model.parameters()).device if isinstance(model, torch.nn.Module) else "cpu"
    moving, fixed, affine = registration.moving, registration.fixed, registration.affine
    fields = refine_on_grid(
        aligned_volume(moving, fixed, affine).data,
        fixed.data.astype(np.float32),
        registration.velocity_voxels,
        options,
        slice_axis=records[0].slice_axis,
        slices=[int(r.slice_index) for r in records if r.slice_index is not None],
        device=device,
    )
    moved, sampled = warp_volume(
        moving, fixed, fields.disp, labels=False, voxels=registration.voxels
    )
    return replace(
        registration,
        moved=moved,
        disp_voxels=fields.disp,
        inverse_voxels=fields.inverse,
        velocity_voxels=fields.velocity,
        sampled=sampled,
        seconds=registration.seconds + fields.seconds,
    )


def _map_back(
    result: RegistrationResult,
    records: Sequence[PreprocessRecord],
    moving: Volume,
    fixed: Volume,
    pair_id: str,
    affine: AffineResult | None,
) -> Registration:
    """A method's result on the registration grid as a :class:`Registration` on the
    fixed grid (fields resampled and their vectors rescaled to fixed voxels)."""

    def back(field: torch.Tensor | None) -> np.ndarray | None:
        if field is None:
            return None
        per_slice = [
            to_original(field[i].detach().cpu().numpy().astype(np.float64), rec, kind="field")
            for i, rec in enumerate(records)
        ]
        return _stack_slices(per_slice, records, fixed.shape)

    disp = back(result.disp)
    assert disp is not None
    voxels = None if affine is None else affine.voxels
    moved, sampled = warp_volume(moving, fixed, disp, labels=False, voxels=voxels)
    codes = None if result.z is None else result.z.detach().cpu().numpy().astype(np.float64)
    return Registration(
        moving=moving,
        fixed=fixed,
        moved=moved,
        disp_voxels=disp,
        inverse_voxels=back(result.inverse_disp),
        velocity_voxels=back(result.velocity),
        sampled=sampled,
        codes=codes,
        slices=[rec.slice_index for rec in records],
        seconds=result.seconds + (0.0 if affine is None else affine.seconds),
        pair_id=pair_id,
        affine=affine,
    )
