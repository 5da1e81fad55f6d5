"""Preprocessed pairs on disk, streamed during training (``--data cache:DIR``).

``structreg data cache --data SPEC --out DIR`` loads and preprocesses a data set
once and writes, for ``N`` pairs of spatial shape ``S``::

    DIR/pairs.json          # version, grid, per-pair id/subject/group/split/spacing,
                            # the label table, the source settings, a content digest
    DIR/moving.npy          # (N, *S) float32
    DIR/fixed.npy           # (N, *S) float32
    DIR/moving_labels.npy   # (N, *S) int16   (when every pair has labels)
    DIR/fixed_labels.npy    # (N, *S) int16
    DIR/mask.npy            # (N, *S) uint8   (when every pair has a mask)
    DIR/disp.npy            # (N, ndim, *S) float32 (ground truth, when known)

Format: plain ``.npy`` files read as memory maps (``numpy.load(mmap_mode="r")``).
One pair is one contiguous slab of each file, so reading a batch is a few
sequential reads served by the operating system's page cache, shared between
the DataLoader's worker processes and between DDP ranks on one machine, with no
decompression cost and no dependency beyond NumPy. A chunked, compressed store
(zarr) would save disk for label maps but cost CPU on every read of every epoch;
the pairs here are read whole, so chunking buys nothing.

The cache is written into a temporary sibling folder and renamed into place, so
a killed ``data cache`` leaves no half-written cache. Each pair keeps the split
the source assigned it (the data's own, or the subject-wise split of ``--seed``),
so a cache has its own split (``has_own_split``) and a training on it validates
on the same pairs whatever the process count.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, InputError
from .labels import LabelTable
from .pair import Pair

__all__ = [
    "CACHE_VERSION",
    "CachedPairs",
    "PairCache",
    "open_cache",
    "write_cache",
]

CACHE_VERSION = 1
INDEX = "pairs.json"
# array name -> dtype on disk
ARRAYS: dict[str, type[np.generic]] = {
    "moving": np.float32,
    "fixed": np.float32,
    "moving_labels": np.int16,
    "fixed_labels": np.int16,
    "mask": np.uint8,
    "disp": np.float32,
}
# the dtype of each array in a training batch (as collate_pairs makes it)
BATCH_DTYPES: dict[str, type[np.generic]] = {
    "moving": np.float32,
    "fixed": np.float32,
    "moving_labels": np.int64,
    "fixed_labels": np.int64,
    "mask": np.float32,
    "disp": np.float32,
}


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def write_cache(
    pairs: Sequence[Pair],
    out: str | os.PathLike,
    *,
    splits: Sequence[str],
    source: dict[str, Any] | None = None,
) -> Path:
    """Write ``pairs`` (all of one shape) to a new cache folder ``out``.

    Args:
        splits: each pair's split (``train``/``val``/``test``).
        source: how the pairs were made (data spec, seed, grid), recorded.
    Returns:
        ``out`` as a path. Refuses an existing non-empty ``out``.
    """
    out = Path(out)
    if not pairs:
        raise DataError("data cache: no pairs to write")
    if len(splits) != len(pairs):
        raise InputError("data cache: one split per pair is needed")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"data cache: {out} exists and is not empty; choose a new folder")
    shape = tuple(pairs[0].moving.shape)
    for p in pairs:
        if tuple(p.moving.shape) != shape:
            raise DataError(
                f"data cache: pair {p.id} has shape {tuple(p.moving.shape)}, others {shape}"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        digest = hashlib.sha256()
        written = []
        for name, dtype in ARRAYS.items():
            arrays = [getattr(p, name) for p in pairs]
            if any(a is None for a in arrays):
                continue
            target = np.lib.format.open_memmap(
                tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=(len(pairs), *arrays[0].shape)
            )
            for i, a in enumerate(arrays):
                target[i] = np.asarray(a).astype(dtype, copy=False)
            target.flush()
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(target).tobytes())
            del target
            written.append(name)
        table = pairs[0].label_table
        index = {
            "version": CACHE_VERSION,
            "n": len(pairs),
            "shape": list(shape),
            "arrays": written,
            "digest": digest.hexdigest(),
            "label_table": table.to_text() if isinstance(table, LabelTable) else None,
            "source": _json_safe(source or {}),
            "pairs": [
                {
                    "id": p.id,
                    "subject": p.subject,
                    "group": p.group,
                    "split": split,
                    "spacing": [float(s) for s in p.spacing],
                    "meta": _json_safe(p.meta),
                }
                for p, split in zip(pairs, splits, strict=True)
            ],
        }
        (tmp / INDEX).write_text(json.dumps(index, indent=1) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


@dataclass(frozen=True)
class PairCache:
    """An opened cache folder (see the module docstring)."""

    root: Path
    index: dict[str, Any]

    @property
    def n(self) -> int:
        return int(self.index["n"])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.index["shape"])

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(float(s) for s in self.index["pairs"][0]["spacing"])

    @property
    def arrays(self) -> tuple[str, ...]:
        return tuple(self.index["arrays"])

    @property
    def digest(self) -> str:
        """SHA-256 of every array's bytes, computed when the cache was written."""
        return str(self.index["digest"])

    @property
    def ids(self) -> list[str]:
        return [str(p["id"]) for p in self.index["pairs"]]

    def label_table(self) -> LabelTable | None:
        from .labels import read_label_table_text

        text = self.index.get("label_table")
        return read_label_table_text(text, str(self.root / INDEX)) if text else None

    def indices(self, split: str, n_subjects: int | None = None) -> list[int]:
        """The pairs of one split (``all``: every pair), in cache order; with
        ``n_subjects``, only those of the cache's first ``n_subjects`` subjects."""
        records = self.index["pairs"]
        keep = None
        if n_subjects is not None:
            keep = set(list(dict.fromkeys(r["subject"] for r in records))[:n_subjects])
        return [
            i
            for i, r in enumerate(records)
            if split in ("all", r["split"]) and (keep is None or r["subject"] in keep)
        ]

    def pairs(self, indices: Sequence[int] | None = None) -> list[Pair]:
        """The pairs at ``indices`` (default all) read into memory as :class:`Pair`."""
        indices = list(range(self.n)) if indices is None else list(indices)
        maps = {name: np.load(self.root / f"{name}.npy", mmap_mode="r") for name in self.arrays}
        table = self.label_table()
        out = []
        for i in indices:
            rec = self.index["pairs"][i]
            arrays = {name: np.array(maps[name][i]) for name in self.arrays}
            meta = dict(rec.get("meta") or {})
            meta["split"] = rec["split"]
            meta["cache"] = str(self.root)
            out.append(
                Pair(
                    spacing=tuple(float(s) for s in rec["spacing"]),
                    id=str(rec["id"]),
                    subject=rec.get("subject"),
                    group=rec.get("group"),
                    meta=meta,
                    label_table=table,
                    **arrays,
                )
            )
        return out

    def dataset(self, indices: Sequence[int], keys: Sequence[str]) -> CachedPairs:
        """A streamed :class:`CachedPairs` over ``indices`` giving ``keys``."""
        missing = [k for k in keys if k not in self.arrays]
        if missing:
            raise DataError(f"{self.root}: the cache holds no {', '.join(missing)}")
        return CachedPairs(self, list(indices), tuple(keys))


def open_cache(root: str | os.PathLike) -> PairCache:
    """Open a cache folder written by :func:`write_cache` (checks its index and files)."""
    root = Path(root)
    path = root / INDEX
    if not path.is_file():
        raise FileNotFoundError(f"{root} is not a structreg data cache (no {INDEX})")
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg})") from exc
    if index.get("version") != CACHE_VERSION:
        raise DataError(
            f"{path}: cache version {index.get('version')!r}, this structreg reads "
            f"{CACHE_VERSION}; write the cache again"
        )
    cache = PairCache(root, index)
    for name in cache.arrays:
        file = root / f"{name}.npy"
        if not file.is_file():
            raise DataError(f"{root}: {name}.npy is missing")
        arr = np.load(file, mmap_mode="r")
        if arr.shape[0] != cache.n or arr.dtype != ARRAYS[name]:
            raise DataError(
                f"{file}: holds {arr.shape} {arr.dtype}, the index says {cache.n} pairs of "
                f"{np.dtype(ARRAYS[name])}"
            )
    return cache


class CachedPairs:
    """A map-style dataset of cached pairs for a :class:`torch.utils.data.DataLoader`:
    item ``i`` is pair ``indices[i]`` as a dict of tensors shaped as one entry of
    :func:`~structreg.data.pair.collate_pairs` (``(1, *S)`` images; ``(ndim, *S)``
    displacement), plus ``index`` (``i``). The memory maps are opened lazily in each
    process, so worker processes never inherit an open file."""

    def __init__(self, cache: PairCache, indices: list[int], keys: tuple[str, ...]):
        self.cache = cache
        self.indices = indices
        self.keys = keys
        self._maps: dict[str, np.ndarray] | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def _open(self) -> dict[str, np.ndarray]:
        if self._maps is None or self._pid != os.getpid():
            root = self.cache.root
            self._maps = {k: np.load(root / f"{k}.npy", mmap_mode="r") for k in self.keys}
            self._pid = os.getpid()
        return self._maps

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        maps = self._open()
        j = self.indices[i]
        out: dict[str, Any] = {"index": i}  # the position in the dataset, checked by the engine
        for k in self.keys:
            a = torch.from_numpy(np.array(maps[k][j], dtype=BATCH_DTYPES[k]))
            out[k] = a if k == "disp" else a.unsqueeze(0)
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"], state["_pid"] = None, None
        return state

    def fingerprint(self) -> str:
        """The cache's content digest and the pairs this dataset takes."""
        digest = hashlib.sha256(self.cache.digest.encode())
        digest.update(",".join(map(str, self.indices)).encode())
        return digest.hexdigest()
