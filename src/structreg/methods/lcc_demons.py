"""LCC-Demons: symmetric log-domain diffeomorphic demons driven by Gaussian LCC.

After Lorenzi et al. (NeuroImage 2013), the paper's reference [7]. The
transformation is ``exp(v)`` for a stationary velocity ``v`` in voxels; each
iteration, at every resolution level (coarse to fine):

1. Symmetric warp: ``M_h = M ∘ exp(v/2)``, ``F_h = F ∘ exp(-v/2)``.
2. Force: the gradient of the summed local correlation ``Σ_x LCC(F_h, M_h)(x)``
   (Gaussian window σ_sim) with respect to a small displacement ``δ`` applied to
   ``M_h`` and, with the opposite sign, to ``F_h`` (symmetric force).
3. Update: the force scaled per pair so that its largest vector is
   ``max_step`` voxels (ITK's "maximum update step length" normalisation).
4. Fluid-like regularisation: the update is smoothed with a Gaussian of σ_fluid.
5. Log-domain composition: ``v <- v + u`` (first-order Baker-Campbell-Hausdorff,
   as in the log-domain demons).
6. Diffusion-like regularisation: ``v`` is smoothed with a Gaussian of σ_diff.

Levels downsample the images by 2 per level (after Gaussian anti-aliasing) and
upsample ``v`` with :func:`structreg.core.ops.resize_field`. It is an optimisation per
pair (batched over pairs), not a network; everything runs on the tensors' device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..core.losses import half_warps
from ..core.ops import gaussian_kernel1d, kernels, resize_field
from ..core.ops.checks import check_image, check_same_spatial
from ..errors import ConfigError
from .base import RegistrationResult, result_from_velocity
from .classical import config_from_spec
from .registry import MethodSpec, add_method


@dataclass
class LCCDemonsConfig:
    """Parameters of LCC-Demons (units: voxels of the level being optimised).

    Attributes:
        levels: number of resolution levels (each halves the size).
        iterations: iterations per level, coarsest first.
        sigma_sim: σ of the Gaussian LCC window.
        sigma_fluid: σ of the update (fluid-like) smoothing.
        sigma_diffusion: σ of the velocity (diffusion-like) smoothing.
        max_step: largest update vector per iteration.
        steps: squarings of the exponentiation (scaling and squaring).
        eps: LCC stabiliser.
    """

    levels: int = 3
    iterations: list[int] = field(default_factory=lambda: [40, 30, 20])
    sigma_sim: float = 2.0
    sigma_fluid: float = 1.0
    sigma_diffusion: float = 1.5
    max_step: float = 1.0
    steps: int = 6
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.levels < 1 or len(self.iterations) != self.levels:
            raise ConfigError(
                f"LCCDemonsConfig: iterations must list one count per level "
                f"({self.levels}), got {self.iterations}"
            )
        for name in ("sigma_sim", "sigma_fluid", "sigma_diffusion", "max_step"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"LCCDemonsConfig: {name} must be > 0")


def _kernel(sigma: float, like: torch.Tensor) -> torch.Tensor:
    size = 2 * int(round(3 * sigma)) + 1
    return gaussian_kernel1d(sigma, size, device=like.device, dtype=like.dtype)


def _downsample(image: torch.Tensor, factor: int) -> torch.Tensor:
    if factor == 1:
        return image
    smoothed = kernels.gaussian_smooth(image, _kernel(0.5 * factor, image))
    size = [max(4, (s + factor - 1) // factor) for s in image.shape[2:]]
    mode = "bilinear" if image.dim() == 4 else "trilinear"
    return F.interpolate(smoothed, size=size, mode=mode, align_corners=True)


def _symmetric_force(
    fixed: torch.Tensor,
    moving: torch.Tensor,
    velocity: torch.Tensor,
    config: LCCDemonsConfig,
    window: torch.Tensor,
) -> torch.Tensor:
    """Gradient of Σ LCC(F∘exp(-v/2)∘(id-δ), M∘exp(v/2)∘(id+δ)) w.r.t. δ at 0."""
    n = velocity.shape[0]
    with torch.no_grad():
        warped = half_warps(moving, fixed, velocity, config.steps)
    delta = torch.zeros_like(velocity, requires_grad=True)
    with torch.enable_grad():
        shifted = kernels.warp(warped, torch.cat([delta, -delta]), "bilinear", "border")
        similarity = kernels.lcc_map(shifted[n:], shifted[:n], window, config.eps).sum()
        (force,) = torch.autograd.grad(similarity, delta)
    return force


def lcc_demons(
    moving: torch.Tensor,
    fixed: torch.Tensor,
    config: LCCDemonsConfig | None = None,
    mask: torch.Tensor | None = None,
    initial_velocity: torch.Tensor | None = None,
) -> torch.Tensor:
    """Estimate the stationary velocity ``v`` with ``M ∘ exp(v) ≈ F`` by LCC-Demons.

    Args:
        moving, fixed: ``(N, 1, *S)`` images (2-D or 3-D), intensities about [0, 1].
        mask: optional ``(N or 1, 1, *S)`` region (1 inside) outside of which the
            update is zeroed (the paper masks the brain this way).
        initial_velocity: optional ``(N, ndim, *S)`` starting point.
    Returns:
        ``(N, ndim, *S)`` velocity in voxels of the input grid.
    """
    config = config or LCCDemonsConfig()
    ndim = check_image("lcc_demons", "moving", moving)
    check_image("lcc_demons", "fixed", fixed, ndim)
    check_same_spatial("lcc_demons", "moving", moving, "fixed", fixed)
    n = max(moving.shape[0], fixed.shape[0])
    moving = moving.expand(n, *moving.shape[1:])
    fixed = fixed.expand(n, *fixed.shape[1:])
    shape = moving.shape[2:]
    velocity = (
        torch.zeros(n, ndim, *shape, device=moving.device, dtype=moving.dtype)
        if initial_velocity is None
        else initial_velocity.detach().clone()
    )
    window = _kernel(config.sigma_sim, moving)
    for level in range(config.levels):
        factor = 2 ** (config.levels - 1 - level)
        m, f = _downsample(moving, factor), _downsample(fixed, factor)
        size = m.shape[2:]
        v = resize_field(velocity, size) if tuple(size) != tuple(velocity.shape[2:]) else velocity
        region = None
        if mask is not None:
            region = F.interpolate(mask.to(m.dtype), size=size, mode="nearest")
        fluid, diffusion = _kernel(config.sigma_fluid, m), _kernel(config.sigma_diffusion, m)
        for _ in range(config.iterations[level]):
            force = _symmetric_force(f, m, v, config, window)
            if region is not None:
                force = force * region
            norm = force.norm(dim=1, keepdim=True).flatten(1).amax(dim=1).clamp_min(1e-12)
            update = force * (config.max_step / norm).view(n, *([1] * (ndim + 1)))
            update = kernels.gaussian_smooth(update, fluid)
            v = kernels.gaussian_smooth(v + update, diffusion)
        velocity = v
    if tuple(velocity.shape[2:]) != tuple(shape):
        velocity = resize_field(velocity, shape)
    return velocity


class LCCDemons:
    """LCC-Demons as a registration method (an optimisation per batch of pairs).

    Args:
        config: the algorithm's parameters.
        device: where the optimisation runs (inputs are moved there).
        batch_size: pairs optimised together.
    """

    name = "lcc-demons"

    def __init__(
        self, config: LCCDemonsConfig | None = None, device: str = "cpu", batch_size: int = 16
    ) -> None:
        self.config = config or LCCDemonsConfig()
        self.device = device
        self.batch_size = batch_size

    def register(
        self, moving: torch.Tensor, fixed: torch.Tensor, *, mask: torch.Tensor | None = None
    ) -> RegistrationResult:
        """Register ``moving`` ``(N, 1, *S)`` onto ``fixed``; the update is zeroed
        outside ``mask`` when given. The result holds the velocity, ``exp(v)``,
        ``exp(-v)``, the moved image and the Jacobian determinant."""
        t0 = time.perf_counter()
        moving, fixed = moving.to(self.device), fixed.to(self.device)
        mask = None if mask is None else mask.to(self.device)
        with torch.no_grad():
            velocity = lcc_demons(moving, fixed, self.config, mask=mask)
            result = result_from_velocity(
                moving.expand(velocity.shape[0], *moving.shape[1:]),
                velocity,
                steps=self.config.steps,
            )
        result.seconds = time.perf_counter() - t0
        return result


@add_method(
    "lcc-demons",
    "LCC-Demons (symmetric log-domain demons, LCC forces); options: "
    "the LCCDemonsConfig fields, e.g. sigma_fluid=1.5,iterations=40/30/20",
)
def _build(spec: MethodSpec, device: str) -> LCCDemons:
    config, batch_size = config_from_spec(spec, LCCDemonsConfig, 16)
    return LCCDemons(config, device=device, batch_size=batch_size)
