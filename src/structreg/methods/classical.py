"""What the classical (optimisation, not learned) methods share.

* :func:`config_from_spec`: a spec's options as a config dataclass and a batch size
  (``lcc-demons``, ``ants-syn``, ``dipy-syn``).
* :class:`LibraryRegistrar`: the base of the adapters of libraries that register one
  pair at a time on NumPy arrays (``ants-syn``, ``dipy-syn``). An adapter states its
  registry name, its config dataclass, how it imports its library and how it
  registers one pair in our field convention (``(ndim, *S)`` float64 displacements in
  voxels, pull-back ``moved(x) = moving(x + disp(x))``); the base builds it from a
  spec, checks the library at construction and runs the batch pair by pair through
  :func:`~structreg.methods.base.register_pairwise` (our linear warp, det J, timing).
* :func:`channels_first`, :func:`missing_library` and :func:`check_level_iterations`:
  the field layout, the missing-package error and the per-level iterations check
  both adapters use.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import numpy as np
import torch

from ..errors import ConfigError, MissingDependencyError
from .base import RegistrationResult, register_pairwise
from .registry import MethodSpec, dataclass_defaults

__all__ = [
    "LibraryRegistrar",
    "channels_first",
    "check_level_iterations",
    "config_from_spec",
    "missing_library",
]

ConfigT = TypeVar("ConfigT")
RegistrarT = TypeVar("RegistrarT", bound="LibraryRegistrar[Any]")


def config_from_spec(
    spec: MethodSpec, config_type: type[ConfigT], batch_size: int
) -> tuple[ConfigT, int]:
    """``(config, batch_size)`` of the spec of a method that takes no target.

    Args:
        spec: the parsed spec; its options are the fields of the dataclass
            ``config_type`` and ``batch_size``.
        config_type: the method's config dataclass (its field defaults give the
            options' types).
        batch_size: the method's default ``batch_size``.
    Raises:
        InputError: a target, an unknown option or a value that does not convert.
        ConfigError: the config refuses the values.
    """
    spec.refuse_target()
    options = spec.converted({**dataclass_defaults(config_type), "batch_size": batch_size})
    batch_size = options.pop("batch_size", batch_size)
    return config_type(**options), batch_size


def missing_library(method: str, package: str) -> MissingDependencyError:
    """The one-line error of method ``method`` whose optional ``package`` is not installed."""
    return MissingDependencyError(
        f"method {method} needs {package}: pip install 'structreg[classical]'"
    )


def check_level_iterations(owner: str, name: str, counts: list[int]) -> None:
    """Raise :class:`ConfigError` unless ``counts`` (the config ``owner``'s field
    ``name``) lists iteration counts >= 0, one per resolution level (at least one)."""
    if not counts or any(i < 0 for i in counts):
        raise ConfigError(f"{owner}: {name} must list counts >= 0 (one per level), got {counts}")


def channels_first(field: Any) -> np.ndarray:
    """A library's ``(*S, ndim)`` displacement as our ``(ndim, *S)`` float64 array
    (component ``c`` along array axis ``c``: only the component axis moves)."""
    return np.moveaxis(np.asarray(field, np.float64), -1, 0)


class LibraryRegistrar(Generic[ConfigT]):
    """A registration method of a library that registers one pair at a time (CPU).

    Subclasses set :attr:`name` (the registry name), :attr:`config_type` and
    :meth:`import_library`, and implement :meth:`register_pair`.

    Args:
        config: the library's settings (default: ``config_type()``).
        batch_size: pairs per :meth:`register` call that suit callers.
    Raises:
        MissingDependencyError: the library is not installed.
    """

    name: str
    config_type: type[ConfigT]

    def __init__(self, config: ConfigT | None = None, batch_size: int = 8) -> None:
        self.config = config or self.config_type()
        self.batch_size = batch_size
        self.import_library()

    @staticmethod
    def import_library() -> Any:
        """The library (what the subclass needs of it), or :class:`MissingDependencyError`."""
        raise NotImplementedError

    @classmethod
    def from_spec(cls: type[RegistrarT], spec: MethodSpec, device: str) -> RegistrarT:
        """The registrar of a spec (the ``config_type`` fields and ``batch_size``, default
        8; no target); ``device`` is not used (the libraries run on the CPU)."""
        config, batch_size = config_from_spec(spec, cls.config_type, 8)
        return cls(config, batch_size=batch_size)

    def register_pair(
        self, moving: np.ndarray, fixed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(disp, inverse_disp or None)`` of one pair of ``S``-shaped float64 arrays:
        ``(ndim, *S)`` float64 in voxels, ``moved(x) = moving(x + disp(x))``."""
        raise NotImplementedError

    def register(
        self, moving: torch.Tensor, fixed: torch.Tensor, *, mask: torch.Tensor | None = None
    ) -> RegistrationResult:
        """Register ``moving`` ``(N, 1, *S)`` onto ``fixed`` pair by pair (a batch of 1
        broadcasts; ``mask`` is not used). ``moved`` is ``moving`` warped by ``disp``
        with our linear warp (border padding); ``velocity`` is None."""
        # the class's name: a label= option renames the instance, not the method
        return register_pairwise(type(self).name, moving, fixed, self.register_pair)
