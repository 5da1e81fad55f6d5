"""Affine pre-alignment: rigid, then affine, multi-resolution, on the world grid.

Real scans are rarely pre-aligned. :func:`affine_align` finds the affine transform
``T`` that maps the fixed image onto the moving one before any deformable step:
``moving(T(x))`` matches ``fixed(x)``. It works in the fixed image's physical frame
(mm along the fixed array's axes, about the fixed image's intensity centre ``c``)::

    T(u) = c + L (u - c) + t,      L = R (rigid stage),  L = R (I + B) (affine stage)

and reaches the moving image through the two voxel-to-world affines, so the images may
lie on any grids (2-D slices: in-plane). It starts from the translation that aligns
the intensity centres of mass, then optimises ``(R, t)`` and ``(B, t)`` with Adam at
each level of a pyramid (shrink factors ``levels``; images smoothed before they are
subsampled), on a similarity of the fixed image and the moving image sampled at
``T``: ``"ncc"`` (global normalised cross-correlation), ``"lcc"`` (local, Gaussian
windows) or ``"mi"`` (mutual information from a Parzen-window joint histogram, for
different contrasts). Only fixed voxels whose mapped point falls inside the moving
image count.

:class:`AffineFirst` puts the stage in front of any registration method for pairs on
one grid (``evaluate``'s ``affine=METRIC`` option); the file pipeline
(:mod:`structreg.pipeline.registration`) uses :func:`affine_align` on the images
themselves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core.losses import lcc
from ..core.ops import gaussian_smooth, jacobian_det, warp
from ..core.ops.grid import sample_normalised
from ..core.ops.smoothing import gaussian_window
from ..errors import DataError, InputError
from ..io.grids import voxel_mapping
from ..io.nifti import Volume
from .base import Registrar, RegistrationResult

__all__ = [
    "METRICS",
    "AffineFirst",
    "AffineOptions",
    "AffineResult",
    "affine_align",
    "voxel_matrix",
]

METRICS = ("ncc", "lcc", "mi")


@dataclass(frozen=True)
class AffineOptions:
    """Settings of :func:`affine_align`.

    Attributes:
        metric: ``"ncc"``, ``"lcc"`` or ``"mi"`` (different contrasts).
        levels: pyramid shrink factors, coarse to fine.
        iterations: Adam steps per level and stage (one entry per level).
        stages: ``("rigid", "affine")``, or ``("rigid",)`` alone.
        lr: Adam step size of the rotation (rad) and of ``B``; the translation moves
            by ``lr × translation_scale`` mm per step.
        translation_scale: mm per unit of the translation's parameters.
        bins: histogram bins of ``"mi"``.
    """

    metric: str = "ncc"
    levels: tuple[int, ...] = (4, 2, 1)
    iterations: tuple[int, ...] = (150, 100, 50)
    stages: tuple[str, ...] = ("rigid", "affine")
    lr: float = 0.01
    translation_scale: float = 10.0
    bins: int = 32

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise InputError(
                f"affine: metric must be one of {', '.join(METRICS)}, got {self.metric!r}"
            )
        if len(self.levels) != len(self.iterations) or not self.levels:
            raise InputError("affine: give one iteration count per pyramid level")
        if any(f < 1 for f in self.levels) or any(n < 0 for n in self.iterations):
            raise InputError("affine: levels must be >= 1 and iterations >= 0")
        if not set(self.stages) <= {"rigid", "affine"} or not self.stages:
            raise InputError(f"affine: stages are rigid and/or affine, got {self.stages}")


@dataclass
class AffineResult:
    """An affine alignment of a moving onto a fixed image.

    Attributes:
        matrix: ``(ndim + 1, ndim + 1)`` homogeneous map in the fixed image's mm frame
            (``T(u) = matrix @ [u; 1]``, ``u`` = fixed voxel index × spacing).
        voxels: ``(moving.ndim, fixed.ndim + 1)`` map from fixed voxel indices
            ``[p; 1]`` to moving voxel indices (the world mapping included).
        world: ``(4, 4)`` map of world points (RAS, mm) of the fixed image to the world
            points of the moving image it samples.
        before, after: the similarity (higher is better) at the start and the end.
        seconds: wall time.
    """

    matrix: np.ndarray
    voxels: np.ndarray
    world: np.ndarray
    before: float = math.nan
    after: float = math.nan
    seconds: float = 0.0
    metric: str = "ncc"
    history: list[float] = field(default_factory=list)


def voxel_matrix(moving: Volume, fixed: Volume, matrix: np.ndarray) -> np.ndarray:
    """``(moving.ndim, fixed.ndim + 1)``: fixed voxel ``[p; 1]`` -> moving voxel index
    under the mm-frame transform ``matrix`` (``(ndim + 1, ndim + 1)``)."""
    mapped = voxel_mapping(moving, fixed) @ _in_voxels(fixed, matrix)
    return mapped[: moving.ndim][:, [*range(fixed.ndim), 3]]


def _in_voxels(fixed: Volume, matrix: np.ndarray) -> np.ndarray:
    """A mm-frame transform as a ``(4, 4)`` map of fixed voxel indices (identity on the
    axes the fixed image lacks)."""
    n = fixed.ndim
    scale = np.diag([*fixed.spacing, 1.0])
    in_voxels = np.linalg.inv(scale) @ matrix @ scale
    embedded = np.eye(4)
    embedded[:n, :n], embedded[:n, 3] = in_voxels[:n, :n], in_voxels[:n, n]
    return embedded


def _world(fixed: Volume, matrix: np.ndarray) -> np.ndarray:
    """The ``(4, 4)`` world map of a mm-frame transform (identity off the fixed plane)."""
    return fixed.affine @ _in_voxels(fixed, matrix) @ np.linalg.inv(fixed.affine)


@dataclass
class _Level:
    """One pyramid level: the fixed image's subsampled voxels and values, the smoothed
    moving image, and the maps between their frames (torch, float64)."""

    fixed: torch.Tensor  # (1, 1, *s) subsampled fixed image
    points: torch.Tensor  # (ndim, *s) their positions in fixed mm
    moving: torch.Tensor  # (1, 1, *Sm) smoothed moving image
    to_moving: torch.Tensor  # (mdim, ndim + 1): fixed mm [u; 1] -> moving voxels


def _normalised(data: np.ndarray) -> np.ndarray:
    """Intensities mapped to about [0, 1] by their 1st and 99th percentiles."""
    lo, hi = np.percentile(data, [1.0, 99.0])
    return np.clip((data - lo) / max(hi - lo, 1e-12), 0.0, 1.0)


def _smooth(image: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma < 0.3:
        return image
    return gaussian_smooth(image, sigma=sigma, kernel_size=gaussian_window(sigma))


def _pyramid(moving: Volume, fixed: Volume, factor: int) -> _Level:
    """The fixed image average-pooled by ``factor`` and the moving image smoothed alike."""
    n = fixed.ndim
    f = torch.from_numpy(_normalised(fixed.data))[None, None]
    m = torch.from_numpy(_normalised(moving.data))[None, None]
    pool = F.avg_pool2d if n == 2 else F.avg_pool3d
    coarse = pool(f, factor, ceil_mode=True) if factor > 1 else f
    index = [
        torch.arange(s, dtype=torch.float64) * factor + (factor - 1) / 2 for s in coarse.shape[2:]
    ]
    grid = torch.stack(torch.meshgrid(*index, indexing="ij"))
    points = grid * torch.tensor(fixed.spacing, dtype=torch.float64).reshape(-1, *[1] * n)
    sigma = 0.5 * factor * float(np.mean(fixed.spacing)) / float(np.mean(moving.spacing))
    scale = np.diag([*(1.0 / s for s in fixed.spacing), 1.0])
    to_moving = voxel_mapping(moving, fixed)
    to_moving = to_moving[: moving.ndim][:, [*range(n), 3]] @ scale
    return _Level(
        coarse, points, _smooth(m, sigma if factor > 1 else 0.0), torch.from_numpy(to_moving)
    )


def _rotation(angles: torch.Tensor, ndim: int) -> torch.Tensor:
    """``(ndim, ndim)`` rotation: one angle in 2-D, a rotation vector in 3-D."""
    if ndim == 2:
        c, s = torch.cos(angles[0]), torch.sin(angles[0])
        return torch.stack([torch.stack([c, -s]), torch.stack([s, c])])
    x, y, z = angles
    zero = torch.zeros((), dtype=angles.dtype)
    skew = torch.stack(
        [torch.stack([zero, -z, y]), torch.stack([z, zero, -x]), torch.stack([-y, x, zero])]
    )
    return torch.linalg.matrix_exp(skew)


@dataclass
class _Params:
    """The optimised parameters: rotation, linear deviation ``B``, translation."""

    angles: torch.Tensor
    linear: torch.Tensor
    shift: torch.Tensor
    centre: torch.Tensor
    scale: float

    def matrix(self) -> torch.Tensor:
        """``(ndim + 1, ndim + 1)`` homogeneous map in the fixed mm frame."""
        n = self.centre.shape[0]
        lin = _rotation(self.angles, n) @ (torch.eye(n, dtype=torch.float64) + self.linear)
        offset = self.centre + self.shift * self.scale - lin @ self.centre
        top = torch.cat([lin, offset[:, None]], dim=1)
        bottom = torch.zeros(1, n + 1, dtype=torch.float64)
        bottom[0, n] = 1.0
        return torch.cat([top, bottom])


def _sample(level: _Level, matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The moving image at ``T`` of the level's fixed points, and where it is defined."""
    n = level.points.shape[0]
    flat = level.points.reshape(n, -1)
    mapped = matrix[:n, :n] @ flat + matrix[:n, n : n + 1]
    q = level.to_moving[:, :n] @ mapped + level.to_moving[:, n : n + 1]  # moving voxels
    sizes = torch.tensor(level.moving.shape[2:], dtype=torch.float64)[:, None]
    inside = ((q >= 0) & (q <= sizes - 1)).all(dim=0)
    normalised = 2 * q / (sizes - 1).clamp(min=1) - 1
    shape = level.points.shape[1:]
    positions = normalised.flip(0).reshape(1, q.shape[0], *shape)
    values = sample_normalised(level.moving, positions, "bilinear", "zeros")
    return values.reshape(1, 1, *shape), inside.reshape(1, 1, *shape).to(values.dtype)


def _ncc(f: torch.Tensor, m: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    total = w.sum().clamp(min=1.0)
    mf, mm = (w * f).sum() / total, (w * m).sum() / total
    cov = (w * (f - mf) * (m - mm)).sum() / total
    var_f = (w * (f - mf) ** 2).sum() / total
    var_m = (w * (m - mm) ** 2).sum() / total
    return cov / torch.sqrt(var_f * var_m + 1e-12)


def _mi(f: torch.Tensor, m: torch.Tensor, w: torch.Tensor, bins: int) -> torch.Tensor:
    centres = torch.linspace(0, 1, bins, dtype=f.dtype)
    width = 1.0 / (bins - 1)

    def parzen(x: torch.Tensor) -> torch.Tensor:
        weights = torch.exp(-0.5 * ((x.reshape(-1, 1) - centres) / width) ** 2)
        return weights / weights.sum(dim=1, keepdim=True)

    joint = (parzen(f) * w.reshape(-1, 1)).T @ parzen(m.clamp(0, 1))
    joint = joint / joint.sum().clamp(min=1e-12)
    pf, pm = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    return (joint * torch.log((joint + 1e-12) / (pf @ pm + 1e-12))).sum()


def _similarity(level: _Level, matrix: torch.Tensor, metric: str, bins: int) -> torch.Tensor:
    """Higher is better; only where the moving image is defined."""
    m, w = _sample(level, matrix)
    if w.sum() < 0.05 * w.numel():
        return torch.zeros((), dtype=torch.float64) + (m.sum() * 0)
    if metric == "ncc":
        return _ncc(level.fixed, m, w)
    if metric == "mi":
        return _mi(level.fixed, m, w, bins)
    return lcc(level.fixed * w, m * w)


def _centre_of_mass(volume: Volume) -> np.ndarray:
    """Intensity centre of mass of a volume in its voxel indices."""
    weights = _normalised(volume.data)
    grid = np.indices(volume.shape, dtype=np.float64)
    total = max(float(weights.sum()), 1e-12)
    return np.array([(g * weights).sum() / total for g in grid])


def _initial(moving: Volume, fixed: Volume, scale: float) -> _Params:
    """Identity rotation about the fixed centre of mass, shifted onto the moving one."""
    n = fixed.ndim
    spacing = np.asarray(fixed.spacing)
    centre = _centre_of_mass(fixed) * spacing
    com_world = moving.affine @ np.array(
        [*_centre_of_mass(moving), *[0.0] * (3 - moving.ndim), 1.0]
    )
    in_fixed = (np.linalg.inv(fixed.affine) @ com_world)[:n] * spacing
    return _Params(
        angles=torch.zeros(1 if n == 2 else 3, dtype=torch.float64, requires_grad=True),
        linear=torch.zeros(n, n, dtype=torch.float64, requires_grad=True),
        shift=torch.from_numpy((in_fixed - centre) / scale).requires_grad_(True),
        centre=torch.from_numpy(centre),
        scale=scale,
    )


def _optimise(
    level: _Level, params: _Params, stage: str, steps: int, options: AffineOptions
) -> list[float]:
    """Adam on the stage's parameters at one level; returns the similarity per step."""
    free = [params.angles, params.shift] if stage == "rigid" else [params.linear, params.shift]
    optimiser = torch.optim.Adam(free, lr=options.lr)
    history = []
    for _ in range(steps):
        optimiser.zero_grad()
        score = _similarity(level, params.matrix(), options.metric, options.bins)
        (-score).backward()
        optimiser.step()
        history.append(float(score.detach()))
    return history


def affine_align(
    moving: Volume, fixed: Volume, options: AffineOptions | None = None
) -> AffineResult:
    """Rigid then affine alignment of ``moving`` onto ``fixed`` (see the module doc).

    Args:
        moving, fixed: images with their voxel-to-world affines, both 2-D or both 3-D.
        options: :class:`AffineOptions` (default: NCC, levels 4/2/1).
    Returns:
        :class:`AffineResult`.
    """
    options = options or AffineOptions()
    if moving.ndim != fixed.ndim:
        raise DataError(f"affine: a {moving.ndim}-D moving and a {fixed.ndim}-D fixed image")
    t0 = time.perf_counter()
    params = _initial(moving, fixed, options.translation_scale)
    finest = _pyramid(moving, fixed, 1)
    with torch.no_grad():
        before = float(_similarity(finest, params.matrix(), options.metric, options.bins))
    history: list[float] = []
    for factor, steps in zip(options.levels, options.iterations, strict=True):
        level = finest if factor == 1 else _pyramid(moving, fixed, factor)
        for stage in options.stages:
            history += _optimise(level, params, stage, steps, options)
    with torch.no_grad():
        matrix = params.matrix()
        after = float(_similarity(finest, matrix, options.metric, options.bins))
    result = matrix.detach().numpy()
    return AffineResult(
        matrix=result,
        voxels=voxel_matrix(moving, fixed, result),
        world=_world(fixed, result),
        before=before,
        after=after,
        seconds=time.perf_counter() - t0,
        metric=options.metric,
        history=history,
    )


def _grid_volume(image: np.ndarray, spacing: tuple[float, ...]) -> Volume:
    """A pair's array as a Volume with a diagonal affine."""
    n = image.ndim
    return Volume(image, np.diag([*spacing, *[1.0] * (3 - n), 1.0]), tuple(spacing))


class AffineFirst:
    """Any registration method preceded by :func:`affine_align` (pairs on one grid).

    Each pair's moving image is aligned affinely, resampled onto the fixed grid, and
    registered by ``method``; the result's ``disp`` is the composite displacement
    ``A(x + d(x)) - x`` (voxels), so metrics and warped labels see both stages
    (``velocity`` and ``inverse_disp`` are left out: the composite has neither).
    """

    def __init__(self, method: Registrar, options: AffineOptions, spacing: tuple[float, ...]):
        self.method = method
        self.options = options
        self.spacing = spacing
        self.name = method.name
        self.batch_size = method.batch_size
        self.last_affines: list[AffineResult] = []

    def __getattr__(self, name: str) -> Any:  # model, spacing ... of the method
        return getattr(self.__dict__["method"], name)

    def prepare(self, pairs: Sequence[Any]) -> bool:
        """The method's own ``prepare`` (adaptation) on the affinely aligned pairs."""
        prepare = getattr(self.method, "prepare", None)
        if prepare is None:
            return False
        aligned = []
        for pair in pairs:
            moving = torch.from_numpy(np.asarray(pair.moving))[None, None]
            fixed = torch.from_numpy(np.asarray(pair.fixed))[None, None]
            image = self._aligned(moving, fixed)[0][0, 0].numpy().astype(np.float32)
            aligned.append(replace(pair, moving=image, moving_labels=None, fixed_labels=None))
        return bool(prepare(aligned))

    def _aligned(
        self, moving: torch.Tensor, fixed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each pair's moving image resampled by its affine stage, and the voxel maps."""
        spacing = tuple(self.spacing[: moving.ndim - 2])
        self.last_affines = [
            affine_align(
                _grid_volume(moving[i, 0].detach().cpu().double().numpy(), spacing),
                _grid_volume(fixed[i, 0].detach().cpu().double().numpy(), spacing),
                self.options,
            )
            for i in range(moving.shape[0])
        ]
        to_moving = torch.stack([torch.from_numpy(a.voxels) for a in self.last_affines])
        return _affine_warp(moving.double(), to_moving).to(moving.dtype), to_moving

    def register(
        self, moving: torch.Tensor, fixed: torch.Tensor, *, mask: torch.Tensor | None = None
    ) -> RegistrationResult:
        t0 = time.perf_counter()
        n = max(moving.shape[0], fixed.shape[0])
        moving, fixed = moving.expand(n, *moving.shape[1:]), fixed.expand(n, *fixed.shape[1:])
        aligned, to_moving = self._aligned(moving.cpu(), fixed.cpu())
        inner = self.method.register(aligned, fixed, mask=mask)
        disp = _compose(to_moving.to(inner.disp), inner.disp)
        return RegistrationResult(
            moved=warp(moving, disp, padding_mode="border"),
            disp=disp,
            inverse_disp=None,
            velocity=None,
            jacobian_det=jacobian_det(disp),
            z=inner.z,
            seconds=time.perf_counter() - t0,
            iterations=inner.iterations,
        )


def _affine_warp(moving: torch.Tensor, to_moving: torch.Tensor) -> torch.Tensor:
    """Each pair's moving image ``(N, 1, *S)`` resampled at ``A p`` (0 outside)."""
    zero = moving.new_zeros(moving.shape[0], moving.ndim - 2, *moving.shape[2:])
    disp = _compose(to_moving.to(moving), zero)
    return warp(moving, disp, padding_mode="zeros")


def _compose(to_moving: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """``A(p + d(p)) - p`` for voxel maps ``A`` ``(N, ndim, ndim + 1)`` and displacements
    ``d`` ``(N, ndim, *S)``."""
    n = disp.shape[1]
    shape = disp.shape[2:]
    grid = torch.stack(
        torch.meshgrid(*(torch.arange(s, dtype=disp.dtype) for s in shape), indexing="ij")
    )
    points = (grid + disp).reshape(disp.shape[0], n, -1)
    mapped = to_moving[:, :, :n] @ points + to_moving[:, :, n:]
    return mapped.reshape(disp.shape) - grid
