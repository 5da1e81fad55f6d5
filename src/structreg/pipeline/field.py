"""The field stage on the fixed image's own grid (``structreg.register(..., refine_field=N)``,
``structreg register --refine-field N``).

A method registers on its own grid (a model's: 6 mm for the 3-D demo model, 100×100
at 2 mm for the bundled 2-D ones) and its result is mapped back onto the fixed image's
grid. :func:`refine_on_grid` then refines the mapped-back velocity by a smooth residual
(:func:`structreg.methods.field_refine.refine_field`) against the images at the fixed
image's own resolution, so the detail the method's grid cannot hold is registered too.
A whole image (2-D or 3-D) is one problem; a stack of 2-D registrations (a 2-D model on
a volume) is one 2-D problem per registered slice, all solved as one batch.
Intensities are mapped to [0, 1] by each image's 1st and 99th percentiles (the LCC does
not depend on them otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core.ops import exponentiate
from ..data.preprocess import normalise_intensity
from ..errors import InputError
from ..methods.field_refine import (
    DEFAULT_FIELD_BLUR,
    DEFAULT_FIELD_GRID,
    DEFAULT_FIELD_LR,
    DEFAULT_FIELD_SMOOTH,
    DEFAULT_FIELD_STEPS,
    refine_field,
)

__all__ = ["FieldOptions", "RefinedFields", "refine_on_grid"]


@dataclass(frozen=True)
class FieldOptions:
    """Settings of the field stage on the fixed grid (those of
    :func:`~structreg.methods.field_refine.refine_field`).

    Attributes:
        steps: Adam steps (> 0).
        lr: step size (voxels of the fixed grid).
        smooth: weight of the residual's squared gradient.
        grid: fixed-grid voxels per residual voxel.
        squarings: of the exponentiation of the refined velocity.
        sigma, kernel_size: the LCC's Gaussian window (fixed-grid voxels, taps).
        blur: Gaussian width (fixed-grid voxels) of the images in the first half of
            the steps (0: none).
    """

    steps: int = DEFAULT_FIELD_STEPS
    lr: float = DEFAULT_FIELD_LR
    smooth: float = DEFAULT_FIELD_SMOOTH
    grid: int = DEFAULT_FIELD_GRID
    squarings: int = 4
    sigma: float = 2.0
    kernel_size: int = 9
    blur: float = DEFAULT_FIELD_BLUR

    def __post_init__(self) -> None:
        steps = self.steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InputError(f"refine_field: steps must be an int >= 1, got {steps!r}")


@dataclass
class RefinedFields:
    """The fields of a refined registration on the fixed grid: ``(ndim, *shape)``
    float64 arrays in fixed voxels (pull-back), and the stage's wall time."""

    velocity: np.ndarray
    disp: np.ndarray
    inverse: np.ndarray
    seconds: float


def _images(image: np.ndarray, axis: int | None, slices: Sequence[int]) -> torch.Tensor:
    """``(N, 1, *S)``: the whole image (``axis`` None, N = 1), or its 2-D slices
    ``slices`` along ``axis``."""
    if axis is None:
        return torch.from_numpy(image)[None, None]
    return torch.from_numpy(np.stack([np.take(image, i, axis=axis) for i in slices])[:, None])


def _fields(velocity: np.ndarray, axis: int | None, slices: Sequence[int]) -> torch.Tensor:
    """``(N, k, *S)`` float32: the whole field (``axis`` None, N = 1), or the in-plane
    components of its 2-D slices ``slices`` along ``axis``."""
    if axis is None:
        return torch.from_numpy(velocity)[None].float()
    planes = [a for a in range(velocity.ndim - 1) if a != axis]
    fields = np.stack([[np.take(velocity[a], i, axis=axis) for a in planes] for i in slices])
    return torch.from_numpy(fields).float()


def _unbatch(
    fields: torch.Tensor, shape: tuple[int, ...], axis: int | None, slices: Sequence[int]
) -> np.ndarray:
    """The inverse of :func:`_fields`: ``(ndim, *shape)`` float64 (a stack's
    through-plane component and its unregistered slices are 0)."""
    array = fields.detach().cpu().numpy().astype(np.float64)
    if axis is None:
        return array[0]
    out = np.zeros((len(shape), *shape), dtype=np.float64)
    planes = [a for a in range(len(shape)) if a != axis]
    for row, i in enumerate(slices):
        for c, a in enumerate(planes):
            index: list[Any] = [slice(None)] * len(shape)
            index[axis] = i
            out[(a, *index)] = array[row, c]
    return out


def refine_on_grid(
    moving: np.ndarray,
    fixed: np.ndarray,
    velocity: np.ndarray,
    options: FieldOptions,
    *,
    slice_axis: int | None = None,
    slices: Sequence[int] = (),
    device: torch.device | str = "cpu",
) -> RefinedFields:
    """Refine a registration's velocity on the fixed grid.

    Args:
        moving: the moving image resampled onto the fixed grid (``fixed.shape``; through
            an affine stage when one ran), not deformed.
        fixed: the fixed image.
        velocity: ``(ndim, *fixed.shape)`` the method's velocity mapped back (fixed
            voxels, ``moving ∘ exp(v) ≈ fixed``).
        options: the stage's settings.
        slice_axis, slices: for a stack of 2-D registrations, the stacking axis and
            the indices of the registered slices (None: one whole-image registration).
        device: where the stage runs (the method's device).
    Returns:
        :class:`RefinedFields`: the refined velocity, ``exp(v)`` and ``exp(-v)``.
    """
    out = refine_field(
        _images(normalise_intensity(moving)[0], slice_axis, slices).to(device),
        _images(normalise_intensity(fixed)[0], slice_axis, slices).to(device),
        _fields(velocity, slice_axis, slices).to(device),
        steps=options.steps,
        lr=options.lr,
        smooth=options.smooth,
        grid=options.grid,
        squarings=options.squarings,
        sigma=options.sigma,
        kernel_size=options.kernel_size,
        blur=options.blur,
    )
    with torch.no_grad():
        disp = exponentiate(out.velocity, options.squarings)
        inverse = exponentiate(-out.velocity, options.squarings)
    shape = tuple(fixed.shape)
    return RefinedFields(
        velocity=_unbatch(out.velocity, shape, slice_axis, slices),
        disp=_unbatch(disp, shape, slice_axis, slices),
        inverse=_unbatch(inverse, shape, slice_axis, slices),
        seconds=out.seconds,
    )
