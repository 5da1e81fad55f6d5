"""The brain phantoms' template: MNI152 on the phantom grid, tissue labels, warping.

Source: the MNI152 ICBM 2009a symmetric template (T1, grey- and white-matter
probability maps, 1 mm) that ships inside the ``nilearn`` wheel under
``nilearn/datasets/data/``. The files are read with nibabel (nilearn itself is
never imported, nothing is downloaded) and cached in memory once per process.

*Template slice* (cached per slice/size/spacing): an axial slab of
``SLICE_THICKNESS_MM`` at MNI ``z = CENTRE_Z_MM + slice_offset * SLICE_THICKNESS_MM``
(the centre cuts the bodies of the lateral ventricles), area-averaged onto an
in-plane grid of ``spacing`` mm and ``size`` pixels centred on the brain
(arrays ``S = (H, W)`` in the template's index order: axis 0 = x left -> right,
axis 1 = y posterior -> anterior). *Template volume*: the same in 3-D, ``S = (D, H, W)``
along MNI x, y, z. Brain = T1 > 0.2 of its maximum (nilearn's brain-mask rule);
CSF = brain − GM − WM; ventricles = the CSF components enclosed by tissue near the
brain centre. The result is five probabilities per cell: background, CSF
(non-ventricular), GM, WM, ventricles (summing to 1), and the T1 intensity.

Labels (``BRAIN_LABELS``: 0 background, 1 CSF, 2 GM, 3 WM, 4 ventricles) are the
argmax over background / CSF / GM / WM probabilities, CSF cells becoming
ventricles where the ventricular part of their CSF dominates.

Shared by the longitudinal (:mod:`.brain`) and inter-subject (:mod:`.brain_inter`,
:mod:`.brain_volumes`) brain phantoms.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import cast

import numpy as np
import torch
from scipy import ndimage

from ...core.ops import warp
from ...errors import DataError, InputError, MissingDependencyError
from ..labels import BRAIN_LABELS

__all__ = [
    "CENTRE_Z_MM",
    "SLICE_THICKNESS_MM",
    "TEMPLATE_FILES",
    "TEMPLATE_SOURCE",
    "TemplateMaps",
    "brain_mask",
    "check_grid",
    "check_slice_grid",
    "slice_tissue_probs",
    "slice_z_mm",
    "subsample_offsets",
    "template_paths",
    "template_slice",
    "template_volume",
    "tissue_labels",
    "ventricle_change",
    "volume_grid_affine",
    "volume_tissue_probs",
    "warp_template",
]

#: Template files inside ``nilearn/datasets/data/``.
TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
#: ``meta["source"]`` of every brain phantom pair.
TEMPLATE_SOURCE = "MNI152 ICBM 2009a symmetric template (nilearn/datasets/data)"
#: MNI z (mm) of the central axial slice: bodies of the lateral ventricles.
CENTRE_Z_MM = 16.0
#: Thickness (mm) of the slab averaged into one slice, and the step between slices.
SLICE_THICKNESS_MM = 2.0

_BRAIN_THRESHOLD = 0.2  # of the T1 maximum, as nilearn.datasets.load_mni152_brain_mask
_VENTRICLE_RADIUS_MM = 35.0  # ventricle components have their centroid this close to the centre
_VENTRICLE_MIN_AREA_MM2 = 16.0
_VENTRICLE_MIN_VOLUME_MM3 = 200.0  # the same rule in 3-D (volume phantoms)
_CLASS_TO_LABEL = np.array(
    [0, BRAIN_LABELS["CSF"], BRAIN_LABELS["GM"], BRAIN_LABELS["WM"], BRAIN_LABELS["ventricles"]],
    dtype=np.int16,
)


@dataclass(frozen=True)
class TemplateMaps:
    """The template on a phantom grid ``S`` (``(H, W)`` slice or ``(D, H, W)`` volume).

    Attributes:
        t1: ``S`` float32 T1 in [0, 1].
        probs: ``(5, *S)`` float32 probabilities of background, CSF (non-ventricular),
            GM, WM, ventricles (summing to 1 per cell).
        affine: ``(4, 4)`` cell ``(i, j, k)`` -> MNI mm, before any subject deformation.
    """

    t1: np.ndarray
    probs: np.ndarray
    affine: np.ndarray


def slice_z_mm(slice_offset: int) -> float:
    """MNI z (mm) of the axial slice ``slice_offset`` steps of ``SLICE_THICKNESS_MM``
    from the central slice at ``CENTRE_Z_MM``."""
    return CENTRE_Z_MM + slice_offset * SLICE_THICKNESS_MM


# --------------------------------------------------------------------------- template files


def template_paths() -> dict[str, Path]:
    """Paths of the MNI152 2009a T1/GM/WM files inside the installed nilearn package.

    Raises:
        MissingDependencyError: nilearn is not installed (an ``ImportError``).
        FileNotFoundError: a template file is missing from the installed package.
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "brain phantom: the MNI152 template comes with nilearn, which is "
            "not installed; install it with `pip install nilearn` "
            "(or `pip install structreg[brain]`)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    paths = {key: folder / name for key, name in TEMPLATE_FILES.items()}
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(
                f"brain phantom: template file {path} is missing; "
                "reinstall nilearn (`pip install --force-reinstall nilearn`)"
            )
    return paths


@lru_cache(maxsize=1)
def _load_template() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The template volumes (uint8, 1 mm, values 0..255) and their common affine."""
    import nibabel as nib

    volumes, affine = {}, None
    for key, path in template_paths().items():
        # the template files are NIfTI-1; nib.load is typed as returning the base class
        img = cast(nib.Nifti1Image, nib.load(path))
        volumes[key] = np.asarray(img.dataobj)
        if affine is None:
            affine = img.affine
        elif not np.allclose(img.affine, affine) or volumes[key].shape != volumes["t1"].shape:
            raise DataError(f"brain phantom: template file {path} is not on the T1's grid")
    for vol in volumes.values():
        vol.setflags(write=False)
    return volumes, np.asarray(affine, dtype=np.float64)


def _brain_centre_mm() -> np.ndarray:
    """MNI (x, y) in mm of the centre of the whole brain's bounding box."""
    return _brain_centre_mm3()[:2]


@lru_cache(maxsize=1)
def _brain_centre_mm3() -> np.ndarray:
    """MNI (x, y, z) in mm of the centre of the whole brain's bounding box."""
    volumes, affine = _load_template()
    brain = volumes["t1"] > _BRAIN_THRESHOLD * volumes["t1"].max()
    centre = []
    for axis in range(3):
        extent = np.flatnonzero(brain.any(axis=tuple(a for a in range(3) if a != axis)))
        centre.append((extent[0] + extent[-1]) / 2.0)
    return affine[:3, :3] @ np.array(centre) + affine[:3, 3]


def subsample_offsets(step_mm: float) -> np.ndarray:
    """Offsets (mm) of about 1 mm sub-samples that area-average a cell of ``step_mm``."""
    n = max(1, int(round(step_mm)))
    return ((np.arange(n) + 0.5) / n - 0.5) * step_mm


# --------------------------------------------------------------------------- template grids


@lru_cache(maxsize=64)
def template_slice(
    slice_offset: int, size: tuple[int, int], spacing: tuple[float, float]
) -> TemplateMaps:
    """The area-averaged axial template slice ``slice_offset`` (see the module docstring)
    on ``size`` ``(H, W)`` pixels of ``spacing`` mm, centred on the brain; read-only
    arrays, cached."""
    volumes, affine = _load_template()
    centre = _brain_centre_mm()
    z = slice_z_mm(slice_offset)
    origin = np.array(
        [centre[0] - (size[0] - 1) / 2 * spacing[0], centre[1] - (size[1] - 1) / 2 * spacing[1], z]
    )
    axes = [origin[a] + np.arange(size[a]) * spacing[a] for a in range(2)]
    offsets = [subsample_offsets(s) for s in (*spacing, SLICE_THICKNESS_MM)]
    ox, oy, oz = np.meshgrid(*offsets, indexing="ij")
    gx, gy = np.meshgrid(*axes, indexing="ij")
    world = np.stack(
        [
            gx[..., None] + ox.ravel(),
            gy[..., None] + oy.ravel(),
            np.broadcast_to(z + oz.ravel(), gx.shape + (ox.size,)),
        ]
    )
    inv = np.linalg.inv(affine)
    vox = np.tensordot(inv[:3, :3], world, axes=1) + inv[:3, 3].reshape(3, 1, 1, 1)
    sample = {
        key: ndimage.map_coordinates(
            vol, vox.reshape(3, -1), order=1, output=np.float32, mode="constant", cval=0.0
        )
        / 255.0
        for key, vol in volumes.items()
    }
    sample = {key: values.reshape(world.shape[1:]) for key, values in sample.items()}
    t1_max = volumes["t1"].max() / 255.0
    brain = (sample["t1"] > _BRAIN_THRESHOLD * t1_max).mean(-1)
    t1, gm, wm = (sample[k].mean(-1) for k in ("t1", "gm", "wm"))
    probs = _tissue_probs(brain, gm, wm, spacing, _VENTRICLE_MIN_AREA_MM2)
    grid_affine = np.eye(4)
    grid_affine[0, 0], grid_affine[1, 1] = spacing
    grid_affine[:3, 3] = origin
    return _frozen_maps(t1, probs, grid_affine)


@lru_cache(maxsize=8)
def template_volume(
    size: tuple[int, int, int], spacing: tuple[float, float, float]
) -> TemplateMaps:
    """The template as a volume on the phantom grid: ``size`` cells of ``spacing`` mm
    (axes x, y, z of MNI space), centred on the brain, each cell the average of about
    1 mm sub-samples (as :func:`template_slice` in 3-D); read-only arrays, cached."""
    volumes, affine = _load_template()
    sp = np.asarray(spacing)
    origin = volume_grid_affine(size, spacing)[:3, 3]
    inv = np.linalg.inv(affine)
    t1_max = volumes["t1"].max() / 255.0
    sums = {key: np.zeros(size, dtype=np.float64) for key in ("t1", "gm", "wm", "brain")}
    offsets = [subsample_offsets(s) for s in spacing]
    grid = np.stack(
        np.meshgrid(*[origin[a] + np.arange(size[a]) * sp[a] for a in range(3)], indexing="ij")
    )
    count = 0
    for ox in offsets[0]:
        for oy in offsets[1]:
            for oz in offsets[2]:
                world = grid + np.array([ox, oy, oz]).reshape(3, 1, 1, 1)
                vox = np.tensordot(inv[:3, :3], world, axes=1) + inv[:3, 3].reshape(3, 1, 1, 1)
                values = {
                    key: ndimage.map_coordinates(
                        vol, vox.reshape(3, -1), order=1, output=np.float32, cval=0.0
                    ).reshape(size)
                    / 255.0
                    for key, vol in volumes.items()
                }
                for key in ("t1", "gm", "wm"):
                    sums[key] += values[key]
                sums["brain"] += values["t1"] > _BRAIN_THRESHOLD * t1_max
                count += 1
    t1, gm, wm, brain = (sums[k] / count for k in ("t1", "gm", "wm", "brain"))
    probs = volume_tissue_probs(brain, gm, wm, spacing)
    return _frozen_maps(t1, probs, volume_grid_affine(size, spacing))


def volume_grid_affine(
    size: tuple[int, int, int], spacing: tuple[float, float, float]
) -> np.ndarray:
    """``(4, 4)`` cell index -> MNI mm map of the phantom's volume grid: ``size`` cells of
    ``spacing`` mm along MNI x, y, z, centred on the template brain's bounding box."""
    sp = np.asarray(spacing, dtype=np.float64)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(sp)
    affine[:3, 3] = _brain_centre_mm3() - (np.asarray(size) - 1) / 2 * sp
    return affine


def volume_tissue_probs(
    brain: np.ndarray, gm: np.ndarray, wm: np.ndarray, spacing: Sequence[float]
) -> np.ndarray:
    """``(5, D, H, W)`` float32 tissue probabilities of a volume by the template volume's
    rule (:func:`_tissue_probs` with its ventricle volume threshold) from the brain, GM
    and WM fractions ``(D, H, W)`` of each cell (``spacing`` mm)."""
    return _tissue_probs(brain, gm, wm, spacing, _VENTRICLE_MIN_VOLUME_MM3)


def _frozen_maps(t1: np.ndarray, probs: np.ndarray, affine: np.ndarray) -> TemplateMaps:
    """:class:`TemplateMaps` of read-only arrays, the T1 as float32."""
    t1 = t1.astype(np.float32)
    for arr in (t1, probs, affine):
        arr.setflags(write=False)
    return TemplateMaps(t1=t1, probs=probs, affine=affine)


def _tissue_probs(
    brain: np.ndarray,
    gm: np.ndarray,
    wm: np.ndarray,
    spacing: Sequence[float],
    min_ventricle_measure: float,
) -> np.ndarray:
    """``(5, *S)`` float32 background, CSF (non-ventricular), GM, WM, ventricles from
    the brain fraction and the GM/WM probabilities of each cell ``S`` (2-D or 3-D).

    CSF = brain − GM − WM; ventricles = the CSF components enclosed by tissue whose
    centroid lies within ``_VENTRICLE_RADIUS_MM`` of the brain centre and whose area
    (2-D, mm²) or volume (3-D, mm³) is at least ``min_ventricle_measure``.
    """
    fit = np.minimum(1.0, brain / np.maximum(gm + wm, 1e-6))
    gm, wm = gm * fit, wm * fit
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    background = 1.0 - brain

    # Ventricles: CSF components enclosed by tissue, centroid near the brain centre.
    classes = np.argmax(np.stack([background, csf, gm, wm]), axis=0)
    components, n = ndimage.label(classes == 1)
    outside = ndimage.binary_dilation(classes == 0)
    brain_centre = np.array(ndimage.center_of_mass(classes > 0))
    cell = float(np.prod(spacing)) if len(spacing) == 3 else spacing[0] * spacing[1]
    keep = np.zeros(n + 1, dtype=bool)
    for k, region in enumerate(ndimage.find_objects(components), start=1):
        comp = components[region] == k
        if outside[region][comp].any():
            continue
        com = np.array(ndimage.center_of_mass(comp)) + [s.start for s in region]
        measure = comp.sum() * cell
        dist = np.linalg.norm((com - brain_centre) * np.asarray(spacing))
        keep[k] = dist < _VENTRICLE_RADIUS_MM and measure >= min_ventricle_measure
    region = ndimage.binary_dilation(keep[components]) & (classes > 0)
    ventricles = csf * region
    probs = np.stack([background, csf - ventricles, gm, wm, ventricles]).astype(np.float32)
    probs /= probs.sum(0, keepdims=True)
    return probs


def slice_tissue_probs(
    brain: np.ndarray, gm: np.ndarray, wm: np.ndarray, spacing: Sequence[float]
) -> np.ndarray:
    """``(5, H, W)`` float32 tissue probabilities of a slice by the template slice's rule
    (:func:`_tissue_probs` with its ventricle area threshold) from the ``(H, W)`` brain,
    GM and WM fractions of each cell (``spacing`` mm)."""
    return _tissue_probs(brain, gm, wm, spacing, _VENTRICLE_MIN_AREA_MM2)


# --------------------------------------------------------------------------- labels, warping


def warp_template(template: TemplateMaps, disp: torch.Tensor) -> torch.Tensor:
    """Template probabilities and T1 warped (linearly, zero padding) by the pull-back
    displacement ``disp`` ``(1, ndim, *S)`` in voxels: ``(6, *S)`` float32 = the 5
    probabilities (background = 1 - the rest, clamped at 0) and the T1."""
    maps = torch.from_numpy(np.concatenate([template.probs[1:], template.t1[None]]))[None]
    moved = warp(maps, disp, mode="linear", padding_mode="zeros")[0]
    background = (1.0 - moved[:4].sum(0, keepdim=True)).clamp_min(0.0)
    return torch.cat([background, moved])


def tissue_labels(probs: torch.Tensor) -> np.ndarray:
    """``(5, *S)`` probabilities -> ``S`` int16 label map (``BRAIN_LABELS`` values).

    Argmax over background, all CSF, GM, WM; CSF cells are ventricles where the
    ventricular part of their CSF exceeds the rest.
    """
    background, csf, gm, wm, ventricles = probs.numpy()
    classes = np.argmax(np.stack([background, csf + ventricles, gm, wm]), axis=0)
    classes[(classes == 1) & (ventricles > csf)] = 4
    return _CLASS_TO_LABEL[classes]


def brain_mask(labels: np.ndarray) -> np.ndarray:
    """``S`` uint8 brain mask of a label map: its tissue (labels > 0), holes filled."""
    return ndimage.binary_fill_holes(labels > 0).astype(np.uint8)


def ventricle_change(before: np.ndarray, after: np.ndarray) -> float:
    """Fractional change of the ventricle voxel count from label map ``before`` to
    ``after`` (``(n_after - n_before) / n_before``); NaN when ``before`` has none."""
    label = BRAIN_LABELS["ventricles"]
    v0 = int((before == label).sum())
    v1 = int((after == label).sum())
    return (v1 - v0) / v0 if v0 else float("nan")


# --------------------------------------------------------------------------- grid arguments


def check_slice_grid(
    size: Sequence[int], spacing: Sequence[float]
) -> tuple[tuple[int, int], tuple[float, float]]:
    """A 2-D grid as tuples: ``size`` two ints >= 16 (pixels), ``spacing`` two values in
    [0.5, 8] mm.

    Raises:
        InputError: anything else (a ``ValueError``).
    """
    size_t, spacing_t = check_grid(size, spacing, volumes=False)
    return (size_t[0], size_t[1]), (spacing_t[0], spacing_t[1])


def check_grid(
    size: Sequence[int], spacing: Sequence[float], volumes: bool = True
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The grid as tuples: ``size`` ints >= 16 (voxels) and ``spacing`` values in
    [0.5, 8] mm, two entries each (or three when ``volumes``).

    Raises:
        InputError: anything else (a ``ValueError``).
    """
    size_t = tuple(int(s) for s in size)
    spacing_t = tuple(float(s) for s in spacing)
    allowed = (2, 3) if volumes else (2,)
    what = "two or three" if volumes else "two"
    if len(size_t) not in allowed or min(size_t) < 16 or tuple(size) != size_t:
        raise InputError(f"brain phantom: size must be {what} ints >= 16, got {size!r}")
    if len(spacing_t) != len(size_t) or not all(0.5 <= s <= 8.0 for s in spacing_t):
        raise InputError(
            f"brain phantom: spacing must be {len(size_t)} values in [0.5, 8] mm, got {spacing!r}"
        )
    return size_t, spacing_t
