"""Unchecked kernels of the public ops, for hot paths.

The public functions of :mod:`structreg.core.ops` (and :mod:`structreg.core.losses`) check
their arguments once and then call these kernels. Code that has already checked
its inputs - the losses, LCC-Demons' inner iterations, the squaring loop - calls
the kernels directly and skips the checks. Nothing here validates anything:
shapes, dtypes and modes must already be right (see each public function's
docstring for the conventions; fields are in voxels, channel ``c`` along ``S[c]``).
"""

from __future__ import annotations

import math

import torch

from .grid import normalised_identity, sample_displaced, sample_normalised

__all__ = [
    "compose",
    "exponentiate",
    "gaussian_smooth",
    "lcc_map",
    "smoothing_matrix",
    "warp",
]


def warp(
    image: torch.Tensor, disp: torch.Tensor, mode: str = "bilinear", padding_mode: str = "zeros"
) -> torch.Tensor:
    """Pull-back warp (see :func:`structreg.core.ops.warp`); ``mode`` is a grid_sample mode
    (``"bilinear"`` or ``"nearest"``)."""
    return sample_displaced(image, disp, mode, padding_mode)


def compose(u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """Displacement of ``φ1 ∘ φ2`` (see :func:`structreg.core.ops.compose`)."""
    return u2 + warp(u1, u2, "bilinear", "border")


def exponentiate(velocity: torch.Tensor, steps: int) -> torch.Tensor:
    """Displacement of ``exp(velocity)`` by scaling and squaring (see
    :func:`structreg.core.ops.exponentiate`).

    Mathematically ``u <- v / 2**N``, then ``N`` times ``u <- u + warp(u, u)``
    (border padding; see :func:`structreg.core.ops.compose`). For speed the loop runs
    in ``grid_sample``'s normalised units with the channels kept in its reversed
    (x, y[, z]) order, so each squaring is one add and one ``grid_sample``.
    """
    if steps == 0:
        return velocity.clone()
    ndim = velocity.shape[1]
    sizes = velocity.shape[2:]
    # identity grid (1, ndim, *S) in normalised units, channels in reversed order; the
    # sampling grid is the channels-last view of ident + u (no copy, read as is by grid_sample)
    ident, scales = normalised_identity(sizes, velocity.device, velocity.dtype, reverse=True)
    rev = [ndim - 1 - c for c in range(ndim)]
    scale_list = [float(scales[c]) / 2.0**steps for c in rev]
    scale_rev = torch.tensor(scale_list, device=velocity.device, dtype=velocity.dtype).view(
        1, ndim, *([1] * ndim)
    )
    unscale = [1.0 / scales[c] if scales[c] > 0 else 0.0 for c in range(ndim)]
    if torch.is_grad_enabled() and velocity.requires_grad:
        u = velocity.flip(1) * scale_rev
        for _ in range(steps):
            u = u + sample_normalised(u, ident + u, "bilinear", "border")
        return u.flip(1) * torch.tensor(unscale, device=u.device, dtype=u.dtype).view_as(scale_rev)
    # the same sums into two buffers, the channel reversal folded into the scalings: no
    # new large tensor per squaring but the sample
    u = torch.empty_like(velocity)
    for c, r in enumerate(rev):
        torch.mul(velocity[:, r], scale_list[c], out=u[:, c])
    grid = torch.empty_like(u)
    for _ in range(steps):
        u.add_(sample_normalised(u, torch.add(ident, u, out=grid), "bilinear", "border"))
    out = grid  # the buffer is free again
    for c, r in enumerate(rev):
        torch.mul(u[:, r], unscale[c], out=out[:, c])
    return out


def smoothing_matrix(length: int, kernel: torch.Tensor) -> torch.Tensor:
    """``(length, length)`` matrix ``A`` of the 1-D smoothing of a line of ``length``
    samples with ``kernel`` (odd taps) and replicated borders: ``y = A @ x``. The taps
    that fall outside the line add to its first / last sample, as replicate padding does."""
    k = kernel.numel()
    offsets = torch.arange(k, device=kernel.device) - k // 2
    columns = (torch.arange(length, device=kernel.device)[:, None] + offsets).clamp(0, length - 1)
    matrix = kernel.new_zeros((length, length))
    return matrix.scatter_add_(1, columns, kernel.expand(length, k).contiguous())


def gaussian_smooth(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Smooth every channel along every spatial axis with ``kernel``.

    Borders are replicated (a local mean near the edge uses the edge value), so a
    constant image stays exactly constant. Each axis is one matrix product with its
    banded :func:`smoothing_matrix` on a view of the image (no transposed copies):
    several times faster on CPU than a depthwise convolution, which PyTorch runs
    through a slow generic path in 3-D.
    """
    shape = image.shape
    size = shape[2:]
    kernel = kernel.to(image.dtype)
    matrices = {length: smoothing_matrix(length, kernel) for length in set(size)}
    out = image.contiguous()
    for axis, length in enumerate(size):
        matrix = matrices[length]
        if axis == len(size) - 1:
            out = out @ matrix.T
        else:
            rows = math.prod(shape[: 2 + axis])
            out = torch.matmul(matrix, out.view(rows, length, -1)).view(shape)
    return out


def lcc_map(
    fixed: torch.Tensor, moving: torch.Tensor, kernel: torch.Tensor, eps: float
) -> torch.Tensor:
    """Unchecked per-voxel squared local correlation ``(N, C, *S)``."""
    # One smoothing pass over the five stacked statistics.
    c = fixed.shape[1]
    stats = torch.cat([fixed, moving, fixed * fixed, moving * moving, fixed * moving], dim=1)
    mean = gaussian_smooth(stats, kernel)
    mf, mm, ff, mmm, fm = torch.split(mean, c, dim=1)
    var_f = (ff - mf * mf).clamp_min(0.0)
    var_m = (mmm - mm * mm).clamp_min(0.0)
    cov = fm - mf * mm
    return cov * cov / (var_f * var_m + eps)
