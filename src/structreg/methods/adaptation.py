"""Adaptation of a learned method to the cohort it registers (``adapt=N``).

A learned method built with ``adapt=N`` (``ours:MODEL,adapt=150``,
``voxelmorph:RUN,adapt=150``, ``structreg register --adapt 150``) has a ``prepare(pairs)``
step: before registering, it fine-tunes a copy of its network on every pair it is about
to register with its training objective and no labels
(:func:`structreg.training.adapt.adapt_model`: at most ``N`` steps, stopping when the
objective stops improving). The model file it was built from is never changed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..training.adapt import Adaptation, adapt_model

__all__ = ["adapt_registrar", "adapted_network", "check_adapt"]


def check_adapt(name: str, adapt: Any, source: str | os.PathLike | None) -> int:
    """``adapt`` as a step count (an int >= 0) that a method built from ``source`` can
    take; a one-line :class:`~structreg.errors.InputError` otherwise."""
    from ..errors import InputError

    if isinstance(adapt, bool) or not isinstance(adapt, int) or adapt < 0:
        raise InputError(f"{name}: adapt must be an int >= 0 (steps), got {adapt!r}")
    if adapt and source is None:
        raise InputError(f"{name}: adapt needs the model's file or run folder to start from")
    return adapt


def adapted_network(
    source: str | os.PathLike,
    pairs: Sequence[Any],
    steps: int,
    method: str,
    device: str,
) -> tuple[Any, Adaptation]:
    """A copy of ``source``'s network fine-tuned on ``pairs`` (at most ``steps``
    steps), loaded on ``device``; the run folder is temporary.

    Returns:
        ``(network, adaptation)``.
    """
    from ..training.checkpoint import load_model

    with tempfile.TemporaryDirectory(prefix="structreg-adapt-") as tmp:
        overrides = {"steps": steps, "device": device}
        adaptation = adapt_model(source, pairs, Path(tmp) / "run", overrides=overrides)
        network, _ = load_model(adaptation.run, device, method=method)
    return network, adaptation


def adapt_registrar(registrar: Any, pairs: Sequence[Any], method: str) -> bool:
    """The ``prepare(pairs)`` of a learned registrar with ``adapt``, ``source``,
    ``model`` and ``last_adaptation``: with ``adapt > 0``, its network is replaced by a
    copy fine-tuned on ``pairs`` (on the network's device). Returns whether it adapted."""
    if not registrar.adapt:
        return False
    assert registrar.source is not None
    device = str(next(registrar.model.parameters()).device)
    registrar.model, registrar.last_adaptation = adapted_network(
        registrar.source, pairs, registrar.adapt, method, device
    )
    return True
