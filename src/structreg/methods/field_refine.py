"""Per-pair refinement of a velocity field by a smooth residual (instance optimisation).

The network's velocity ``v0`` (one pass, or after :func:`~.refine.refine_codes`) is
a good start that the low-dimensional code cannot always improve on: a pair may
need a deformation the decoder cannot express. :func:`refine_field` adds to it a
residual velocity ``u``, stored on a grid ``grid`` times coarser than the image
and linearly upsampled (``U``), and optimises ``u`` of each pair by Adam on::

    J_i(u) = 1 − LCC(F_i, M_i ∘ exp(v0_i + U u_i)) + smooth · Σ_d mean((∂_d u_i)²)

* ``LCC``: :func:`structreg.core.losses.lcc` of ``F`` and the moved image, averaged
  over the pair's pixels, in [0, 1]: the one-sided form, which interpolates only the
  moving image (the symmetric one rewards the blur of interpolating both; see
  :func:`structreg.core.losses.forward_lcc`);
* ``∂_d u``: forward differences of the coarse residual along each axis
  (voxels of the image per coarse voxel), a diffusion regulariser that keeps
  the residual smooth; ``exp`` keeps the result a diffeomorphism.

**Image scales, coarse to fine.** The steps are split between stages that see ``M``
and ``F`` smoothed by a Gaussian of decreasing width (``blur`` voxels, then the
images as they are): the smoothed stage aligns the broad shapes first, where the
sharp objective has more local optima; the residual and its smoothness term run on
through the stages. Only the last, sharp stage's iterates are candidates.

The residual starts at 0, so ``J_i`` of the start is the first candidate, and
each pair keeps the residual of its best objective (never above the start) among
those whose transform folds no more pixels (``det J ≤ 0``, the folding metric's
rule) than the start's - none when the start is a diffeomorphism on the grid. All
pairs are optimised at once on ``Σ_i J_i``: each pair's gradient - and, Adam being
element-wise, its update - is the one it would get alone.

Cost per step: one exponentiation (``squarings``), one warp, one LCC map and (in the
sharp stage) one det J at the image's resolution, forward and backward; no network. It
works on the velocity of any method that has one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.losses import lcc
from ..core.ops import exponentiate, jacobian_det, warp
from ..core.ops.resize import coarse_size
from ..core.ops.smoothing import gaussian_smooth, gaussian_window
from ..errors import InputError, ShapeError

__all__ = [
    "DEFAULT_FIELD_BLUR",
    "DEFAULT_FIELD_GRID",
    "coarse_size",
    "DEFAULT_FIELD_LR",
    "DEFAULT_FIELD_SMOOTH",
    "DEFAULT_FIELD_STEPS",
    "FieldRefineResult",
    "refine_field",
]

DEFAULT_FIELD_STEPS = 40
"""Adam steps the docs and benchmarks use (``refine_field=40``); the objective of the
tuning cohort's pairs stops improving by then (docs/results/real-scans.md)."""
DEFAULT_FIELD_LR = 0.15
"""Adam step size of the residual (voxels per step)."""
DEFAULT_FIELD_SMOOTH = 0.07
"""Weight of the residual's squared gradient against ``1 − LCC``. Of the settings
tried (0.01 ... 1, with and without ``blur``), the one with the best mean tissue Dice
on the real-scan benchmark's tuning pairs (the held-out protocol's adaptation cohort,
never a test pair) among those whose endpoint error on the cardiac and brain phantoms'
validation splits stays below DIPY SyN's. A softer residual matches the labels better
but the true deformation worse; 0.01 and 0.02 fold a few pixels
(docs/results/real-scans.md)."""
DEFAULT_FIELD_BLUR = 1.0
"""Gaussian width (image voxels) of the images in the first half of the steps; the
second half sees them unsmoothed (0: one sharp stage). At the same smoothness it
lowered the brain phantom's endpoint error, which let a softer residual pass the
endpoint-error rule above (docs/results/real-scans.md)."""
DEFAULT_FIELD_GRID = 2
"""Coarsening of the residual's grid (image voxels per residual voxel): 1 folds on real
pairs at the default smoothness, 4 registers worse."""


@dataclass
class FieldRefineResult:
    """What :func:`refine_field` returns (pair ``i`` is row / column ``i``).

    Attributes:
        velocity: ``(N, ndim, *S)`` ``v0 + U u`` of each pair's best residual
            (voxels), detached.
        residual: ``(N, ndim, *S')`` the best coarse residual ``u`` (voxels).
        objective: ``(T + 1, N)`` each pair's best ``J_i`` (on the unsmoothed images)
            after ``t = 0 .. T`` steps (row 0: the start; non-increasing; constant
            through the smoothed stage, whose iterates are not candidates).
        seconds: wall time.
    """

    velocity: torch.Tensor
    residual: torch.Tensor
    objective: torch.Tensor
    seconds: float = float("nan")


def _check(moving: torch.Tensor, fixed: torch.Tensor, velocity: torch.Tensor, steps: int) -> None:
    ndim = velocity.dim() - 2
    if ndim not in (2, 3) or velocity.shape[1] != ndim:
        raise ShapeError(
            f"refine_field: velocity must be (N, 2, H, W) or (N, 3, D, H, W), "
            f"got {tuple(velocity.shape)}"
        )
    for name, image in (("moving", moving), ("fixed", fixed)):
        if image.dim() != ndim + 2 or image.shape[0] != velocity.shape[0]:
            raise ShapeError(
                f"refine_field: {name} must be (N, C, *S) with N = {velocity.shape[0]}, "
                f"got {tuple(image.shape)}"
            )
        if image.shape[2:] != velocity.shape[2:]:
            raise ShapeError(
                f"refine_field: {name} grid {tuple(image.shape[2:])} differs from the "
                f"velocity's {tuple(velocity.shape[2:])}"
            )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InputError(f"refine_field: steps must be an int >= 0, got {steps!r}")


def _check_settings(lr: float, smooth: float, grid: int, squarings: int, blur: float) -> None:
    if not (math.isfinite(blur) and blur >= 0):
        raise InputError(f"refine_field: blur must be >= 0, got {blur!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise InputError(f"refine_field: lr must be > 0, got {lr!r}")
    if not (math.isfinite(smooth) and smooth >= 0):
        raise InputError(f"refine_field: smooth must be >= 0, got {smooth!r}")
    for name, value in (("grid", grid), ("squarings", squarings)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"refine_field: {name} must be an int >= 1, got {value!r}")


def upsample(residual: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``U u``: the coarse residual ``(N, ndim, *S')`` linearly interpolated onto ``size``
    (corners aligned); values stay in voxels of the image grid."""
    if tuple(residual.shape[2:]) == size:
        return residual
    mode = "bilinear" if residual.dim() == 4 else "trilinear"
    return F.interpolate(residual, size=size, mode=mode, align_corners=True)


def smoothness(residual: torch.Tensor) -> torch.Tensor:
    """``(N,)`` ``Σ_d mean((∂_d u)²)``: forward differences of ``(N, ndim, *S')`` along each
    spatial axis, averaged per pair (voxels²)."""
    total = residual.new_zeros(residual.shape[0])
    for d in range(2, residual.dim()):
        n = residual.shape[d]
        diff = residual.narrow(d, 1, n - 1) - residual.narrow(d, 0, n - 1)
        total = total + diff.pow(2).flatten(1).mean(1)
    return total


@dataclass(frozen=True)
class _Problem:
    """The fixed parts of :func:`refine_field`'s objective."""

    moving: torch.Tensor
    fixed: torch.Tensor
    start: torch.Tensor
    smooth: float
    squarings: int
    sigma: float
    kernel_size: int

    def velocity(self, residual: torch.Tensor) -> torch.Tensor:
        """``v0 + U u`` ``(N, ndim, *S)`` in voxels."""
        return self.start + upsample(residual, tuple(self.start.shape[2:]))

    def per_pair(self, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(J_i (N,), folded pixels of exp(v0 + U u) (N,))`` of each pair (the latter
        without gradient, in float64 like the folding metric)."""
        disp, objective = self._terms(residual)
        folds = (jacobian_det(disp.detach().double()) <= 0).flatten(1).sum(1)
        return objective, folds

    def objective(self, residual: torch.Tensor) -> torch.Tensor:
        """``J_i`` ``(N,)`` of each pair (no det J)."""
        return self._terms(residual)[1]

    def _terms(self, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(displacement of exp(v0 + U u) (N, ndim, *S), J_i (N,))``."""
        disp = exponentiate(self.velocity(residual), self.squarings)
        moved = warp(self.moving, disp, padding_mode="border")
        lcc_map = lcc(self.fixed, moved, self.sigma, self.kernel_size, reduction="none")
        objective = 1.0 - lcc_map.flatten(1).mean(1) + self.smooth * smoothness(residual)
        return disp, objective


def refine_field(
    moving: torch.Tensor,
    fixed: torch.Tensor,
    velocity: torch.Tensor,
    *,
    steps: int,
    lr: float = DEFAULT_FIELD_LR,
    smooth: float = DEFAULT_FIELD_SMOOTH,
    grid: int = DEFAULT_FIELD_GRID,
    squarings: int = 4,
    sigma: float = 2.0,
    kernel_size: int = 9,
    blur: float = DEFAULT_FIELD_BLUR,
) -> FieldRefineResult:
    """Refine each pair's velocity by a smooth coarse residual (see the module doc).

    Args:
        moving, fixed: ``(N, C, *S)`` images (``M ∘ exp(v) ≈ F``), intensities as the
            method that made ``velocity`` saw them.
        velocity: ``(N, ndim, *S)`` start velocities ``v0`` in voxels.
        steps: Adam steps (0: the start is returned).
        lr: Adam step size of the residual (voxels).
        smooth: weight of the residual's squared gradient (``>= 0``).
        grid: image voxels per residual voxel along each axis (1: full resolution).
        squarings: of the exponentiation of ``v0 + U u`` (use the same to build the
            result from the returned velocity).
        sigma, kernel_size: the LCC's Gaussian window (voxels, taps).
        blur: Gaussian width (voxels) of both images during the first ``steps // 2``
            steps; the others see them unsmoothed (0: all of them).
    Returns:
        :class:`FieldRefineResult`.
    """
    t0 = time.perf_counter()
    _check(moving, fixed, velocity, steps)
    _check_settings(lr, smooth, grid, squarings, blur)
    start = velocity.detach()
    sharp = _Problem(moving, fixed, start, smooth, squarings, sigma, kernel_size)
    size = coarse_size(tuple(start.shape[2:]), grid)
    residual = start.new_zeros((start.shape[0], start.shape[1], *size), requires_grad=True)
    first = steps // 2 if blur > 0 else 0
    if first == 0:
        best, history = _optimise(sharp, residual, steps, lr)
    else:
        with torch.no_grad():  # the start: the first candidate
            start_obj, start_folds = sharp.per_pair(residual)
        blurred_m, blurred_f = (
            gaussian_smooth(x, blur, gaussian_window(blur)) for x in (moving, fixed)
        )
        smoothed = _Problem(blurred_m, blurred_f, start, smooth, squarings, sigma, kernel_size)
        _descend(smoothed, residual, first, lr)
        initial = (residual.detach().clone().zero_(), start_obj, start_folds)
        best, tail = _optimise(sharp, residual, steps - first, lr, initial)
        history = torch.cat([start_obj.expand(first, -1), tail])
    with torch.no_grad():
        refined = sharp.velocity(best)
    return FieldRefineResult(refined, best, history, time.perf_counter() - t0)


def _descend(problem: _Problem, residual: torch.Tensor, steps: int, lr: float) -> None:
    """``steps`` Adam steps on ``Σ_i J_i`` of ``problem``, updating ``residual`` in place."""
    optimiser = torch.optim.Adam([residual], lr=lr)
    for _ in range(steps):
        with torch.enable_grad():
            total = problem.objective(residual).sum()
        optimiser.zero_grad(set_to_none=True)
        total.backward()
        optimiser.step()


def _optimise(
    problem: _Problem,
    residual: torch.Tensor,
    steps: int,
    lr: float,
    initial: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` Adam steps on ``Σ_i J_i``; each pair's best residual and the ``(steps + 1,
    N)`` history of its best objective. ``initial``: ``(best, best J, folded pixels)`` of
    an earlier candidate (the start), else the residual as it is at step 0 is taken."""
    n = residual.shape[0]
    if initial is None:
        best = residual.detach().clone()
        best_obj = residual.new_full((n,), math.inf)
        start_folds = None
    else:
        best, best_obj, start_folds = initial
    history = residual.new_empty((steps + 1, n))
    optimiser = torch.optim.Adam([residual], lr=lr)
    for t in range(steps + 1):
        with torch.set_grad_enabled(t < steps):  # callers may run under no_grad
            obj, folds = problem.per_pair(residual)
            total = obj.sum()  # Σ_i J_i: each pair's gradient is its own
        current = obj.detach()
        start_folds = folds if start_folds is None else start_folds
        # a residual that folds more pixels than the start is never kept
        better = (current < best_obj) & (folds <= start_folds)
        if initial is None and t == 0:
            better = torch.ones_like(better)
        best[better] = residual.detach()[better]
        best_obj = torch.where(better, current, best_obj)
        history[t] = best_obj
        if t < steps:
            optimiser.zero_grad(set_to_none=True)
            total.backward()
            optimiser.step()
    return best, history
