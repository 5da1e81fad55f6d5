"""Brain phantom, inter-subject pairing: moving = subject i, fixed = another subject j.

Built on the longitudinal brain phantom's template slices (:mod:`.brain`: MNI152 2009a,
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
    ventricle map (:func:`.brain._atrophy_velocity`) so that the ventricle area
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
labels by ``disp`` reproduces the fixed labels up to resampling at 2 mm (40 pairs):
Dice 0.95 WM, 0.94 GM, 0.92 ventricles and 0.87 CSF (thin sulcal CSF; 0.82 at worst),
where the labels before registration have Dice 0.71 WM, 0.64 GM, 0.51 ventricles and
0.43 CSF; mean |disp| 3.3 voxels (6.6 mm) in the brain.

Realism (``benchmarks/brain_inter_realism.py``, same intensity labelling on every image,
dipy SyN with CC): Dice before registration CSF / GM / WM 0.20 / 0.51 / 0.65 for the
phantom vs 0.22 / 0.54 / 0.69 for a real raw (centred) inter-subject pair and
0.59 / 0.40 / 0.67 for real pairs after spatial normalisation; SyN mean |u| 6.4 ± 1.7 mm
vs 5.3 mm (raw) and 2.0 mm (normalised); s.d. of SyN's log det J 0.30 vs 0.41 and 0.33.

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
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ...core.ops import warp
from ...errors import InputError
from ..defaults import DEFAULT_SIZE, DEFAULT_SPACING
from ..labels import BRAIN_LABELS
from ..pair import Pair
from .brain import (
    _ATROPHY,
    BRAIN_GROUPS,
    CENTRE_Z_MM,
    SLICE_THICKNESS_MM,
    TEMPLATE_FILES,
    _atrophy_velocity,
    _check_grid,
    _labels,
    _rng,
    _smooth_random_field,
    _template_slice,
    _TemplateSlice,
    _warp_probs,
)

__all__ = [
    "BRAIN_INTER_GROUPS",
    "COHORT_SIZE",
    "brain_inter_phantom",
    "cohorts",
    "make_brain_inter_pair",
]

BRAIN_INTER_GROUPS = BRAIN_GROUPS
#: Subjects per cohort; pairs are formed inside a cohort only.
COHORT_SIZE = 4

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
class _Subject:
    """One subject's anatomy and scanner (voxel units on the phantom grid)."""

    index: int
    group: str
    matrix: np.ndarray  # (2, 2) A_k about the grid centre, voxels
    shift: np.ndarray  # (2,) voxels
    velocity: torch.Tensor  # (1, 2, H, W) float64, voxels
    ventricle_size: float  # relative area change drawn (first order)
    severity: float  # atrophy severity in [0, 1] (used with atrophy=True)
    gamma: float
    mix: float
    means: tuple[float, float, float]  # CSF, GM, WM
    blur_fwhm_mm: float
    bias: np.ndarray  # (H, W) multiplicative
    noise_std: float


def _n_ctrl(size: tuple[int, int], spacing: tuple[float, float], ctrl_mm: float) -> int:
    fov = max(n * s for n, s in zip(size, spacing, strict=True))
    return max(4, int(round(fov / ctrl_mm)) + 1)


def _cortical_band(template: _TemplateSlice, spacing: tuple[float, float]) -> np.ndarray:
    """``(H, W)`` weight in [0, 1]: GM + CSF within ``CORTEX_DEPTH_MM`` of the brain surface."""
    probs = template.probs
    brain = probs[0] < 0.5
    depth = ndimage.distance_transform_edt(brain, sampling=spacing)
    band = brain * np.clip(1.0 - depth / CORTEX_DEPTH_MM, 0.0, 1.0) * (probs[1] + probs[2])
    sigma = CORTEX_SMOOTH_MM / np.asarray(spacing)
    band = ndimage.gaussian_filter(band.astype(np.float64), sigma, mode="constant")
    peak = band.max()
    return band / peak if peak > 0 else band


def _draw_subject(
    seed: int,
    index: int,
    template: _TemplateSlice,
    size: tuple[int, int],
    spacing: tuple[float, float],
) -> _Subject:
    """Subject ``index``: every random number comes from ``_rng(seed, index, 2)``."""
    rng = _rng(seed, index, 2)
    sp = np.asarray(spacing)
    group = BRAIN_INTER_GROUPS[(index // 2) % 2]
    angle = np.deg2rad(rng.uniform(-ROTATION_DEG, ROTATION_DEG))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    a_mm = rot @ np.diag(rng.uniform(*HEAD_SCALE, 2))
    matrix = a_mm * (sp[None, :] / sp[:, None])  # S^-1 A S: voxels
    shift = rng.uniform(-SHIFT_MM, SHIFT_MM, 2) / sp
    coarse = _smooth_random_field(rng, size, 2, _n_ctrl(size, spacing, GLOBAL_CTRL_MM))
    folds = _smooth_random_field(rng, size, 2, _n_ctrl(size, spacing, FOLD_CTRL_MM))
    ventricle_size = float(rng.uniform(*VENTRICLE_SIZE[group]))
    severity = float(rng.uniform())
    vent = -_atrophy_velocity(template.probs, spacing, ventricle_size, 0.0)  # grows by +size
    velocity = (
        coarse * (rng.uniform(*GLOBAL_MM) / sp)[:, None, None]
        + folds * (FOLD_MM / sp)[:, None, None] * _cortical_band(template, spacing)
        + vent
    )
    means = tuple(float(rng.uniform(*TISSUE_MEANS[k])) for k in ("CSF", "GM", "WM"))
    return _Subject(
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
        bias=np.exp(BIAS * _smooth_random_field(rng, size, 1, n_ctrl=4)[0]),
        noise_std=float(rng.uniform(*NOISE)),
    )


# --------------------------------------------------------------------------- transforms


def _grid(size: tuple[int, int]) -> torch.Tensor:
    """``(1, 2, H, W)`` float64 voxel coordinates."""
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


def _to_template(subject: _Subject, points: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``φ_k(points) = exp(v_k)(A_k(points))``."""
    return _flow(subject.velocity, _affine(points, subject.matrix, subject.shift), grid)


def _from_template(subject: _Subject, points: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``φ_k^{-1}(points) = A_k^{-1}(exp(-v_k)(points))``."""
    inside = _flow(-subject.velocity, points, grid)
    inv = np.linalg.inv(subject.matrix)
    return _affine(inside, inv, -inv @ subject.shift)


# --------------------------------------------------------------------------- rendering


def _render(
    template: _TemplateSlice,
    subject: _Subject,
    to_template: torch.Tensor,
    spacing: tuple[float, float],
    noise_rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The subject's image ``(H, W)`` float32 in [0, 1] and labels ``(H, W)`` int16, the
    template sampled at ``to_template`` (positions ``(1, 2, H, W)`` float64, voxels)."""
    grid = _grid(template.t1.shape)
    maps = _warp_probs(template, (to_template - grid).float())
    probs = maps[:5].numpy().astype(np.float64)
    t1 = maps[5].clamp_min(0.0).numpy().astype(np.float64)
    csf, gm, wm = subject.means
    tissue = csf * (probs[1] + probs[4]) + gm * probs[2] + wm * probs[3]
    clean = ((1.0 - subject.mix) * t1 + subject.mix * tissue) ** subject.gamma
    sigma = subject.blur_fwhm_mm * _FWHM_TO_SIGMA / np.asarray(spacing)
    if subject.blur_fwhm_mm > 0:
        clean = ndimage.gaussian_filter(clean, sigma, mode="constant")
    clean = clean * subject.bias
    scale = np.percentile(clean[probs[0] < 0.5], 99.5)
    noise = noise_rng.normal(0.0, subject.noise_std * scale, (2, *clean.shape))
    image = np.hypot(clean + noise[0], noise[1]) / scale  # Rician magnitude
    return np.clip(image, 0.0, 1.0).astype(np.float32), _labels(maps[:5])


# --------------------------------------------------------------------------- pairs


def _check_ints(**values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise InputError(f"brain-inter phantom: {name} must be an int, got {value!r}")
    for name in ("seed", "moving", "fixed"):
        if name in values and values[name] < 0:
            raise InputError(f"brain-inter phantom: {name} must be >= 0, got {values[name]}")


def make_brain_inter_pair(
    seed: int,
    moving: int,
    fixed: int,
    slice_offset: int = 0,
    size: Sequence[int] = DEFAULT_SIZE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    atrophy: bool = False,
    cohort: str | None = None,
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
    Returns:
        ``Pair`` with ``moving``/``fixed`` ``(H, W)`` float32 in [0, 1], both label maps
        ``(H, W)`` int16 (``BRAIN_LABELS``), ``mask`` ``(H, W)`` uint8 (the moving brain),
        ``disp`` ``(2, H, W)`` float32 voxels with ``fixed(x) ≈ moving(x + disp(x))``,
        ``group`` the fixed subject's and ``meta`` with both subjects' parameters.
    Raises:
        InputError: bad seed/indices/size/spacing, or ``moving == fixed``.
    """
    _check_ints(seed=seed, moving=moving, fixed=fixed, slice_offset=slice_offset)
    if moving == fixed:
        raise InputError(f"brain-inter phantom: moving and fixed must differ, got {moving}")
    size_t, spacing_t = _check_grid(size, spacing)
    template = _template_slice(int(slice_offset), size_t, spacing_t)
    subj_m = _draw_subject(seed, int(moving), template, size_t, spacing_t)
    subj_f = _draw_subject(seed, int(fixed), template, size_t, spacing_t)
    grid = _grid(size_t)

    start = grid
    atrophy_meta: dict[str, float] = {}
    if atrophy:
        ranges = _ATROPHY[subj_f.group]
        params = {k: lo + subj_f.severity * (hi - lo) for k, (lo, hi) in ranges.items()}
        baseline = _warp_probs(template, (_to_template(subj_f, grid, grid) - grid).float())
        w = _atrophy_velocity(baseline[:5].numpy(), spacing_t, **params)
        start = _flow(-torch.from_numpy(w[None]).double(), grid, grid)
        atrophy_meta = {"atrophy_severity": subj_f.severity, **params}
    fixed_to_template = _to_template(subj_f, start, grid)
    truth = _from_template(subj_m, fixed_to_template, grid) - grid

    offset = int(slice_offset) + 2**20
    moving_to_template = _to_template(subj_m, grid, grid)
    noise_m = _rng(seed, int(moving), 3, offset)
    image_m, labels_m = _render(template, subj_m, moving_to_template, spacing_t, noise_m)
    image_f, labels_f = _render(
        template,
        subj_f,
        fixed_to_template,
        spacing_t,
        _rng(seed, int(fixed), 3 + int(atrophy), offset),
    )
    mask = ndimage.binary_fill_holes(labels_m > 0).astype(np.uint8)
    name = f"brainx{seed}_{int(moving):04d}-{int(fixed):04d}"
    return Pair(
        moving=image_m,
        fixed=image_f,
        spacing=spacing_t,
        id=f"{name}_z{int(slice_offset):+d}",
        subject=cohort or name,
        group=subj_f.group,
        moving_labels=labels_m,
        fixed_labels=labels_f,
        mask=mask,
        disp=truth[0].numpy().astype(np.float32),
        meta=_meta(seed, int(slice_offset), template, subj_m, subj_f, labels_m, labels_f)
        | atrophy_meta,
    )


def _subject_meta(subject: _Subject, spacing: tuple[float, float]) -> dict[str, Any]:
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
    template: _TemplateSlice,
    subj_m: _Subject,
    subj_f: _Subject,
    labels_m: np.ndarray,
    labels_f: np.ndarray,
) -> dict[str, Any]:
    spacing = (float(template.affine[0, 0]), float(template.affine[1, 1]))
    v0 = int((labels_m == BRAIN_LABELS["ventricles"]).sum())
    v1 = int((labels_f == BRAIN_LABELS["ventricles"]).sum())
    return {
        "source": "MNI152 ICBM 2009a symmetric template (nilearn/datasets/data)",
        "template_files": list(TEMPLATE_FILES.values()),
        "pairing": "inter",
        "seed": int(seed),
        "moving_subject": f"brainx{seed}_{subj_m.index:04d}",
        "fixed_subject": f"brainx{seed}_{subj_f.index:04d}",
        "moving_params": _subject_meta(subj_m, spacing),
        "fixed_params": _subject_meta(subj_f, spacing),
        "slice_offset": slice_offset,
        "slice_z_mm": CENTRE_Z_MM + slice_offset * SLICE_THICKNESS_MM,
        "slice_thickness_mm": SLICE_THICKNESS_MM,
        "template_affine": template.affine.tolist(),
        "ventricle_area_change": (v1 - v0) / v0 if v0 else float("nan"),
    }


def cohorts(n_subjects: int) -> list[list[int]]:
    """Subject indices ``0..n_subjects-1`` in cohorts of ``COHORT_SIZE`` consecutive
    indices; a last cohort of one joins the previous cohort.

    Raises:
        InputError: fewer than two subjects.
    """
    if n_subjects < 2:
        raise InputError(
            f"brain-inter phantom: inter-subject pairs need at least 2 subjects, got {n_subjects}"
        )
    out = [
        list(range(s, min(s + COHORT_SIZE, n_subjects))) for s in range(0, n_subjects, COHORT_SIZE)
    ]
    if len(out[-1]) == 1:
        out[-2].extend(out.pop())
    return out


def brain_inter_phantom(
    n_subjects: int,
    seed: int = 0,
    slices_per_subject: int = 1,
    size: Sequence[int] = DEFAULT_SIZE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    atrophy: bool = False,
) -> list[Pair]:
    """``n_subjects * slices_per_subject`` inter-subject pairs (see the module doc).

    Every subject is moving in one pair and fixed in another of its cohort, per slice.
    Slices are contiguous (``SLICE_THICKNESS_MM`` apart) around the central slice and
    share the subjects. Ids: ``brainx{seed}_{moving:04d}-{fixed:04d}_s{slice:02d}``;
    ``Pair.subject``: the cohort, ``brainx{seed}_c{cohort:03d}``. Shapes and units as
    in :func:`make_brain_inter_pair`. A three-entry ``size``/``spacing`` gives
    whole-brain volume pairs (:mod:`.brain_volumes`).

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
        from .brain_volumes import brain_volume_inter_phantom

        return brain_volume_inter_phantom(n_subjects, seed, size, spacing)
    if not isinstance(slices_per_subject, int) or slices_per_subject < 1:
        raise InputError(
            "brain-inter phantom: slices_per_subject must be an int >= 1, "
            f"got {slices_per_subject!r}"
        )
    first = -(slices_per_subject // 2)
    pairs = []
    for c, members in enumerate(cohorts(n_subjects)):
        for m, moving in enumerate(members):
            fixed = members[(m + 1) % len(members)]
            for k in range(slices_per_subject):
                pair = make_brain_inter_pair(
                    seed, moving, fixed, first + k, size, spacing, atrophy, f"brainx{seed}_c{c:03d}"
                )
                pair.id = f"brainx{seed}_{moving:04d}-{fixed:04d}_s{k:02d}"
                pairs.append(pair)
    return pairs
