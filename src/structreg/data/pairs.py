"""Reader for user-supplied registration pairs listed in a ``pairs.csv`` (any anatomy).

Columns: ``moving, fixed`` (required), ``moving_labels, fixed_labels, mask, group,
id, split, frame, label_table`` (optional; empty cells mean "none"). Paths are
NIfTI files (any layout: ``H×W``, ``H×W×1``, stacks, volumes), relative paths
resolve against the CSV's folder; spaces and non-ASCII characters are fine, and
so are a byte-order mark and CRLF line ends; a column named twice is refused. ``id``
names the subject (rows sharing an id are one subject for the splits); it defaults
to the moving file's path. ``split`` (``train``, ``val`` or ``test``, on every row or
on none) assigns the row's pairs to a split; ``frame`` picks the time frame of 4-D
files; ``label_table`` names a label table file (see :mod:`structreg.data.labels`).
Moving and fixed may lie on different grids: the moving image is resampled into
the fixed image's world grid. 2-D images give one pair per row; 3-D volumes give
one 2-D pair per central slice (or one 3-D pair with ``n_slices=None``). Errors
name the CSV file and line.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..io.nifti import DataError, Volume, read_image, read_labels
from .defaults import DEFAULT_SIZE, DEFAULT_SPACING
from .labels import read_label_table
from .pair import Pair
from .preprocess import DEFAULT_SLICES, preprocess_pair

REQUIRED_COLUMNS = ("moving", "fixed")
PATH_COLUMNS = ("moving", "fixed", "moving_labels", "fixed_labels", "mask")
OPTIONAL_COLUMNS = (
    "moving_labels",
    "fixed_labels",
    "mask",
    "group",
    "id",
    "split",
    "frame",
    "label_table",
)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PairRow:
    """One row of a ``pairs.csv`` with resolved paths; ``line`` is its line in the file."""

    line: int
    moving: Path
    fixed: Path
    moving_labels: Path | None
    fixed_labels: Path | None
    mask: Path | None
    group: str | None
    id: str
    split: str | None = None
    frame: int | None = None
    label_table: Path | None = None


def read_pairs_csv(path: str | os.PathLike, *, check_files: bool = True) -> list[PairRow]:
    """Parse and check a ``pairs.csv``: columns present, cells filled, files existing
    (``check_files=False`` leaves a missing file to whoever reads the row: batch
    registration reports it for that pair and goes on)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: pairs CSV not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = _read_rows(f, path, check_files)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({' '.join(str(exc).split())})") from None
    if not rows:
        raise DataError(f"{path}: no pairs listed")
    with_split = [r for r in rows if r.split is not None]
    if with_split and len(with_split) != len(rows):
        row = next(r for r in rows if r.split is None)
        raise DataError(
            f"{path} line {row.line}: no split, while other rows have one "
            f"(give train, val or test on every row or on none)"
        )
    return rows


def _read_rows(f: TextIO, path: Path, check_files: bool = True) -> list[PairRow]:
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: empty file (expected a header 'moving,fixed,...')")
    columns = [h.strip().lower() for h in header]
    repeated = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if columns.count(c) > 1]
    if repeated:
        raise DataError(
            f"{path} line 1: column '{repeated[0]}' appears more than once (header: "
            f"{', '.join(columns)}); which one is meant cannot be told"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataError(
            f"{path} line 1: missing column(s) {', '.join(missing)} (header: {', '.join(columns)})"
        )
    rows = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        rows.append(
            _parse_row(
                dict(zip(columns, cells, strict=False)),
                len(cells),
                len(columns),
                reader.line_num,
                path,
                check_files,
            )
        )
    return rows


def _parse_row(
    cells: dict[str, str],
    n_cells: int,
    n_columns: int,
    line: int,
    path: Path,
    check_files: bool = True,
) -> PairRow:
    where = f"{path} line {line}"
    if n_cells != n_columns:
        raise DataError(f"{where}: {n_cells} fields, the header has {n_columns}")
    values = {
        k: (cells.get(k) or "").strip() or None
        for k in (*PATH_COLUMNS, "group", "id", "split", "frame", "label_table")
    }
    moving = _required(values, "moving", where)
    fixed = _required(values, "fixed", where)
    moving_file = _resolve_file(moving, path.parent, "moving", where, check_files)
    fixed_file = _resolve_file(fixed, path.parent, "fixed", where, check_files)
    files = {
        c: _resolve(values[c], path.parent, c, where, check_files)
        for c in ("moving_labels", "fixed_labels", "mask")
    }
    default_id = _default_id(moving)
    return PairRow(
        line=line,
        moving=moving_file,
        fixed=fixed_file,
        moving_labels=files["moving_labels"],
        fixed_labels=files["fixed_labels"],
        mask=files["mask"],
        group=values["group"],
        id=values["id"] or default_id,
        split=_split(values["split"], where),
        frame=_frame(values["frame"], where),
        label_table=_resolve(values["label_table"], path.parent, "label_table", where),
    )


def _split(value: str | None, where: str) -> str | None:
    if value is not None and value.lower() not in SPLITS:
        raise DataError(f"{where}: split {value!r} is not one of {', '.join(SPLITS)}")
    return None if value is None else value.lower()


def _frame(value: str | None, where: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{where}: frame {value!r} is not an integer") from None


def _required(values: dict[str, str | None], column: str, where: str) -> str:
    value = values[column]
    if value is None:
        raise DataError(f"{where}: empty '{column}'")
    return value


def _resolve(
    value: str | None, folder: Path, column: str, where: str, check: bool = True
) -> Path | None:
    return None if value is None else _resolve_file(value, folder, column, where, check)


def _resolve_file(value: str, folder: Path, column: str, where: str, check: bool = True) -> Path:
    if "\0" in value:
        raise DataError(f"{where}: {column} path {value!r} holds a NUL character")
    try:
        file = Path(value).expanduser()
        file = file if file.is_absolute() else folder / file
        found = file.is_file() if check else True
    except (OSError, RuntimeError) as exc:  # a name too long, no home folder for '~'
        raise DataError(
            f"{where}: {column} path {value!r} is not usable ({' '.join(str(exc).split())})"
        ) from None
    if not found:
        raise DataError(f"{where}: {column} file '{value}' not found ({file})")
    return file


def _default_id(value: str) -> str:
    name = value.replace("\\", "/")
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return "_".join(p for p in name.split("/") if p not in ("", ".", ".."))


def load_pairs_csv(path: str | os.PathLike, **options: Any) -> list[Pair]:
    """Every pair of :func:`iter_pairs_csv` (same arguments) in one list."""
    return list(iter_pairs_csv(path, **options))


def iter_pairs_csv(
    path: str | os.PathLike,
    *,
    size: Sequence[int] = DEFAULT_SIZE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    n_slices: int | None = DEFAULT_SLICES,
    slice_axis: int = -1,
    n_subjects: int | None = None,
    centre_labels: Sequence[int] | None = None,
    label_values: Iterable[int] | None = None,
) -> Iterator[Pair]:
    """Read, check and preprocess every pair listed in ``path``, one row at a time
    (the CSV is read and checked first; a row's images are read when it is reached,
    so only one row's pairs are in memory).

    Args:
        path: the CSV file.
        size, spacing: processed shape and mm spacing (2 entries for slices).
        n_slices: central slices per 3-D volume, or None to keep volumes 3-D.
        slice_axis: axis of a volume the slices are taken along (default: last).
        n_subjects: keep the first ``n_subjects`` distinct ids only.
        centre_labels: label values whose centroid (in moving labels) centres the
            crop; None: the image centre.
        label_values: allowed label values (None: any integers).
    Returns:
        Pairs with ``subject`` = the row id, ``group`` from the CSV, ids
        ``<id>`` (2-D) or ``<id>_sliceKK``; duplicated ids get ``_rowN`` appended.
    """
    rows = read_pairs_csv(path)
    if n_subjects is not None:
        keep = list(dict.fromkeys(r.id for r in rows))[: max(0, int(n_subjects))]
        rows = [r for r in rows if r.id in set(keep)]
    counts = Counter(r.id for r in rows)
    for number, row in enumerate(rows, start=1):
        pair_id = row.id if counts[row.id] == 1 else f"{row.id}_row{number}"
        try:
            pairs = _load_row(
                row,
                pair_id,
                size=size,
                spacing=spacing,
                n_slices=n_slices,
                slice_axis=slice_axis,
                centre_labels=centre_labels,
                label_values=label_values,
                csv_path=Path(path),
            )
        except DataError as exc:
            raise DataError(f"{path} line {row.line}: {exc}") from None
        yield from pairs


def _load_row(
    row: PairRow,
    pair_id: str,
    *,
    csv_path: Path,
    label_values: Iterable[int] | None,
    **options: Any,
) -> list[Pair]:
    def labels(p: Path | None) -> Volume | None:
        return None if p is None else read_labels(p, allowed=label_values, frame=row.frame)

    mask = None if row.mask is None else read_labels(row.mask, frame=row.frame)
    meta: dict[str, Any] = {"source": "pairs", "csv": str(csv_path), "csv_line": row.line}
    if row.split is not None:
        meta["split"] = row.split
    pairs = preprocess_pair(
        read_image(row.moving, frame=row.frame),
        read_image(row.fixed, frame=row.frame),
        pair_id=pair_id,
        moving_labels=labels(row.moving_labels),
        fixed_labels=labels(row.fixed_labels),
        mask=mask,
        subject=row.id,
        group=row.group,
        meta=meta,
        **options,
    )
    if row.label_table is not None:
        table = read_label_table(row.label_table)
        for pair in pairs:
            pair.label_table = table
    return pairs
