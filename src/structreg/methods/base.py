"""The registration-method contract: one protocol, one result type.

Every method - ours (the CVAE), LCC-Demons, VoxelMorph-2, identity, and any
added later - is a :class:`Registrar`: an object with a ``name``, a preferred
``batch_size`` and ``register(moving, fixed, *, mask=None)`` returning a
:class:`RegistrationResult` on the fixed image's grid. Methods are built from a
spec string by :func:`structreg.methods.build_method`; ``evaluate``, ``register``,
``demo`` and the analysis commands only ever see this contract.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ..core.ops import exponentiate, jacobian_det, warp
from ..core.ops.checks import check_image, check_same_spatial


class RegistrationResult:
    """What every registration method returns, on the fixed image's grid.

    Attributes:
        moved: ``(N, C, *S)`` moving image warped onto the fixed image.
        disp: ``(N, ndim, *S)`` displacement in voxels, ``moved(x) = moving(x + disp(x))``.
        inverse_disp: ``(N, ndim, *S)`` displacement of the inverse transform (voxels),
            or None for methods without one. A result made from a velocity with
            ``inverse_steps`` computes it as ``exp(-velocity)`` on first access (then
            keeps it): a registration that never reads it does not pay for it.
        exp_downsize: the coarsening of the grid those exponentiations square on
            (1: the result's own grid; see :func:`structreg.core.ops.exponentiate`).
        velocity: ``(N, ndim, *S)`` stationary velocity in voxels, or None for
            methods without one (VoxelMorph-2, identity).
        jacobian_det: ``(N, 1, *S)`` determinant of the Jacobian of ``x + disp(x)``.
        z: ``(N, d)`` latent code (CVAE only), else None.
        seconds: wall time of the registration call (whole batch).
        iterations: ``(N,)`` optimiser steps taken per pair (the per-pair
            refinement of ``ours``), or None for methods that do not report them.
    """

    def __init__(
        self,
        moved: torch.Tensor,
        disp: torch.Tensor,
        inverse_disp: torch.Tensor | None,
        velocity: torch.Tensor | None,
        jacobian_det: torch.Tensor,
        z: torch.Tensor | None = None,
        seconds: float = float("nan"),
        iterations: torch.Tensor | None = None,
        *,
        inverse_steps: int | None = None,
        exp_downsize: int = 1,
    ) -> None:
        self.moved = moved
        self.disp = disp
        self.velocity = velocity
        self.jacobian_det = jacobian_det
        self.z = z
        self.seconds = seconds
        self.iterations = iterations
        self._inverse = inverse_disp
        self._inverse_steps = inverse_steps
        self.exp_downsize = exp_downsize

    @property
    def inverse_disp(self) -> torch.Tensor | None:
        """The inverse transform's displacement (voxels; see the class doc)."""
        if self._inverse is None and self._inverse_steps is not None and self.velocity is not None:
            self._inverse = exponentiate(
                -self.velocity, self._inverse_steps, downsize=self.exp_downsize
            )
        return self._inverse

    @inverse_disp.setter
    def inverse_disp(self, value: torch.Tensor | None) -> None:
        self._inverse, self._inverse_steps = value, None

    def warp_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Warp integer label maps ``(N, 1, *S)`` with nearest-neighbour interpolation."""
        moved = warp(labels.to(self.disp.dtype), self.disp, mode="nearest")
        return moved.round().to(labels.dtype)


def result_from_velocity(
    moving: torch.Tensor,
    velocity: torch.Tensor,
    steps: int = 4,
    z: torch.Tensor | None = None,
    seconds: float = float("nan"),
    padding_mode: str = "border",
    exp_downsize: int = 1,
) -> RegistrationResult:
    """Build a :class:`RegistrationResult` from a stationary velocity field.

    ``disp = exp(v)`` by scaling and squaring (``steps`` squarings, on a grid
    ``exp_downsize`` times coarser when > 1: see :func:`structreg.core.ops.exponentiate`);
    ``inverse_disp = exp(-v)`` the same way, computed when first read.
    """
    disp = exponentiate(velocity, steps, downsize=exp_downsize)
    return RegistrationResult(
        moved=warp(moving, disp, padding_mode=padding_mode),
        disp=disp,
        inverse_disp=None,
        velocity=velocity,
        jacobian_det=jacobian_det(disp),
        z=z,
        seconds=seconds,
        inverse_steps=steps,
        exp_downsize=exp_downsize,
    )


def warp_array(image: np.ndarray, disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Warp an image at its own resolution and take the transform's det J.

    Args:
        image: ``S``-shaped array (a NIfTI volume's data, original intensities).
        disp: ``(ndim, *S)`` displacement in voxels of that grid (pull-back).
    Returns:
        ``(moved, jacobian_det)``, both float32 of shape ``S``; computed in float64,
        linear interpolation with border padding.
    """
    disp_t = torch.from_numpy(np.asarray(disp, dtype=np.float64))[None]
    moved = warp(
        torch.from_numpy(image.astype(np.float64))[None, None], disp_t, padding_mode="border"
    )[0, 0]
    det = jacobian_det(disp_t)[0, 0]
    return moved.numpy().astype(np.float32), det.numpy().astype(np.float32)


def register_pairwise(
    name: str,
    moving: torch.Tensor,
    fixed: torch.Tensor,
    register_pair: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]],
) -> RegistrationResult:
    """Run a one-pair-at-a-time registration (a library working on NumPy arrays) over a batch.

    Args:
        name: the method's name (error messages).
        moving, fixed: ``(N, 1, *S)`` images (a batch of 1 broadcasts).
        register_pair: ``(moving S, fixed S) float64 -> (disp, inverse_disp or None)``,
            fields ``(ndim, *S)`` in voxels in our pull-back convention.
    Returns:
        :class:`RegistrationResult` with ``moved`` = ``moving`` warped by ``disp`` (our
        linear warp, border padding), ``velocity`` None, ``inverse_disp`` None unless
        every pair has one, and the call's wall time.
    """
    t0 = time.perf_counter()
    ndim = check_image(name, "moving", moving)
    check_image(name, "fixed", fixed, ndim)
    check_same_spatial(name, "moving", moving, "fixed", fixed)
    n = max(moving.shape[0], fixed.shape[0])
    moving = moving.expand(n, *moving.shape[1:])
    fixed = fixed.expand(n, *fixed.shape[1:])
    m_np = moving[:, 0].detach().cpu().double().numpy()
    f_np = fixed[:, 0].detach().cpu().double().numpy()
    fields = [register_pair(m_np[i], f_np[i]) for i in range(n)]

    def stacked(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays)).to(moving.device, moving.dtype)

    disp = stacked([f[0] for f in fields])
    inverses = [f[1] for f in fields if f[1] is not None]
    return RegistrationResult(
        moved=warp(moving, disp, padding_mode="border"),
        disp=disp,
        inverse_disp=stacked(inverses) if len(inverses) == n else None,
        velocity=None,
        jacobian_det=jacobian_det(disp),
        seconds=time.perf_counter() - t0,
    )


@runtime_checkable
class Registrar(Protocol):
    """A registration method.

    Attributes:
        name: the method's name, as in its spec (``"ours"``, ``"lcc-demons"``, ...),
            used for table columns, CSV rows and figure titles.
        batch_size: pairs per :meth:`register` call that suit the method (callers
            with many pairs pass chunks of this size).

    A method that registers nothing (identity) may set ``reference = True``: tables
    then do not let it win on folding or velocity, and figures leave it out.

    A method that learns from the cohort before registering it (adaptation, see
    :mod:`structreg.methods.adaptation`) has ``prepare(pairs) -> bool``: ``evaluate``,
    batch registration and :func:`structreg.register` call it once with every pair
    they are about to register (it returns whether it did anything).
    """

    name: str
    batch_size: int

    def register(
        self, moving: torch.Tensor, fixed: torch.Tensor, *, mask: torch.Tensor | None = None
    ) -> RegistrationResult:
        """Register ``moving`` onto ``fixed``.

        Args:
            moving, fixed: ``(N, 1, *S)`` images on one grid, intensities
                normalised to about [0, 1] (a batch of 1 may broadcast).
            mask: optional ``(N, 1, *S)`` region of interest (1 inside); methods
                that cannot use one ignore it.
        Returns:
            :class:`RegistrationResult` with ``N`` entries; ``seconds`` is the
            wall time of the call.
        """
        ...
