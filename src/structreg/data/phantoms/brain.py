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

The template, labels and warping live in :mod:`.brain_template`; subjects, atrophy
and the scanner in :mod:`.brain_subjects` (shared with the inter-subject phantoms).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from ...core.ops import compose, exponentiate
from ...errors import DataError, InputError
from ..defaults import DEFAULT_SIZE, DEFAULT_SPACING
from ..pair import Pair
from .brain_inter import brain_inter_phantom
from .brain_subjects import (
    BRAIN_GROUPS,
    EXP_STEPS,
    Scanner,
    atrophy_params,
    atrophy_velocity,
    check_ints,
    clean_image,
    draw_scanner,
    intensity_scale,
    rician_image,
    seeded_rng,
    subject_disp,
)
from .brain_template import (
    CENTRE_Z_MM,
    SLICE_THICKNESS_MM,
    TEMPLATE_FILES,
    TEMPLATE_SOURCE,
    TemplateMaps,
    brain_mask,
    check_grid,
    slice_z_mm,
    template_paths,
    template_slice,
    template_volume,
    tissue_labels,
    ventricle_change,
    warp_template,
)

__all__ = [
    "BRAIN_GROUPS",
    "CENTRE_Z_MM",
    "PAIRINGS",
    "SLICE_THICKNESS_MM",
    "TEMPLATE_FILES",
    "brain_phantom",
    "make_brain_pair",
    "template_paths",
    "ventricle_volume_change",
]

#: ``brain_phantom(pairing=...)``: one subject's baseline -> follow-up, or subject i -> j.
PAIRINGS = ("longitudinal", "inter")


@dataclass(frozen=True)
class _Subject:
    """One longitudinal subject: template -> subject displacement ``disp``
    ``(1, ndim, *S)`` voxels, its scanner, and its atrophy (severity in [0, 1] and
    the :func:`~.brain_subjects.atrophy_params` it gives)."""

    disp: torch.Tensor
    scanner: Scanner
    severity: float
    atrophy: dict[str, float]


def _draw_subject(
    seed: int, index: int, group: str, size: tuple[int, ...], spacing: tuple[float, ...]
) -> _Subject:
    """Subject ``index``: every random number comes from ``seeded_rng(seed, index, 0)``,
    so all slices of a subject share it."""
    rng = seeded_rng(seed, index, 0)
    disp = subject_disp(rng, size, spacing)
    scanner = draw_scanner(rng, size)
    severity = rng.uniform()
    return _Subject(disp, scanner, severity, atrophy_params(group, severity))


def _check_pair_args(
    seed: int,
    index: int,
    group: str | None,
    slice_offset: int,
    size: Sequence[int],
    spacing: Sequence[float],
) -> tuple[str, tuple[int, ...], tuple[float, ...]]:
    """The group (``None``: alternating by ``index``) and the grid as tuples.

    Raises:
        InputError: unknown group or bad seed/index/slice_offset/size/spacing.
    """
    if group is None:
        group = BRAIN_GROUPS[int(index) % 2]
    if group not in BRAIN_GROUPS:
        raise InputError(f"brain phantom: unknown group {group!r}; expected one of {BRAIN_GROUPS}")
    check_ints("brain phantom", seed=seed, index=index, slice_offset=slice_offset)
    if seed < 0 or index < 0:
        raise InputError(f"brain phantom: seed and index must be >= 0, got {seed}, {index}")
    size_t, spacing_t = check_grid(size, spacing)
    if len(size_t) == 3 and slice_offset != 0:
        raise InputError(f"brain phantom: a 3-D volume has no slice_offset (got {slice_offset})")
    return group, size_t, spacing_t


def _template(slice_offset: int, size: tuple[int, ...], spacing: tuple[float, ...]) -> TemplateMaps:
    """The template slice ``slice_offset`` on a 2-D grid, the template volume on a 3-D one."""
    if len(size) == 3:
        return template_volume(size, cast(tuple[float, float, float], spacing))
    return template_slice(
        slice_offset, cast(tuple[int, int], size), cast(tuple[float, float], spacing)
    )


def _atrophy(
    template: TemplateMaps,
    subject: torch.Tensor,
    spacing: tuple[float, ...],
    atrophy: dict[str, float],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(baseline, follow-up, disp)``: the template maps ``(6, *S)`` warped to the
    subject (displacement ``subject`` ``(1, ndim, *S)``) and to its follow-up, and the
    ground truth ``disp = exp(-w)`` ``(1, ndim, *S)`` voxels, ``w`` the
    :func:`~.brain_subjects.atrophy_velocity` of the baseline maps."""
    baseline = warp_template(template, subject)
    velocity = atrophy_velocity(baseline[:5].numpy(), spacing, **atrophy)
    disp = exponentiate(-torch.from_numpy(velocity[None]).float(), steps=EXP_STEPS)
    followup = warp_template(template, compose(subject, disp))
    return baseline, followup, disp


def _scan_pair(
    baseline: torch.Tensor, followup: torch.Tensor, scanner: Scanner, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and follow-up images ``S`` float32 in [0, 1] of the warped maps
    ``(6, *S)``: the subject's scanner, both divided by the baseline's brain 99.5th
    percentile, fresh Rician noise (from ``rng``) for each."""
    clean = [clean_image(maps, scanner) for maps in (baseline, followup)]
    scale = intensity_scale(clean[0], baseline[0].numpy())
    return (
        rician_image(clean[0], scale, scanner.noise_std, rng),
        rician_image(clean[1], scale, scanner.noise_std, rng),
    )


def _meta(
    seed: int,
    index: int,
    slice_offset: int,
    template: TemplateMaps,
    subject: _Subject,
    labels: tuple[np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """The pair's ``meta``: the template, the slice, the atrophy drawn and measured
    (``labels``: moving and fixed label maps), the scanner."""
    volume = template.t1.ndim == 3
    return {
        "source": TEMPLATE_SOURCE,
        "template_files": list(TEMPLATE_FILES.values()),
        "seed": int(seed),
        "index": int(index),
        "slice_offset": slice_offset,
        "slice_z_mm": None if volume else slice_z_mm(slice_offset),
        "slice_thickness_mm": None if volume else SLICE_THICKNESS_MM,
        "template_affine": template.affine.tolist(),
        "atrophy_severity": float(subject.severity),
        **{key: float(value) for key, value in subject.atrophy.items()},
        "ventricle_area_change": ventricle_change(*labels),
        "gamma": float(subject.scanner.gamma),
        "noise_std": float(subject.scanner.noise_std),
        "follow_up_labels": "baseline probability maps warped linearly by disp, argmax",
    }


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
    group, size_t, spacing_t = _check_pair_args(seed, index, group, slice_offset, size, spacing)
    template = _template(int(slice_offset), size_t, spacing_t)
    subject = _draw_subject(seed, index, group, size_t, spacing_t)
    baseline, followup, disp = _atrophy(template, subject.disp, spacing_t, subject.atrophy)
    slice_rng = seeded_rng(seed, index, 1, int(slice_offset) + 2**20)
    moving, fixed = _scan_pair(baseline, followup, subject.scanner, slice_rng)
    moving_labels, fixed_labels = tissue_labels(baseline[:5]), tissue_labels(followup[:5])
    name = f"brain{seed}_{index:04d}"
    return Pair(
        moving=moving,
        fixed=fixed,
        spacing=spacing_t,
        id=name + ("_3d" if len(size_t) == 3 else f"_z{int(slice_offset):+d}"),
        subject=name,
        group=group,
        moving_labels=moving_labels,
        fixed_labels=fixed_labels,
        mask=brain_mask(moving_labels),
        disp=disp[0].numpy().astype(np.float32),
        meta=_meta(
            seed, index, int(slice_offset), template, subject, (moving_labels, fixed_labels)
        ),
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
    return ventricle_change(pair.moving_labels, pair.fixed_labels)
