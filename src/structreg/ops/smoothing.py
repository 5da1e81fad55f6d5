"""Separable Gaussian smoothing (the LCC window; paper: σ_G = 2, k = 9)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_image


def gaussian_kernel1d(sigma: float, kernel_size: int, *, device=None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` (voxels), odd size."""
    if not sigma > 0:
        raise ValueError(f"gaussian_kernel1d: sigma must be > 0, got {sigma}")
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"gaussian_kernel1d: kernel_size must be a positive odd int, got {kernel_size}")
    x = torch.arange(kernel_size, device=device, dtype=dtype) - (kernel_size - 1) / 2
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _gaussian_smooth(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Unchecked kernel: smooth every channel along every spatial axis with ``kernel``.

    Borders are replicated (a local mean near the edge uses the edge value), so a
    constant image stays exactly constant.
    """
    ndim = image.dim() - 2
    c = image.shape[1]
    k = kernel.numel()
    pad = k // 2
    conv = F.conv2d if ndim == 2 else F.conv3d
    out = image
    for axis in range(ndim):
        shape = [1] * ndim
        shape[axis] = k
        weight = kernel.view(1, 1, *shape).expand(c, 1, *shape)
        padding = [0, 0] * ndim
        # F.pad lists the last axis first.
        padding[2 * (ndim - 1 - axis)] = pad
        padding[2 * (ndim - 1 - axis) + 1] = pad
        out = conv(F.pad(out, padding, mode="replicate"), weight, groups=c)
    return out


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
    return _gaussian_smooth(image, kernel)
