"""Inter-subject brain *volumes* (``phantom:brain-inter`` with ``--size DxHxW``).

Each subject ``k`` (per ``seed, k``) is the whole-brain MNI152 template volume
(:func:`.brain_template.template_volume`, axes MNI x, y, z) seen through its own random map
``φ_k = exp(v_k) ∘ A_k`` — a small residual affine ``A_k`` (rotation ±2° about each
axis, scale ±2 % per axis, shift ±1 mm: subjects as after an affine pre-alignment,
which deformable registration assumes) and a smooth random stationary velocity ``v_k``
(about 3 mm per component, as the longitudinal 3-D phantom's subjects) — with its own scanner
(intensity gamma 0.8–1.25, a multiplicative bias field, Rician noise 1–3 %). The pair
``i -> j`` (moving = subject ``i``, fixed = subject ``j`` of the same cohort of four)
has the exact pull-back ground truth ``disp(x) = φ_i⁻¹(φ_j(x)) − x`` with
``φ_i⁻¹ = A_i⁻¹ ∘ exp(−v_i)`` (scaling and squaring, ``EXP_STEPS`` squarings), so
``fixed(x) ≈ moving(x + disp(x))`` and both label maps come from the same template
probabilities. No atrophy is added (``atrophy=True`` is refused for volumes).

Real anatomies (``real=DIR``, a real-image corpus folder; ``real_subjects``, default
:data:`.brain_real.TRAINING_SUBJECTS`), as the 2-D phantom: the anatomy of subject ``k``
is ``bases[k % len(bases)]`` with ``bases = ("template", *real_subjects)``, a real
subject being its T1 volume and tissue maps on the same grid
(:func:`.brain_real.real_volume_maps`); maps, scanner and labels are drawn and rendered
exactly as the template's. A pair of two anatomies has no ground truth (``disp`` None).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch

from ...core.ops import compose
from ...errors import InputError
from ..pair import Pair
from .brain_real import anatomy_bases, real_volume_maps, subject_anatomy
from .brain_subjects import (
    BRAIN_GROUPS,
    clean_image,
    cohort_pairs,
    draw_scanner,
    intensity_scale,
    rician_image,
    seeded_rng,
    subject_maps_3d,
)
from .brain_template import (
    TEMPLATE_FILES,
    TEMPLATE_SOURCE,
    TemplateMaps,
    brain_mask,
    check_grid,
    template_volume,
    tissue_labels,
    warp_template,
)

__all__ = ["brain_volume_inter_phantom", "make_brain_volume_inter_pair"]

#: The subjects' affine ranges relative to the longitudinal phantom's (±6°, ±6 %, ±3 mm).
AFFINE_SCALE = 1.0 / 3.0


def _render(maps: torch.Tensor, rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
    """A subject's T1 ``(D, H, W)`` float32 in [0, 1] from its warped template maps
    ``(6, D, H, W)``: scanner (gamma, bias field) and Rician noise drawn from ``rng``."""
    scanner = draw_scanner(rng, size)
    clean = clean_image(maps, scanner)
    scale = intensity_scale(clean, maps[0].numpy())
    return rician_image(clean, scale, scanner.noise_std, rng)


def _check_pair_args(
    seed: int, moving: int, fixed: int, size: Sequence[int], spacing: Sequence[float]
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """The 3-D grid as tuples.

    Raises:
        InputError: bad indices or grid, ``moving == fixed``.
    """
    for name, value in (("seed", seed), ("moving", moving), ("fixed", fixed)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise InputError(f"brain-inter volumes: {name} must be an int >= 0, got {value!r}")
    if moving == fixed:
        raise InputError(f"brain-inter volumes: moving and fixed must differ, got {moving}")
    size_t, spacing_t = check_grid(size, spacing)
    if len(size_t) != 3:
        raise InputError(f"brain-inter volumes: size must be three ints, got {size!r}")
    return size_t, cast(tuple[float, float, float], spacing_t)


def _anatomy(
    base: str,
    real: str | Path | None,
    size: tuple[int, int, int],
    spacing: tuple[float, float, float],
) -> TemplateMaps:
    """The maps of one anatomy on the volume grid: the template's or a real subject's."""
    if base == "template":
        return template_volume(size, spacing)
    return real_volume_maps(str(real), base, size, spacing)


def make_brain_volume_inter_pair(
    seed: int,
    moving: int,
    fixed: int,
    size: Sequence[int],
    spacing: Sequence[float],
    cohort: str | None = None,
    real: str | Path | None = None,
    real_subjects: str | Sequence[str] | None = None,
) -> Pair:
    """The volume pair subject ``moving`` -> subject ``fixed`` (deterministic).

    Args:
        real, real_subjects: a real-image corpus folder and its real subjects used as
            anatomies beside the template (module doc).
    Returns:
        ``Pair`` with ``moving``/``fixed`` ``(D, H, W)`` float32 in [0, 1], label maps
        ``(D, H, W)`` int16 (``BRAIN_LABELS``), ``mask`` (the moving brain), ``disp``
        ``(3, D, H, W)`` float32 voxels with ``fixed(x) ≈ moving(x + disp(x))`` (None
        across anatomies), ``group`` the fixed subject's (by index parity, as the
        longitudinal phantom).
    Raises:
        InputError: bad indices or grid, ``moving == fixed``.
    """
    size_t, spacing_t = _check_pair_args(seed, moving, fixed, size, spacing)
    bases = anatomy_bases(real, real_subjects)
    base_m, base_f = (subject_anatomy(int(k), bases) for k in (moving, fixed))
    template = _anatomy(base_m, real, size_t, spacing_t)
    u_m, inv_m = subject_maps_3d(seeded_rng(seed, moving, 0), size_t, spacing_t, AFFINE_SCALE)
    u_f, _ = subject_maps_3d(seeded_rng(seed, fixed, 0), size_t, spacing_t, AFFINE_SCALE)
    truth = compose(inv_m, u_f)  # φ_m⁻¹ ∘ φ_f
    template_f = template if base_f == base_m else _anatomy(base_f, real, size_t, spacing_t)
    maps_m, maps_f = warp_template(template, u_m), warp_template(template_f, u_f)
    image_m = _render(maps_m, seeded_rng(seed, moving, 5), size_t)
    image_f = _render(maps_f, seeded_rng(seed, fixed, 5), size_t)
    labels_m, labels_f = tissue_labels(maps_m[:5]), tissue_labels(maps_f[:5])
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
        mask=brain_mask(labels_m),
        disp=truth[0].numpy().astype(np.float32) if base_m == base_f else None,
        meta={
            "source": TEMPLATE_SOURCE,
            "template_files": list(TEMPLATE_FILES.values()),
            "seed": int(seed),
            "moving_subject": f"brainx{seed}_{int(moving):04d}",
            "fixed_subject": f"brainx{seed}_{int(fixed):04d}",
            "template_affine": template.affine.tolist(),
        }
        | ({"moving_anatomy": base_m, "fixed_anatomy": base_f} if bases else {}),
    )


def brain_volume_inter_phantom(
    n_subjects: int,
    seed: int,
    size: Sequence[int],
    spacing: Sequence[float],
    real: str | Path | None = None,
    real_subjects: str | Sequence[str] | None = None,
) -> list[Pair]:
    """Inter-subject volume pairs: in each cohort of four consecutive subjects (see
    :func:`.brain_subjects.cohorts`) every subject is moving once and fixed once.
    ``Pair.subject`` is the cohort ``brainx{seed}_c{cohort:03d}`` (the split unit).
    ``real`` / ``real_subjects``: real anatomies beside the template (module doc)."""
    return [
        make_brain_volume_inter_pair(
            seed, moving, fixed, size, spacing, f"brainx{seed}_c{c:03d}", real, real_subjects
        )
        for c, moving, fixed in cohort_pairs(n_subjects)
    ]
