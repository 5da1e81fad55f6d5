"""Data: NIfTI IO, preprocessing, ACDC / pairs.csv readers, built-in phantoms,
and the ``Pair`` record every loader yields."""

from .pair import Pair, collate_pairs
from .labels import BRAIN_LABELS, BRAIN_STRUCTURES, CARDIAC_LABELS, CARDIAC_STRUCTURES

__all__ = ["Pair", "collate_pairs", "BRAIN_LABELS", "BRAIN_STRUCTURES", "CARDIAC_LABELS",
           "CARDIAC_STRUCTURES"]
