"""The cardiac phantom in 3-D: short-axis ED/ES stacks from base to apex with
through-plane motion (long-axis shortening).

A volume ``(H, W, S)`` (slice axis last, as ACDC stores its stacks; spacing
``(dy, dx, dz)`` mm, e.g. 2x2x10) holds ``S`` short-axis slices whose levels run
linearly from the base (level 0.15, slice 0) to the apical end (level 0.8, slice
``S - 1``) of the cardiac phantom's continuous heart model (:mod:`.cardiac_model`): radii,
wall, twist, RV width and per-level contraction vary smoothly with the level,
and a subject's texture, pose and tissue properties are shared by all its
slices, so the ED scene is continuous along the long axis.

End-systole adds through-plane motion. The apex stays put and the ventricle
shortens towards it by a fraction ``s`` of the base-apex distance (group
ranges :data:`LONG_AXIS_SHORTENING`): the ES slice at ``z`` (mm along the slice
axis) shows the ED tissue from ``z_ed = z_a − (z_a − z) / (1 − s)``, where
``z_a`` is the apex position, contracted in-plane by that level's ES map ``T``
of the 2-D model. The ES → ED map is
``(x, y, z) ↦ (T_{ℓ(z_ed)}(x, y), z_ed(z))``; its Jacobian is block triangular
with determinant ``det ∂T / (1 − s) > 0``, so the exact pull-back ground truth
``disp = (T − (x, y), z_ed − z)`` in voxels (``fixed(x) ≈ moving(x + disp(x))``)
never folds. Basal ES slices show tissue that lay above the stack at ED (as in
real cine stacks, where the base moves through fixed slice planes). The
surroundings of the heart are the same on every level, so their through-plane
motion is invisible in the images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import InputError
from ..pair import Pair
from .cardiac_imaging import acquire_pair, bias_field, heart_centre_mm, heart_mask, render_frame
from .cardiac_model import (
    APEX_LEVEL,
    BASE_LEVEL,
    HeartSlice,
    check_non_negative_int,
    designed_ef,
    ejection_fraction,
    resolve_group,
    slice_params,
    subject_params,
)

__all__ = ["LONG_AXIS_SHORTENING", "cardiac_volume_phantom", "make_cardiac_volume_pair"]

#: Long-axis shortening (fraction of the base-apex distance, ED -> ES) per group.
LONG_AXIS_SHORTENING = {
    "NOR": (0.12, 0.18),
    "DCM": (0.03, 0.07),
    "HCM": (0.10, 0.16),
    "MINF": (0.06, 0.10),
    "RV": (0.09, 0.14),
}


def _check_volume_grid(
    size: Sequence[int], spacing: Sequence[float]
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """The stack's grid as tuples: ``(H, W, S)`` voxels, ``(dy, dx, dz)`` mm.

    Raises:
        InputError: not three entries, H or W < 8, S < 2, or a spacing <= 0.
    """
    size_t = tuple(int(s) for s in size)
    spacing_t = tuple(float(s) for s in spacing)
    if len(size_t) != 3 or min(size_t[:2]) < 8 or size_t[2] < 2:
        raise InputError(
            f"cardiac phantom: a volume size is (H, W, S) with H, W >= 8 and S >= 2 "
            f"slices, got {size_t}"
        )
    if len(spacing_t) != 3 or min(spacing_t) <= 0:
        raise InputError(
            f"cardiac phantom: spacing must be three positive mm values, got {spacing_t}"
        )
    return size_t, spacing_t


@dataclass(frozen=True)
class _LongAxis:
    """Slice positions along the stack: ``z`` ``(S,)`` mm of each ES slice, ``z_ed``
    ``(S,)`` mm where its tissue lay at ED, ``per_mm`` level per mm."""

    z: np.ndarray
    z_ed: np.ndarray
    per_mm: float

    def level(self, zz: float) -> float:
        """The model level (0 base … 1 apex) at position ``zz`` mm."""
        return BASE_LEVEL + self.per_mm * zz


def _long_axis(n: int, dz: float, shortening: float) -> _LongAxis:
    """``n`` slices ``dz`` mm apart from ``BASE_LEVEL`` to ``APEX_LEVEL``, shortening by
    ``shortening`` towards the apex (fixed) at ES."""
    z = np.arange(n) * dz  # slice positions, mm
    per_mm = (APEX_LEVEL - BASE_LEVEL) / max((n - 1) * dz, 1e-9)
    z_apex = (1.0 - BASE_LEVEL) / per_mm
    z_ed = z_apex - (z_apex - z) / (1.0 - shortening)
    return _LongAxis(z=z, z_ed=z_ed, per_mm=per_mm)


@dataclass(frozen=True)
class _Stack:
    """Noise-free frames of a stack ``(H, W, S)`` float32: ED / ES labels and images,
    the ground truth ``disp`` ``(3, H, W, S)`` float32 voxels, designed EF per slice."""

    ed_labels: np.ndarray
    ed_image: np.ndarray
    es_labels: np.ndarray
    es_image: np.ndarray
    disp: np.ndarray
    ef_design: list[float]


def _render_stack(
    seed: int,
    index: int,
    p: dict[str, Any],
    axis: _LongAxis,
    size: tuple[int, int],
    spacing: tuple[float, float, float],
) -> _Stack:
    """Rasterise subject ``p``'s ED stack and its ES stack (each ES slice the in-plane ES
    map of the level its tissue came from); ``size`` ``(H, W)``, ``spacing`` ``(dy, dx, dz)``."""
    (h, w), n, (dy, dx, dz) = size, len(axis.z), spacing
    centre = heart_centre_mm(p, (h, w), (dy, dx))

    def level_slice(zz: float) -> HeartSlice:  # the subject's slice model at position zz (mm)
        texture_rng = np.random.default_rng([seed, index, 1, 0])  # one texture for all levels
        sl = slice_params(p, axis.level(zz), texture_rng)
        sl.centre = centre
        return sl

    ed_lab, ed_img, es_lab, es_img = (np.zeros((h, w, n), np.float32) for _ in range(4))
    disp = np.zeros((3, h, w, n), np.float32)
    efs = []
    for k in range(n):
        labels, image, _ = render_frame(level_slice(float(axis.z[k])), (h, w), (dy, dx), es=False)
        ed_lab[..., k], ed_img[..., k] = labels, image
        es = level_slice(float(axis.z_ed[k]))
        labels, image, d2 = render_frame(es, (h, w), (dy, dx), es=True)
        assert d2 is not None
        es_lab[..., k], es_img[..., k] = labels, image
        disp[0, ..., k], disp[1, ..., k] = d2[0], d2[1]
        disp[2, ..., k] = (axis.z_ed[k] - axis.z[k]) / dz
        efs.append(designed_ef(es))
    return _Stack(ed_lab, ed_img, es_lab, es_img, disp, efs)


def make_cardiac_volume_pair(
    seed: int,
    index: int,
    group: str | None = None,
    size: Sequence[int] = (100, 100, 10),
    spacing: Sequence[float] = (2.0, 2.0, 10.0),
) -> Pair:
    """One ED -> ES short-axis stack of the cardiac phantom.

    Args:
        seed, index: non-negative ints; the pair is a pure function of the arguments.
        group: one of :data:`~.cardiac_model.CARDIAC_GROUPS`, or None for
            ``CARDIAC_GROUPS[index % 5]``.
        size: ``(H, W, S)`` voxels, the slice axis last; spacing: ``(dy, dx, dz)`` mm.
    Returns:
        :class:`Pair` with ``moving`` = ED and ``fixed`` = ES volumes ``(H, W, S)``
        float32 in [0, 1], ACDC labels (1 RV, 2 LV myocardium, 3 LV blood pool),
        ``mask`` (ED heart dilated in-plane by 6 mm), ``disp`` ``(3, H, W, S)``
        float32 voxels (pull-back), and ``meta`` with ``long_axis_shortening``,
        ``through_plane_mm`` (ED minus ES position of each slice's tissue),
        ``ef_volume`` (the blood-pool volume change of the labels), ``ef_design``
        per slice and the slice levels.
    """
    seed, index = check_non_negative_int("seed", seed), check_non_negative_int("index", index)
    group = resolve_group(group, index)
    (h, w, n), spacing_t = _check_volume_grid(size, spacing)
    p = subject_params(seed, index, group)
    rng = np.random.default_rng([seed, index, 3])
    shortening = float(rng.uniform(*LONG_AXIS_SHORTENING[group]))
    axis = _long_axis(n, spacing_t[2], shortening)
    stack = _render_stack(seed, index, p, axis, (h, w), spacing_t)
    bias = bias_field(p["bias"], (h, w))[..., None]
    moving, fixed = acquire_pair(stack.ed_image, stack.es_image, bias, p["noise"], rng)
    moving_labels, fixed_labels = stack.ed_labels.astype(np.int16), stack.es_labels.astype(np.int16)
    meta = {
        "source": "phantom:cardiac",
        "seed": seed,
        "subject_index": index,
        "frames": ("ED", "ES"),
        "slice_axis": 2,
        "slice_levels": [float(axis.level(zz)) for zz in axis.z],
        "long_axis_shortening": shortening,
        "through_plane_mm": [float(v) for v in axis.z_ed - axis.z],
        "ef_design": stack.ef_design,
        "ef_volume": ejection_fraction(moving_labels, fixed_labels),
        "noise_sigma": p["noise"],
    }
    return Pair(
        moving=moving,
        fixed=fixed,
        spacing=spacing_t,
        id=f"cardiac{seed}_{index:04d}_3d",
        subject=f"cardiac{seed}_{index:04d}",
        group=group,
        moving_labels=moving_labels,
        fixed_labels=fixed_labels,
        mask=heart_mask(moving_labels, spacing_t),
        disp=stack.disp,
        meta=meta,
    )


def cardiac_volume_phantom(
    n_subjects: int,
    seed: int = 0,
    size: Sequence[int] = (100, 100, 10),
    spacing: Sequence[float] = (2.0, 2.0, 10.0),
) -> list[Pair]:
    """``n_subjects`` ED -> ES stacks, subject ``i`` of group ``CARDIAC_GROUPS[i % 5]``."""
    n_subjects = check_non_negative_int("n_subjects", n_subjects)
    seed = check_non_negative_int("seed", seed)
    return [
        make_cardiac_volume_pair(seed, i, size=size, spacing=spacing) for i in range(n_subjects)
    ]
