"""Thin ``nn.Module`` wrappers around :mod:`structreg.core.ops` (no parameters, no buffers,
so they add nothing to a model's ``state_dict``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..errors import InputError
from .ops.exponentiate import exponentiate
from .ops.warp import warp


class SpatialTransformer(nn.Module):
    """Dense spatial transformer: ``moved(x) = image(x + disp(x))``.

    Shapes: ``image (N, C, *S)``, ``disp (N, ndim, *S)`` in voxels -> ``(N, C, *S)``.
    """

    def __init__(self, mode: str = "linear", padding_mode: str = "zeros"):
        super().__init__()
        self.mode = mode
        self.padding_mode = padding_mode

    def forward(self, image: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
        return warp(image, disp, mode=self.mode, padding_mode=self.padding_mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, padding_mode={self.padding_mode!r}"


class Exponentiation(nn.Module):
    """The exponentiation layer: velocity ``(N, ndim, *S)`` -> displacement of ``exp(v)``
    by scaling and squaring with ``steps`` squarings (paper: N = 4). Differentiable;
    drop it behind any network that predicts a velocity or flow field."""

    def __init__(self, steps: int = 4):
        super().__init__()
        if not isinstance(steps, int) or steps < 0:
            raise InputError(f"Exponentiation: steps must be a non-negative int, got {steps!r}")
        self.steps = steps

    def forward(self, velocity: torch.Tensor) -> torch.Tensor:
        return exponentiate(velocity, self.steps)

    def extra_repr(self) -> str:
        return f"steps={self.steps}"


def set_training(module: nn.Module, frozen_norm: bool = False) -> nn.Module:
    """Put ``module`` in training mode; with ``frozen_norm`` its batch-norm layers stay in
    eval mode (they normalise by their running statistics and do not update them: for
    fine-tuning on batches too small to estimate them). Returns ``module``."""
    module.train()
    if frozen_norm:
        for layer in module.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.eval()
    return module


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Run a block in eval mode without gradients, then restore the module's mode.

    ``with evaluating(model): out = model(x)`` is deterministic (batch-norm running
    statistics, no dropout) and leaves ``model.training`` as it was, also on errors.
    """
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)
