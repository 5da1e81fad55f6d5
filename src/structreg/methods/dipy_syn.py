"""DIPY's SyN as a registration method: an optional classical baseline.

Each pair is registered by DIPY's ``SymmetricDiffeomorphicRegistration`` with the
local cross-correlation metric ``CCMetric``, with identity grid-to-world
matrices (DIPY's world space is our voxel space) and no pre-alignment. The
resulting ``DiffeomorphicMap`` warps the moving image onto the static (fixed)
grid with ``mapping.transform(moving)``, which samples ``moving`` at
``x + mapping.get_forward_field()[x]``. That field is our ``disp`` as it stands:
shape ``(*S, ndim)`` with component ``c`` along array axis ``c``, in voxels (the
world units here), the pull-back ``moved(x) = moving(x + disp(x))``; only the
component axis moves to the front. ``get_backward_field()`` (which
``transform_inverse`` uses to warp the fixed image onto the moving grid) is the
inverse displacement. ``tests/methods/test_classical.py`` checks this against
DIPY's own warped image.

``dipy`` is imported only when a registration runs (``pip install
'structreg[classical]'``), so structreg imports without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from .classical import (
    LibraryRegistrar,
    channels_first,
    check_level_iterations,
    missing_library,
)
from .registry import add_method


@dataclass
class DipySynConfig:
    """Parameters of DIPY SyN (DIPY's argument names, units in voxels).

    Attributes:
        level_iters: iterations per level of the Gaussian pyramid, coarsest first
            (the number of entries is the number of levels).
        radius: half-width of the CC window (the window is ``2 * radius + 1`` voxels).
        sigma_diff: σ of the Gaussian smoothing of the update field (voxels).
        step_length: length of the largest update vector per iteration (voxels).
        ss_sigma_factor: scale-space smoothing, σ = ``ss_sigma_factor * 2**level``.
        opt_tol: stop a level when the energy's estimated slope falls below this.
        inv_iter: iterations of the displacement-field inversion.
    """

    level_iters: list[int] = field(default_factory=lambda: [100, 50, 25])
    radius: int = 4
    sigma_diff: float = 2.0
    step_length: float = 0.25
    ss_sigma_factor: float = 0.2
    opt_tol: float = 1e-5
    inv_iter: int = 20

    def __post_init__(self) -> None:
        check_level_iterations("DipySynConfig", "level_iters", self.level_iters)
        if self.radius < 1 or self.inv_iter < 0:
            raise ConfigError("DipySynConfig: radius must be >= 1 and inv_iter >= 0")
        for name in ("sigma_diff", "step_length", "ss_sigma_factor"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"DipySynConfig: {name} must be > 0")


def import_dipy_syn() -> tuple[Any, Any, Any]:
    """``(SymmetricDiffeomorphicRegistration, CCMetric, VerbosityLevels)`` from DIPY, or
    :class:`MissingDependencyError` when dipy is missing."""
    try:
        from dipy.align import VerbosityLevels
        from dipy.align.imwarp import SymmetricDiffeomorphicRegistration
        from dipy.align.metrics import CCMetric
    except ImportError:
        raise missing_library("dipy-syn", "dipy") from None
    return SymmetricDiffeomorphicRegistration, CCMetric, VerbosityLevels


def dipy_syn_map(moving: np.ndarray, fixed: np.ndarray, config: DipySynConfig | None = None) -> Any:
    """DIPY's ``DiffeomorphicMap`` of one pair (static = ``fixed``), identity affines.

    Args:
        moving, fixed: ``S``-shaped arrays (2-D or 3-D) on one grid.
    Raises:
        InputError: DIPY refuses the pair (e.g. its coarsest pyramid level is not
            larger than the CC window, ``2 * radius + 1`` voxels).
    """
    config = config or DipySynConfig()
    registration, cc_metric, verbosity = import_dipy_syn()
    metric = cc_metric(fixed.ndim, sigma_diff=config.sigma_diff, radius=config.radius)
    sdr = registration(
        metric,
        level_iters=list(config.level_iters),
        step_length=config.step_length,
        ss_sigma_factor=config.ss_sigma_factor,
        opt_tol=config.opt_tol,
        inv_iter=config.inv_iter,
    )
    sdr.verbosity = verbosity.NONE
    try:
        return sdr.optimize(np.asarray(fixed, np.float64), np.asarray(moving, np.float64))
    except ValueError as err:  # e.g. the coarsest level is smaller than the CC window
        raise InputError(
            f"method dipy-syn: DIPY refused the pair or settings ({err}); "
            f"for small images use fewer levels (level_iters) or a smaller radius"
        ) from None


def dipy_syn_pair(
    moving: np.ndarray, fixed: np.ndarray, config: DipySynConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Register one pair with DIPY and return its transform in our convention.

    Args:
        moving, fixed: ``S``-shaped arrays (2-D or 3-D) on one grid.
    Returns:
        ``(disp, inverse_disp)``: ``(ndim, *S)`` float64 displacements in voxels,
        ``moved(x) = moving(x + disp(x))`` and its inverse.
    """
    return map_fields(dipy_syn_map(moving, fixed, config))


def map_fields(mapping: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(disp, inverse_disp)`` of a DIPY ``DiffeomorphicMap`` made with identity
    affines and no pre-alignment, as ``(ndim, *S)`` float64 arrays in voxels.

    ``disp`` is the field ``mapping.transform`` samples with (``moved(x) =
    moving(x + disp(x))``, component ``c`` along array axis ``c``), ``inverse_disp``
    the one ``mapping.transform_inverse`` samples with.
    """
    forward, backward = mapping.get_forward_field(), mapping.get_backward_field()
    return channels_first(forward), channels_first(backward)


class DipySyN(LibraryRegistrar[DipySynConfig]):
    """DIPY SyN as a registration method (CPU; one DIPY registration per pair).

    Args:
        config: the DIPY settings.
        batch_size: pairs per :meth:`register` call that suit callers.
    """

    name = "dipy-syn"
    config_type = DipySynConfig
    import_library = staticmethod(import_dipy_syn)

    def register_pair(
        self, moving: np.ndarray, fixed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(disp, inverse_disp)`` of one pair (see :func:`dipy_syn_pair`)."""
        return dipy_syn_pair(moving, fixed, self.config)


add_method(
    "dipy-syn",
    "DIPY SyN with the CC metric (dipy; pip install 'structreg[classical]'); "
    "options: the DipySynConfig fields, e.g. level_iters=100/50/25,radius=4",
)(DipySyN.from_spec)
