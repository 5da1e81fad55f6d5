"""Losses of the paper's Eq. 1-2: Gaussian-windowed LCC (plain and symmetric),
closed-form KL to N(0, I), and a penalty on deformation outside a mask.

Similarities are returned as similarities (higher is better); the training
objective turns them into ``λ · (1 - LCC) + KL``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError, ShapeError
from .ops import kernels
from .ops.checks import check_field, check_float_tensor, check_image, check_same_spatial
from .ops.smoothing import gaussian_kernel1d

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(fn: str, value: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return value.mean()
    if reduction == "sum":
        return value.sum()
    if reduction == "none":
        return value
    raise InputError(f"{fn}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def lcc(
    fixed: torch.Tensor,
    moving: torch.Tensor,
    sigma: float = 2.0,
    kernel_size: int = 9,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> torch.Tensor:
    """Gaussian-windowed squared local cross-correlation.

    With ``Ḡ`` the Gaussian local mean (σ = ``sigma`` voxels, window ``kernel_size``),
    ``LCC(x) = cov(F, M)² / (var F · var M + eps)`` where ``cov`` and ``var`` are
    local (Ḡ-weighted) moments. Values lie in ``[0, 1]``; ``LCC(I, aI + b) ≈ 1``
    wherever ``I`` has texture, and constant or all-zero regions give 0 with
    finite gradients (no square root; ``eps`` keeps the ratio defined).

    Args:
        fixed, moving: ``(N, C, *S)`` images on the same grid.
        reduction: ``"mean"`` (scalar), ``"sum"`` or ``"none"`` (``(N, C, *S)`` map).
    """
    ndim = check_image("lcc", "fixed", fixed)
    check_image("lcc", "moving", moving, ndim)
    check_same_spatial("lcc", "fixed", fixed, "moving", moving)
    if fixed.shape != moving.shape:
        raise ShapeError(
            f"lcc: fixed {tuple(fixed.shape)} and moving "
            f"{tuple(moving.shape)} must have the same shape"
        )
    return _windowed_lcc("lcc", fixed, moving, fixed, sigma, kernel_size, eps, reduction)


def _windowed_lcc(
    fn: str,
    fixed: torch.Tensor,
    moving: torch.Tensor,
    like: torch.Tensor,
    sigma: float,
    kernel_size: int,
    eps: float,
    reduction: str,
) -> torch.Tensor:
    """The LCC map of two ``(N, C, *S)`` images, reduced (the kernel shared by :func:`lcc`,
    :func:`symmetric_lcc` and :func:`forward_lcc`); the Gaussian window takes the
    device and dtype of ``like`` (the caller's fixed image)."""
    kernel = gaussian_kernel1d(sigma, kernel_size, device=like.device, dtype=like.dtype)
    return _reduce(fn, kernels.lcc_map(fixed, moving, kernel, eps), reduction)


def _check_pair_and_velocity(
    name: str, fixed: torch.Tensor, moving: torch.Tensor, velocity: torch.Tensor
) -> None:
    ndim = check_field(name, "velocity", velocity)
    check_image(name, "fixed", fixed, ndim)
    check_image(name, "moving", moving, ndim)
    check_same_spatial(name, "fixed", fixed, "velocity", velocity)
    check_same_spatial(name, "moving", moving, "velocity", velocity)


def half_warps(
    moving: torch.Tensor, fixed: torch.Tensor, velocity: torch.Tensor, steps: int
) -> torch.Tensor:
    """Both images warped halfway: ``M ∘ exp(v/2)`` then ``F ∘ exp(-v/2)``.

    Both half transforms come from one batched scaling-and-squaring pass; linear
    interpolation, border padding; no input checks.

    Args:
        moving, fixed: ``(N or 1, C, *S)`` images (a batch of 1 broadcasts).
        velocity: ``(N, ndim, *S)`` stationary velocity in voxels (``M ∘ exp(v) ≈ F``).
        steps: squarings of the exponentiation.
    Returns:
        ``(2N, C, *S)``: the warped moving images (first ``N``), then the fixed ones.
    """
    n = velocity.shape[0]
    halves = kernels.exponentiate(torch.cat([0.5 * velocity, -0.5 * velocity]), steps)
    images = torch.cat([moving.expand(n, *moving.shape[1:]), fixed.expand(n, *fixed.shape[1:])])
    return kernels.warp(images, halves, "bilinear", "border")


def symmetric_lcc(
    fixed: torch.Tensor,
    moving: torch.Tensor,
    velocity: torch.Tensor,
    steps: int = 4,
    sigma: float = 2.0,
    kernel_size: int = 9,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> torch.Tensor:
    """Symmetric LCC of Eq. 2: ``LCC(F ∘ exp(-v/2), M ∘ exp(v/2))``.

    Both half transforms come from one batched scaling-and-squaring pass
    (:func:`half_warps`).

    Args:
        fixed, moving: ``(N, C, *S)`` images.
        velocity: ``(N, ndim, *S)`` stationary velocity in voxels that maps
            ``moving`` onto ``fixed`` (``M ∘ exp(v) ≈ F``).
        steps: squarings of the exponentiation layer (paper: 4).
    Returns:
        similarity reduced as in :func:`lcc`.
    """
    _check_pair_and_velocity("symmetric_lcc", fixed, moving, velocity)
    n = velocity.shape[0]
    warped = half_warps(moving, fixed, velocity, steps)
    return _windowed_lcc(
        "symmetric_lcc", warped[n:], warped[:n], fixed, sigma, kernel_size, eps, reduction
    )


def forward_lcc(
    fixed: torch.Tensor,
    moving: torch.Tensor,
    velocity: torch.Tensor,
    steps: int = 4,
    sigma: float = 2.0,
    kernel_size: int = 9,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> torch.Tensor:
    """One-sided LCC ``LCC(F, M ∘ exp(v))``: only the moving image is interpolated.

    The symmetric form (:func:`symmetric_lcc`) interpolates *both* images at
    fractional positions, and linear interpolation there low-pass filters them,
    which raises their local correlation whatever the alignment. In 3-D
    (trilinear: 8 voxels per sample) the gain is large enough to be learnt: a
    sub-voxel field shared by all pairs can raise the symmetric LCC while moving
    every point away from its match; the one-sided LCC barely rewards it.
    Arguments and result as :func:`symmetric_lcc`.
    """
    _check_pair_and_velocity("forward_lcc", fixed, moving, velocity)
    n = velocity.shape[0]
    disp = kernels.exponentiate(velocity, steps)
    moved = kernels.warp(moving.expand(n, *moving.shape[1:]), disp, "bilinear", "border")
    target = fixed.expand(n, *fixed.shape[1:])
    return _windowed_lcc("forward_lcc", target, moved, fixed, sigma, kernel_size, eps, reduction)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Closed-form ``KL(N(mu, diag(exp(logvar))) || N(0, I))`` summed over latent dims.

    Args:
        mu, logvar: ``(N, d)``.
    Returns:
        ``(N,)`` with ``reduction="none"``, else the batch mean or sum (nats).
    """
    check_float_tensor("kl_divergence", "mu", mu)
    check_float_tensor("kl_divergence", "logvar", logvar)
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise ShapeError(
            f"kl_divergence: mu and logvar must both be (N, d), got "
            f"{tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
    return _reduce("kl_divergence", kl, reduction)


def outside_mask_penalty(
    disp: torch.Tensor, mask: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Mean squared displacement norm (voxels²) outside a mask.

    Used by the brain model to punish deformation of the background.

    Args:
        disp: ``(N, ndim, *S)`` displacement (or velocity) in voxels.
        mask: ``(N or 1, 1, *S)``, 1 inside the region where motion is allowed.
    Returns:
        ``(N,)`` with ``reduction="none"``, else the batch mean or sum.
    """
    ndim = check_field("outside_mask_penalty", "disp", disp)
    if not isinstance(mask, torch.Tensor) or mask.dim() != ndim + 2 or mask.shape[1] != 1:
        raise ShapeError(
            f"outside_mask_penalty: mask must have shape (N, 1, *S), got "
            f"{tuple(getattr(mask, 'shape', ()))}"
        )
    check_same_spatial("outside_mask_penalty", "disp", disp, "mask", mask)
    outside = 1.0 - mask.to(disp.dtype).expand(disp.shape[0], 1, *disp.shape[2:])
    sq = disp.pow(2).sum(dim=1, keepdim=True) * outside
    per_item = sq.flatten(1).sum(1) / outside.flatten(1).sum(1).clamp_min(1.0)
    return _reduce("outside_mask_penalty", per_item, reduction)


class SymmetricLCCLoss(nn.Module):
    """``1 - symmetric_lcc`` as a module (no parameters, no buffers)."""

    def __init__(self, steps: int = 4, sigma: float = 2.0, kernel_size: int = 9, eps: float = 1e-6):
        super().__init__()
        self.steps, self.sigma, self.kernel_size, self.eps = steps, sigma, kernel_size, eps

    def forward(
        self, fixed: torch.Tensor, moving: torch.Tensor, velocity: torch.Tensor
    ) -> torch.Tensor:
        return 1.0 - symmetric_lcc(
            fixed, moving, velocity, self.steps, self.sigma, self.kernel_size, self.eps
        )
