"""ANTs SyN (through ANTsPy) as a registration method: an optional classical baseline.

Each pair is registered by ``ants.registration`` (symmetric normalisation, by
default SyN alone with the neighbourhood cross-correlation metric). The images
are handed over as ANTs images with spacing 1, origin 0 and identity direction,
so that ANTs' physical space is our voxel space. ANTs' forward transforms (the
``Warp`` field and the identity or affine matrices before it) are composed into
one displacement field on the fixed grid with ``ants.apply_transforms(...,
compose=...)``, and that field is our ``disp`` as it stands:

* ANTsPy keeps the numpy axis order as ITK's index order (numpy axis ``c`` is
  ITK index ``i, j, k``), and with identity direction and spacing 1 the vector
  component ``c`` of ANTs' (physical, LPS) displacement moves along ITK index
  axis ``c``: so channel ``c`` moves along ``S[c]``, in voxels, no sign flip;
* an ITK displacement field maps a fixed point to a moving point,
  ``T(x) = x + u(x)``, and the moving image is resampled at ``T(x)``: the same
  pull-back as ours, ``moved(x) = moving(x + disp(x))``.

``tests/methods/test_classical.py`` checks this: warping with our ``warp`` and
``disp`` reproduces ANTs' own warped image. ``moved`` is ours (linear, border
padding) so that it is consistent with ``disp``; the inverse comes from ANTs'
inverse transforms (``InverseWarp``) when the transform has one.

``antspyx`` is imported only when a registration runs (``pip install
'structreg[classical]'``), so structreg imports without it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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

_THREADS_ENV = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"


@dataclass
class AntsSynConfig:
    """Parameters of ANTs SyN (ANTsPy ``ants.registration`` argument in brackets).

    Attributes:
        transform: ANTs' ``type_of_transform`` (``SyNOnly``: SyN without the
            rigid or affine stages; any ANTs type works, its linear part is
            composed into ``disp``).
        metric: SyN similarity metric (``syn_metric``: ``CC``, ``mattes``,
            ``meansquares``, ``demons``).
        radius: the metric's parameter (``syn_sampling``): CC window radius in
            voxels, or the number of histogram bins for ``mattes``.
        iterations: iterations per level, coarsest first (``reg_iterations``);
            the levels shrink the images by ``2**(levels - 1 - level)`` and smooth
            them with σ = ``levels - 1 - level`` voxels (ANTsPy's rule).
        grad_step: gradient step (``grad_step``).
        flow_sigma: variance (voxels²) of the update-field smoothing (``flow_sigma``).
        total_sigma: variance (voxels²) of the total-field smoothing (``total_sigma``).
        threads: ITK threads (the ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``
            environment variable during the call). ITK reads it once per process,
            at its first multithreaded work, so the first ANTs call of a process
            fixes the thread count for the later ones.
        seed: ANTs' random seed (``--random-seed``), for reproducible runs.
        defaults: use ANTs' own defaults for ``transform`` (for ``SyNOnly``:
            Mattes mutual information with 32 bins, iterations 40/20/0, step 0.2,
            flow σ² 3, total σ² 0) instead of the settings above.
    """

    transform: str = "SyNOnly"
    metric: str = "CC"
    radius: int = 2
    iterations: list[int] = field(default_factory=lambda: [40, 20, 0])
    grad_step: float = 0.2
    flow_sigma: float = 3.0
    total_sigma: float = 0.0
    threads: int = 1
    seed: int = 1
    defaults: bool = False

    def __post_init__(self) -> None:
        check_level_iterations("AntsSynConfig", "iterations", self.iterations)
        if self.threads < 1:
            raise ConfigError(f"AntsSynConfig: threads must be >= 1, got {self.threads}")
        if self.radius < 1:
            raise ConfigError(f"AntsSynConfig: radius must be >= 1, got {self.radius}")
        if self.seed == 0:
            raise ConfigError("AntsSynConfig: seed must be a nonzero integer (ANTs' rule)")
        for name in ("grad_step", "flow_sigma", "total_sigma"):
            if getattr(self, name) < 0:
                raise ConfigError(f"AntsSynConfig: {name} must be >= 0")

    def registration_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``ants.registration`` beyond the images."""
        if self.defaults:
            return {"type_of_transform": self.transform}
        return {
            "type_of_transform": self.transform,
            "syn_metric": self.metric,
            "syn_sampling": self.radius,
            "reg_iterations": tuple(self.iterations),
            "grad_step": self.grad_step,
            "flow_sigma": self.flow_sigma,
            "total_sigma": self.total_sigma,
        }


def import_ants() -> Any:
    """The ``ants`` module, or :class:`MissingDependencyError` when antspyx is missing."""
    try:
        import ants
    except ImportError:
        raise missing_library("ants-syn", "antspyx") from None
    return ants


def _ants_image(ants: Any, array: np.ndarray) -> Any:
    """An ANTs image of an ``S``-shaped array with voxel = physical coordinates."""
    ndim = array.ndim
    return ants.from_numpy(
        np.ascontiguousarray(array, dtype=np.float32),
        origin=(0.0,) * ndim,
        spacing=(1.0,) * ndim,
        direction=np.eye(ndim),
    )


def _read_field(ants: Any, path: str) -> np.ndarray:
    """A displacement NIfTI written by ANTs as ``(ndim, *S)`` float64 (voxels, as we
    made physical space = voxel space)."""
    return channels_first(ants.image_read(path).numpy())


def _composed(
    ants: Any, reference: Any, source: Any, transforms: list[str], prefix: str
) -> np.ndarray:
    """The transforms (ANTs order) composed into one field on ``reference``'s grid."""
    invert = [t.endswith(".mat") for t in transforms]
    path = ants.apply_transforms(
        reference, source, transforms, whichtoinvert=invert, compose=prefix
    )
    if path is None:
        raise RuntimeError(f"ants-syn: ANTs did not write the composed field {prefix}*")
    return _read_field(ants, path)


@contextmanager
def _ants_settings(ants: Any, threads: int, seed: int) -> Iterator[None]:
    """Set ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` and ANTs' random seed for one call
    (``ants.registration`` reads the seed from ``ants.config`` at each call; ANTsPy
    versions without it run unseeded, which the dense CC metric does not need)."""
    env = os.environ.get(_THREADS_ENV)
    config: Any = getattr(ants, "config", None)
    seeded = hasattr(config, "_random_seed")
    old_seed = config._random_seed if seeded else None
    os.environ[_THREADS_ENV] = str(threads)
    if seeded:
        config._random_seed = seed
    try:
        yield
    finally:
        if env is None:
            os.environ.pop(_THREADS_ENV, None)
        else:
            os.environ[_THREADS_ENV] = env
        if seeded:
            config._random_seed = old_seed


def ants_syn_pair(
    moving: np.ndarray, fixed: np.ndarray, config: AntsSynConfig | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Register one pair with ANTs and return its transform in our convention.

    Args:
        moving, fixed: ``S``-shaped arrays (2-D or 3-D) on one grid.
        config: the ANTs settings.
    Returns:
        ``(disp, inverse_disp, warped)``: ``(ndim, *S)`` float64 displacement in
        voxels with ``moved(x) = moving(x + disp(x))``; the inverse transform's
        displacement (or None when ANTs has no inverse for ``config.transform``);
        ANTs' own ``S``-shaped warped moving image (float32, zero outside).
    Raises:
        InputError: ANTs refuses the settings (an unknown transform, say).
    """
    config = config or AntsSynConfig()
    ants = import_ants()
    fixed_img, moving_img = _ants_image(ants, fixed), _ants_image(ants, moving)
    workdir = tempfile.mkdtemp(prefix="structreg-ants-")
    try:
        with _ants_settings(ants, config.threads, config.seed):
            try:
                out = ants.registration(
                    fixed_img,
                    moving_img,
                    outprefix=os.path.join(workdir, "syn_"),
                    **config.registration_kwargs(),
                )
            except ValueError as err:
                raise InputError(f"method ants-syn: ANTs refused the settings: {err}") from None
            disp = _composed(
                ants,
                fixed_img,
                moving_img,
                list(out["fwdtransforms"]),
                os.path.join(workdir, "fwd_"),
            )
            inverse_list = list(out["invtransforms"])
            has_inverse = all(t.endswith((".mat", "InverseWarp.nii.gz")) for t in inverse_list)
            inverse = (
                _composed(ants, moving_img, fixed_img, inverse_list, os.path.join(workdir, "inv_"))
                if has_inverse
                else None
            )
        warped = out["warpedmovout"].numpy().astype(np.float32)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return disp, inverse, warped


class AntsSyN(LibraryRegistrar[AntsSynConfig]):
    """ANTs SyN as a registration method (CPU; one ANTs registration per pair).

    Args:
        config: the ANTs settings.
        batch_size: pairs per :meth:`register` call that suit callers.
    """

    name = "ants-syn"
    config_type = AntsSynConfig
    import_library = staticmethod(import_ants)

    def register_pair(
        self, moving: np.ndarray, fixed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(disp, inverse_disp or None)`` of one pair (see :func:`ants_syn_pair`)."""
        disp, inverse, _ = ants_syn_pair(moving, fixed, self.config)
        return disp, inverse


add_method(
    "ants-syn",
    "ANTs SyN (antspyx; pip install 'structreg[classical]'), CC metric by default; "
    "options: the AntsSynConfig fields, e.g. iterations=40/20/0,radius=2, or defaults=true",
)(AntsSyN.from_spec)
