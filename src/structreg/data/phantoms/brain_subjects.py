"""The brain phantoms' random subjects: groups and cohorts, smooth random fields,
subject deformations, atrophy and the scanner (intensity gamma, bias field, noise).

All deformations are pull-back displacements in voxels on the phantom grid ``S``
(``(H, W)`` or ``(D, H, W)``), channel ``c`` along ``S[c]``: the subject is the
template at ``x + u(x)``. Shared by the longitudinal (:mod:`.brain`) and
inter-subject (:mod:`.brain_inter`, :mod:`.brain_volumes`) brain phantoms; every
random number comes from a generator :func:`seeded_rng` of the phantom's seed,
the subject and a stream number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ...core.ops import compose, exponentiate
from ...errors import InputError

__all__ = [
    "ATROPHY",
    "BRAIN_GROUPS",
    "COHORT_SIZE",
    "EXP_STEPS",
    "Scanner",
    "atrophy_params",
    "atrophy_velocity",
    "bias_field",
    "check_ints",
    "clean_image",
    "cohort_pairs",
    "cohorts",
    "draw_scanner",
    "intensity_scale",
    "random_affine_2d",
    "rician_image",
    "rotation_2d",
    "seeded_rng",
    "smooth_random_field",
    "subject_disp",
    "subject_maps_3d",
]

BRAIN_GROUPS = ("normal", "dementia")
#: Subjects per cohort of the inter-subject phantoms; pairs are formed inside a cohort only.
COHORT_SIZE = 4
#: Atrophy per group, drawn uniformly per subject (one severity in [0, 1] for both):
#: relative ventricle-area growth rate, and largest speed (mm) of cortical retreat.
ATROPHY = {
    "normal": {"ventricle_growth": (0.03, 0.10), "cortical_thinning_mm": (0.05, 0.15)},
    "dementia": {"ventricle_growth": (0.25, 0.45), "cortical_thinning_mm": (0.2, 0.4)},
}
#: Squarings of the scaling-and-squaring exponential of every stationary velocity.
EXP_STEPS = 7

_VENTRICLE_SIGMA_MM = 4.0
_CORTEX_SIGMA_MM = 2.0


# --------------------------------------------------------------------------- arguments, cohorts


def check_ints(prefix: str, **values: Any) -> None:
    """Raise ``InputError`` ``"{prefix}: {name} must be an int, got ..."`` for the first
    value that is not an int (a bool is not)."""
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise InputError(f"{prefix}: {name} must be an int, got {value!r}")


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


def cohort_pairs(n_subjects: int) -> list[tuple[int, int, int]]:
    """``(cohort, moving, fixed)`` of every inter-subject pair: in each of the
    :func:`cohorts`, member ``m`` moves onto member ``m + 1`` (the last onto the first),
    so every subject is moving once and fixed once; cohort-major order.

    Raises:
        InputError: fewer than two subjects.
    """
    return [
        (c, moving, members[(m + 1) % len(members)])
        for c, members in enumerate(cohorts(n_subjects))
        for m, moving in enumerate(members)
    ]


# --------------------------------------------------------------------------- random fields


def seeded_rng(*keys: int) -> np.random.Generator:
    """The generator of the integer ``keys`` (seed, subject, stream, ...)."""
    return np.random.default_rng([int(k) for k in keys])


def smooth_random_field(
    rng: np.random.Generator, size: tuple[int, ...], channels: int, n_ctrl: int = 6
) -> np.ndarray:
    """``(channels, *size)`` float64 smooth field: standard-normal control points on an
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


# --------------------------------------------------------------------------- subject maps


def rotation_2d(angle: float) -> np.ndarray:
    """``(2, 2)`` rotation by ``angle`` radians."""
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def random_affine_2d(
    rng: np.random.Generator,
    spacing: tuple[float, ...],
    rotation_deg: float,
    scale: tuple[float, float],
    shift_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """A random 2-D affine map about the grid centre in voxels: ``(matrix (2, 2), shift
    (2,))``; rotation uniform in ±``rotation_deg``, then scaling uniform in ``scale``
    per axis (both in mm, ``matrix = S⁻¹ R D S``), shift uniform in ±``shift_mm`` per
    axis. Draws, in order: the angle, two scales, two shifts."""
    sp = np.asarray(spacing)
    angle = np.deg2rad(rng.uniform(-rotation_deg, rotation_deg))
    a_mm = rotation_2d(angle) @ np.diag(rng.uniform(*scale, 2))
    matrix = a_mm * (sp[None, :] / sp[:, None])  # S^-1 A S: voxels
    shift = rng.uniform(-shift_mm, shift_mm, 2) / sp
    return matrix, shift


def _affine_disp(matrix: np.ndarray, shift: np.ndarray, size: tuple[int, ...]) -> torch.Tensor:
    """``(1, ndim, *size)`` float32 displacement of ``x -> c + matrix (x - c) + shift``
    (``c`` the grid's centre, voxels), 2-D or 3-D."""
    ndim = len(size)
    grid = np.stack(np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in size], indexing="ij"))
    subscripts = "cd,dhw->chw" if ndim == 2 else "cd,dxyz->cxyz"
    disp = np.einsum(subscripts, matrix - np.eye(ndim), grid) + shift.reshape(ndim, *[1] * ndim)
    return torch.from_numpy(disp[None]).float()


def subject_disp(
    rng: np.random.Generator, size: tuple[int, ...], spacing: tuple[float, ...]
) -> torch.Tensor:
    """``(1, 2, H, W)`` float32 template -> subject pull-back displacement in voxels of a
    longitudinal subject, ``φ = exp(v) ∘ A``: a small affine map ``A`` (rotation ±6°,
    scale ±6 %, shift ±3 mm about the centre) and ``exp(v)`` of a smooth random velocity
    (about 3 mm per component). 3-D: ``(1, 3, D, H, W)``, a rotation of ±6° about each
    axis (the draws of :func:`subject_maps_3d`)."""
    if len(size) == 3:
        matrix, shift, velocity = _subject_parts_3d(rng, size, spacing)
    else:
        matrix, shift = random_affine_2d(rng, spacing, 6.0, (0.94, 1.06), 3.0)
        velocity = smooth_random_field(rng, size, 2) * (3.0 / np.asarray(spacing))[:, None, None]
    return _exp_after_affine(velocity, matrix, shift, size)


def _exp_after_affine(
    velocity: np.ndarray, matrix: np.ndarray, shift: np.ndarray, size: tuple[int, ...]
) -> torch.Tensor:
    """``(1, ndim, *size)`` float32 displacement of ``exp(v) ∘ A``: ``velocity``
    ``(ndim, *size)`` voxels, ``A`` the affine map ``matrix``, ``shift`` about the centre."""
    v = torch.from_numpy(velocity[None]).float()
    return compose(exponentiate(v, steps=EXP_STEPS), _affine_disp(matrix, shift, size))


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
    (3, D, H, W))`` in voxels (see :func:`subject_disp`); ``affine_scale`` shrinks the
    affine part's ranges (rotation, scaling, shift) by that factor."""
    sp = np.asarray(spacing)
    k = float(affine_scale)
    rot = _rotation_3d(np.deg2rad(rng.uniform(-6, 6, 3)) * k)
    a_mm = rot @ np.diag(1.0 + (rng.uniform(0.94, 1.06, 3) - 1.0) * k)
    a_vox = a_mm * (sp[None, :] / sp[:, None])  # S^-1 A S
    shift = rng.uniform(-3, 3, 3) * k / sp
    velocity = smooth_random_field(rng, size, 3) * (3.0 / sp).reshape(3, 1, 1, 1)
    return a_vox, shift, velocity


def subject_maps_3d(
    rng: np.random.Generator,
    size: tuple[int, ...],
    spacing: tuple[float, ...],
    affine_scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u, u_inverse)`` of a 3-D subject: the displacement of ``φ = exp(v) ∘ A`` (the
    subject is the template at ``φ(x)``) and of ``φ⁻¹ = A⁻¹ ∘ exp(-v)``, both
    ``(1, 3, D, H, W)`` float32 voxels; the draws of :func:`subject_disp` in 3-D, the
    affine part's ranges (rotation, scaling, shift) times ``affine_scale``."""
    a_vox, shift, velocity = _subject_parts_3d(rng, size, spacing, affine_scale)
    u = _exp_after_affine(velocity, a_vox, shift, size)
    v = torch.from_numpy(velocity[None]).float()
    inv_a = np.linalg.inv(a_vox)
    inverse = compose(_affine_disp(inv_a, -inv_a @ shift, size), exponentiate(-v, EXP_STEPS))
    return u, inverse


# --------------------------------------------------------------------------- atrophy


def atrophy_params(group: str, severity: float) -> dict[str, float]:
    """``ventricle_growth`` and ``cortical_thinning_mm`` of a subject of ``group`` at
    ``severity`` in [0, 1] (linear within the group's ``ATROPHY`` ranges)."""
    return {key: lo + severity * (hi - lo) for key, (lo, hi) in ATROPHY[group].items()}


def atrophy_velocity(
    probs: np.ndarray,
    spacing: tuple[float, ...],
    ventricle_growth: float,
    cortical_thinning_mm: float,
) -> np.ndarray:
    """``(ndim, *S)`` float64 velocity (voxels per unit time) of tissue motion, baseline
    -> follow-up, from the ``(5, *S)`` tissue probabilities (``TemplateMaps.probs``
    order) on a grid of ``spacing`` mm.

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


# --------------------------------------------------------------------------- scanner


@dataclass(frozen=True)
class Scanner:
    """A subject's scan: T1 contrast curve ``t ** gamma``, ``bias`` ``S`` multiplicative
    field, Rician noise of s.d. ``noise_std`` (fraction of the brain's 99.5th percentile)."""

    gamma: float
    bias: np.ndarray
    noise_std: float


def bias_field(rng: np.random.Generator, size: tuple[int, ...], strength: float) -> np.ndarray:
    """``size`` float64 smooth multiplicative bias ``exp(strength * b)``, ``b`` a
    :func:`smooth_random_field` of 4 control points per axis."""
    return np.exp(strength * smooth_random_field(rng, size, 1, n_ctrl=4)[0])


def draw_scanner(rng: np.random.Generator, size: tuple[int, ...]) -> Scanner:
    """Gamma uniform in 0.8-1.25, a bias field of strength 0.12, noise uniform in 1-3 %
    (drawn in that order)."""
    gamma = rng.uniform(0.8, 1.25)
    bias = bias_field(rng, size, 0.12)
    noise_std = rng.uniform(0.01, 0.03)
    return Scanner(gamma=gamma, bias=bias, noise_std=noise_std)


def clean_image(maps: torch.Tensor, scanner: Scanner) -> np.ndarray:
    """``S`` noise-free intensities of warped template maps ``(6, *S)``
    (:func:`~.brain_template.warp_template`): ``T1 ** gamma * bias``."""
    return maps[5].clamp_min(0.0).numpy() ** scanner.gamma * scanner.bias


def intensity_scale(clean: np.ndarray, background: np.ndarray) -> float:
    """The 99.5th percentile of ``clean`` where the ``background`` probability
    (same shape) is below 0.5: the brain's bright end, the unit of the images."""
    return float(np.percentile(clean[background < 0.5], 99.5))


def rician_image(
    clean: np.ndarray, scale: float, noise_std: float, rng: np.random.Generator
) -> np.ndarray:
    """``clean.shape`` float32 image in [0, 1]: the magnitude of ``clean`` plus complex
    Gaussian noise of s.d. ``noise_std * scale`` (drawn from ``rng``), divided by
    ``scale`` and clipped."""
    noise = rng.normal(0.0, noise_std * scale, (2, *clean.shape))
    image = np.hypot(clean + noise[0], noise[1]) / scale  # Rician magnitude
    return np.clip(image, 0.0, 1.0).astype(np.float32)
