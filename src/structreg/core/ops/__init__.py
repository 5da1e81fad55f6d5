"""Stateless tensor operations (torch only): grids, warping, exponentiation,
Jacobians, smoothing and field resizing. 2-D and 3-D through the same functions.

Conventions: images ``(N, C, *S)``; fields ``(N, ndim, *S)`` in voxels with
channel ``c`` along ``S[c]``; ``φ(x) = x + u(x)``; warping pulls back.
"""

from .exponentiate import exponentiate, half_transforms, integrate_velocity_rk4
from .grid import identity_grid
from .jacobian import (
    folding_fraction,
    jacobian_det,
    jacobian_matrix,
    velocity_gradient_magnitude,
    velocity_magnitude,
)
from .resize import resize_field
from .smoothing import gaussian_kernel1d, gaussian_smooth
from .warp import compose, warp

__all__ = [
    "compose",
    "exponentiate",
    "folding_fraction",
    "gaussian_kernel1d",
    "gaussian_smooth",
    "half_transforms",
    "identity_grid",
    "integrate_velocity_rk4",
    "jacobian_det",
    "jacobian_matrix",
    "resize_field",
    "velocity_gradient_magnitude",
    "velocity_magnitude",
    "warp",
]
