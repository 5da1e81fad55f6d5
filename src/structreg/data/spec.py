"""One data spec for every command: ``--data phantom:NAME|acdc:DIR|pairs:CSV``.

:func:`parse_data_spec` reads a spec, :func:`parse_size` / :func:`parse_spacing`
the grid options, :func:`label_table_option` the label options, and
:func:`load_pairs` turns a spec into a list of preprocessed :class:`Pair` s of one
deterministic, subject-wise split (the command line's options for these live in
:mod:`structreg.cli.options`). This module imports
nothing heavy at import time (it is used while building the CLI parser); readers
and phantoms are imported inside :func:`load_pairs`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, InputError, StructregWarning, UsageError
from .defaults import DEFAULT_SIZE, DEFAULT_SPACING
from .labels import LabelTable

DATA_KINDS = ("phantom", "acdc", "pairs", "cache")
PHANTOMS = ("cardiac", "brain", "brain-inter")
SPLIT_CHOICES = ("train", "val", "test", "all")
DEFAULT_DATA = "phantom:cardiac"
DEFAULT_PHANTOM_SUBJECTS = 100
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.2
#: Options a phantom takes after its name (``phantom:NAME,key=value,...``).
PHANTOM_OPTIONS = {"brain-inter": ("real", "real_subjects")}
SPEC_HELP = (
    "phantom:cardiac, phantom:brain, phantom:brain-inter[,real=DIR], acdc:DIR, "
    "pairs:FILE.csv or cache:DIR (written by structreg data cache)"
)


@dataclass(frozen=True)
class DataSpec:
    """A parsed data spec: ``kind`` in :data:`DATA_KINDS` and its ``target``
    (phantom name, ACDC folder, CSV path or cache folder)."""

    kind: str
    target: str

    @property
    def path(self) -> Path:
        """The folder or file of an ``acdc`` / ``pairs`` / ``cache`` spec."""
        return Path(self.target).expanduser()

    @property
    def phantom(self) -> str:
        """A phantom spec's name (its target without options)."""
        return self.target.partition(",")[0]

    @property
    def options(self) -> dict[str, str]:
        """A phantom spec's options ``key=value`` after its name (values as given)."""
        return dict(item.partition("=")[::2] for item in self.target.split(",")[1:] if item.strip())

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


def parse_data_spec(text: str | DataSpec) -> DataSpec:
    """Parse ``KIND:TARGET``; raises :class:`InputError` (one line) for a malformed spec."""
    if isinstance(text, DataSpec):
        return text
    kind, sep, target = str(text).strip().partition(":")
    kind, target = kind.strip().lower(), target.strip()
    if not sep or kind not in DATA_KINDS:
        raise InputError(f"bad data spec {text!r}: expected {SPEC_HELP}")
    if not target:
        raise InputError(f"bad data spec {text!r}: nothing after '{kind}:'")
    if kind == "phantom":
        return DataSpec(kind, _phantom_target(str(text), target))
    return DataSpec(kind, target)


def _phantom_target(text: str, target: str) -> str:
    """A phantom spec's target: the name lowercased, its options checked and kept as given."""
    name, _, rest = target.partition(",")
    name = name.strip().lower()
    if name not in PHANTOMS:
        raise InputError(
            f"bad data spec {text!r}: unknown phantom {name!r} (choose {', '.join(PHANTOMS)})"
        )
    items = [item.strip() for item in rest.split(",")] if rest else []
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not value or key not in PHANTOM_OPTIONS.get(name, ()):
            allowed = ", ".join(f"{k}=..." for k in PHANTOM_OPTIONS.get(name, ())) or "none"
            raise InputError(f"bad data spec {text!r}: bad option {item!r} (allowed: {allowed})")
    return ",".join([name, *items])


def load_pairs(
    spec: str | DataSpec,
    *,
    split: str = "train",
    seed: int = 0,
    size: Sequence[int] = DEFAULT_SIZE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    n_subjects: int | None = None,
    n_slices: int | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    volumes: bool = False,
    label_table: LabelTable | None = None,
) -> list[Any]:
    """Load, preprocess and split the pairs of a data spec.

    Data that assign their own split (a ``split`` column in a pairs CSV) are
    split by it; the others subject-wise (deterministic per seed). Every pair
    carries its data's label table (ACDC and the phantoms: their own; a pairs
    CSV: the file its ``label_table`` column names), or ``label_table`` when given.

    Args:
        spec: a :class:`DataSpec` or its text.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        seed: phantom generation seed and split seed.
        size, spacing: processed shape (voxels) and spacing (mm).
        n_subjects: number of subjects (phantoms: generated, default
            :data:`DEFAULT_PHANTOM_SUBJECTS`; ACDC / CSV: the first ones).
        n_slices: slices per subject (phantoms, default 1) or central slices per
            volume (ACDC / CSV, default 9).
        val_fraction, test_fraction: fractions of subjects held out, grouped by
            ``Pair.subject`` and stratified by ``Pair.group``.
        volumes: ACDC / CSV only: keep 3-D volumes whole (size, spacing: 3 entries);
            implied by a 3-entry ``size`` (``--size DxHxW``).
        label_table: a table that overrides the data's own.
    Returns:
        list of :class:`structreg.data.pair.Pair` with ``S = size``.
    """
    spec = parse_data_spec(spec)
    if split not in SPLIT_CHOICES:
        raise InputError(f"unknown split {split!r} (choose {', '.join(SPLIT_CHOICES)})")
    pairs = list(
        iter_pairs(
            spec,
            seed=seed,
            size=size,
            spacing=spacing,
            n_subjects=n_subjects,
            n_slices=n_slices,
            volumes=volumes,
            label_table=label_table,
        )
    )
    return _one_split(pairs, split, seed, val_fraction, test_fraction)


def _one_split(
    pairs: list[Any], split: str, seed: int, val_fraction: float, test_fraction: float
) -> list[Any]:
    """The pairs of ``split``: all, the data's own split, else the subject-wise one."""
    if split == "all":
        return pairs
    if has_own_split(pairs):
        return [p for p in pairs if p.meta.get("split") == split]
    from .dataset import split_by_subject

    return split_by_subject(
        pairs, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
    )[split]


def iter_pairs(
    spec: str | DataSpec,
    *,
    seed: int = 0,
    size: Sequence[int] = DEFAULT_SIZE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    n_subjects: int | None = None,
    n_slices: int | None = None,
    volumes: bool = False,
    label_table: LabelTable | None = None,
) -> Iterator[Any]:
    """Every pair of a data spec (``load_pairs(..., split="all")``), one at a time.

    A pairs CSV and ACDC are read and preprocessed row by row (patient by patient),
    so a data set larger than memory can be passed on (``structreg data cache``);
    the phantoms are generated whole (they are made in memory) and a cache's pairs
    are read whole. Arguments as :func:`load_pairs`; the checks run, and the
    warning about label values the table names that no label map holds is given,
    when the iteration reaches them.
    """
    spec = parse_data_spec(spec)
    if n_subjects is not None and n_subjects < 1:
        raise InputError(f"--subjects must be >= 1, got {n_subjects}")
    if n_slices is not None and n_slices < 1:
        raise InputError(f"--slices must be >= 1, got {n_slices}")
    size, spacing = tuple(size), grid_spacing(size, spacing)
    pairs = _iter_all(
        spec,
        seed=seed,
        size=size,
        spacing=spacing,
        n_subjects=n_subjects,
        n_slices=n_slices,
        volumes=volumes or len(size) == 3,
    )
    own = _own_table(spec)
    present: set[int] = set()
    count = 0
    for pair in pairs:
        pair.label_table = label_table or (own if spec.kind != "pairs" else pair.label_table)
        if label_table is not None:
            for labels in (pair.moving_labels, pair.fixed_labels):
                if labels is not None:
                    present.update(int(v) for v in np.unique(labels))
        count += 1
        yield pair
    if not count:
        raise DataError(f"{spec}: no pairs found")
    if label_table is not None:
        missing = label_table.missing(present)
        if missing and present:
            warnings.warn(
                f"{spec}: the label table names value(s) {missing} that no label map holds",
                StructregWarning,
                stacklevel=2,
            )


def label_table_option(labels: str | None, label_table: str | None) -> LabelTable | None:
    """The :class:`~structreg.data.labels.LabelTable` of the ``--labels`` text or the
    ``--label-table`` file (None without either; a usage error with both)."""
    from .labels import parse_labels, read_label_table

    if labels and label_table:
        raise UsageError("give --labels or --label-table, not both")
    if labels:
        return parse_labels(labels)
    return read_label_table(label_table) if label_table else None


def has_own_split(pairs: Sequence[Any]) -> bool:
    """True when the data assign every pair to a split themselves (``meta["split"]``)."""
    return bool(pairs) and all(p.meta.get("split") for p in pairs)


def _own_table(spec: DataSpec) -> LabelTable | None:
    """The label table a kind of data carries (phantoms, ACDC); None for a pairs CSV,
    whose rows name theirs."""
    from .labels import BRAIN_TABLE, CARDIAC_TABLE

    if spec.kind == "acdc":
        return CARDIAC_TABLE
    return {"cardiac": CARDIAC_TABLE, "brain": BRAIN_TABLE, "brain-inter": BRAIN_TABLE}.get(
        spec.phantom
    )


def _iter_all(
    spec: DataSpec,
    *,
    seed: int,
    size: tuple,
    spacing: tuple,
    n_subjects: int | None,
    n_slices: int | None,
    volumes: bool,
) -> Iterable[Any]:
    if spec.kind == "cache":
        return _cached_pairs(spec, size, spacing, n_subjects)
    if spec.kind == "phantom":
        generate = _phantom(spec)
        return generate(
            n_subjects or DEFAULT_PHANTOM_SUBJECTS,
            seed=seed,
            slices_per_subject=n_slices or 1,
            size=size,
            spacing=spacing,
            **spec.options,
        )
    from .preprocess import DEFAULT_SLICES

    slices = None if volumes else (n_slices or DEFAULT_SLICES)
    if spec.kind == "acdc":
        from .acdc import iter_acdc

        return iter_acdc(
            spec.path, size=size, spacing=spacing, n_slices=slices, n_subjects=n_subjects
        )
    from .pairs import iter_pairs_csv

    return iter_pairs_csv(
        spec.path, size=size, spacing=spacing, n_slices=slices, n_subjects=n_subjects
    )


def _cached_pairs(spec: DataSpec, size: tuple, spacing: tuple, n_subjects: int | None) -> list[Any]:
    """The pairs of a ``cache:DIR`` (its own grid and split; the first ``n_subjects``
    subjects). A grid other than the cache's is refused, except the default grid,
    which a command passes when none was asked for."""
    from .cache import open_cache

    cache = open_cache(spec.path)
    asked = (tuple(size), tuple(spacing))
    if asked != (cache.shape, cache.spacing) and asked != (
        tuple(DEFAULT_SIZE),
        grid_spacing(DEFAULT_SIZE, DEFAULT_SPACING),
    ):
        raise DataError(
            f"{spec}: the cache holds {'x'.join(map(str, cache.shape))} voxels at "
            f"{'x'.join(f'{s:g}' for s in cache.spacing)} mm, not "
            f"{'x'.join(map(str, size))} at {'x'.join(f'{s:g}' for s in spacing)} mm; "
            f"write another cache for that grid"
        )
    return cache.pairs(cache.indices("all", n_subjects))


def _phantom(spec: DataSpec) -> Any:
    """The phantom generator ``f(n_subjects, seed=, slices_per_subject=, size=, spacing=)``:
    ``{name}_phantom`` of the module ``structreg.data.phantoms.{name}`` (``-`` in a
    phantom's name read as ``_``: ``brain-inter`` -> ``brain_inter_phantom``)."""
    import importlib

    name = spec.phantom.replace("-", "_")
    module_name = f"structreg.data.phantoms.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise DataError(
                f"{spec}: the built-in phantom is not available in this "
                f"installation ({module_name} missing)"
            ) from None
        raise DataError(
            f"{spec}: the built-in phantom needs the package '{exc.name}' (pip install it)"
        ) from None
    return getattr(module, f"{name}_phantom")


# ---------------------------------------------------------------------------- grid options


def _parts(text: str) -> list[str]:
    parts = [p for p in text.lower().replace("x", ",").split(",")]
    if not parts or any(not p.strip() for p in parts):
        raise ValueError(text)
    return parts


def grid_spacing(size: Sequence[int], spacing: Sequence[float]) -> tuple[float, ...]:
    """``spacing`` with one entry per axis of ``size``: an isotropic spacing (every
    entry equal, e.g. the default or ``--spacing 2``) is repeated to ``len(size)``
    entries; an anisotropic one must already have them.

    Raises:
        InputError: an anisotropic spacing with another number of entries.
    """
    spacing = tuple(float(v) for v in spacing)
    if len(spacing) == len(size):
        return spacing
    if spacing and len(set(spacing)) == 1:
        return (spacing[0],) * len(size)
    raise InputError(
        f"spacing {'x'.join(f'{v:g}' for v in spacing)} mm has {len(spacing)} entries but "
        f"size {'x'.join(map(str, size))} has {len(size)}; give one per axis"
    )


def parse_size(text: str) -> tuple[int, ...]:
    """``"100"`` -> ``(100, 100)``; ``"96x112"`` or ``"96,112"`` -> ``(96, 112)``."""
    try:
        values = tuple(int(v) for v in _parts(text))
    except ValueError:
        raise InputError(f"size must look like 100 or 100x100, got {text!r}") from None
    if min(values) < 1:
        raise InputError(f"size must be positive, got {text!r}")
    return values * 2 if len(values) == 1 else values


def parse_spacing(text: str) -> tuple[float, ...]:
    """``"2"`` -> ``(2.0, 2.0)``; ``"1.5x2"`` -> ``(1.5, 2.0)`` (mm)."""
    try:
        values = tuple(float(v) for v in _parts(text))
    except ValueError:
        raise InputError(f"spacing must look like 2 or 2x2 (mm), got {text!r}") from None
    if not all(v > 0 and v == v and v != float("inf") for v in values):
        raise InputError(f"spacing must be positive, got {text!r}")
    return values * 2 if len(values) == 1 else values
