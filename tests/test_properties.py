"""Properties of the readers and parsers, on any input: a NIfTI file of arbitrary bytes
(and a valid one with its header bytes changed), a pairs CSV of arbitrary text, and
any data spec, method spec, size or spacing text gives either a result or a
:class:`~structreg.errors.StructregError`, never another exception.

Hypothesis runs derandomized (the same examples on every run, so CI is reproducible)
with a bounded number of examples each and no example database."""

from __future__ import annotations

import csv
import gzip
import io
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from structreg.data.pairs import read_pairs_csv  # noqa: E402
from structreg.data.spec import parse_data_spec, parse_size, parse_spacing  # noqa: E402
from structreg.errors import StructregError  # noqa: E402
from structreg.io.nifti import read_image, read_labels  # noqa: E402
from structreg.methods.registry import parse_methods  # noqa: E402

BOUNDED = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)
FEW = settings(BOUNDED, max_examples=60)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """The folder the examples write their files to (one for the module: hypothesis
    runs many examples per test)."""
    return tmp_path_factory.mktemp("properties")


def _valid_nifti(shape=(6, 5, 1), dtype=np.float32) -> bytes:
    image = nib.Nifti1Image(np.arange(np.prod(shape), dtype=dtype).reshape(shape), np.eye(4))
    buffer = io.BytesIO()
    file_map = image.make_file_map({"image": buffer, "header": buffer})
    image.to_file_map(file_map)
    return buffer.getvalue()


VALID = _valid_nifti()


def _read_both(scratch: Path, data: bytes, name: str) -> None:
    """Write ``data`` as ``name`` and read it as an image and as a label map (a warning
    of numpy's, such as a complex value cast to a real one, counts as a failure)."""
    path = scratch / name
    path.write_bytes(data)
    for read in (read_image, read_labels):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                warnings.simplefilter("error", np.exceptions.ComplexWarning)
                volume = read(path)
        except StructregError:
            continue
        assert volume.data.ndim in (2, 3) and volume.data.size > 0
        assert np.isfinite(volume.affine).all()


@BOUNDED
@given(st.binary(max_size=2048), st.booleans())
def test_nifti_of_arbitrary_bytes(scratch, data, compressed):
    _read_both(
        scratch,
        gzip.compress(data) if compressed else data,
        "any.nii.gz" if compressed else "any.nii",
    )


@BOUNDED
@given(
    st.lists(st.tuples(st.integers(0, 351), st.integers(0, 255)), min_size=1, max_size=8),
    st.booleans(),
)
def test_nifti_with_changed_header_bytes(scratch, edits, compressed):
    data = bytearray(VALID)
    for offset, value in edits:
        data[offset] = value
    raw = bytes(data)
    _read_both(
        scratch,
        gzip.compress(raw) if compressed else raw,
        "hdr.nii.gz" if compressed else "hdr.nii",
    )


_NUMBERS = st.one_of(
    st.sampled_from([0.0, -1.0, 1.0, 1e-30, 1e30, float("nan"), float("inf"), -float("inf")]),
    st.floats(-1e6, 1e6, width=32),
)
_DATATYPES = st.sampled_from([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280,
                              1536, 1792, 2048, 2304, 7, 3])  # fmt: skip
_HEADER_FIELDS = {
    "dim": st.lists(st.integers(-3, 32767), min_size=8, max_size=8),
    "datatype": _DATATYPES,
    "bitpix": st.sampled_from([0, 1, 8, 16, 32, 64, 128, 7]),
    "pixdim": st.lists(_NUMBERS, min_size=8, max_size=8),
    "vox_offset": st.sampled_from([0.0, 348.0, 352.0, 353.0, 1e9, -5.0, float("nan")]),
    "scl_slope": _NUMBERS,
    "scl_inter": _NUMBERS,
    "qform_code": st.integers(-1, 5),
    "sform_code": st.integers(-1, 5),
    "quatern_b": _NUMBERS,
    "qoffset_x": _NUMBERS,
    "srow_x": st.lists(_NUMBERS, min_size=4, max_size=4),
    "srow_y": st.lists(_NUMBERS, min_size=4, max_size=4),
    "sizeof_hdr": st.sampled_from([348, 540, 0, 1 << 24]),
    "magic": st.sampled_from([b"n+1", b"ni1", b"n+2", b"xyz"]),
}


@BOUNDED
@given(
    st.dictionaries(st.sampled_from(sorted(_HEADER_FIELDS)), st.none(), max_size=5).flatmap(
        lambda keys: st.fixed_dictionaries({k: _HEADER_FIELDS[k] for k in keys})
    ),
    st.binary(max_size=256),
    st.booleans(),
)
def test_nifti_with_changed_header_fields(scratch, fields, extra, compressed):
    header = np.frombuffer(VALID[:348], dtype=nib.Nifti1Header.template_dtype).copy()
    for name, value in fields.items():
        header[name] = value
    raw = header.tobytes() + VALID[348:] + extra
    _read_both(
        scratch,
        gzip.compress(raw) if compressed else raw,
        "fld.nii.gz" if compressed else "fld.nii",
    )


@BOUNDED
@given(
    _DATATYPES,
    st.sampled_from([0, 1, 8, 16, 24, 32, 64, 128]),
    st.lists(st.integers(-1, 7), min_size=4, max_size=4),
    st.binary(max_size=64),
)
def test_nifti_of_any_data_type_and_shape(scratch, datatype, bitpix, dims, extra):
    header = np.frombuffer(VALID[:348], dtype=nib.Nifti1Header.template_dtype).copy()
    header["datatype"], header["bitpix"] = datatype, bitpix
    header["dim"][0, :5] = [len(dims), *dims]
    _read_both(scratch, header.tobytes() + VALID[348:] + extra, "type.nii")


@BOUNDED
@given(st.binary(max_size=600))
def test_nifti_truncated_or_extended(scratch, tail):
    cut = len(tail) % len(VALID)
    _read_both(scratch, VALID[:cut] + tail, "cut.nii")


_CELLS = st.sampled_from(
    ["moving", "fixed", "id", "split", "frame", "group", "mask", "moving_labels",
     "label_table", "train", "val", "x", "", " ", "a.nii.gz", "../b.nii", "~/c.nii", "3",
     "-1", "1e9", "\x00", "é", '"', "\r", "\n", ",", "~nosuchuser/x.nii", "n" * 300]
)  # fmt: skip


@BOUNDED
@given(st.text(max_size=400))
def test_pairs_csv_of_arbitrary_text(scratch, text):
    _read_csv(scratch, text.encode("utf-8", "surrogatepass"))


_COLUMNS = ("moving", "fixed", "moving_labels", "fixed_labels", "mask", "group", "id",
            "split", "frame", "label_table", "other")  # fmt: skip


@st.composite
def _csv_tables(draw) -> str:
    """A header of moving, fixed and other known (unknown, repeated) columns, and rows of
    as many cells, each a path, a number, a split name or something odd (quoted when
    needed)."""
    extra = draw(st.lists(st.sampled_from(_COLUMNS), max_size=4))
    columns = draw(st.permutations(["moving", "fixed", *extra]))
    rows = draw(st.lists(st.lists(_CELLS, min_size=len(columns), max_size=len(columns)),
                         max_size=4))  # fmt: skip
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


@BOUNDED
@given(_csv_tables(), st.booleans())
def test_pairs_csv_of_csv_like_text(scratch, text, check_files):
    (scratch / "a.nii.gz").write_bytes(VALID)
    _read_csv(scratch, text.encode("utf-8"), check_files)


@FEW
@given(st.binary(max_size=300))
def test_pairs_csv_of_arbitrary_bytes(scratch, data):
    _read_csv(scratch, data)


def _read_csv(scratch: Path, data: bytes, check_files: bool = True) -> None:
    path = scratch / "pairs.csv"
    path.write_bytes(data)
    try:
        rows = read_pairs_csv(path, check_files=check_files)
    except StructregError:
        return
    assert rows and all(row.moving and row.fixed for row in rows)


@BOUNDED
@given(st.one_of(st.text(max_size=60), st.sampled_from(["phantom:", "pairs:x.csv", "cache:/"])))
def test_data_spec_of_any_text(text):
    try:
        spec = parse_data_spec(text)
    except StructregError:
        return
    assert spec.kind in ("phantom", "acdc", "pairs", "cache") and spec.target


_SPEC_PARTS = st.sampled_from(
    ["ours", "voxelmorph", "lcc-demons", "identity", "ants-syn", "dipy-syn", ":", ",", "=",
     "run", "builtin:cardiac", "label=a", "batch_size=2", "batch_size=-1", "refine=x", "k=",
     "sigma=1e400", "nan", " ", "\x00", "é"]
)  # fmt: skip


@BOUNDED
@given(st.one_of(st.text(max_size=60), st.lists(_SPEC_PARTS, max_size=8).map("".join)))
def test_method_specs_of_any_text(text):
    try:
        specs = parse_methods(text)
    except StructregError:
        return
    assert specs


@BOUNDED
@given(st.text(max_size=30))
def test_size_and_spacing_of_any_text(text):
    for parse in (parse_size, parse_spacing):
        try:
            values = parse(text)
        except StructregError:
            continue
        assert values and all(v > 0 for v in values)
