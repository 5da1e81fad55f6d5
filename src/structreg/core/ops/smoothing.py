"""Separable Gaussian smoothing (the LCC window; paper: σ_G = 2, k = 9)."""

from __future__ import annotations

import math

import torch

from ...errors import InputError
from . import kernels
from .checks import check_image


def gaussian_window(sigma: float) -> int:
    """The odd window length (voxels) ``2 ⌈3 σ⌉ + 1`` that holds a Gaussian of standard
    deviation ``sigma`` (voxels) to ±3 σ."""
    return 2 * math.ceil(3 * sigma) + 1


def gaussian_kernel1d(
    sigma: float,
    kernel_size: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` (voxels), odd size."""
    if not sigma > 0:
        raise InputError(f"gaussian_kernel1d: sigma must be > 0, got {sigma}")
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise InputError(
            f"gaussian_kernel1d: kernel_size must be a positive odd int, got {kernel_size}"
        )
    x = torch.arange(kernel_size, device=device, dtype=dtype) - (kernel_size - 1) / 2
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_smooth(image: torch.Tensor, sigma: float = 2.0, kernel_size: int = 9) -> torch.Tensor:
    """Separable Gaussian smoothing of every channel.

    Args:
        image: ``(N, C, *S)`` float tensor (2-D or 3-D).
        sigma: standard deviation in voxels.
        kernel_size: odd window length in voxels.
    Returns:
        ``(N, C, *S)`` smoothed image (replicate padding at borders).
    """
    check_image("gaussian_smooth", "image", image, finite=False)
    kernel = gaussian_kernel1d(sigma, kernel_size, device=image.device, dtype=image.dtype)
    return kernels.gaussian_smooth(image, kernel)
