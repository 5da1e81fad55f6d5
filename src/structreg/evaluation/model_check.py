"""Measure a model's Dice on a described set of phantom pairs: the ``check`` of a
bundled model (``models.json``), which the test suite reproduces.

A check is a dict::

    {"data": "phantom:cardiac", "subjects": 250, "seed": 0, "split": "test",
     "structures": ["LV myocardium", ...], "refine": 0,
     "pairs": 50, "dice": {"LV myocardium": 0.937, ..., "mean": 0.946},
     "tolerance": 0.005}

``data``, ``subjects``, ``seed`` and ``split`` select the pairs exactly as
``structreg evaluate`` does (the model's grid); ``structures`` are the label-table
structures averaged into ``mean``; ``refine`` the per-pair refinement steps.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["measure_check"]


def measure_check(model: str | os.PathLike, check: dict[str, Any]) -> dict[str, Any]:
    """``check`` with ``pairs`` and ``dice`` measured for ``model`` (a run folder,
    model file or ``builtin:NAME``) on this machine, CPU, one process.

    Returns:
        A copy of ``check`` whose ``pairs`` is the number of pairs and ``dice`` maps
        each structure, and ``"mean"``, to its mean Dice over the pairs.
    """
    from ..core import metrics
    from ..data.spec import load_pairs
    from ..errors import InputError
    from ..methods.registry import build_method
    from ..training.run import model_data_settings
    from .evaluate import evaluate, structures_for, values

    settings = model_data_settings(model)
    pairs = load_pairs(
        check["data"],
        split=check.get("split", "test"),
        seed=int(check.get("seed", 0)),
        size=tuple(settings.size),
        spacing=tuple(settings.spacing),
        n_subjects=check.get("subjects"),
    )
    refine = int(check.get("refine", 0))
    spec = f"ours:{model}" + (f",refine={refine}" if refine else "")
    method = build_method(spec, device="cpu")
    structures = structures_for(pairs)
    wanted = list(check.get("structures") or structures)
    missing = [s for s in wanted if s not in structures]
    if missing:
        raise InputError(f"check structures {missing} are not in the data's label table")
    rows, _ = evaluate(pairs, [method], structures, progress=False)
    dice = {s: float(values(rows, method.name, metrics.dice_key(s)).mean()) for s in wanted}
    dice["mean"] = float(np.mean([dice[s] for s in wanted]))
    return {**check, "pairs": len(pairs), "dice": dice}
