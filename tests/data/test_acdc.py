"""ACDC layout: a tiny data set written here is read correctly; bad inputs give one-line errors."""

import shutil

import nibabel as nib
import numpy as np
import pytest

from data_fixtures import (
    ACDC_PATIENTS,
    ACDC_SHAPE,
    ACDC_SPACING,
    assert_one_line_error,
    save,
    truncate,
    write_acdc,
)
from structreg.data.acdc import find_patients, load_acdc, load_acdc_patient, read_info
from structreg.data.dataset import split_by_subject
from structreg.data.preprocess import PreprocessRecord, label_centroid, to_original
from structreg.io.nifti import DataError

SIZE = (48, 48)


@pytest.fixture(scope="module")
def acdc(tmp_path_factory):
    return write_acdc(tmp_path_factory.mktemp("acdc") / "ACDC")


@pytest.fixture(scope="module")
def pairs(acdc):
    return load_acdc(acdc, size=SIZE, n_slices=5)


@pytest.fixture
def acdc_copy(acdc, tmp_path):
    return shutil.copytree(acdc, tmp_path / "ACDC")


def test_info_cfg_is_parsed(acdc):
    info = read_info(acdc / "patient003" / "Info.cfg")
    assert (info.ed, info.es, info.group) == (2, 12, "HCM")
    assert (info.height, info.weight, info.n_frames) == (180.0, 80.0, 30)


def test_pairs_per_patient_groups_ids_and_slices(pairs):
    assert len(pairs) == 3 * 5
    for name, (group, *_rest) in ACDC_PATIENTS.items():
        mine = [p for p in pairs if p.subject == name]
        assert [p.id for p in mine] == [f"{name}_slice{k:02d}" for k in (1, 2, 3, 4, 5)]
        assert {p.group for p in mine} == {group}
        assert {(p.meta["ed_frame"], p.meta["es_frame"]) for p in mine} == {
            (ACDC_PATIENTS[name][1], ACDC_PATIENTS[name][2])
        }
        assert (
            mine[0].meta["moving_file"].endswith(f"{name}_frame{ACDC_PATIENTS[name][1]:02d}.nii.gz")
        )
        assert (
            mine[0].meta["fixed_file"].endswith(f"{name}_frame{ACDC_PATIENTS[name][2]:02d}.nii.gz")
        )


def test_arrays_spacing_and_labels(pairs):
    for p in pairs:
        assert p.spacing == (2.0, 2.0)
        assert p.moving.shape == p.fixed.shape == SIZE and p.moving.dtype == np.float32
        assert 0.0 <= p.moving.min() and p.moving.max() <= 1.0
        assert p.moving_labels.dtype == np.int16
        assert set(np.unique(p.moving_labels)) == {0, 1, 2, 3}
        assert set(np.unique(p.fixed_labels)) <= {0, 1, 2, 3}
        # the crop is centred on the LV (labels 2 and 3 of the ED frame)
        assert label_centroid(p.moving_labels, (2, 3)) == pytest.approx((23.5, 23.5), abs=1.0)


def test_ed_is_moving_es_is_fixed_and_areas_survive_resampling(acdc, pairs):
    name = "patient001"
    group, ed, es, centre, r_ed, r_es = ACDC_PATIENTS[name]
    gt = nib.load(str(acdc / name / f"{name}_frame{ed:02d}_gt.nii.gz")).get_fdata()
    for p in (q for q in pairs if q.subject == name):
        k = PreprocessRecord.from_dict(p.meta["preprocess"]).slice_index
        area_mm2 = (gt[..., k] == 3).sum() * 1.5 * 1.5
        assert (p.moving_labels == 3).sum() * 4.0 == pytest.approx(area_mm2, rel=0.12)
        assert (p.fixed_labels == 3).sum() < (p.moving_labels == 3).sum()  # ES cavity is smaller


def test_labels_map_back_to_the_original_slice(acdc, pairs):
    p = pairs[2]
    record = PreprocessRecord.from_dict(p.meta["preprocess"])
    gt = nib.load(p.meta["moving_labels_file"]).get_fdata()[..., record.slice_index]
    back = to_original(p.moving_labels, record, "labels")
    assert back.shape == ACDC_SHAPE[:2]
    for value in (1, 2, 3):
        a, b = back == value, gt == value
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.9


def test_all_slices_and_nested_layout(acdc, tmp_path):
    nested = tmp_path / "root" / "training"
    shutil.copytree(acdc / "patient002", nested / "patient002")
    pairs = load_acdc(tmp_path / "root", size=SIZE, n_slices=20)
    assert len(pairs) == ACDC_SHAPE[2]
    assert [p.subject for p in pairs] == ["patient002"] * ACDC_SHAPE[2]
    assert len(load_acdc(acdc, size=SIZE, n_slices=1, n_subjects=2)) == 2


def test_splits_are_by_patient_never_by_slice(pairs):
    splits = split_by_subject(pairs, seed=0, val_fraction=0.34, test_fraction=0.34)
    subjects = {name: {p.subject for p in split} for name, split in splits.items()}
    assert sum(len(s) for s in subjects.values()) == 3
    assert subjects["train"] and subjects["val"] and subjects["test"]
    assert not (
        subjects["train"] & subjects["val"]
        or subjects["train"] & subjects["test"]
        or subjects["val"] & subjects["test"]
    )
    for split in splits.values():
        for subject in {p.subject for p in split}:
            assert len([p for p in split if p.subject == subject]) == 5


# ---------------------------------------------------------------------------- bad input


def test_missing_info_cfg(acdc_copy):
    (acdc_copy / "patient002" / "Info.cfg").unlink()
    with pytest.raises(DataError, match="Info.cfg not found") as exc:
        load_acdc(acdc_copy, size=SIZE)
    assert_one_line_error(exc, acdc_copy / "patient002" / "Info.cfg")


@pytest.mark.parametrize(
    "text, message",
    [
        ("ED: 1\nES 12\nGroup: NOR\n", "line 2: expected 'key: value'"),
        ("ED: 1\nGroup: NOR\n", "missing 'ES:'"),
        ("ED: one\nES: 12\nGroup: NOR\n", "ED must be an integer"),
        ("ED: 1\nES: 12\nGroup: XYZ\n", "unknown group 'XYZ'"),
        ("ED: 1\nES: 40\nGroup: NOR\nNbFrame: 30\n", "ES frame 40 outside"),
    ],
)
def test_malformed_info_cfg(acdc_copy, text, message):
    cfg = acdc_copy / "patient001" / "Info.cfg"
    cfg.write_text(text)
    with pytest.raises(DataError, match=message) as exc:
        load_acdc_patient(acdc_copy / "patient001", size=SIZE)
    assert_one_line_error(exc, cfg)


@pytest.mark.parametrize("suffix", [".nii.gz", "_gt.nii.gz"])
def test_missing_frame_file(acdc_copy, suffix):
    path = acdc_copy / "patient003" / f"patient003_frame12{suffix}"
    path.unlink()
    with pytest.raises(DataError, match="frame file not found") as exc:
        load_acdc(acdc_copy, size=SIZE)
    assert_one_line_error(exc, path)


def test_truncated_frame_file(acdc_copy):
    path = truncate(acdc_copy / "patient001" / "patient001_frame10.nii.gz")
    with pytest.raises(DataError, match="truncated or corrupt") as exc:
        load_acdc(acdc_copy, size=SIZE)
    assert_one_line_error(exc, path)


def test_text_renamed_to_nifti(acdc_copy):
    path = acdc_copy / "patient001" / "patient001_frame01_gt.nii.gz"
    path.write_text("ED segmentation exported as text\n")
    with pytest.raises(DataError, match="not a readable NIfTI") as exc:
        load_acdc(acdc_copy, size=SIZE)
    assert_one_line_error(exc, path)


def test_nan_image_and_unexpected_label(acdc_copy):
    image = acdc_copy / "patient002" / "patient002_frame08.nii.gz"
    data = nib.load(str(image)).get_fdata().astype(np.float32)
    data[3, 4, 5] = np.nan
    save(image, data, ACDC_SPACING)
    with pytest.raises(DataError, match="NaN") as exc:
        load_acdc(acdc_copy, size=SIZE)
    assert_one_line_error(exc, image)
    labels = acdc_copy / "patient003" / "patient003_frame02_gt.nii.gz"
    lab = np.asarray(nib.load(str(labels)).dataobj).copy()
    lab[0, 0, 0] = 7
    save(labels, lab, ACDC_SPACING)
    with pytest.raises(DataError, match=r"unexpected label values \[7\]") as exc:
        load_acdc_patient(acdc_copy / "patient003", size=SIZE)
    assert_one_line_error(exc, labels)


def test_ed_and_es_of_different_dimensionality(acdc_copy):
    es = acdc_copy / "patient001" / "patient001_frame10.nii.gz"
    save(es, nib.load(str(es)).get_fdata()[..., 3].astype(np.float32), ACDC_SPACING[:2])
    with pytest.raises(DataError, match="same dimensionality") as exc:
        load_acdc_patient(acdc_copy / "patient001", size=SIZE)
    assert_one_line_error(exc, es, acdc_copy / "patient001" / "patient001_frame01.nii.gz")


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no patientXXX folders") as exc:
        find_patients(tmp_path)
    assert_one_line_error(exc, tmp_path)
    with pytest.raises(DataError, match="not found"):
        find_patients(tmp_path / "nope")


def test_a_3d_size_yields_whole_ed_es_stacks_with_anisotropic_spacing(acdc):
    from structreg.data.spec import load_pairs

    size, spacing = (40, 40, ACDC_SHAPE[2]), (2.0, 2.0, ACDC_SPACING[2])
    stacks = load_pairs(f"acdc:{acdc}", split="all", size=size, spacing=spacing)
    assert len(stacks) == len(ACDC_PATIENTS)  # one ED -> ES pair per patient
    for p in stacks:
        assert p.moving.shape == p.fixed.shape == p.moving_labels.shape == size
        assert p.spacing == spacing
        # the stack is kept whole: the blood pool runs through most of its slices
        for labels in (p.moving_labels, p.fixed_labels):
            assert (labels == 3).any(axis=(0, 1)).sum() >= size[2] - 2
