"""VoxelMorph-2 as a registration method: one forward pass of a trained network
(a plain displacement: no velocity, no inverse)."""

from __future__ import annotations

import time

import torch

from ..core.layers import evaluating
from ..core.ops import jacobian_det, warp
from ..models.voxelmorph import VoxelMorph2
from .base import RegistrationResult
from .registry import MethodSpec, add_method


class VoxelMorphRegistrar:
    """A trained :class:`~structreg.models.voxelmorph.VoxelMorph2` (its device is
    where registration runs)."""

    name = "voxelmorph"

    def __init__(self, model: VoxelMorph2, batch_size: int = 64) -> None:
        self.model = model
        self.batch_size = batch_size

    def register(
        self, moving: torch.Tensor, fixed: torch.Tensor, *, mask: torch.Tensor | None = None
    ) -> RegistrationResult:
        """``moving``, ``fixed``: ``(N, 1, *S)``; ``mask`` is not used."""
        t0 = time.perf_counter()
        device = next(self.model.parameters()).device
        moving, fixed = moving.to(device), fixed.to(device)
        with evaluating(self.model):
            disp = self.model(moving, fixed)
            result = RegistrationResult(
                moved=warp(moving, disp),
                disp=disp,
                inverse_disp=None,
                velocity=None,
                jacobian_det=jacobian_det(disp),
            )
        result.seconds = time.perf_counter() - t0
        return result


@add_method(
    "voxelmorph",
    "VoxelMorph-2 (the voxelmorph package's U-Net) of a trained run: voxelmorph:RUN_DIR",
)
def _build(spec: MethodSpec, device: str) -> VoxelMorphRegistrar:
    from ..training.checkpoint import load_model

    path = spec.require_target()
    model, _ = load_model(path, device, method="voxelmorph")
    return VoxelMorphRegistrar(model, **spec.converted({"batch_size": 64}))
