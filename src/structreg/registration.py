"""Registration results shared by the CVAE model and the baselines."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .layers import evaluating
from .models.inference import inference_copy
from .ops import exponentiate, jacobian_det, warp


@dataclass
class RegistrationResult:
    """What every registration method returns, on the fixed image's grid.

    Attributes:
        moved: ``(N, C, *S)`` moving image warped onto the fixed image.
        disp: ``(N, ndim, *S)`` displacement in voxels, ``moved(x) = moving(x + disp(x))``.
        inverse_disp: ``(N, ndim, *S)`` displacement of the inverse transform (voxels).
        velocity: ``(N, ndim, *S)`` stationary velocity in voxels, or None for
            methods without one (VoxelMorph-2, identity).
        jacobian_det: ``(N, 1, *S)`` determinant of the Jacobian of ``x + disp(x)``.
        z: ``(N, d)`` latent code (CVAE only), else None.
        seconds: wall time of the registration call (whole batch).
    """

    moved: torch.Tensor
    disp: torch.Tensor
    inverse_disp: torch.Tensor | None
    velocity: torch.Tensor | None
    jacobian_det: torch.Tensor
    z: torch.Tensor | None = None
    seconds: float = float("nan")

    def warp_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Warp integer label maps ``(N, 1, *S)`` with nearest-neighbour interpolation."""
        moved = warp(labels.to(self.disp.dtype), self.disp, mode="nearest")
        return moved.round().to(labels.dtype)


def result_from_velocity(moving: torch.Tensor, velocity: torch.Tensor, steps: int = 4,
                         z: torch.Tensor | None = None, seconds: float = float("nan"),
                         padding_mode: str = "border") -> RegistrationResult:
    """Build a :class:`RegistrationResult` from a stationary velocity field.

    ``disp = exp(v)``, ``inverse_disp = exp(-v)`` (both by scaling and squaring).
    """
    both = exponentiate(torch.cat([velocity, -velocity]), steps)
    n = velocity.shape[0]
    disp, inverse = both[:n], both[n:]
    return RegistrationResult(moved=warp(moving, disp, padding_mode=padding_mode), disp=disp,
                              inverse_disp=inverse, velocity=velocity,
                              jacobian_det=jacobian_det(disp), z=z, seconds=seconds)


def register(model, moving: torch.Tensor, fixed: torch.Tensor, *,
             batch_size: int = 64) -> RegistrationResult:
    """Register with a trained CVAE in one forward pass (``z = μ``, eval mode).

    Args:
        model: a :class:`structreg.models.cvae.CVAERegistration`.
        moving, fixed: ``(N, 1, *S)`` images on the model's grid (``S = image_size``),
            intensities normalised like the training data.
        batch_size: pairs per forward pass.
    Returns:
        :class:`RegistrationResult` with ``moved``, ``disp = exp(v)``,
        ``inverse_disp = exp(-v)``, ``velocity``, ``jacobian_det`` and ``z`` (μ).
    """
    t0 = time.perf_counter()
    device = next(model.parameters()).device
    moving, fixed = moving.to(device), fixed.to(device)
    with evaluating(model):
        # same network with batch norm folded into its convolutions (cached; see
        # structreg.models.inference): identical result up to rounding, fewer passes
        net = inference_copy(model)
        velocities, codes = [], []
        for start in range(0, moving.shape[0], batch_size):
            m, f = moving[start:start + batch_size], fixed[start:start + batch_size]
            mu, _ = net.encode(m, f)
            velocities.append(net.decode(mu, m))
            codes.append(mu)
        velocity, z = torch.cat(velocities), torch.cat(codes)
        result = result_from_velocity(moving, velocity, steps=model.config.steps, z=z)
    result.seconds = time.perf_counter() - t0
    return result
