"""PyTorch ``Dataset`` over :class:`Pair` records and deterministic subject-wise splits.

Batches come from ``DataLoader(PairDataset(pairs), collate_fn=collate_pairs)``
(see :func:`pair_loader`): ``moving``/``fixed`` ``(N, 1, *S)`` float32 and the
optional labels, mask and ground-truth displacement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import InputError
from .pair import Pair, collate_pairs

SPLITS = ("train", "val", "test")


class PairDataset(Dataset):
    """A list of :class:`Pair` as a map-style dataset; ``transform(pair) -> Pair`` is optional."""

    def __init__(self, pairs: Sequence[Pair], transform: Callable[[Pair], Pair] | None = None):
        self.pairs = list(pairs)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Pair:
        pair = self.pairs[index]
        return self.transform(pair) if self.transform is not None else pair


def pair_loader(
    pairs: Sequence[Pair] | Dataset,
    *,
    batch_size: int = 50,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DataLoader:
    """A ``DataLoader`` yielding :func:`collate_pairs` batches; shuffling is seeded."""
    dataset = pairs if isinstance(pairs, Dataset) else PairDataset(pairs)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        collate_fn=collate_pairs,
        generator=generator,
        num_workers=num_workers,
    )


def subject_of(pair: Pair) -> str:
    """The split unit of a pair: its ``subject``, or its ``id`` when the subject is unknown."""
    return pair.subject if pair.subject is not None else pair.id


def split_counts(n_subjects: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Numbers of validation and test subjects (each >= 1 when its fraction is > 0 and
    at least one training subject remains)."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise InputError(
            f"val_fraction {val_fraction} and test_fraction {test_fraction} must be "
            f"in [0, 1) with a sum below 1"
        )
    n_test = int(round(n_subjects * test_fraction))
    n_val = int(round(n_subjects * val_fraction))
    if test_fraction > 0 and n_test == 0 and n_subjects - n_val >= 2:
        n_test = 1
    if val_fraction > 0 and n_val == 0 and n_subjects - n_test >= 2:
        n_val = 1
    return n_val, n_test


def _stratified_order(subject_groups: dict[str, str], seed: int) -> list[str]:
    """Subjects ordered so that every prefix holds the groups in about their proportions.

    Within each group the subjects are shuffled (seeded); the ``i``-th of a group of
    ``n`` gets the key ``(i + u) / n`` with a random ``u`` in [0, 1), and the keys
    are sorted.
    """
    rng = np.random.default_rng(seed)
    members: dict[str, list[str]] = {}
    for subject in sorted(subject_groups):
        members.setdefault(subject_groups[subject], []).append(subject)
    keys = {}
    for group in sorted(members):
        names = members[group]
        for rank, index in enumerate(rng.permutation(len(names))):
            keys[names[index]] = (rank + rng.random()) / len(names)
    return sorted(keys, key=lambda s: (keys[s], s))


def split_by_subject(
    pairs: Sequence[Pair], seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2
) -> dict[str, list[Pair]]:
    """Deterministic train/val/test split that never separates a subject's pairs.

    Subjects (:func:`subject_of`) are stratified by ``group`` when known. The result
    depends only on the set of subjects, their groups and ``seed`` (not on the
    order of ``pairs``); pairs keep their input order within each split.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``.
    """
    groups: dict[str, str] = {}
    for pair in pairs:
        groups.setdefault(subject_of(pair), "" if pair.group is None else str(pair.group))
    order = _stratified_order(groups, seed)
    n_val, n_test = split_counts(len(order), val_fraction, test_fraction)
    assigned = {s: "test" for s in order[:n_test]}
    assigned.update({s: "val" for s in order[n_test : n_test + n_val]})
    out: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    for pair in pairs:
        out[assigned.get(subject_of(pair), "train")].append(pair)
    return out
