"""Registration metrics of the paper's Table 1 and a few it lacks, each defined once.

Training validation, ``evaluate``, the demo and the analysis summaries all call
these functions, and every CSV, log and report names a metric by its key here.

Conventions: label maps and images are NumPy arrays or tensors of spatial shape
``S`` (no batch/channel axes) unless stated; fields are ``(ndim, *S)`` in voxels;
``spacing`` is mm per voxel along each axis of ``S``.

| metric | key | function | unit |
|---|---|---|---|
| intensity RMSE | ``rmse`` | :func:`rmse` | intensity (images normalised to [0, 1]) |
| non-positive Jacobian | ``folding_pct`` | :func:`folding_percent` | % of voxels |
| velocity magnitude | ``velocity_magnitude_mm`` | :func:`velocity_stats` | mm per unit time |
| velocity gradient | ``velocity_gradient`` | :func:`velocity_stats` | 1 per unit time |
| Dice | ``dice <structure>`` | :func:`dice` | fraction in [0, 1] |
| 95 % Hausdorff | ``hd95 <structure>`` | :func:`hausdorff95` | mm |
| endpoint error | ``epe_mm`` | :func:`endpoint_error` | mm (mean over a mask) |
| std of log det J | ``log_jacobian_std`` | :func:`log_jacobian_std` | dimensionless |
| time per pair | ``seconds_per_pair`` | (measured by ``evaluate``) | s |
| adaptation | ``adapt_seconds`` | (measured by ``evaluate``, once per method) | s |

The training log prefixes validation values with ``val_`` (``val_folding_pct``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ..errors import ShapeError

RMSE = "rmse"
FOLDING = "folding_pct"
VELOCITY_MAGNITUDE = "velocity_magnitude_mm"
VELOCITY_GRADIENT = "velocity_gradient"
LOG_JACOBIAN_STD = "log_jacobian_std"
EPE = "epe_mm"
SECONDS = "seconds_per_pair"
ITERATIONS = "iterations"
"""Optimiser steps a method took on the pair (per-pair refinement; absent otherwise)."""
ADAPT_SECONDS = "adapt_seconds"
"""Wall time of a method's one-off adaptation to the cohort (the same on every row of
the method; absent for methods that do not adapt)."""


def dice_key(structure: str) -> str:
    """The key of a structure's Dice."""
    return f"dice {structure}"


def hd95_key(structure: str) -> str:
    """The key of a structure's 95 % Hausdorff distance (mm)."""
    return f"hd95 {structure}"


@dataclass(frozen=True)
class MetricInfo:
    """How a metric is reported: table label, direction and number format."""

    label: str
    lower_is_better: bool
    fmt: str


METRICS: dict[str, MetricInfo] = {
    RMSE: MetricInfo("RMSE", True, "{:.4f}"),
    FOLDING: MetricInfo("Neg. Det. Jac. (%)", True, "{:.2f}"),
    VELOCITY_MAGNITUDE: MetricInfo("Velo. Mag. (mm)", True, "{:.3f}"),
    VELOCITY_GRADIENT: MetricInfo("Velo. Grad.", True, "{:.4f}"),
    LOG_JACOBIAN_STD: MetricInfo("std log det J", True, "{:.4f}"),
    EPE: MetricInfo("Endpoint error (mm)", True, "{:.3f}"),
    SECONDS: MetricInfo("Time per pair (s)", True, "{:.3f}"),
    ITERATIONS: MetricInfo("Refinement steps per pair", True, "{:.1f}"),
    ADAPT_SECONDS: MetricInfo("One-off adaptation (s)", True, "{:.1f}"),
}
"""Every scalar metric by key (per-structure Dice and HD95: :func:`structure_info`)."""


def structure_info(key: str) -> MetricInfo:
    """:class:`MetricInfo` of any key, including ``dice <s>`` and ``hd95 <s>``."""
    if key in METRICS:
        return METRICS[key]
    kind, _, structure = key.partition(" ")
    if kind == "dice":
        return MetricInfo(f"{structure} Dice", False, "{:.3f}")
    if kind == "hd95":
        return MetricInfo(f"{structure} HD95 (mm)", True, "{:.2f}")
    raise KeyError(key)


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _region(labels: np.ndarray, values: Sequence[int]) -> np.ndarray:
    return np.isin(labels, np.asarray(values))


def dice(labels_a: Any, labels_b: Any, values: Sequence[int]) -> float:
    """Dice overlap ``2|A∩B| / (|A| + |B|)`` of the structure made of label ``values``.

    Returns NaN when the structure is absent from both maps (undefined).
    """
    a, b = _region(_np(labels_a), values), _region(_np(labels_b), values)
    if a.shape != b.shape:
        raise ShapeError(f"dice: label maps differ in shape: {a.shape} vs {b.shape}")
    total = a.sum() + b.sum()
    return float("nan") if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def _surface(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels of a binary mask (mask minus its face-connected erosion)."""
    eroded = ndimage.binary_erosion(
        mask, structure=ndimage.generate_binary_structure(mask.ndim, 1), border_value=0
    )
    return mask & ~eroded


def hausdorff95(
    labels_a: Any, labels_b: Any, values: Sequence[int], spacing: Sequence[float] | None = None
) -> float:
    """Symmetric 95th-percentile Hausdorff distance (mm) between the structure's surfaces.

    The 95th percentile of the distances from every surface voxel of A to the
    surface of B, and from B to A, taken separately; the larger of the two is
    returned (the same definition as MONAI's ``compute_hausdorff_distance`` with
    ``percentile=95``). NaN when the structure is missing from either map.
    """
    a, b = _region(_np(labels_a), values), _region(_np(labels_b), values)
    if a.shape != b.shape:
        raise ShapeError(f"hausdorff95: label maps differ in shape: {a.shape} vs {b.shape}")
    if not a.any() or not b.any():
        return float("nan")
    spacing = (1.0,) * a.ndim if spacing is None else tuple(float(s) for s in spacing)
    sa, sb = _surface(a), _surface(b)
    dist_to_b = ndimage.distance_transform_edt(~sb, sampling=spacing)
    dist_to_a = ndimage.distance_transform_edt(~sa, sampling=spacing)
    return float(max(np.percentile(dist_to_b[sa], 95), np.percentile(dist_to_a[sb], 95)))


def rmse(image_a: Any, image_b: Any, mask: Any = None) -> float:
    """Root mean square intensity difference (over ``mask`` when given)."""
    a, b = _np(image_a).astype(np.float64), _np(image_b).astype(np.float64)
    if a.shape != b.shape:
        raise ShapeError(f"rmse: images differ in shape: {a.shape} vs {b.shape}")
    diff = (a - b) ** 2
    if mask is not None:
        diff = diff[_np(mask).astype(bool)]
    return float(np.sqrt(diff.mean()))


def _torch_field(field: Any) -> Any:
    """One field ``(ndim, *S)`` as a float64 batch of one ``(1, ndim, *S)``."""
    import torch

    t = field if isinstance(field, torch.Tensor) else torch.from_numpy(np.asarray(field))
    t = t.detach().to(torch.float64)
    if t.dim() != t.shape[0] + 1:
        raise ShapeError(f"expected one field (ndim, *S) with ndim = len(S), got {tuple(t.shape)}")
    return t.unsqueeze(0)


def folding_percent(disp: Any, mask: Any = None) -> float:
    """% of voxels with ``det(I + ∇u) ≤ 0`` for a displacement ``(ndim, *S)`` in voxels."""
    import torch

    from .ops import folding_fraction

    m = (
        None
        if mask is None
        else torch.from_numpy(np.asarray(_np(mask), dtype=np.float64))[None, None]
    )
    return 100.0 * float(folding_fraction(_torch_field(disp), m))


def det_folding_percent(jacobian_det: Any) -> float:
    """% of voxels with ``det J ≤ 0`` read from a det J map (any shape): the same
    quantity as :func:`folding_percent` when the map is already computed."""
    return 100.0 * float((_np(jacobian_det) <= 0).mean())


def batch_folding_percent(disp: Any) -> np.ndarray:
    """:func:`folding_percent` of each field of a batch ``(N, ndim, *S)``: ``(N,)`` array."""
    from .ops import folding_fraction

    return 100.0 * folding_fraction(disp.detach()).double().cpu().numpy()


def log_jacobian_std(disp: Any) -> float:
    """Standard deviation of ``log det J`` (dimensionless; folded voxels clipped at 1e-9)."""
    from .ops import jacobian_det

    det = jacobian_det(_torch_field(disp)).clamp_min(1e-9)
    return float(det.log().std())


def velocity_stats(velocity: Any, spacing: Sequence[float] | None = None) -> dict[str, float]:
    """Mean velocity magnitude and mean velocity-gradient (Frobenius) magnitude.

    Args:
        velocity: ``(ndim, *S)`` in voxels per unit time.
    Returns:
        ``{"velocity_magnitude": mm (or voxels), "velocity_gradient": 1/unit time}``.
    """
    from .ops import velocity_gradient_magnitude, velocity_magnitude

    v = _torch_field(velocity)
    return {
        "velocity_magnitude": float(velocity_magnitude(v, spacing)),
        "velocity_gradient": float(velocity_gradient_magnitude(v, spacing)),
    }


def endpoint_error(
    disp: Any, disp_true: Any, spacing: Sequence[float] | None = None, mask: Any = None
) -> float:
    """Mean Euclidean distance (mm) between two displacements ``(ndim, *S)`` in voxels."""
    d, t = _np(disp).astype(np.float64), _np(disp_true).astype(np.float64)
    if d.shape != t.shape:
        raise ShapeError(f"endpoint_error: fields differ in shape: {d.shape} vs {t.shape}")
    mm = np.ones(d.shape[0]) if spacing is None else np.asarray(spacing, dtype=np.float64)
    err = np.sqrt((((d - t) * mm.reshape(-1, *([1] * (d.ndim - 1)))) ** 2).sum(0))
    if mask is not None:
        err = err[_np(mask).astype(bool)]
    return float(err.mean())


def structure_metrics(
    moved_labels: Any,
    fixed_labels: Any,
    structures: Mapping[str, Sequence[int]],
    spacing: Sequence[float] | None = None,
) -> dict[str, float]:
    """Dice and HD95 per structure: keys ``"dice <name>"`` and ``"hd95 <name>"``."""
    out: dict[str, float] = {}
    for name, values in structures.items():
        out[f"dice {name}"] = dice(moved_labels, fixed_labels, values)
        out[f"hd95 {name}"] = hausdorff95(moved_labels, fixed_labels, values, spacing)
    return out
