"""Brain phantom, inter-subject pairing: moving = subject i, fixed = another subject j.

Built on the brain phantoms' template slices (:mod:`.brain_template`: MNI152 2009a,
five tissue probabilities and the T1 per pixel, all on the phantom grid ``S = (H, W)``,
axis 0 = x left -> right, axis 1 = y posterior -> anterior). Each subject ``k`` is the
template seen through its own map ``φ_k`` (pull-back: ``I_k(x) = T(φ_k(x))``) and its own
scanner (contrast, bias, resolution, noise).

Subject anatomy (per ``seed, index``, shared by every slice of the subject):
``φ_k = exp(v_k) ∘ A_k`` with

* ``A_k``: head size/shape and pose, an affine map about the grid centre: anisotropic
  scaling uniform in ``HEAD_SCALE`` (0.92-1.08) per axis, rotation uniform in
  ±``ROTATION_DEG`` (5°), translation uniform in ±``SHIFT_MM`` (3 mm) per axis.
* ``v_k = v_global + v_folds + v_ventricles`` (voxels), one stationary velocity:

  - ``v_global``: a smooth random field, control points every ~``GLOBAL_CTRL_MM``
    (40 mm), s.d. per component drawn per subject uniform in ``GLOBAL_MM`` (1-3 mm);
  - ``v_folds``: cortical-fold variation, a small-scale random field (control points
    every ~``FOLD_CTRL_MM``, 10 mm; s.d. ``FOLD_MM``, 3 mm) times a cortical band (GM
    and CSF within ``CORTEX_DEPTH_MM``, 15 mm, of the brain surface, smoothed by
    ``CORTEX_SMOOTH_MM``, peak 1), so gyri and sulci differ locally between subjects;
  - ``v_ventricles``: the ventricle walls moved along the gradient of the smoothed
    ventricle map (:func:`.brain_subjects.atrophy_velocity`) so that the ventricle area
    changes by a relative amount uniform in ``VENTRICLE_SIZE[group]`` (first order;
    normal -35 % ... +15 %, dementia +15 % ... +60 %).

The inverse is exact up to the integration error: ``φ_k^{-1} = A_k^{-1} ∘ exp(-v_k)``,
``A_k^{-1}`` analytic and ``exp(±v_k)`` the flows of the stationary velocity ``±v_k``
integrated from the very points they are applied to (Runge-Kutta 4, ``FLOW_STEPS`` = 16
steps, ``v`` interpolated linearly), so no displacement field is resampled and
``exp(-v)`` undoes ``exp(v)`` to below 1e-4 voxel. The ground truth of the pair
``i -> j`` is ``x + disp(x) = φ_i^{-1}(φ_j(x))``, hence ``fixed(x) = moving(x + disp(x))``
(pull-back, voxels, channel ``c`` along ``S[c]``): the grid is carried through ``A_j``,
``exp(v_j)``, ``exp(-v_i)`` and ``A_i^{-1}``, and the images are rendered from the same
positions (``φ_j(x)`` for the fixed, ``φ_i(x)`` for the moving image). With
``atrophy=True`` the fixed image is the fixed subject's follow-up: its group's atrophy
(severity drawn per subject, ranges of the longitudinal phantom) as the flow of ``-w``
applied first, ``x + disp(x) = φ_i^{-1}(φ_j(exp(-w)(x)))``.

Subject scanner (per ``seed, index``): the template T1 blended (weight uniform in
``CONTRAST_MIX``, 0-0.5) with a piecewise-constant tissue image (CSF/GM/WM means
uniform in ``TISSUE_MEANS``: other tissue contrasts), a contrast curve ``t ** gamma``
(``GAMMA`` 0.75-1.33), a Gaussian point-spread of FWHM uniform in ``BLUR_FWHM_MM``
(0-3 mm: resolution), a smooth multiplicative bias field ``exp(b)`` (control points of
s.d. ``BIAS`` = 0.1; the coil's, not warped), Rician noise of s.d. uniform in ``NOISE``
(1-5 % of the brain's 99.5th percentile); then divided by that percentile and clipped
to [0, 1]. Each subject's slice has its own noise.

Labels (``BRAIN_LABELS``) of each subject come from its own warped probability maps
(argmax, the longitudinal phantom's rule). Nearest-neighbour warping of the moving
labels by ``disp`` reproduces the fixed labels up to resampling (thin sulcal CSF
least well).

How close the phantom's deformations and intensities come to real inter-subject pairs
is measured by ``benchmarks/brain_inter_realism.py``.

Real anatomies (``real=DIR``, a real-image corpus folder; ``real_subjects``, default
:data:`.brain_real.TRAINING_SUBJECTS`): the anatomy of subject ``k`` is then
``bases[k % len(bases)]`` with ``bases = ("template", *real_subjects)``, a real subject
being a real T1 volume on the template slice's grid with its own tissue maps
(:mod:`.brain_real`); its anatomy, scanner and labels are drawn and rendered exactly as
the template's (the same map ``φ_k``, the same intensity augmentation). A pair of two
subjects of one anatomy carries its ground truth ``disp``; a pair of two anatomies has
none (``disp`` None; no correspondence is known between two real brains).
``meta["moving_anatomy"]`` / ``meta["fixed_anatomy"]`` name them. Without ``real`` the
phantom is the template-only one, unchanged.

Groups and splits: subject ``k`` belongs to ``BRAIN_GROUPS[(k // 2) % 2]`` (pattern
normal, normal, dementia, dementia). Subjects are partitioned into cohorts of
``COHORT_SIZE`` consecutive indices (a last cohort of one joins the previous one) and
pairs are formed only inside a cohort, on a cycle: member ``m`` moves onto member
``m + 1`` (the last onto the first), so every subject is moving once and fixed once per
slice and a cohort of four holds all four group combinations. ``Pair.subject`` is the
cohort (the split unit), so a subject-wise split never puts one subject in two splits;
``meta["moving_subject"]`` / ``meta["fixed_subject"]`` name the subjects and
``Pair.group`` is the fixed subject's group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ...core.ops import warp
from ...errors import InputError
from ..defaults import DEFAULT_SIZE, DEFAULT_SPACING
from ..pair import Pair
from .brain_real import anatomy_bases, real_slice, subject_anatomy
from .brain_subjects import (
    BRAIN_GROUPS,
    COHORT_SIZE,
    atrophy_params,
    atrophy_velocity,
    bias_field,
    check_ints,
    cohort_pairs,
    cohorts,
    intensity_scale,
    random_affine_2d,
    rician_image,
    seeded_rng,
    smooth_random_field,
)
from .brain_template import (
    SLICE_THICKNESS_MM,
    TEMPLATE_FILES,
    TEMPLATE_SOURCE,
    TemplateMaps,
    brain_mask,
    check_slice_grid,
    slice_z_mm,
    template_slice,
    tissue_labels,
    ventricle_change,
    warp_template,
)
from .brain_volumes import brain_volume_inter_phantom

__all__ = [
    "BRAIN_INTER_GROUPS",
    "COHORT_SIZE",
    "InterSubject",
    "brain_inter_phantom",
    "cohorts",
    "draw_subject",
    "from_template",
    "identity_grid",
    "make_brain_inter_pair",
    "subject_anatomy",
    "to_template",
]

BRAIN_INTER_GROUPS = BRAIN_GROUPS

# --- anatomy (per subject)
HEAD_SCALE = (0.92, 1.08)  # per axis, uniform
ROTATION_DEG = 5.0  # uniform in ±
SHIFT_MM = 3.0  # uniform in ± per axis
GLOBAL_MM = (1.0, 3.0)  # s.d. of the coarse velocity's control points (mm), uniform per subject
GLOBAL_CTRL_MM = 40.0  # their spacing (mm)
FOLD_MM = 3.0  # s.d. of the cortical-fold velocity's control points (mm)
FOLD_CTRL_MM = 10.0  # their spacing (mm)
CORTEX_DEPTH_MM = 15.0  # cortical band: this deep below the brain surface
CORTEX_SMOOTH_MM = 3.0
#: Relative ventricle-area change (first order) per group, uniform.
VENTRICLE_SIZE = {"normal": (-0.35, 0.15), "dementia": (0.15, 0.6)}
FLOW_STEPS = 16  # Runge-Kutta 4 steps of every flow

# --- scanner (per subject)
GAMMA = (0.75, 1.33)
CONTRAST_MIX = (0.0, 0.5)
TISSUE_MEANS = {"CSF": (0.1, 0.35), "GM": (0.6, 0.75), "WM": (0.8, 0.95)}
BLUR_FWHM_MM = (0.0, 3.0)
BIAS = 0.1  # s.d. of the log bias field's control points
NOISE = (0.01, 0.05)

_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class InterSubject:
    """One subject's anatomy and scanner (voxel units on the phantom grid ``(H, W)``).

    Attributes:
        index, group: the subject number and its group (``BRAIN_INTER_GROUPS``).
        matrix, shift: ``A_k`` about the grid centre, ``(2, 2)`` and ``(2,)`` voxels.
        velocity: ``(1, 2, H, W)`` float64 stationary velocity ``v_k``, voxels.
        ventricle_size: relative ventricle-area change drawn (first order).
        severity: atrophy severity in [0, 1] (used with ``atrophy=True``).
        gamma, mix, means, blur_fwhm_mm, bias, noise_std: the scanner (module doc):
            contrast curve, tissue-image weight, CSF/GM/WM means, resolution (mm),
            ``(H, W)`` multiplicative bias field, noise s.d. (fraction of the scale).
    """

    index: int
    group: str
    matrix: np.ndarray
    shift: np.ndarray
    velocity: torch.Tensor
    ventricle_size: float
    severity: float
    gamma: float
    mix: float
    means: tuple[float, float, float]
    blur_fwhm_mm: float
    bias: np.ndarray
    noise_std: float


def _n_ctrl(size: tuple[int, int], spacing: tuple[float, float], ctrl_mm: float) -> int:
    """Control points per axis of a random field with about ``ctrl_mm`` between them."""
    fov = max(n * s for n, s in zip(size, spacing, strict=True))
    return max(4, int(round(fov / ctrl_mm)) + 1)


def _cortical_band(template: TemplateMaps, spacing: tuple[float, float]) -> np.ndarray:
    """``(H, W)`` weight in [0, 1]: GM + CSF within ``CORTEX_DEPTH_MM`` of the brain surface."""
    probs = template.probs
    brain = probs[0] < 0.5
    depth = ndimage.distance_transform_edt(brain, sampling=spacing)
    band = brain * np.clip(1.0 - depth / CORTEX_DEPTH_MM, 0.0, 1.0) * (probs[1] + probs[2])
    sigma = CORTEX_SMOOTH_MM / np.asarray(spacing)
    band = ndimage.gaussian_filter(band.astype(np.float64), sigma, mode="constant")
    peak = band.max()
    return band / peak if peak > 0 else band


def draw_subject(
    seed: int,
    index: int,
    template: TemplateMaps,
    size: tuple[int, int],
    spacing: tuple[float, float],
) -> InterSubject:
    """Subject ``index`` on the grid of ``template`` (``size`` pixels of ``spacing`` mm):
    every random number comes from ``seeded_rng(seed, index, 2)``."""
    rng = seeded_rng(seed, index, 2)
    sp = np.asarray(spacing)
    group = BRAIN_INTER_GROUPS[(index // 2) % 2]
    matrix, shift = random_affine_2d(rng, spacing, ROTATION_DEG, HEAD_SCALE, SHIFT_MM)
    coarse = smooth_random_field(rng, size, 2, _n_ctrl(size, spacing, GLOBAL_CTRL_MM))
    folds = smooth_random_field(rng, size, 2, _n_ctrl(size, spacing, FOLD_CTRL_MM))
    ventricle_size = float(rng.uniform(*VENTRICLE_SIZE[group]))
    severity = float(rng.uniform())
    vent = -atrophy_velocity(template.probs, spacing, ventricle_size, 0.0)  # grows by +size
    velocity = (
        coarse * (rng.uniform(*GLOBAL_MM) / sp)[:, None, None]
        + folds * (FOLD_MM / sp)[:, None, None] * _cortical_band(template, spacing)
        + vent
    )
    means = tuple(float(rng.uniform(*TISSUE_MEANS[k])) for k in ("CSF", "GM", "WM"))
    return InterSubject(
        index=int(index),
        group=group,
        matrix=matrix,
        shift=shift,
        velocity=torch.from_numpy(velocity[None]).double(),
        ventricle_size=ventricle_size,
        severity=severity,
        gamma=float(rng.uniform(*GAMMA)),
        mix=float(rng.uniform(*CONTRAST_MIX)),
        means=(means[0], means[1], means[2]),
        blur_fwhm_mm=float(rng.uniform(*BLUR_FWHM_MM)),
        bias=bias_field(rng, size, BIAS),
        noise_std=float(rng.uniform(*NOISE)),
    )


# --------------------------------------------------------------------------- transforms


def identity_grid(size: tuple[int, ...]) -> torch.Tensor:
    """``(1, 2, H, W)`` float64 voxel coordinates of the grid ``size`` ``(H, W)``."""
    axes = [torch.arange(n, dtype=torch.float64) for n in size]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))[None]


def _affine(points: torch.Tensor, matrix: np.ndarray, shift: np.ndarray) -> torch.Tensor:
    """``centre + matrix (points - centre) + shift`` for positions ``(1, 2, H, W)``."""
    centre = torch.tensor([(n - 1) / 2.0 for n in points.shape[2:]], dtype=points.dtype)
    centre = centre.view(1, 2, 1, 1)
    m = np.asarray(matrix, dtype=np.float64)
    r = points - centre
    rows = [float(m[c, 0]) * r[:, 0] + float(m[c, 1]) * r[:, 1] + float(shift[c]) for c in range(2)]
    return centre + torch.stack(rows, dim=1)


def _flow(velocity: torch.Tensor, points: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Positions ``exp(velocity)(points)``: the flow ``dx/dt = v(x)`` from ``t = 0`` to 1
    started at ``points`` ``(1, 2, H, W)`` (voxels, anywhere), classical Runge-Kutta 4 in
    ``FLOW_STEPS`` steps, ``v`` interpolated linearly (border padding). Integrating the
    points themselves (not resampling a displacement field) keeps ``exp(-v)`` the inverse
    of ``exp(v)`` to the integration error."""
    h = 1.0 / FLOW_STEPS

    def v_at(x: torch.Tensor) -> torch.Tensor:
        return warp(velocity, x - grid, mode="linear", padding_mode="border")

    x = points
    for _ in range(FLOW_STEPS):
        k1 = v_at(x)
        k2 = v_at(x + 0.5 * h * k1)
        k3 = v_at(x + 0.5 * h * k2)
        k4 = v_at(x + h * k3)
        x = x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return x


def to_template(subject: InterSubject, points: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``φ_k(points) = exp(v_k)(A_k(points))``: positions ``(1, 2, H, W)`` float64 voxels;
    ``grid`` the :func:`identity_grid`."""
    return _flow(subject.velocity, _affine(points, subject.matrix, subject.shift), grid)


def from_template(subject: InterSubject, points: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``φ_k^{-1}(points) = A_k^{-1}(exp(-v_k)(points))``: positions ``(1, 2, H, W)``
    float64 voxels; ``grid`` the :func:`identity_grid`."""
    inside = _flow(-subject.velocity, points, grid)
    inv = np.linalg.inv(subject.matrix)
    return _affine(inside, inv, -inv @ subject.shift)


def _follow_up_start(
    template: TemplateMaps,
    subject: InterSubject,
    grid: torch.Tensor,
    spacing: tuple[float, float],
) -> tuple[torch.Tensor, dict[str, float]]:
    """The subject's follow-up: positions ``exp(-w)(grid)`` ``(1, 2, H, W)`` float64
    voxels, ``w`` its group's atrophy velocity (severity ``subject.severity``) on its
    warped template maps, and the atrophy's ``meta`` entries."""
    params = atrophy_params(subject.group, subject.severity)
    baseline = warp_template(template, (to_template(subject, grid, grid) - grid).float())
    w = atrophy_velocity(baseline[:5].numpy(), spacing, **params)
    start = _flow(-torch.from_numpy(w[None]).double(), grid, grid)
    return start, {"atrophy_severity": subject.severity, **params}


# --------------------------------------------------------------------------- rendering


def _render(
    template: TemplateMaps,
    subject: InterSubject,
    to_template: torch.Tensor,
    spacing: tuple[float, float],
    noise_rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The subject's image ``(H, W)`` float32 in [0, 1] and labels ``(H, W)`` int16, the
    template sampled at ``to_template`` (positions ``(1, 2, H, W)`` float64, voxels)."""
    grid = identity_grid(template.t1.shape)
    maps = warp_template(template, (to_template - grid).float())
    probs = maps[:5].numpy().astype(np.float64)
    t1 = maps[5].clamp_min(0.0).numpy().astype(np.float64)
    csf, gm, wm = subject.means
    tissue = csf * (probs[1] + probs[4]) + gm * probs[2] + wm * probs[3]
    clean = ((1.0 - subject.mix) * t1 + subject.mix * tissue) ** subject.gamma
    sigma = subject.blur_fwhm_mm * _FWHM_TO_SIGMA / np.asarray(spacing)
    if subject.blur_fwhm_mm > 0:
        clean = ndimage.gaussian_filter(clean, sigma, mode="constant")
    clean = clean * subject.bias
    scale = intensity_scale(clean, probs[0])
    return rician_image(clean, scale, subject.noise_std, noise_rng), tissue_labels(maps[:5])


# --------------------------------------------------------------------------- pairs


def _check_pair_args(
    seed: int,
    moving: int,
    fixed: int,
    slice_offset: int,
    size: Sequence[int],
    spacing: Sequence[float],
) -> tuple[tuple[int, int], tuple[float, float]]:
    """The 2-D grid as tuples.

    Raises:
        InputError: bad seed/indices/slice_offset/size/spacing, or ``moving == fixed``.
    """
    check_ints(
        "brain-inter phantom", seed=seed, moving=moving, fixed=fixed, slice_offset=slice_offset
    )
    for name, value in (("seed", seed), ("moving", moving), ("fixed", fixed)):
        if value < 0:
            raise InputError(f"brain-inter phantom: {name} must be >= 0, got {value}")
    if moving == fixed:
        raise InputError(f"brain-inter phantom: moving and fixed must differ, got {moving}")
    return check_slice_grid(size, spacing)


def _anatomy_maps(
    base: str,
    real: str | Path | None,
    slice_offset: int,
    size: tuple[int, int],
    spacing: tuple[float, float],
) -> TemplateMaps:
    """The maps of one anatomy on the slice grid: the template's or a real subject's."""
    if base == "template":
        return template_slice(slice_offset, size, spacing)
    return real_slice(str(real), base, slice_offset, size, spacing)


def _pair_arrays(
    seed: int,
    slice_offset: int,
    atrophy: bool,
    maps: tuple[TemplateMaps, TemplateMaps],
    subjects: tuple[InterSubject, InterSubject],
    spacing: tuple[float, float],
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], torch.Tensor, dict]:
    """The moving and fixed ``(image, labels)`` of the pair ``subjects`` (moving, fixed)
    rendered from their anatomies ``maps``, the truth ``(1, 2, H, W)`` float64 voxels and
    the atrophy's ``meta`` entries (the follow-up as fixed image with ``atrophy``)."""
    (template, template_f), (subj_m, subj_f) = maps, subjects
    grid = identity_grid(template.t1.shape)
    start, atrophy_meta = (
        _follow_up_start(template_f, subj_f, grid, spacing) if atrophy else (grid, {})
    )
    fixed_to_template = to_template(subj_f, start, grid)
    truth = from_template(subj_m, fixed_to_template, grid) - grid
    offset = int(slice_offset) + 2**20
    noise_m = seeded_rng(seed, subj_m.index, 3, offset)
    noise_f = seeded_rng(seed, subj_f.index, 3 + int(atrophy), offset)
    moved = _render(template, subj_m, to_template(subj_m, grid, grid), spacing, noise_m)
    fixed = _render(template_f, subj_f, fixed_to_template, spacing, noise_f)
    return moved, fixed, truth, atrophy_meta


def make_brain_inter_pair(
    seed: int,
    moving: int,
    fixed: int,
    slice_offset: int = 0,
    size: Sequence[int] = DEFAULT_SIZE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    atrophy: bool = False,
    cohort: str | None = None,
    real: str | Path | None = None,
    real_subjects: str | Sequence[str] | None = None,
) -> Pair:
    """The pair subject ``moving`` -> subject ``fixed`` (deterministic in its arguments).

    Args:
        seed: non-negative int; with ``moving`` / ``fixed`` (distinct non-negative ints)
            it fixes both subjects' anatomy, scanner and group.
        slice_offset: axial slice, in steps of ``SLICE_THICKNESS_MM`` from MNI
            ``z = CENTRE_Z_MM``.
        size: ``(H, W)`` pixels; spacing: ``(2,)`` mm per pixel.
        atrophy: the fixed image is the fixed subject's follow-up (its group's atrophy).
        cohort: ``Pair.subject`` (the split unit); default ``brainx{seed}_{moving}-{fixed}``.
        real, real_subjects: a real-image corpus folder and its real subjects (``a+b``)
            used as anatomies beside the template (module doc).
    Returns:
        ``Pair`` with ``moving``/``fixed`` ``(H, W)`` float32 in [0, 1], both label maps
        ``(H, W)`` int16 (``BRAIN_LABELS``), ``mask`` ``(H, W)`` uint8 (the moving brain),
        ``disp`` ``(2, H, W)`` float32 voxels with ``fixed(x) ≈ moving(x + disp(x))``
        (None across anatomies), ``group`` the fixed subject's, ``meta`` the parameters.
    Raises:
        InputError: bad seed/indices/size/spacing, or ``moving == fixed``.
    """
    size_t, spacing_t = _check_pair_args(seed, moving, fixed, slice_offset, size, spacing)
    bases = anatomy_bases(real, real_subjects)
    base_m, base_f = (subject_anatomy(int(k), bases) for k in (moving, fixed))
    template, template_f = (
        _anatomy_maps(b, real, int(slice_offset), size_t, spacing_t) for b in (base_m, base_f)
    )
    subj_m = draw_subject(seed, int(moving), template, size_t, spacing_t)
    subj_f = draw_subject(seed, int(fixed), template_f, size_t, spacing_t)
    (image_m, labels_m), (image_f, labels_f), truth, atrophy_meta = _pair_arrays(
        seed, int(slice_offset), atrophy, (template, template_f), (subj_m, subj_f), spacing_t
    )
    name = f"brainx{seed}_{int(moving):04d}-{int(fixed):04d}"
    meta = _meta(seed, int(slice_offset), template, subj_m, subj_f, labels_m, labels_f)
    anatomy = {"moving_anatomy": base_m, "fixed_anatomy": base_f} if bases else {}
    return Pair(
        moving=image_m,
        fixed=image_f,
        spacing=spacing_t,
        id=f"{name}_z{int(slice_offset):+d}",
        subject=cohort or name,
        group=subj_f.group,
        moving_labels=labels_m,
        fixed_labels=labels_f,
        mask=brain_mask(labels_m),
        disp=truth[0].numpy().astype(np.float32) if base_m == base_f else None,
        meta=meta | anatomy | atrophy_meta,
    )


def _subject_meta(subject: InterSubject, spacing: tuple[float, float]) -> dict[str, Any]:
    """A subject's parameters for ``meta`` (lengths in mm)."""
    sp = np.asarray(spacing)
    return {
        "group": subject.group,
        "head_matrix_mm": (subject.matrix * (sp[:, None] / sp[None, :])).tolist(),
        "shift_mm": (subject.shift * sp).tolist(),
        "ventricle_size": subject.ventricle_size,
        "gamma": subject.gamma,
        "contrast_mix": subject.mix,
        "tissue_means": list(subject.means),
        "blur_fwhm_mm": subject.blur_fwhm_mm,
        "noise_std": subject.noise_std,
    }


def _meta(
    seed: int,
    slice_offset: int,
    template: TemplateMaps,
    subj_m: InterSubject,
    subj_f: InterSubject,
    labels_m: np.ndarray,
    labels_f: np.ndarray,
) -> dict[str, Any]:
    """The pair's ``meta``: template, slice, both subjects, the ventricle change."""
    spacing = (float(template.affine[0, 0]), float(template.affine[1, 1]))
    return {
        "source": TEMPLATE_SOURCE,
        "template_files": list(TEMPLATE_FILES.values()),
        "pairing": "inter",
        "seed": int(seed),
        "moving_subject": f"brainx{seed}_{subj_m.index:04d}",
        "fixed_subject": f"brainx{seed}_{subj_f.index:04d}",
        "moving_params": _subject_meta(subj_m, spacing),
        "fixed_params": _subject_meta(subj_f, spacing),
        "slice_offset": slice_offset,
        "slice_z_mm": slice_z_mm(slice_offset),
        "slice_thickness_mm": SLICE_THICKNESS_MM,
        "template_affine": template.affine.tolist(),
        "ventricle_area_change": ventricle_change(labels_m, labels_f),
    }


def brain_inter_phantom(
    n_subjects: int,
    seed: int = 0,
    slices_per_subject: int = 1,
    size: Sequence[int] = DEFAULT_SIZE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    atrophy: bool = False,
    real: str | Path | None = None,
    real_subjects: str | Sequence[str] | None = None,
) -> list[Pair]:
    """``n_subjects * slices_per_subject`` inter-subject pairs (see the module doc).

    Every subject is moving in one pair and fixed in another of its cohort, per slice.
    Slices are contiguous (``SLICE_THICKNESS_MM`` apart) around the central slice and
    share the subjects. Ids: ``brainx{seed}_{moving:04d}-{fixed:04d}_s{slice:02d}``;
    ``Pair.subject``: the cohort, ``brainx{seed}_c{cohort:03d}``. Shapes and units as
    in :func:`make_brain_inter_pair`. A three-entry ``size``/``spacing`` gives
    whole-brain volume pairs (:mod:`.brain_volumes`). ``real`` / ``real_subjects``: real
    anatomies beside the template (module doc; volumes: :mod:`.brain_volumes`).

    Raises:
        InputError: ``n_subjects < 2`` or bad arguments.
    """
    if not isinstance(n_subjects, int) or isinstance(n_subjects, bool):
        raise InputError(f"brain-inter phantom: n_subjects must be an int, got {n_subjects!r}")
    if len(size) == 3:  # whole-brain volumes
        if slices_per_subject != 1 or atrophy:
            raise InputError(
                "brain-inter phantom: 3-D volumes take one volume per subject and no atrophy"
            )
        return brain_volume_inter_phantom(n_subjects, seed, size, spacing, real, real_subjects)
    if not isinstance(slices_per_subject, int) or slices_per_subject < 1:
        raise InputError(
            "brain-inter phantom: slices_per_subject must be an int >= 1, "
            f"got {slices_per_subject!r}"
        )
    first = -(slices_per_subject // 2)
    pairs = []
    for c, moving, fixed in cohort_pairs(n_subjects):
        for k in range(slices_per_subject):
            pair = make_brain_inter_pair(
                seed,
                moving,
                fixed,
                first + k,
                size,
                spacing,
                atrophy,
                f"brainx{seed}_c{c:03d}",
                real,
                real_subjects,
            )
            pair.id = f"brainx{seed}_{moving:04d}-{fixed:04d}_s{k:02d}"
            pairs.append(pair)
    return pairs
