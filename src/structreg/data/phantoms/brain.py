"""Built-in brain phantom: MNI152 axial slices, random subjects, known atrophy.

Source: the MNI152 ICBM 2009a symmetric template (T1, grey- and white-matter
probability maps, 1 mm) that ships inside the ``nilearn`` wheel under
``nilearn/datasets/data/``. The files are read with nibabel (nilearn itself is
never imported, nothing is downloaded) and cached in memory once per process.

Pipeline for one pair (all 2-D, arrays ``S = (H, W)`` in the template's index
order: axis 0 = x (left → right), axis 1 = y (posterior → anterior)):

1. *Template slice* (cached per slice/size/spacing): an axial slab of
   ``SLICE_THICKNESS_MM`` at MNI ``z = CENTRE_Z_MM + slice_offset * SLICE_THICKNESS_MM``
   (the centre cuts the bodies of the lateral ventricles), area-averaged onto an
   in-plane grid of ``spacing`` mm and ``size`` pixels centred on the brain.
   Brain = T1 > 0.2 of its maximum (nilearn's brain-mask rule); CSF = brain − GM − WM;
   ventricles = the CSF components enclosed by tissue near the brain centre.
   The result is five probabilities per pixel: background, CSF (non-ventricular),
   GM, WM, ventricles (summing to 1), and the T1 intensity.
2. *Subject* (per ``seed, index``): the template warped by a random affine map
   composed with ``exp(v)`` of a smooth random velocity (diffeomorphic), plus an
   intensity gamma, a multiplicative bias field and Rician noise.
3. *Atrophy* (per subject, one severity drawn within the group's ranges): a
   velocity ``w`` of physical tissue motion = ventricle walls pushed outward
   (``-∇`` of the smoothed ventricle map, scaled to a relative ventricle-area
   growth rate) + cortical thinning (tissue retreating from sulcal and outer CSF,
   ``-∇`` of the smoothed CSF map weighted by GM, largest speed in mm). The
   ground-truth pull-back displacement is ``disp = exp(-w)`` (scaling and
   squaring, hence diffeomorphic), so ``follow-up(x) = baseline(x + disp(x))``.
   The follow-up image gets fresh noise.

Labels (``BRAIN_LABELS``: 0 background, 1 CSF, 2 GM, 3 WM, 4 ventricles) are the
argmax over background / CSF / GM / WM probabilities, CSF pixels becoming
ventricles where the ventricular part of their CSF dominates. Follow-up labels
come from the *baseline probability maps warped linearly by the ground-truth
field* (template maps warped by the composed field), then the same argmax; not
from a nearest-neighbour warp of the baseline labels, so the two differ at
partial-volume boundaries (Dice about 0.92-0.96 for CSF and ventricles).

Inter-subject pairs (``brain_phantom(..., pairing="inter")``, data spec
``phantom:brain-inter``) are built from the same template slices in
:mod:`.brain_inter`; the longitudinal pairs do not depend on them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ...core.ops import compose, exponentiate, warp
from ...errors import DataError, InputError, MissingDependencyError
from ..defaults import DEFAULT_SIZE, DEFAULT_SPACING
from ..labels import BRAIN_LABELS
from ..pair import Pair

BRAIN_GROUPS = ("normal", "dementia")
#: ``brain_phantom(pairing=...)``: one subject's baseline -> follow-up, or subject i -> j.
PAIRINGS = ("longitudinal", "inter")

#: Template files inside ``nilearn/datasets/data/``.
TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
#: MNI z (mm) of the central axial slice: bodies of the lateral ventricles.
CENTRE_Z_MM = 16.0
#: Thickness (mm) of the slab averaged into one slice, and the step between slices.
SLICE_THICKNESS_MM = 2.0

_BRAIN_THRESHOLD = 0.2  # of the T1 maximum, as nilearn.datasets.load_mni152_brain_mask
_VENTRICLE_RADIUS_MM = 35.0  # ventricle components have their centroid this close to the centre
_VENTRICLE_MIN_AREA_MM2 = 16.0
_VENTRICLE_MIN_VOLUME_MM3 = 200.0  # the same rule in 3-D (volume phantoms)
# Atrophy per group, drawn uniformly per subject (one severity in [0, 1] for both):
# relative ventricle-area growth rate, and largest speed (mm) of cortical retreat.
_ATROPHY = {
    "normal": {"ventricle_growth": (0.03, 0.10), "cortical_thinning_mm": (0.05, 0.15)},
    "dementia": {"ventricle_growth": (0.25, 0.45), "cortical_thinning_mm": (0.2, 0.4)},
}
_VENTRICLE_SIGMA_MM = 4.0
_CORTEX_SIGMA_MM = 2.0
_EXP_STEPS = 7
_CLASS_TO_LABEL = np.array(
    [0, BRAIN_LABELS["CSF"], BRAIN_LABELS["GM"], BRAIN_LABELS["WM"], BRAIN_LABELS["ventricles"]],
    dtype=np.int16,
)


# --------------------------------------------------------------------------- template


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


def _subsample_offsets(step_mm: float) -> np.ndarray:
    """Offsets (mm) of about 1 mm sub-samples that area-average a cell of ``step_mm``."""
    n = max(1, int(round(step_mm)))
    return ((np.arange(n) + 0.5) / n - 0.5) * step_mm


@dataclass(frozen=True)
class _TemplateSlice:
    t1: np.ndarray  # S = (H, W) or (D, H, W): T1 in [0, 1]
    probs: np.ndarray  # (5, *S) background, CSF (non-ventricular), GM, WM, ventricles
    affine: np.ndarray  # (4, 4) cell (i, j, k) -> MNI mm, before any subject deformation


@lru_cache(maxsize=64)
def _template_slice(
    slice_offset: int, size: tuple[int, int], spacing: tuple[float, float]
) -> _TemplateSlice:
    """Area-averaged axial template slice on the phantom grid (see module docstring)."""
    volumes, affine = _load_template()
    centre = _brain_centre_mm()
    z = CENTRE_Z_MM + slice_offset * SLICE_THICKNESS_MM
    origin = np.array(
        [centre[0] - (size[0] - 1) / 2 * spacing[0], centre[1] - (size[1] - 1) / 2 * spacing[1], z]
    )
    axes = [origin[a] + np.arange(size[a]) * spacing[a] for a in range(2)]
    offsets = [_subsample_offsets(s) for s in (*spacing, SLICE_THICKNESS_MM)]
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
    t1 = t1.astype(np.float32)
    for arr in (t1, probs, grid_affine):
        arr.setflags(write=False)
    return _TemplateSlice(t1=t1, probs=probs, affine=grid_affine)


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


@lru_cache(maxsize=8)
def _template_volume(
    size: tuple[int, int, int], spacing: tuple[float, float, float]
) -> _TemplateSlice:
    """The template as a volume on the phantom grid: ``size`` cells of ``spacing`` mm
    (axes x, y, z of MNI space), centred on the brain, each cell the average of about
    1 mm sub-samples (as :func:`_template_slice` in 3-D)."""
    volumes, affine = _load_template()
    sp = np.asarray(spacing)
    origin = _brain_centre_mm3() - (np.asarray(size) - 1) / 2 * sp
    inv = np.linalg.inv(affine)
    t1_max = volumes["t1"].max() / 255.0
    sums = {key: np.zeros(size, dtype=np.float64) for key in ("t1", "gm", "wm", "brain")}
    offsets = [_subsample_offsets(s) for s in spacing]
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
    probs = _tissue_probs(brain, gm, wm, spacing, _VENTRICLE_MIN_VOLUME_MM3)
    grid_affine = np.eye(4)
    grid_affine[:3, :3] = np.diag(sp)
    grid_affine[:3, 3] = origin
    t1 = t1.astype(np.float32)
    for arr in (t1, probs, grid_affine):
        arr.setflags(write=False)
    return _TemplateSlice(t1=t1, probs=probs, affine=grid_affine)


# --------------------------------------------------------------------------- subjects


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in keys])


def _smooth_random_field(
    rng: np.random.Generator, size: tuple[int, ...], channels: int, n_ctrl: int = 6
) -> np.ndarray:
    """``(channels, *size)`` smooth field: standard-normal control points on an
    ``n_ctrl`` grid spanning the image, bicubic (2-D) or cubic-spline (3-D) upsampling."""
    if len(size) == 3:
        ctrl3 = rng.standard_normal((channels, n_ctrl, n_ctrl, n_ctrl))
        factors = [(n - 1) / (n_ctrl - 1) for n in size]
        return np.stack(
            [
                ndimage.zoom(c, factors, order=3, mode="nearest", grid_mode=False)[
                    tuple(slice(0, n) for n in size)
                ]
                for c in ctrl3
            ]
        )
    ctrl = torch.from_numpy(rng.standard_normal((1, channels, n_ctrl, n_ctrl)))
    return F.interpolate(ctrl, size=size, mode="bicubic", align_corners=True)[0].numpy()


def _subject_disp(
    rng: np.random.Generator, size: tuple[int, ...], spacing: tuple[float, ...]
) -> torch.Tensor:
    """``(1, 2, H, W)`` template -> subject pull-back displacement in voxels:
    a small affine map (rotation ±6°, scale ±6 %, shift ±3 mm about the centre)
    composed with ``exp(v)`` of a smooth random velocity (about 3 mm per component).
    3-D: ``(1, 3, D, H, W)``, a rotation of ±6° about each axis."""
    if len(size) == 3:
        return _subject_disp_3d(rng, size, spacing)
    sp = np.asarray(spacing)
    angle = np.deg2rad(rng.uniform(-6, 6))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    a_mm = rot @ np.diag(rng.uniform(0.94, 1.06, 2))
    a_vox = a_mm * (sp[None, :] / sp[:, None])  # S^-1 A S
    shift = rng.uniform(-3, 3, 2) / sp
    grid = np.stack(np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in size], indexing="ij"))
    affine = np.einsum("cd,dhw->chw", a_vox - np.eye(2), grid) + shift[:, None, None]
    velocity = _smooth_random_field(rng, size, 2) * (3.0 / sp)[:, None, None]
    u_v = exponentiate(torch.from_numpy(velocity[None]).float(), steps=_EXP_STEPS)
    return compose(u_v, torch.from_numpy(affine[None]).float())


def _rotation_3d(angles: np.ndarray) -> np.ndarray:
    """``R_z R_y R_x`` for the three angles (radians) about x, y, z."""
    (cx, cy, cz), (sx, sy, sz) = np.cos(angles), np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _subject_parts_3d(
    rng: np.random.Generator,
    size: tuple[int, ...],
    spacing: tuple[float, ...],
    affine_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The random draws of a 3-D subject: ``(a_vox (3, 3), shift (3,), velocity
    (3, D, H, W))`` in voxels (see :func:`_subject_disp`); ``affine_scale`` shrinks the
    affine part's ranges (rotation, scaling, shift) by that factor."""
    sp = np.asarray(spacing)
    k = float(affine_scale)
    rot = _rotation_3d(np.deg2rad(rng.uniform(-6, 6, 3)) * k)
    a_mm = rot @ np.diag(1.0 + (rng.uniform(0.94, 1.06, 3) - 1.0) * k)
    a_vox = a_mm * (sp[None, :] / sp[:, None])  # S^-1 A S
    shift = rng.uniform(-3, 3, 3) * k / sp
    velocity = _smooth_random_field(rng, size, 3) * (3.0 / sp).reshape(3, 1, 1, 1)
    return a_vox, shift, velocity


def _affine_disp(a_vox: np.ndarray, shift: np.ndarray, size: tuple[int, ...]) -> torch.Tensor:
    """``(1, 3, D, H, W)`` displacement of ``x -> c + a_vox (x - c) + shift`` (``c`` the
    grid's centre), float32."""
    grid = np.stack(np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in size], indexing="ij"))
    disp = np.einsum("cd,dxyz->cxyz", a_vox - np.eye(3), grid) + shift.reshape(3, 1, 1, 1)
    return torch.from_numpy(disp[None]).float()


def _subject_disp_3d(
    rng: np.random.Generator, size: tuple[int, ...], spacing: tuple[float, ...]
) -> torch.Tensor:
    """:func:`_subject_disp` in 3-D: ``φ = exp(v) ∘ A`` as a pull-back displacement."""
    a_vox, shift, velocity = _subject_parts_3d(rng, size, spacing)
    u_v = exponentiate(torch.from_numpy(velocity[None]).float(), steps=_EXP_STEPS)
    return compose(u_v, _affine_disp(a_vox, shift, size))


def _subject_maps_3d(
    rng: np.random.Generator,
    size: tuple[int, ...],
    spacing: tuple[float, ...],
    affine_scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u, u_inverse)`` of a 3-D subject: the displacement of ``φ = exp(v) ∘ A`` (the
    subject is the template at ``φ(x)``) and of ``φ⁻¹ = A⁻¹ ∘ exp(-v)``, both
    ``(1, 3, D, H, W)`` voxels; the same draws as :func:`_subject_disp_3d`."""
    a_vox, shift, velocity = _subject_parts_3d(rng, size, spacing, affine_scale)
    v = torch.from_numpy(velocity[None]).float()
    u = compose(exponentiate(v, steps=_EXP_STEPS), _affine_disp(a_vox, shift, size))
    inv_a = np.linalg.inv(a_vox)
    inverse = compose(_affine_disp(inv_a, -inv_a @ shift, size), exponentiate(-v, _EXP_STEPS))
    return u, inverse


def _atrophy_velocity(
    probs: np.ndarray,
    spacing: tuple[float, ...],
    ventricle_growth: float,
    cortical_thinning_mm: float,
) -> np.ndarray:
    """``(2, H, W)`` velocity (voxels per unit time) of tissue motion, baseline -> follow-up.

    Ventricles: walls pushed outward along ``-∇`` of the ventricle map smoothed
    with ``_VENTRICLE_SIGMA_MM``, scaled so that the ventricle area grows at the
    relative rate ``ventricle_growth`` (to first order: ``dA/dt = ∫ -w·∇p``), so
    the growth does not depend on the ventricles' size in the slice. Cortex:
    tissue retreats from sulcal/outer CSF along ``-∇`` of the smoothed
    CSF + background map, weighted by the smoothed GM map, largest speed
    ``cortical_thinning_mm`` mm.
    """
    sp = np.asarray(spacing)
    pixel_area = float(np.prod(sp))

    def smooth(img: np.ndarray, sigma_mm: float) -> np.ndarray:
        return ndimage.gaussian_filter(img.astype(np.float64), sigma_mm / sp, mode="nearest")

    def grad(img: np.ndarray) -> np.ndarray:
        return np.stack(np.gradient(img, *sp))

    vent = probs[4].astype(np.float64)
    push = grad(smooth(vent, _VENTRICLE_SIGMA_MM))
    rate = float((push * grad(vent)).sum()) * pixel_area  # dA/dt for w = -push, mm²
    area = float(vent.sum()) * pixel_area
    w_vent = -push * (ventricle_growth * area / rate) if rate > 0 else np.zeros_like(push)

    outer_csf = smooth(probs[0] + probs[1], _CORTEX_SIGMA_MM)
    w_cortex = -grad(outer_csf) * smooth(probs[2], _CORTEX_SIGMA_MM)
    peak = np.linalg.norm(w_cortex, axis=0).max()
    if peak > 0:
        w_cortex *= cortical_thinning_mm / peak
    return (w_vent + w_cortex) / sp.reshape(-1, *([1] * len(sp)))


def _labels(probs: torch.Tensor) -> np.ndarray:
    """``(5, H, W)`` probabilities -> ``(H, W)`` int16 label map (``BRAIN_LABELS`` values).

    Argmax over background, all CSF, GM, WM; CSF pixels are ventricles where the
    ventricular part of their CSF exceeds the rest.
    """
    background, csf, gm, wm, ventricles = probs.numpy()
    classes = np.argmax(np.stack([background, csf + ventricles, gm, wm]), axis=0)
    classes[(classes == 1) & (ventricles > csf)] = 4
    return _CLASS_TO_LABEL[classes]


def _warp_probs(template: _TemplateSlice, disp: torch.Tensor) -> torch.Tensor:
    """Template probabilities and T1 warped by ``disp`` ``(1, 2, H, W)``: ``(6, H, W)``
    = 5 probabilities (background = 1 - the rest) and the T1."""
    maps = torch.from_numpy(np.concatenate([template.probs[1:], template.t1[None]]))[None]
    moved = warp(maps, disp, mode="linear", padding_mode="zeros")[0]
    background = (1.0 - moved[:4].sum(0, keepdim=True)).clamp_min(0.0)
    return torch.cat([background, moved])


def _check_grid(
    size: Sequence[int], spacing: Sequence[float]
) -> tuple[tuple[int, int], tuple[float, float]]:
    """A 2-D grid as tuples (two entries each)."""
    size_t, spacing_t = _check_any_grid(size, spacing, volumes=False)
    return (size_t[0], size_t[1]), (spacing_t[0], spacing_t[1])


def _check_any_grid(
    size: Sequence[int], spacing: Sequence[float], volumes: bool = True
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The grid as tuples; 2 entries each (3 also when ``volumes``)."""
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


def make_brain_pair(
    seed: int,
    index: int,
    group: str | None = None,
    slice_offset: int = 0,
    size: Sequence[int] = DEFAULT_SIZE,
    spacing: Sequence[float] = DEFAULT_SPACING,
) -> Pair:
    """One baseline -> follow-up pair of subject ``index`` (deterministic in its arguments).

    Args:
        seed, index: non-negative ints; the subject (anatomy, intensities, group
            when not given, atrophy strength) depends only on them.
        group: ``"normal"`` (mild, ageing-level atrophy) or ``"dementia"``
            (strong atrophy); ``None`` alternates by ``index`` (even: normal).
        slice_offset: axial slice, in steps of ``SLICE_THICKNESS_MM`` from the
            central slice at MNI ``z = CENTRE_Z_MM``.
        size: ``(H, W)`` pixels; spacing: ``(2,)`` mm per pixel in-plane. Three
            entries each (``(D, H, W)`` along MNI x, y, z): a whole-brain volume
            (``slice_offset`` 0), the same pipeline in 3-D (``disp`` ``(3, D, H, W)``,
            ventricle volumes, a 3-D rotation of the subject).
    Returns:
        ``Pair`` with ``moving`` (baseline) and ``fixed`` (follow-up) ``(H, W)``
        float32 in [0, 1]; ``moving_labels``/``fixed_labels`` ``(H, W)`` int16
        (``BRAIN_LABELS``); ``mask`` ``(H, W)`` uint8 brain mask of the baseline;
        ``disp`` ``(2, H, W)`` float32 in voxels, ``fixed(x) ≈ moving(x + disp(x))``;
        ``meta`` with the truth: ``atrophy_severity`` in [0, 1],
        ``ventricle_growth`` (relative area growth rate), ``cortical_thinning_mm``
        (largest cortical speed), the measured ``ventricle_area_change``, the
        slice position (MNI mm) and the template grid affine. The id is
        ``brain{seed}_{index:04d}_z{slice_offset:+d}``.
    Raises:
        InputError: unknown group or bad seed/index/size/spacing (a ``ValueError``).
    """
    if group is None:
        group = BRAIN_GROUPS[int(index) % 2]
    if group not in BRAIN_GROUPS:
        raise InputError(f"brain phantom: unknown group {group!r}; expected one of {BRAIN_GROUPS}")
    for name, value in (("seed", seed), ("index", index), ("slice_offset", slice_offset)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise InputError(f"brain phantom: {name} must be an int, got {value!r}")
    if seed < 0 or index < 0:
        raise InputError(f"brain phantom: seed and index must be >= 0, got {seed}, {index}")
    size_t, spacing_t = _check_any_grid(size, spacing)
    volume = len(size_t) == 3
    if volume and slice_offset != 0:
        raise InputError(f"brain phantom: a 3-D volume has no slice_offset (got {slice_offset})")
    if volume:
        template = _template_volume(
            cast(tuple[int, int, int], size_t), cast(tuple[float, float, float], spacing_t)
        )
    else:
        template = _template_slice(
            int(slice_offset), cast(tuple[int, int], size_t), cast(tuple[float, float], spacing_t)
        )

    subject_rng = _rng(seed, index, 0)  # shared by every slice of the subject
    subject = _subject_disp(subject_rng, size_t, spacing_t)
    gamma = subject_rng.uniform(0.8, 1.25)
    bias_field = np.exp(0.12 * _smooth_random_field(subject_rng, size_t, 1, n_ctrl=4)[0])
    noise_std = subject_rng.uniform(0.01, 0.03)
    severity = subject_rng.uniform()
    atrophy = {key: lo + severity * (hi - lo) for key, (lo, hi) in _ATROPHY[group].items()}

    baseline = _warp_probs(template, subject)
    velocity = _atrophy_velocity(baseline[:5].numpy(), spacing_t, **atrophy)
    disp = exponentiate(-torch.from_numpy(velocity[None]).float(), steps=_EXP_STEPS)
    followup = _warp_probs(template, compose(subject, disp))

    slice_rng = _rng(seed, index, 1, int(slice_offset) + 2**20)
    scale = None
    images = []
    for maps in (baseline, followup):
        clean = maps[5].clamp_min(0.0).numpy() ** gamma * bias_field
        if scale is None:
            scale = np.percentile(clean[maps[0].numpy() < 0.5], 99.5)
        noise = slice_rng.normal(0.0, noise_std * scale, (2, *size_t))
        image = np.hypot(clean + noise[0], noise[1]) / scale  # Rician magnitude
        images.append(np.clip(image, 0.0, 1.0).astype(np.float32))

    moving_labels, fixed_labels = _labels(baseline[:5]), _labels(followup[:5])
    mask = ndimage.binary_fill_holes(moving_labels > 0).astype(np.uint8)
    v0 = int((moving_labels == BRAIN_LABELS["ventricles"]).sum())
    v1 = int((fixed_labels == BRAIN_LABELS["ventricles"]).sum())
    meta = {
        "source": "MNI152 ICBM 2009a symmetric template (nilearn/datasets/data)",
        "template_files": list(TEMPLATE_FILES.values()),
        "seed": int(seed),
        "index": int(index),
        "slice_offset": int(slice_offset),
        "slice_z_mm": None if volume else CENTRE_Z_MM + int(slice_offset) * SLICE_THICKNESS_MM,
        "slice_thickness_mm": None if volume else SLICE_THICKNESS_MM,
        "template_affine": template.affine.tolist(),
        "atrophy_severity": float(severity),
        **{key: float(value) for key, value in atrophy.items()},
        "ventricle_area_change": (v1 - v0) / v0 if v0 else float("nan"),
        "gamma": float(gamma),
        "noise_std": float(noise_std),
        "follow_up_labels": "baseline probability maps warped linearly by disp, argmax",
    }
    return Pair(
        moving=images[0],
        fixed=images[1],
        spacing=spacing_t,
        id=f"brain{seed}_{index:04d}" + ("_3d" if volume else f"_z{int(slice_offset):+d}"),
        subject=f"brain{seed}_{index:04d}",
        group=group,
        moving_labels=moving_labels,
        fixed_labels=fixed_labels,
        mask=mask,
        disp=disp[0].numpy().astype(np.float32),
        meta=meta,
    )


def brain_phantom(
    n_subjects: int,
    seed: int = 0,
    slices_per_subject: int = 1,
    size: Sequence[int] = DEFAULT_SIZE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    pairing: str = "longitudinal",
    atrophy: bool = False,
) -> list[Pair]:
    """``n_subjects * slices_per_subject`` pairs.

    ``pairing="longitudinal"`` (default): baseline -> follow-up of each subject; groups
    alternate normal/dementia. The slices of a subject are contiguous
    (``SLICE_THICKNESS_MM`` apart) around the central slice, share the subject's
    deformation, intensities, group and atrophy strength, and get ids
    ``brain{seed}_{subject:04d}_s{slice:02d}`` (slice 0 lowest). Shapes and units as
    in :func:`make_brain_pair`. ``atrophy`` is ignored (these pairs are atrophy).

    ``pairing="inter"``: inter-subject pairs, moving = subject i, fixed = another
    subject j of its cohort, the fixed one with its group's atrophy on top when
    ``atrophy`` is true; see :mod:`structreg.data.phantoms.brain_inter` (its
    :func:`~structreg.data.phantoms.brain_inter.brain_inter_phantom`).

    Raises:
        InputError: unknown ``pairing`` or bad arguments.
    """
    if pairing not in PAIRINGS:
        raise InputError(f"brain phantom: pairing must be one of {PAIRINGS}, got {pairing!r}")
    if pairing == "inter":
        from .brain_inter import brain_inter_phantom

        return brain_inter_phantom(
            n_subjects, seed, slices_per_subject, size, spacing, atrophy=atrophy
        )
    if not isinstance(n_subjects, int) or n_subjects < 0:
        raise InputError(f"brain phantom: n_subjects must be an int >= 0, got {n_subjects!r}")
    if not isinstance(slices_per_subject, int) or slices_per_subject < 1:
        raise InputError(
            f"brain phantom: slices_per_subject must be an int >= 1, got {slices_per_subject!r}"
        )
    if len(size) == 3 and slices_per_subject != 1:
        raise InputError("brain phantom: 3-D volumes take one volume per subject (no --slices)")
    first = -(slices_per_subject // 2)
    pairs = []
    for subject in range(n_subjects):
        if len(size) == 3:
            pairs.append(make_brain_pair(seed, subject, size=size, spacing=spacing))
            continue
        for k in range(slices_per_subject):
            pair = make_brain_pair(
                seed, subject, slice_offset=first + k, size=size, spacing=spacing
            )
            pairs.append(dataclasses.replace(pair, id=f"brain{seed}_{subject:04d}_s{k:02d}"))
    return pairs


def ventricle_volume_change(pair: Pair) -> float:
    """Fractional change of the ventricle area from moving to fixed labels
    (``(A_fixed - A_moving) / A_moving``; pixel counts, so spacing cancels).
    NaN when the moving slice has no ventricle pixels."""
    if pair.moving_labels is None or pair.fixed_labels is None:
        raise DataError(f"pair {pair.id}: ventricle_volume_change needs both label maps")
    label = BRAIN_LABELS["ventricles"]
    before = int((pair.moving_labels == label).sum())
    after = int((pair.fixed_labels == label).sum())
    return (after - before) / before if before else float("nan")
