"""Real brain MRI slices of the repository's test corpus (``make data``) for the examples.

The corpus is built by ``tools/real_corpus.py`` from registry packages into
``.cache/real/corpus``: the MNI152 2009a template and a real subject's T1 (both in MNI
space, tissue labels CSF 1, GM 2, WM 3 by one k-means rule). Colin27 is held out of it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import real_corpus  # noqa: E402  (tools/ is not installed)

TISSUES = {1: "CSF", 2: "GM", 3: "WM"}


def axial_slice(subject: str, z_mm: float, labels: bool = False) -> nib.Nifti1Image:
    """The axial slice of corpus subject ``subject`` nearest to world ``z_mm`` (mm), as a
    one-slice NIfTI image ``H×W×1`` with its own affine; ``labels``: its tissue labels."""
    name = f"brain_{subject}_labels" if labels else f"brain_{subject}"
    image = nib.load(real_corpus.corpus_path(name))
    k = int(round(np.linalg.solve(image.affine, [0.0, 0.0, z_mm, 1.0])[2]))
    return image.slicer[:, :, k : k + 1]


def dice(a: np.ndarray, b: np.ndarray, label: int) -> float:
    """Dice overlap of ``label`` in two label maps of one shape."""
    x, y = a == label, b == label
    return float(2 * np.sum(x & y) / max(np.sum(x) + np.sum(y), 1))


def mean_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Dice over the tissues (CSF, GM, WM)."""
    return float(np.mean([dice(a, b, label) for label in TISSUES]))
