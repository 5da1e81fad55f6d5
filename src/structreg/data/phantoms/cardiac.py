"""Built-in cardiac phantom: short-axis cine-MRI-like ED/ES slice pairs.

Each pair is one short-axis slice at end-diastole (ED, the *moving* image) and
end-systole (ES, the *fixed* image) with ACDC labels (1 RV cavity, 2 LV
myocardium, 3 LV blood pool), surrounding tissue (body wall with a fat ring,
chest-wall muscle, lungs, liver, aorta, spine, epicardial fat), papillary
muscles, tissue texture, a smooth multiplicative bias field and Rician noise,
in a random pose. Intensities mimic bSSFP cine (bright blood and fat, dark
myocardium, black lungs) and are normalised to [0, 1].

The model is continuous (:mod:`.cardiac_model`): ES is defined by an explicit,
fold-free map ``T`` from ES to ED positions of the ED scene, so the ground truth
``disp(x) = T(x) - x`` (voxels, ``fixed(x) ≈ moving(x + disp(x))``) is exact and
each slice's LV ejection fraction is designed inside its group's range
(:data:`EF_RANGES`). Rendering and acquisition: :mod:`.cardiac_imaging`. Short-axis
stacks with through-plane motion: :mod:`.cardiac_volumes`.

Groups (modelled on ACDC):

* ``NOR``  normal LV and RV.
* ``DCM``  dilated LV, wall thin relative to the cavity, EF < 40 %, weak twist.
* ``HCM``  small cavity, thick wall with extra septal thickness, high EF.
* ``MINF`` an akinetic, thinned infarct sector in the free wall, reduced EF.
* ``RV``   dilated, hypokinetic right ventricle, normal-ish LV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import InputError
from ..defaults import DEFAULT_SIZE, DEFAULT_SPACING
from ..pair import Pair
from .cardiac_imaging import acquire_pair, bias_field, heart_centre_mm, heart_mask, render_frame
from .cardiac_model import (
    APEX_LEVEL,
    BASE_LEVEL,
    CARDIAC_GROUPS,
    EF_RANGES,
    MID_LEVEL,
    HeartSlice,
    check_non_negative_int,
    designed_ef,
    ejection_fraction,
    resolve_group,
    slice_params,
    subject_params,
)
from .cardiac_volumes import cardiac_volume_phantom

__all__ = [
    "CARDIAC_GROUPS",
    "EF_RANGES",
    "cardiac_phantom",
    "ejection_fraction",
    "make_cardiac_pair",
]


def _make_slice_pair(
    seed: int,
    subject: int,
    group: str,
    slice_index: int,
    level: float,
    size: tuple[int, int],
    spacing: tuple[float, float],
) -> Pair:
    """Slice ``slice_index`` at ``level`` (0 base … 1 apex) of subject ``subject`` of
    ``group``: the ED -> ES pair (shapes and units as :func:`make_cardiac_pair`)."""
    p = subject_params(seed, subject, group)
    rng = np.random.default_rng([seed, subject, 1, slice_index])
    sl = slice_params(p, level, rng)
    sl.centre = heart_centre_mm(p, size, spacing) + rng.uniform(-1.5, 1.5, 2)
    ed_labels, ed_image, _ = render_frame(sl, size, spacing, es=False)
    es_labels, es_image, disp = render_frame(sl, size, spacing, es=True)
    bias = bias_field(p["bias"], size)
    moving, fixed = acquire_pair(ed_image, es_image, bias, p["noise"], rng)
    return Pair(
        moving=moving,
        fixed=fixed,
        spacing=spacing,
        id=f"cardiac{seed}_{subject:04d}_s{slice_index:02d}",
        subject=f"cardiac{seed}_{subject:04d}",
        group=group,
        moving_labels=ed_labels,
        fixed_labels=es_labels,
        mask=heart_mask(ed_labels, spacing),
        disp=disp,
        meta=_slice_meta(seed, subject, slice_index, sl, p["noise"], spacing),
    )


def _slice_meta(
    seed: int,
    subject: int,
    slice_index: int,
    sl: HeartSlice,
    noise: float,
    spacing: tuple[float, float],
) -> dict[str, Any]:
    """A slice pair's ``meta``: the designed truth of slice ``sl`` (ED, ES means of
    radii and RV width in mm over 360 rays, twist and orientation in degrees)."""
    prof = sl.profiles(np.linspace(-np.pi, np.pi, 360, endpoint=False))
    return {
        "source": "phantom:cardiac",
        "seed": seed,
        "subject_index": subject,
        "slice": slice_index,
        "slice_level": sl.level,
        "frames": ("ED", "ES"),
        "ef_design": designed_ef(sl),
        "ef_range": EF_RANGES[sl.group],
        "lv_centre_vox": tuple(float(c) for c in sl.centre / np.asarray(spacing)),
        "orientation_deg": math.degrees(sl.beta),
        "endo_radius_mm": (float(prof["ri"].mean()), float(np.sqrt(prof["si"]).mean())),
        "epi_radius_mm": (float(prof["ro"].mean()), float(prof["ro_es"].mean())),
        "rv_width_mm": (sl.rv_width, sl.rv_width * sl.rv_ratio),
        "twist_deg": math.degrees(sl.twist),
        "infarct": None
        if sl.infarct is None
        else {
            "centre_deg": math.degrees(sl.infarct[0]),
            "half_width_deg": math.degrees(sl.infarct[1]),
            "wall_fraction": sl.infarct[2],
        },
        "noise_sigma": noise,
    }


def _check_grid(
    size: Sequence[int], spacing: Sequence[float]
) -> tuple[tuple[int, int], tuple[float, float]]:
    size_t = tuple(int(s) for s in size)
    spacing_t = tuple(float(s) for s in spacing)
    if len(size_t) != 2 or min(size_t) < 8:
        raise InputError(f"cardiac phantom: size must be two ints ≥ 8, got {size_t}")
    if len(spacing_t) != 2 or min(spacing_t) <= 0:
        raise InputError(
            f"cardiac phantom: spacing must be two positive mm values, got {spacing_t}"
        )
    return size_t, spacing_t


def make_cardiac_pair(
    seed: int,
    index: int,
    group: str | None = None,
    size: Sequence[int] = DEFAULT_SIZE,
    spacing: Sequence[float] = DEFAULT_SPACING,
) -> Pair:
    """One ED→ES mid-ventricular slice pair of the cardiac phantom.

    Args:
        seed, index: non-negative ints; the pair is a pure function of the arguments.
            ``index`` is the subject number: with ``group=None`` this equals
            ``cardiac_phantom(n, seed)[index]``.
        group: one of :data:`CARDIAC_GROUPS`, or None for ``CARDIAC_GROUPS[index % 5]``.
        size: ``(H, W)`` voxels. spacing: ``(dy, dx)`` mm per voxel. The anatomy is
            in mm, so the field of view is ``size * spacing`` (default 200 mm).
    Returns:
        :class:`Pair` with ``moving`` = ED and ``fixed`` = ES images ``(H, W)`` float32 in
        [0, 1]; ``moving_labels``/``fixed_labels`` ``(H, W)`` int16 (0 background, 1 RV,
        2 LV myocardium, 3 LV blood pool); ``mask`` ``(H, W)`` uint8 heart region (ED
        labels dilated by 6 mm); ``disp`` ``(2, H, W)`` float32 in voxels with
        ``fixed(x) ≈ moving(x + disp(x))``; ``meta`` with the designed truth:
        ``ef_design``, ``ef_range``, ``lv_centre_vox``, ``orientation_deg``,
        ``endo_radius_mm``/``epi_radius_mm``/``rv_width_mm`` as (ED, ES) means,
        ``twist_deg``, ``infarct``, ``slice_level``, ``noise_sigma``.
    Raises:
        InputError: unknown group (naming the allowed ones), negative seed or index,
            bad size or spacing (a ``ValueError``).
    """
    seed = check_non_negative_int("seed", seed)
    index = check_non_negative_int("index", index)
    group = resolve_group(group, index)
    size_t, spacing_t = _check_grid(size, spacing)
    level = MID_LEVEL + float(np.random.default_rng([seed, index, 2]).uniform(-0.1, 0.1))
    return _make_slice_pair(seed, index, group, 0, level, size_t, spacing_t)


def cardiac_phantom(
    n_subjects: int,
    seed: int = 0,
    slices_per_subject: int = 1,
    size: Sequence[int] = DEFAULT_SIZE,
    spacing: Sequence[float] = DEFAULT_SPACING,
) -> list[Pair]:
    """A deterministic phantom data set of ``n_subjects`` subjects, groups balanced.

    Subject ``i`` belongs to ``CARDIAC_GROUPS[i % 5]``. With one slice per subject,
    pair ``i`` equals ``make_cardiac_pair(seed, i)``. With more, a subject's slices run
    from basal (slice 0: large LV and RV) to apical (small LV, little RV), share its
    anatomy, motion and group (the twist changes sign from base to apex), and have
    ids ``cardiac{seed}_{subject:04d}_s{slice:02d}`` and subject ``cardiac{seed}_{subject:04d}``.

    A 3-entry ``size`` ``(H, W, S)`` (spacing ``(dy, dx, dz)``) gives one short-axis
    stack per subject from base to apex with through-plane motion instead
    (:mod:`.cardiac_volumes`).

    Returns:
        ``n_subjects * slices_per_subject`` :class:`Pair` records, subject-major (see
        :func:`make_cardiac_pair` for shapes and units).
    """
    n_subjects = check_non_negative_int("n_subjects", n_subjects)
    seed = check_non_negative_int("seed", seed)
    slices = check_non_negative_int("slices_per_subject", slices_per_subject)
    if slices < 1:
        raise InputError("cardiac phantom: slices_per_subject must be ≥ 1")
    if len(size) == 3:  # short-axis stacks, base to apex, with through-plane motion
        if slices != 1:
            raise InputError(
                "cardiac phantom: a volume size (H, W, S) gives one stack per subject; "
                "--slices is for 2-D slices"
            )
        return cardiac_volume_phantom(n_subjects, seed, size=size, spacing=spacing)
    size_t, spacing_t = _check_grid(size, spacing)
    if slices == 1:
        return [
            make_cardiac_pair(seed, i, size=size_t, spacing=spacing_t) for i in range(n_subjects)
        ]
    levels = np.linspace(BASE_LEVEL, APEX_LEVEL, slices)
    return [
        _make_slice_pair(
            seed, i, CARDIAC_GROUPS[i % len(CARDIAC_GROUPS)], s, float(levels[s]), size_t, spacing_t
        )
        for i in range(n_subjects)
        for s in range(slices)
    ]
