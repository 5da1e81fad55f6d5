"""The processed grid every loader, phantom and model defaults to (the paper's):
2-D images of 100 x 100 voxels at 2 mm. One place for these numbers; run folders
record the grid a model was trained on (:class:`structreg.training.run.DataSettings`)."""

from __future__ import annotations

__all__ = ["DEFAULT_SIZE", "DEFAULT_SPACING"]

DEFAULT_SIZE: tuple[int, int] = (100, 100)
"""Processed image size in voxels, ``(H, W)``."""

DEFAULT_SPACING: tuple[float, float] = (2.0, 2.0)
"""Processed voxel spacing in mm, ``(H, W)``."""
