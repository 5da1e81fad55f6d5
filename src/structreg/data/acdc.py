"""Reader for data in the ACDC challenge layout (cardiac cine MRI, ED -> ES pairs).

Layout (``DIR`` itself, or one level down such as ``DIR/training``)::

    DIR/patient001/Info.cfg                     ED: 1, ES: 12, Group: DCM, Height, Weight, NbFrame
    DIR/patient001/patient001_frame01.nii.gz    3-D image H x W x slices (e.g. 1.5 x 1.5 x 10 mm)
    DIR/patient001/patient001_frame01_gt.nii.gz labels 0 bg, 1 RV, 2 LV myocardium, 3 LV blood pool
    DIR/patient001/patient001_frame12.nii.gz (+ _gt)

Each patient gives ED -> ES pairs (moving = ED slice, fixed = ES slice, same slice
index) of its central slices, preprocessed by :func:`preprocess.preprocess_pair`
with the crop centred on the LV (labels 2 and 3). Splits group by patient.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

from ..io.nifti import DataError, read_image, read_labels
from .defaults import DEFAULT_SIZE, DEFAULT_SPACING
from .pair import Pair
from .preprocess import DEFAULT_SLICES, preprocess_pair

ACDC_GROUPS = ("NOR", "DCM", "HCM", "MINF", "RV")
ACDC_LABEL_VALUES = (0, 1, 2, 3)
LV_LABELS = (2, 3)
_PATIENT = re.compile(r"^patient\d+$")


@dataclass(frozen=True)
class AcdcInfo:
    """The fields of a patient's ``Info.cfg`` (frames are 1-based as in the file names)."""

    ed: int
    es: int
    group: str | None
    height: float | None = None
    weight: float | None = None
    n_frames: int | None = None


def read_info(path: str | os.PathLike) -> AcdcInfo:
    """Parse an ``Info.cfg`` (``key: value`` lines); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: Info.cfg not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({' '.join(str(exc).split())})") from None
    fields = _parse_fields(text, path)
    ed = _int_field(fields, "ED", path, required=True)
    es = _int_field(fields, "ES", path, required=True)
    group = fields.get("group")
    if group is not None and group not in ACDC_GROUPS:
        raise DataError(
            f"{path}: unknown group {group!r} (expected one of {', '.join(ACDC_GROUPS)})"
        )
    n_frames = _int_field(fields, "NbFrame", path, required=False)
    for name, frame in (("ED", ed), ("ES", es)):
        if frame < 1 or (n_frames is not None and frame > n_frames):
            raise DataError(f"{path}: {name} frame {frame} outside 1..{n_frames or 'NbFrame'}")
    return AcdcInfo(
        ed=ed,
        es=es,
        group=group,
        height=_float_field(fields, "Height", path),
        weight=_float_field(fields, "Weight", path),
        n_frames=n_frames,
    )


def _parse_fields(text: str, path: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip() or not value.strip():
            raise DataError(f"{path} line {number}: expected 'key: value', got {line.strip()!r}")
        fields[key.strip().lower()] = value.strip()
    return fields


@overload
def _int_field(fields: dict[str, str], key: str, path: Path, *, required: Literal[True]) -> int: ...


@overload
def _int_field(
    fields: dict[str, str], key: str, path: Path, *, required: Literal[False]
) -> int | None: ...


def _int_field(fields: dict[str, str], key: str, path: Path, *, required: bool) -> int | None:
    value = fields.get(key.lower())
    if value is None:
        if required:
            raise DataError(f"{path}: missing '{key}:' line")
        return None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise DataError(f"{path}: {key} must be an integer, got {value!r}")
    return int(number)


def _float_field(fields: dict[str, str], key: str, path: Path) -> float | None:
    value = fields.get(key.lower())
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{path}: {key} must be a number, got {value!r}") from None


def find_patients(root: str | os.PathLike) -> list[Path]:
    """Sorted ``patientXXX`` folders in ``root`` or, if none, in its sub-folders."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: ACDC folder not found")
    found = sorted(p for p in root.iterdir() if p.is_dir() and _PATIENT.match(p.name))
    if not found:
        found = sorted(
            (
                p
                for sub in sorted(root.iterdir())
                if sub.is_dir()
                for p in sub.iterdir()
                if p.is_dir() and _PATIENT.match(p.name)
            ),
            key=lambda p: (p.name, str(p)),
        )
    if not found:
        raise DataError(f"{root}: no patientXXX folders (ACDC layout) found")
    return found


def frame_path(patient_dir: Path, frame: int, labels: bool = False) -> Path:
    """``patient_dir/<patient>_frameNN[_gt].nii.gz`` (a plain ``.nii`` is accepted too)."""
    stem = f"{patient_dir.name}_frame{frame:02d}{'_gt' if labels else ''}"
    path = patient_dir / f"{stem}.nii.gz"
    if not path.exists() and (patient_dir / f"{stem}.nii").exists():
        return patient_dir / f"{stem}.nii"
    return path


def load_acdc_patient(
    patient_dir: str | os.PathLike,
    *,
    size: Sequence[int] = DEFAULT_SIZE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    n_slices: int | None = DEFAULT_SLICES,
    labels: bool = True,
) -> list[Pair]:
    """ED -> ES pairs of one patient's central slices.

    Args:
        patient_dir: ``.../patientXXX`` folder.
        size, spacing: processed in-plane shape and mm spacing.
        n_slices: number of central slices (None: one 3-D pair; then size and
            spacing need three entries).
        labels: read the ``_gt`` label maps (required to exist when True).
    Returns:
        Pairs with ids ``patientXXX_sliceKK``, ``subject = "patientXXX"``, the
        Info.cfg group, ED labels as ``moving_labels`` and ES as ``fixed_labels``.
    """
    patient_dir = Path(patient_dir)
    info = read_info(patient_dir / "Info.cfg")
    ed, es = (read_image(_existing(frame_path(patient_dir, f))) for f in (info.ed, info.es))
    ed_lab = es_lab = None
    if labels:
        ed_lab, es_lab = (
            read_labels(
                _existing(frame_path(patient_dir, f, labels=True)), allowed=ACDC_LABEL_VALUES
            )
            for f in (info.ed, info.es)
        )
    meta = {
        "source": "acdc",
        "ed_frame": info.ed,
        "es_frame": info.es,
        "height": info.height,
        "weight": info.weight,
    }
    return preprocess_pair(
        ed,
        es,
        pair_id=patient_dir.name,
        moving_labels=ed_lab,
        fixed_labels=es_lab,
        subject=patient_dir.name,
        group=info.group,
        size=size,
        spacing=spacing,
        n_slices=n_slices,
        centre_labels=LV_LABELS,
        meta=meta,
    )


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: frame file not found")
    return path


def load_acdc(root: str | os.PathLike, **options: Any) -> list[Pair]:
    """Every pair of :func:`iter_acdc` (same arguments) in one list."""
    return list(iter_acdc(root, **options))


def iter_acdc(
    root: str | os.PathLike,
    *,
    size: Sequence[int] = DEFAULT_SIZE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    n_slices: int | None = DEFAULT_SLICES,
    n_subjects: int | None = None,
    labels: bool = True,
) -> Iterator[Pair]:
    """ED -> ES pairs of every patient under ``root`` (the first ``n_subjects`` by
    name), read and preprocessed one patient at a time."""
    patients = find_patients(root)
    if n_subjects is not None:
        patients = patients[: max(0, int(n_subjects))]
    for patient in patients:
        yield from load_acdc_patient(
            patient, size=size, spacing=spacing, n_slices=n_slices, labels=labels
        )
