"""Resizing of displacement/velocity fields with rescaled vectors."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ...errors import InputError
from .checks import check_field


def coarse_size(size: Sequence[int], factor: int) -> tuple[int, ...]:
    """A grid ``factor`` times coarser than ``size``: ``ceil(s / factor)`` per axis, at
    least 2 (so that corners-aligned interpolation keeps both ends)."""
    return tuple(max(2, math.ceil(s / factor)) for s in size)


def resize_field(field: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resample a voxel-unit field onto a grid of another size.

    Both grids span the same physical extent with corner voxels aligned
    (``align_corners=True``), so a vector along axis ``c`` is multiplied by
    ``(size[c] - 1) / (old[c] - 1)`` to stay in the new grid's voxels.

    Args:
        field: ``(N, ndim, *S)`` in voxels of the ``S`` grid.
        size: new spatial shape (``ndim`` entries).
    Returns:
        ``(N, ndim, *size)`` in voxels of the new grid.
    """
    ndim = check_field("resize_field", "field", field)
    size = tuple(int(s) for s in size)
    if len(size) != ndim or min(size) < 1:
        raise InputError(f"resize_field: size must be {ndim} positive ints, got {size}")
    old = field.shape[2:]
    mode = "bilinear" if ndim == 2 else "trilinear"
    out = F.interpolate(field, size=size, mode=mode, align_corners=True)
    factors = [(n - 1) / (o - 1) if o > 1 else 1.0 for n, o in zip(size, old, strict=True)]
    scale = torch.tensor(factors, device=field.device, dtype=field.dtype)
    return out * scale.view(1, ndim, *([1] * ndim))
