"""Shared test helpers: tiny shapes and seeded smooth fields and images."""

import numpy as np
import torch

from structreg.core.ops import exponentiate, gaussian_smooth, warp
from structreg.data import Pair
from structreg.training import TrainConfig

# `structreg train` options of a tiny run (seconds on a CPU)
TINY_TRAIN = (
    "--size 32x32 --spacing 6 --subjects 12 --set train.steps=2 "
    "--set train.batch_size=4 --set train.val_every=0 --set model.latent_dim=8 "
    "--set train.tensorboard=false"
).split()
# the same for VoxelMorph-2, which has no latent code
TINY_TRAIN_VOXELMORPH = (
    "--size 32x32 --spacing 6 --subjects 12 --set train.steps=2 "
    "--set train.batch_size=4 --set train.val_every=0 --set train.tensorboard=false"
).split()


def shape_for(ndim: int) -> tuple[int, ...]:
    """Tiny spatial shapes used across the op tests."""
    return (24, 20) if ndim == 2 else (14, 12, 10)


def smooth_field(
    shape, amplitude: float, seed: int = 0, sigma: float = 3.0, dtype=torch.float64, batch: int = 1
) -> torch.Tensor:
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


def random_pairs(n: int, seed: int) -> list[Pair]:
    """Textured blobs and their warps by random smooth diffeomorphisms."""
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for i in range(n):
        cy, cx = (10 + 12 * torch.rand(2, generator=g)).tolist()
        yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
        radius = 5 + 3 * float(torch.rand((), generator=g))
        lab = ((yy - cy) ** 2 + (xx - cx) ** 2) < radius**2
        img = 0.2 + 0.6 * lab.float() + 0.1 * torch.rand(32, 32, generator=g)
        v = gaussian_smooth(torch.randn(1, 2, 32, 32, generator=g), 4.0, 17)
        u = exponentiate(3.0 * v / v.abs().max(), 4)
        fixed = warp(img[None, None], u, padding_mode="border")[0, 0]
        flab = warp(lab.float()[None, None], u, mode="nearest")[0, 0]
        pairs.append(
            Pair(
                moving=img.numpy(),
                fixed=fixed.numpy(),
                spacing=(1.0, 1.0),
                id=f"p{i}",
                moving_labels=lab.numpy().astype(np.int16),
                fixed_labels=flab.numpy().astype(np.int16),
            )
        )
    return pairs


def train_config(steps: int, **kw) -> TrainConfig:
    """A small CPU training config (lr 5e-3, batch 4, validation every 2 steps, seed 7)."""
    base = dict(
        steps=steps,
        lr=5e-3,
        batch_size=4,
        val_every=2,
        checkpoint_every=100,
        seed=7,
        device="cpu",
        tensorboard=False,
    )
    base.update(kw)
    return TrainConfig(**base)
