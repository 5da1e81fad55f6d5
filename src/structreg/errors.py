"""The exceptions structreg raises for expected failures.

Every failure that a user can cause - a malformed image, a bad option, a
checkpoint that is not ours, data that does not fit the model - raises a
subclass of :class:`StructregError` with a one-line message that names the file
or setting at fault. The command line prints those as ``structreg: error: ...``
(exit status 1, or 2 for :class:`UsageError`); ``--debug`` adds the traceback.
Any other exception is a bug and keeps its traceback.

The classes also derive from the built-in exception a caller would expect
(``ValueError`` for bad values, ``TypeError`` for wrong types, ``ImportError``
for a missing optional package), so ``except ValueError`` keeps working.

| class | raised for |
|---|---|
| :class:`InputError` | bad arguments or values given to a function or command |
| :class:`ShapeError` | tensors of the wrong rank or shape |
| :class:`NonFiniteError` | tensors holding NaN or Inf (a :class:`ShapeError`) |
| :class:`TypeCheckError` | arguments of the wrong type or dtype |
| :class:`DataError` | images, label maps, CSV files or data sets that cannot be used |
| :class:`ConfigError` | invalid config files, keys or values |
| :class:`CheckpointError` | files that are not valid structreg checkpoints or runs |
| :class:`TrainingError` | training that cannot go on (diverged) |
| :class:`RunExistsError` | training into a folder that already holds a run, without resuming |
| :class:`MissingDependencyError` | an optional package a method needs is not installed |
| :class:`UsageError` | command-line usage (exit status 2) |
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "InputError",
    "MissingDependencyError",
    "NonFiniteError",
    "RunExistsError",
    "ShapeError",
    "StructregError",
    "StructregWarning",
    "TrainingError",
    "TypeCheckError",
    "UsageError",
]


class StructregError(Exception):
    """Base of every expected failure (one-line message)."""


class InputError(StructregError, ValueError):
    """A bad argument or value."""


class ShapeError(InputError):
    """A tensor of the wrong rank or shape, or holding NaN/Inf values."""


class NonFiniteError(ShapeError):
    """A tensor holding NaN or Inf values (in training: divergence)."""


class TypeCheckError(StructregError, TypeError):
    """An argument of the wrong type or dtype."""


class DataError(InputError):
    """An image, label map, CSV file or data set that cannot be used."""


class ConfigError(InputError):
    """An invalid config file, key or value."""


class CheckpointError(InputError):
    """A file or run folder that is not a valid structreg checkpoint."""


class TrainingError(StructregError, RuntimeError):
    """Training that cannot go on (diverged, refused resume)."""


class RunExistsError(StructregError, FileExistsError):
    """An output folder that already holds a training run."""


class MissingDependencyError(StructregError, ImportError):
    """An optional package a method needs is not installed."""


class UsageError(StructregError):
    """Command-line usage error (exit status 2)."""


class StructregWarning(UserWarning):
    """Something the user should know that does not stop the work (printed by the
    command line as ``structreg: warning: ...``)."""
