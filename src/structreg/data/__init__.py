"""Data: NIfTI IO, preprocessing, ACDC / pairs.csv readers, built-in phantoms,
and the ``Pair`` record every loader yields."""

from .labels import BRAIN_LABELS, BRAIN_STRUCTURES, CARDIAC_LABELS, CARDIAC_STRUCTURES
from .pair import Pair, collate_pairs

__all__ = [
    "Pair",
    "collate_pairs",
    "BRAIN_LABELS",
    "BRAIN_STRUCTURES",
    "CARDIAC_LABELS",
    "CARDIAC_STRUCTURES",
]
