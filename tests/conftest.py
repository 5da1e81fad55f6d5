"""Shared fixtures: 2-D and 3-D through one parametrised fixture, seeded generators."""

import pytest
import torch

from structreg.ops import gaussian_smooth


@pytest.fixture(params=[2, 3], ids=["2d", "3d"])
def ndim(request):
    return request.param


def shape_for(ndim: int) -> tuple[int, ...]:
    """Tiny spatial shapes used across the op tests."""
    return (24, 20) if ndim == 2 else (14, 12, 10)


def smooth_field(shape, amplitude: float, seed: int = 0, sigma: float = 3.0,
                 dtype=torch.float64, batch: int = 1) -> torch.Tensor:
    """A smooth random vector field ``(batch, ndim, *shape)`` with max |component| = amplitude."""
    g = torch.Generator().manual_seed(seed)
    ndim = len(shape)
    v = torch.randn(batch, ndim, *shape, generator=g, dtype=dtype)
    k = int(2 * round(3 * sigma) + 1)
    v = gaussian_smooth(v, sigma=sigma, kernel_size=k)
    return v * (amplitude / v.abs().max())


def textured_image(shape, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """A smooth random image ``(1, 1, *shape)`` in about [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(1, 1, *shape, generator=g, dtype=dtype)
    img = gaussian_smooth(img, sigma=1.5, kernel_size=7)
    return (img - img.min()) / (img.max() - img.min())
