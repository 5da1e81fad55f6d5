"""Label tables: label value -> structure name, plus composite structures.

A :class:`LabelTable` travels with the data: ACDC and the phantoms carry theirs,
a pairs CSV may name one (its ``label_table`` column), and every command that
reports per-structure numbers takes ``--labels "1=CSF,2=GM,3=WM"`` or
``--label-table FILE``. Data without a table report ``label 1``, ``label 2``, ...
and no composite. No anatomy is assumed anywhere else.

A table file is UTF-8 text, one structure per line, ``value<TAB>name`` for a
single label, or ``name = 2+3`` for a composite of label values; blank lines and
lines starting with ``#`` are ignored::

    1	RV
    2	LV myocardium
    3	LV blood pool
    left heart = 2+3
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError, InputError

__all__ = [
    "BRAIN_LABELS",
    "BRAIN_STRUCTURES",
    "BRAIN_TABLE",
    "CARDIAC_LABELS",
    "CARDIAC_STRUCTURES",
    "CARDIAC_TABLE",
    "LabelTable",
    "parse_labels",
    "read_label_table",
    "read_label_table_text",
]


@dataclass(frozen=True)
class LabelTable:
    """Structures to report, each a name and the label values it is made of.

    Attributes:
        structures: name -> label values, in report order (single labels and
            composites alike).
    """

    structures: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, values in self.structures.items():
            if not name or not values or any(int(v) <= 0 for v in values):
                raise InputError(
                    f"label table: structure {name!r} needs positive label values, got {values!r}"
                )

    @classmethod
    def numbered(cls, values: Iterable[int]) -> LabelTable:
        """``label 1``, ``label 2``, ... for the non-zero ``values`` (no composite)."""
        return cls({f"label {v}": (v,) for v in sorted({int(v) for v in values if int(v) > 0})})

    @property
    def values(self) -> set[int]:
        """Every label value a structure uses."""
        return {v for values in self.structures.values() for v in values}

    def names(self) -> dict[int, str]:
        """Label value -> name for legends: the single-label structures, then each
        composite names its first value if nothing else does (brain: 1 -> CSF)."""
        out = {values[0]: name for name, values in self.structures.items() if len(values) == 1}
        for name, values in self.structures.items():
            out.setdefault(values[0], name)
        return out

    def missing(self, present: Iterable[int]) -> list[int]:
        """Values the table names that are absent from ``present``."""
        have = {int(v) for v in present}
        return sorted(v for v in self.values if v not in have)

    def to_text(self) -> str:
        """The table in the file format of :func:`read_label_table`."""
        lines = []
        for name, values in self.structures.items():
            if len(values) == 1:
                lines.append(f"{values[0]}\t{name}")
            else:
                lines.append(f"{name} = {'+'.join(str(v) for v in values)}")
        return "\n".join(lines) + "\n"


def _composite(name: str, text: str, where: str) -> tuple[str, tuple[int, ...]]:
    try:
        values = tuple(int(v) for v in text.split("+"))
    except ValueError:
        raise InputError(
            f"{where}: composite {name!r} must list label values like 2+3, got {text!r}"
        ) from None
    return name, values


def _entry(item: str, where: str) -> tuple[str, tuple[int, ...]]:
    """``"1=CSF"`` / ``"1<TAB>CSF"`` (single) or ``"left heart = 2+3"`` (composite)."""
    if "\t" in item:
        value, _, name = item.partition("\t")
    elif "=" in item:
        left, _, right = (s.strip() for s in item.partition("="))
        if "+" in right or not left.isdigit():
            return _composite(left, right, where)
        value, name = left, right
    else:
        raise InputError(
            f"{where}: malformed entry {item!r} (expected VALUE=NAME, VALUE<TAB>NAME or NAME = 2+3)"
        )
    value, name = value.strip(), name.strip()
    if not value.isdigit() or int(value) <= 0 or not name:
        raise InputError(
            f"{where}: malformed entry {item!r} (label values are positive integers with a name)"
        )
    return name, (int(value),)


def _table(entries: Iterable[tuple[str, tuple[int, ...]]], where: str) -> LabelTable:
    structures: dict[str, tuple[int, ...]] = {}
    for name, values in entries:
        if name in structures:
            raise InputError(f"{where}: structure {name!r} named twice")
        structures[name] = values
    if not structures:
        raise InputError(f"{where}: no structures")
    return LabelTable(structures)


def parse_labels(text: str) -> LabelTable:
    """A table from ``--labels``: ``"1=CSF,2=GM,3=WM"``, composites as ``"left heart=2+3"``."""
    where = f"--labels {text!r}"
    return _table((_entry(item.strip(), where) for item in text.split(",") if item.strip()), where)


def read_label_table(path: str | os.PathLike) -> LabelTable:
    """Read a table file (see the module doc); one-line :class:`DataError` on problems."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: label table not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable label table ({exc})") from None
    return read_label_table_text(text, str(path))


def read_label_table_text(text: str, where: str) -> LabelTable:
    """A table from the text of a table file (:meth:`LabelTable.to_text`); ``where``
    names its source in errors."""
    lines = [line.strip() for line in text.splitlines()]
    try:
        return _table(
            (_entry(line, where) for line in lines if line and not line.startswith("#")),
            where,
        )
    except InputError as exc:
        raise DataError(str(exc)) from None


# ACDC label values.
CARDIAC_LABELS = {"RV": 1, "LV myocardium": 2, "LV blood pool": 3}
# Structures reported in the paper's Table 1 (and the RV), as sets of label values.
CARDIAC_STRUCTURES: Mapping[str, tuple[int, ...]] = {
    "LV myocardium": (2,),
    "LV blood pool": (3,),
    "left heart": (2, 3),
    "RV": (1,),
}
CARDIAC_TABLE = LabelTable(dict(CARDIAC_STRUCTURES))

# Brain phantom label values (ventricles are CSF too, kept apart to measure them).
BRAIN_LABELS = {"CSF": 1, "GM": 2, "WM": 3, "ventricles": 4}
BRAIN_STRUCTURES: Mapping[str, tuple[int, ...]] = {
    "CSF": (1, 4),
    "GM": (2,),
    "WM": (3,),
    "ventricles": (4,),
}
BRAIN_TABLE = LabelTable(dict(BRAIN_STRUCTURES))
