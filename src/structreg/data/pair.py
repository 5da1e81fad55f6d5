"""The record every data source yields, and batching of records into tensors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError, InputError
from .labels import LabelTable


@dataclass
class Pair:
    """One registration pair on a common grid.

    Arrays have spatial shape ``S`` (``(H, W)`` or ``(D, H, W)``), no channel axis.

    Attributes:
        moving, fixed: ``S`` float32 images, intensities normalised (about [0, 1]).
        spacing: mm per voxel along each axis of ``S``.
        id: unique pair id (e.g. ``"patient001_slice05"``).
        subject: id of the subject/patient the pair comes from; splits group by it.
        group: class label (e.g. ``"NOR"``, ``"DCM"``, ``"dementia"``) or None.
        moving_labels, fixed_labels: ``S`` int16 label maps or None.
        mask: ``S`` uint8 region (1 inside) on the moving grid, or None.
        disp: ``(ndim, *S)`` float32 ground-truth displacement in voxels with
            ``fixed(x) ≈ moving(x + disp(x))`` (the field that warps moving onto
            fixed), or None when unknown.
        meta: free-form record (source files, preprocessing steps, affine, ...)
            needed to map results back to the original image grid; ``"split"``
            when the data assigns the pair to train/val/test itself.
        label_table: the :class:`~structreg.data.labels.LabelTable` naming the
            structures of the label maps, or None (structures ``label 1..K``).
    """

    moving: np.ndarray
    fixed: np.ndarray
    spacing: tuple[float, ...]
    id: str
    subject: str | None = None
    group: str | None = None
    moving_labels: np.ndarray | None = None
    fixed_labels: np.ndarray | None = None
    mask: np.ndarray | None = None
    disp: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    label_table: LabelTable | None = None

    def __post_init__(self) -> None:
        if self.moving.shape != self.fixed.shape:
            raise DataError(
                f"pair {self.id}: moving {self.moving.shape} and fixed "
                f"{self.fixed.shape} differ in shape"
            )
        if len(self.spacing) != self.moving.ndim:
            raise DataError(
                f"pair {self.id}: spacing {self.spacing} does not match a "
                f"{self.moving.ndim}-D image"
            )
        for name in ("moving_labels", "fixed_labels", "mask"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != self.moving.shape:
                raise DataError(
                    f"pair {self.id}: {name} shape {arr.shape} differs from "
                    f"image shape {self.moving.shape}"
                )
        if self.disp is not None and self.disp.shape != (self.moving.ndim, *self.moving.shape):
            raise DataError(
                f"pair {self.id}: disp shape {self.disp.shape} must be "
                f"{(self.moving.ndim, *self.moving.shape)}"
            )


def collate_pairs(pairs: Sequence[Pair]) -> dict[str, Any]:
    """Stack pairs into a batch of tensors.

    Returns a dict with ``moving``/``fixed`` ``(N, 1, *S)`` float32, and, when every
    pair has them, ``moving_labels``/``fixed_labels`` ``(N, 1, *S)`` int64, ``mask``
    ``(N, 1, *S)`` float32, ``disp`` ``(N, ndim, *S)`` float32; plus lists ``id``,
    ``subject``, ``group`` and ``spacing``. Missing optional entries are None.
    """
    import torch

    if not pairs:
        raise InputError("collate_pairs: empty batch")

    def stack(name: str, dtype: type[np.generic]) -> Any:
        arrays = [getattr(p, name) for p in pairs]
        if any(a is None for a in arrays):
            return None
        t = torch.from_numpy(np.stack(arrays).astype(dtype, copy=False))
        return t if name == "disp" else t.unsqueeze(1)

    return {
        "moving": stack("moving", np.float32),
        "fixed": stack("fixed", np.float32),
        "moving_labels": stack("moving_labels", np.int64),
        "fixed_labels": stack("fixed_labels", np.int64),
        "mask": stack("mask", np.float32),
        "disp": stack("disp", np.float32),
        "id": [p.id for p in pairs],
        "subject": [p.subject for p in pairs],
        "group": [p.group for p in pairs],
        "spacing": [tuple(p.spacing) for p in pairs],
    }
