"""structreg: learned diffeomorphic registration with a structured, low-dimensional
deformation encoding (conditional VAE + exponentiation layer).

The front door::

    import structreg
    r = structreg.register(moving, fixed, model="builtin:cardiac", spacing=(1.5, 1.5))
    r.moved, r.displacement, r.inverse, r.jacobian, r.code   # on the fixed grid
    r.warp(labels); r.save("out/")                            # the CLI's files

| name | what it is |
|---|---|
| :func:`register` | register two images (arrays, nibabel images or paths; 2-D or 3-D) |
| :func:`load_model` | a trained or bundled model as a :class:`Registrar` |
| :func:`adapt` | fine-tune a model on a cohort's own pairs, without labels |
| :func:`evaluate` | compare methods on a data set (Dice, folding, time per pair) |
| :class:`Registration` | what :func:`register` returns |
| :class:`Registrar` | the contract every registration method follows |
| :func:`thread_limit` | ``with structreg.thread_limit(1): ...``: CPU threads of a block |
| :class:`StructregError` | the base of every expected error (its subclasses below) |

The names are imported on first use, so ``import structreg`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "register": "structreg.api",
    "load_model": "structreg.api",
    "adapt": "structreg.api",
    "evaluate": "structreg.api",
    "as_volume": "structreg.api",
    "thread_limit": "structreg.core.threads",
    "Registration": "structreg.pipeline.registration",
    "Registrar": "structreg.methods.base",
    "RegistrationResult": "structreg.methods.base",
    "Volume": "structreg.io.nifti",
    "StructregError": "structreg.errors",
    "InputError": "structreg.errors",
    "DataError": "structreg.errors",
    "ConfigError": "structreg.errors",
    "CheckpointError": "structreg.errors",
    "ShapeError": "structreg.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'structreg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
