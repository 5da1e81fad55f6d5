"""The exponentiation layer: stationary velocity field -> diffeomorphism.

Scaling and squaring (Arsigny et al. 2006, as used by the paper): the velocity
is scaled by ``2**-N``, giving ``φ_0 ≈ id + v / 2**N``, and squared ``N`` times,
``φ_k = φ_{k-1} ∘ φ_{k-1}``, each composition done with linear interpolation
and border padding. Everything is built from differentiable tensor operations.

A reference integrator (classical Runge-Kutta 4 on the flow ODE
``dx/dt = v(x)``) is provided to measure the accuracy of scaling and squaring.
"""

from __future__ import annotations

import torch

from ...errors import InputError
from . import kernels
from .checks import check_field
from .grid import sample_displaced


def exponentiate(velocity: torch.Tensor, steps: int = 4, *, downsize: int = 1) -> torch.Tensor:
    """Displacement of ``exp(velocity)`` by scaling and squaring.

    Args:
        velocity: ``(N, ndim, *S)`` stationary velocity field in voxels (per unit
            time), channel ``c`` along ``S[c]``.
        steps: number of squarings ``N`` (paper: 4); the field is first scaled by
            ``2**-steps``. ``steps=0`` returns the velocity itself (``exp(v) ≈ id + v``).
        downsize: ``k > 1`` squares on a grid ``k`` times coarser (``ceil(S / k)``,
            corners aligned, vectors rescaled) and resizes the displacement back: about
            ``k**ndim`` times less work, exact only for fields that are linear at that
            scale (VoxelMorph integrates at half resolution this way); 1: exact grid.
    Returns:
        ``(N, ndim, *S)`` displacement ``u`` in voxels with ``exp(v)(x) = x + u(x)``.
        ``exponentiate(-v)`` gives the inverse transform and ``exponentiate(±v / 2)``
        the half transforms used by the symmetric loss.
    """
    check_field("exponentiate", "velocity", velocity)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise InputError(f"exponentiate: steps must be a non-negative int, got {steps!r}")
    if not isinstance(downsize, int) or isinstance(downsize, bool) or downsize < 1:
        raise InputError(f"exponentiate: downsize must be an int >= 1, got {downsize!r}")
    if downsize == 1:
        return kernels.exponentiate(velocity, steps)
    from .resize import coarse_size, resize_field

    size = tuple(velocity.shape[2:])
    coarse = coarse_size(size, downsize)
    return resize_field(kernels.exponentiate(resize_field(velocity, coarse), steps), size)


def integrate_velocity_rk4(velocity: torch.Tensor, steps: int = 256) -> torch.Tensor:
    """Reference flow of a stationary velocity field by Runge-Kutta 4.

    Integrates ``dx/dt = v(x)`` from ``t = 0`` to ``1`` in ``steps`` equal steps,
    starting at every voxel, with ``v`` interpolated linearly (border padding) at
    the moving positions. Slow; meant as ground truth for :func:`exponentiate`.

    Args:
        velocity: ``(N, ndim, *S)`` in voxels.
    Returns:
        ``(N, ndim, *S)`` displacement in voxels of ``exp(v)``.
    """
    check_field("integrate_velocity_rk4", "velocity", velocity)
    if not isinstance(steps, int) or steps < 1:
        raise InputError(f"integrate_velocity_rk4: steps must be a positive int, got {steps!r}")

    def v_at(u: torch.Tensor) -> torch.Tensor:
        return sample_displaced(velocity, u, "bilinear", "border")

    h = 1.0 / steps
    u = torch.zeros_like(velocity)
    for _ in range(steps):
        k1 = v_at(u)
        k2 = v_at(u + 0.5 * h * k1)
        k3 = v_at(u + 0.5 * h * k2)
        k4 = v_at(u + h * k3)
        u = u + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    return u


def half_transforms(velocity: torch.Tensor, steps: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Displacements of ``exp(v / 2)`` and ``exp(-v / 2)``, for the symmetric loss.

    Args:
        velocity: ``(N, ndim, *S)`` in voxels.
    Returns:
        ``(forward_half, backward_half)``, each ``(N, ndim, *S)`` in voxels. Both are
        computed in one batched pass.
    """
    check_field("half_transforms", "velocity", velocity)
    n = velocity.shape[0]
    both = kernels.exponentiate(torch.cat([0.5 * velocity, -0.5 * velocity], dim=0), steps)
    return both[:n], both[n:]
