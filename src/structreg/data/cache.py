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

Writing holds one pair at a time (each is appended to the arrays' files as it
comes, the ``.npy`` headers are written once the count is known), so a source read
pair by pair (:func:`~structreg.data.spec.iter_pairs`: pairs CSV, ACDC) larger
than memory can be cached. The cache is written into a temporary sibling folder
and renamed into place, so
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import DataError, InputError
from .labels import LabelTable
from .pair import Pair

__all__ = [
    "CACHE_VERSION",
    "CachedPairs",
    "PairCache",
    "PairInfo",
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


@dataclass
class PairInfo:
    """What the cache index records of a pair (no images): enough to split pairs by
    subject (:func:`~structreg.data.dataset.split_by_subject`) and to summarise them."""

    id: str
    subject: str | None
    group: str | None
    spacing: tuple[float, ...]
    meta: dict[str, Any]


SplitRule = Callable[[list[PairInfo]], Sequence[str]]


def write_cache(
    pairs: Iterable[Pair],
    out: str | os.PathLike,
    *,
    splits: Sequence[str] | SplitRule,
    source: dict[str, Any] | None = None,
) -> PairCache:
    """Write ``pairs`` (all of one shape) to a new cache folder ``out``, one pair at a
    time: each is appended to its arrays' files as it comes, so an iterator that
    reads and preprocesses one pair at a time (:func:`~structreg.data.spec.iter_pairs`)
    never holds the data set in memory.

    Args:
        splits: each pair's split (``train``/``val``/``test``), or a rule that gives
            them from every pair's :class:`PairInfo` once all are written.
        source: how the pairs were made (data spec, seed, grid), recorded.
    Returns:
        the written cache, opened. Refuses an existing non-empty ``out``. An array
        that some pair lacks (labels, mask, truth) is left out.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"data cache: {out} exists and is not empty; choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        infos, shapes, table = _write_raw(pairs, tmp)
        assigned = list(splits(infos) if callable(splits) else splits)
        if len(assigned) != len(infos):
            raise InputError("data cache: one split per pair is needed")
        digest = hashlib.sha256()
        for name in shapes:  # in ARRAYS order
            digest.update(name.encode())
            _finish_npy(tmp / name, ARRAYS[name], shapes[name], digest)
        index = _index(infos, assigned, shapes, digest.hexdigest(), table, source)
        (tmp / INDEX).write_text(json.dumps(index, indent=1) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return open_cache(out)


def _index(
    infos: list[PairInfo],
    splits: list[str],
    shapes: dict[str, tuple[int, ...]],
    digest: str,
    table: Any,
    source: dict[str, Any] | None,
) -> dict[str, Any]:
    """The cache's ``pairs.json`` content (see the module docstring)."""
    return {
        "version": CACHE_VERSION,
        "n": len(infos),
        "shape": list(shapes["moving"][1:]),
        "arrays": list(shapes),
        "digest": digest,
        "label_table": table.to_text() if isinstance(table, LabelTable) else None,
        "source": _json_safe(source or {}),
        "pairs": [
            {
                "id": info.id,
                "subject": info.subject,
                "group": info.group,
                "split": split,
                "spacing": [float(v) for v in info.spacing],
                "meta": _json_safe(info.meta),
            }
            for info, split in zip(infos, splits, strict=True)
        ],
    }


_CHUNK = 1 << 24  # bytes read at a time when finishing and hashing the arrays


def _write_raw(
    pairs: Iterable[Pair], tmp: Path
) -> tuple[list[PairInfo], dict[str, tuple[int, ...]], Any]:
    """Append every pair's arrays to ``tmp/NAME.raw``; returns the pairs' info, the
    full shape of each array every pair has (in ARRAYS order) and the label table."""
    infos: list[PairInfo] = []
    files: dict[str, BinaryIO] = {}
    item_shape: dict[str, tuple[int, ...]] = {}
    table = None
    try:
        for pair in pairs:
            if not infos:
                table = pair.label_table
                for name in ARRAYS:
                    value = getattr(pair, name)
                    if value is not None:
                        item_shape[name] = tuple(np.shape(value))
                        files[name] = (tmp / f"{name}.raw").open("wb")
            elif tuple(pair.moving.shape) != item_shape["moving"]:
                raise DataError(
                    f"data cache: pair {pair.id} has shape {tuple(pair.moving.shape)}, "
                    f"others {item_shape['moving']}"
                )
            for name in list(files):
                value = getattr(pair, name)
                if value is None:  # a pair without it: the array is left out
                    files.pop(name).close()
                    (tmp / f"{name}.raw").unlink()
                    continue
                files[name].write(np.ascontiguousarray(value, dtype=ARRAYS[name]).tobytes())
            infos.append(
                PairInfo(
                    id=pair.id,
                    subject=pair.subject,
                    group=pair.group,
                    spacing=tuple(float(v) for v in pair.spacing),
                    meta=dict(pair.meta),
                )
            )
            del pair  # not held while the next one is read
    finally:
        for fh in files.values():
            fh.close()
    if not infos:
        raise DataError("data cache: no pairs to write")
    kept = [name for name in ARRAYS if name in files]  # every pair had them
    return infos, {name: (len(infos), *item_shape[name]) for name in kept}, table


def _finish_npy(stem: Path, dtype: type[np.generic], shape: tuple[int, ...], digest: Any) -> None:
    """``stem.npy``: an ``.npy`` file of ``shape`` whose data are the bytes of
    ``stem.raw`` (then removed), copied in chunks and fed to ``digest`` on the way."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False}
    raw = stem.with_suffix(".raw")
    with stem.with_suffix(".npy").open("wb") as fh, raw.open("rb") as src:
        np.lib.format.write_array_header_1_0(fh, {**header, "shape": shape})
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            digest.update(chunk)
            fh.write(chunk)
    raw.unlink()


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
