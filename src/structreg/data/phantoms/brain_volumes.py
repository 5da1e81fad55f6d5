"""Inter-subject brain *volumes* (``phantom:brain-inter`` with ``--size DxHxW``).

Each subject ``k`` (per ``seed, k``) is the whole-brain MNI152 template volume
(:func:`.brain._template_volume`, axes MNI x, y, z) seen through its own random map
``φ_k = exp(v_k) ∘ A_k`` — a small residual affine ``A_k`` (rotation ±2° about each
axis, scale ±2 % per axis, shift ±1 mm: subjects as after an affine pre-alignment,
which deformable registration assumes) and a smooth random stationary velocity ``v_k``
(about 3 mm per component, as the longitudinal 3-D phantom's subjects) — with its own scanner
(intensity gamma 0.8–1.25, a multiplicative bias field, Rician noise 1–3 %). The pair
``i -> j`` (moving = subject ``i``, fixed = subject ``j`` of the same cohort of four)
has the exact pull-back ground truth ``disp(x) = φ_i⁻¹(φ_j(x)) − x`` with
``φ_i⁻¹ = A_i⁻¹ ∘ exp(−v_i)`` (scaling and squaring, ``_EXP_STEPS`` squarings), so
``fixed(x) ≈ moving(x + disp(x))`` and both label maps come from the same template
probabilities. No atrophy is added (``atrophy=True`` is refused for volumes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from scipy import ndimage

from ...core.ops import compose
from ...errors import InputError
from ..pair import Pair
from .brain import (
    BRAIN_GROUPS,
    TEMPLATE_FILES,
    _check_any_grid,
    _labels,
    _rng,
    _smooth_random_field,
    _subject_maps_3d,
    _template_volume,
    _warp_probs,
)

__all__ = ["brain_volume_inter_phantom", "make_brain_volume_inter_pair"]

#: The subjects' affine ranges relative to the longitudinal phantom's (±6°, ±6 %, ±3 mm).
AFFINE_SCALE = 1.0 / 3.0


def _render(maps: torch.Tensor, rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
    """A subject's T1 ``(D, H, W)`` float32 in [0, 1] from its warped template maps:
    gamma, bias field and Rician noise drawn from ``rng``."""
    gamma = rng.uniform(0.8, 1.25)
    bias = np.exp(0.12 * _smooth_random_field(rng, size, 1, n_ctrl=4)[0])
    noise_std = rng.uniform(0.01, 0.03)
    clean = maps[5].clamp_min(0.0).numpy() ** gamma * bias
    scale = np.percentile(clean[maps[0].numpy() < 0.5], 99.5)
    noise = rng.normal(0.0, noise_std * scale, (2, *size))
    image = np.hypot(clean + noise[0], noise[1]) / scale
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def make_brain_volume_inter_pair(
    seed: int,
    moving: int,
    fixed: int,
    size: Sequence[int],
    spacing: Sequence[float],
    cohort: str | None = None,
) -> Pair:
    """The volume pair subject ``moving`` -> subject ``fixed`` (deterministic).

    Returns:
        ``Pair`` with ``moving``/``fixed`` ``(D, H, W)`` float32 in [0, 1], label maps
        ``(D, H, W)`` int16 (``BRAIN_LABELS``), ``mask`` (the moving brain), ``disp``
        ``(3, D, H, W)`` float32 voxels with ``fixed(x) ≈ moving(x + disp(x))``,
        ``group`` the fixed subject's (by index parity, as the longitudinal phantom).
    Raises:
        InputError: bad indices or grid, ``moving == fixed``.
    """
    for name, value in (("seed", seed), ("moving", moving), ("fixed", fixed)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise InputError(f"brain-inter volumes: {name} must be an int >= 0, got {value!r}")
    if moving == fixed:
        raise InputError(f"brain-inter volumes: moving and fixed must differ, got {moving}")
    size_t, spacing_t = _check_any_grid(size, spacing)
    if len(size_t) != 3:
        raise InputError(f"brain-inter volumes: size must be three ints, got {size!r}")
    template = _template_volume(size_t, cast(tuple[float, float, float], spacing_t))
    u_m, inv_m = _subject_maps_3d(_rng(seed, moving, 0), size_t, spacing_t, AFFINE_SCALE)
    u_f, _ = _subject_maps_3d(_rng(seed, fixed, 0), size_t, spacing_t, AFFINE_SCALE)
    truth = compose(inv_m, u_f)  # φ_m⁻¹ ∘ φ_f
    maps_m, maps_f = _warp_probs(template, u_m), _warp_probs(template, u_f)
    image_m = _render(maps_m, _rng(seed, moving, 5), size_t)
    image_f = _render(maps_f, _rng(seed, fixed, 5), size_t)
    labels_m, labels_f = _labels(maps_m[:5]), _labels(maps_f[:5])
    name = f"brainx{seed}_{int(moving):04d}-{int(fixed):04d}"
    return Pair(
        moving=image_m,
        fixed=image_f,
        spacing=spacing_t,
        id=f"{name}_3d",
        subject=cohort or name,
        group=BRAIN_GROUPS[int(fixed) % 2],
        moving_labels=labels_m,
        fixed_labels=labels_f,
        mask=ndimage.binary_fill_holes(labels_m > 0).astype(np.uint8),
        disp=truth[0].numpy().astype(np.float32),
        meta={
            "source": "MNI152 ICBM 2009a symmetric template (nilearn/datasets/data)",
            "template_files": list(TEMPLATE_FILES.values()),
            "seed": int(seed),
            "moving_subject": f"brainx{seed}_{int(moving):04d}",
            "fixed_subject": f"brainx{seed}_{int(fixed):04d}",
            "template_affine": template.affine.tolist(),
        },
    )


def brain_volume_inter_phantom(
    n_subjects: int, seed: int, size: Sequence[int], spacing: Sequence[float]
) -> list[Pair]:
    """Inter-subject volume pairs: in each cohort of four consecutive subjects (see
    :func:`.brain_inter.cohorts`) every subject is moving once and fixed once.
    ``Pair.subject`` is the cohort ``brainx{seed}_c{cohort:03d}`` (the split unit)."""
    from .brain_inter import cohorts

    pairs = []
    for c, members in enumerate(cohorts(n_subjects)):
        for m, moving in enumerate(members):
            fixed = members[(m + 1) % len(members)]
            pairs.append(
                make_brain_volume_inter_pair(
                    seed, moving, fixed, size, spacing, cohort=f"brainx{seed}_c{c:03d}"
                )
            )
    return pairs
