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
import torch.nn.functional as F

from ._checks import check_field
from .grid import _normalised_identity, _sample_displaced


def _exponentiate(velocity: torch.Tensor, steps: int) -> torch.Tensor:
    """Unchecked kernel of :func:`exponentiate`.

    Mathematically ``u <- v / 2**N``, then ``N`` times ``u <- u + warp(u, u)``
    (border padding; see :func:`structreg.ops.compose`). For speed the loop runs
    in ``grid_sample``'s normalised units with the channels kept in its reversed
    (x, y[, z]) order, so each squaring is one add and one ``grid_sample``.
    """
    if steps == 0:
        return velocity.clone()
    ndim = velocity.shape[1]
    sizes = velocity.shape[2:]
    # identity grid (1, ndim, *S) in normalised units, channels in reversed order; the
    # sampling grid is the channels-last view of ident + u (no copy, read as is by grid_sample)
    ident, scales = _normalised_identity(sizes, velocity.device, velocity.dtype, reverse=True)
    rev = [ndim - 1 - c for c in range(ndim)]
    scale_rev = torch.tensor([scales[c] / 2.0 ** steps for c in rev], device=velocity.device,
                             dtype=velocity.dtype).view(1, ndim, *([1] * ndim))
    u = velocity.flip(1) * scale_rev
    for _ in range(steps):
        u = u + F.grid_sample(u, (ident + u).movedim(1, -1), mode="bilinear",
                              padding_mode="border", align_corners=True)
    unscale = torch.tensor([1.0 / scales[c] if scales[c] > 0 else 0.0 for c in range(ndim)],
                           device=velocity.device, dtype=velocity.dtype).view(1, ndim, *([1] * ndim))
    return u.flip(1) * unscale


def exponentiate(velocity: torch.Tensor, steps: int = 4) -> torch.Tensor:
    """Displacement of ``exp(velocity)`` by scaling and squaring.

    Args:
        velocity: ``(N, ndim, *S)`` stationary velocity field in voxels (per unit
            time), channel ``c`` along ``S[c]``.
        steps: number of squarings ``N`` (paper: 4); the field is first scaled by
            ``2**-steps``. ``steps=0`` returns the velocity itself (``exp(v) ≈ id + v``).
    Returns:
        ``(N, ndim, *S)`` displacement ``u`` in voxels with ``exp(v)(x) = x + u(x)``.
        ``exponentiate(-v)`` gives the inverse transform and ``exponentiate(±v / 2)``
        the half transforms used by the symmetric loss.
    """
    check_field("exponentiate", "velocity", velocity)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"exponentiate: steps must be a non-negative int, got {steps!r}")
    return _exponentiate(velocity, steps)


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
        raise ValueError(f"integrate_velocity_rk4: steps must be a positive int, got {steps!r}")
    def v_at(u: torch.Tensor) -> torch.Tensor:
        return _sample_displaced(velocity, u, "bilinear", "border")

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
    both = _exponentiate(torch.cat([0.5 * velocity, -0.5 * velocity], dim=0), steps)
    return both[:n], both[n:]
