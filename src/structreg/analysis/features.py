"""Explicit deformation features of registered pairs: the baseline that latent codes
are classified beside.

A pair's features are the area (2-D) or volume (3-D) ratios of its labelled
structures under the model's own registration: ``|warped moving labels = s| /
|moving labels = s|`` per structure ``s`` of the pair's label table. For a cardiac
end-diastole -> end-systole pair the blood-pool ratio is ``1 - EF``; for a brain pair
the ventricle ratio is the ventricles' growth.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..data.labels import LabelTable
from ..errors import DataError, InputError
from ..models.cvae import CVAERegistration

FEATURE_PREFIX = "feature"


def structure_ratios(
    labels: torch.Tensor, disp: torch.Tensor, table: LabelTable
) -> dict[str, np.ndarray]:
    """Area ratio of each structure of ``table`` under the pull-back ``disp``.

    Args:
        labels: ``(N, 1, *S)`` moving label maps (integer values).
        disp: ``(N, ndim, *S)`` pull-back displacement in voxels.
        table: the structures (a composite counts all of its values).
    Returns:
        structure name -> ``(N,)`` ratio ``|warped = s| / |labels = s|`` (NaN where the
        structure is absent from the moving labels).
    """
    from ..core.ops import warp

    moved = warp(labels.double(), disp.double(), mode="nearest").round()
    out = {}
    for name, values in table.structures.items():
        before = torch.zeros(labels.shape[0], dtype=torch.float64)
        after = torch.zeros_like(before)
        for v in values:
            before += (labels == v).flatten(1).sum(1).double()
            after += (moved == v).flatten(1).sum(1).double()
        ratio = after / before.clamp_min(1)
        ratio[before == 0] = float("nan")
        out[name] = ratio.numpy()
    return out


def deformation_features(
    model: CVAERegistration, pairs: Sequence, batch_size: int = 64
) -> dict[str, np.ndarray]:
    """Structure area ratios (:func:`structure_ratios`) of each pair under the model's
    one-pass registration (``z = μ``).

    Args:
        model: the CVAE (its device is used; eval mode).
        pairs: :class:`structreg.data.pair.Pair` s with moving labels and one label
            table, on the model's grid.
        batch_size: pairs per forward pass.
    Returns:
        ``feature_<structure>`` -> ``(N,)`` float64.
    Raises:
        DataError: a pair without moving labels, or pairs with different label tables.
    """
    from ..methods.ours import CVAERegistrar

    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    table = _one_table(pairs)
    registrar = CVAERegistrar(model, batch_size=batch_size)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in table.structures}
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        m = torch.from_numpy(np.stack([p.moving for p in chunk]).astype(np.float32))[:, None]
        f = torch.from_numpy(np.stack([p.fixed for p in chunk]).astype(np.float32))[:, None]
        labels = torch.from_numpy(np.stack([p.moving_labels for p in chunk]).astype(np.int64))
        disp = registrar.register(m, f).disp.detach().cpu()
        for name, ratio in structure_ratios(labels[:, None], disp, table).items():
            parts[name].append(ratio)
    return {f"{FEATURE_PREFIX}_{_column(k)}": np.concatenate(v) for k, v in parts.items()}


def _one_table(pairs: Sequence) -> LabelTable:
    """The label table shared by all ``pairs`` (each with moving labels)."""
    if not pairs:
        raise DataError("no pairs to measure deformation features on")
    if any(p.moving_labels is None for p in pairs):
        raise DataError("deformation features need the moving labels of every pair")
    tables = {None if p.label_table is None else p.label_table.to_text() for p in pairs}
    if len(tables) != 1:
        raise DataError("deformation features need one label table for all pairs")
    table = pairs[0].label_table
    if table is None:
        values = np.unique(np.concatenate([np.unique(p.moving_labels) for p in pairs]))
        table = LabelTable.numbered(int(v) for v in values)
    return table


def _column(name: str) -> str:
    """A structure name as a CSV column suffix (spaces -> underscores)."""
    return "_".join(name.split())
