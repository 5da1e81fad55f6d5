"""Voxel grids and the one place where ``grid_sample``'s convention lives.

Conventions (see DESIGN.md §3): images are ``(N, C, *S)``, fields are
``(N, ndim, *S)`` in voxels, channel ``c`` moves along spatial axis ``S[c]``,
and a transform maps ``x -> x + u(x)``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def identity_grid(shape: Sequence[int], *, device=None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Voxel coordinates of a grid.

    Args:
        shape: spatial shape ``S`` (2 or 3 entries).
    Returns:
        ``(1, ndim, *S)`` tensor whose channel ``c`` holds the index along axis ``c``
        (units: voxels).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"identity_grid: shape must be 2 or 3 positive sizes, got {shape}")
    axes = [torch.arange(s, device=device, dtype=dtype) for s in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0).unsqueeze(0)


def _sample(image: torch.Tensor, positions: torch.Tensor, mode: str,
            padding_mode: str) -> torch.Tensor:
    """Sample ``image`` ``(N, C, *S_in)`` at voxel ``positions`` ``(N, ndim, *S_out)``.

    The only translation to ``grid_sample``'s normalised, reversed (x, y[, z])
    coordinates with ``align_corners=True``: voxel index ``i`` on an axis of size
    ``n`` maps to ``2 i / (n - 1) - 1`` (size-1 axes map to 0).
    """
    ndim = positions.shape[1]
    sizes = image.shape[2:]
    scale = torch.tensor([2.0 / (s - 1) if s > 1 else 0.0 for s in sizes],
                         device=positions.device, dtype=positions.dtype)
    scale = scale.view(1, ndim, *([1] * ndim))
    normalised = positions * scale - 1.0
    # (N, ndim, *S) -> (N, *S, ndim), last axis reversed to grid_sample's x-first order.
    grid = normalised.movedim(1, -1).flip(-1)
    if image.shape[0] != grid.shape[0]:
        n = max(image.shape[0], grid.shape[0])
        image = image.expand(n, *image.shape[1:])
        grid = grid.expand(n, *grid.shape[1:])
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode,
                         align_corners=True)
