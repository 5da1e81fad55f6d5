"""NIfTI reading/writing: geometry kept, dtypes, 4-D frames, and one-line errors naming the file."""

import nibabel as nib
import numpy as np
import pytest

from data_fixtures import assert_one_line_error, save, truncate
from structreg.io.nifti import (
    DataError,
    Volume,
    check_labels,
    check_same_ndim,
    read_image,
    read_labels,
    write_image,
    write_labels,
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("shape, spacing", [((6, 5), (1.25, 2.0)), ((6, 5, 4), (1.5, 1.5, 10.0))])
def test_write_read_round_trip_keeps_data_affine_and_spacing(tmp_path, rng, shape, spacing):
    data = rng.normal(size=shape).astype(np.float32)
    affine = np.diag([*spacing, *[1.0] * (4 - len(spacing))])
    affine[:3, 3] = (-10.0, 5.0, 2.5)
    path = write_image(tmp_path / "img.nii.gz", data, affine=affine)
    vol = read_image(path)
    assert vol.data.dtype == np.float32 and vol.data.shape == shape
    np.testing.assert_array_equal(vol.data, data)
    np.testing.assert_allclose(vol.affine, affine)
    assert vol.spacing == pytest.approx(spacing)
    assert vol.path == str(path)


def test_labels_are_int16_and_keep_values(tmp_path):
    labels = np.array([[0, 1], [2, 3]], dtype=np.uint8)[..., None].repeat(3, axis=2)
    path = write_labels(tmp_path / "lab.nii", labels, spacing=(2.0, 2.0, 5.0))
    vol = read_labels(path, allowed={0, 1, 2, 3})
    assert vol.data.dtype == np.int16
    np.testing.assert_array_equal(vol.data, labels)
    assert vol.spacing == pytest.approx((2.0, 2.0, 5.0))


def test_float_stored_integer_labels_are_accepted(tmp_path):
    save(tmp_path / "lab.nii.gz", np.array([[0.0, 3.0], [1.0, 2.0]], dtype=np.float32), (1, 1))
    np.testing.assert_array_equal(read_labels(tmp_path / "lab.nii.gz").data, [[0, 3], [1, 2]])


def test_single_frame_4d_is_read_as_3d(tmp_path, rng):
    data = rng.normal(size=(5, 4, 3, 1)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, 8.0, 1.0])), str(tmp_path / "t.nii.gz"))
    vol = read_image(tmp_path / "t.nii.gz")
    assert vol.data.shape == (5, 4, 3)
    assert vol.spacing == pytest.approx((1.5, 1.5, 8.0))
    np.testing.assert_array_equal(vol.data, data[..., 0])


def test_multi_frame_4d_needs_a_frame_index(tmp_path, rng):
    data = rng.normal(size=(5, 4, 3, 6)).astype(np.float32)
    path = tmp_path / "cine_4d.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    with pytest.raises(DataError, match="6 frames") as exc:
        read_image(path)
    assert_one_line_error(exc, path)
    np.testing.assert_array_equal(read_image(path, frame=4).data, data[..., 4])
    with pytest.raises(DataError, match="out of range"):
        read_image(path, frame=6)


def test_nan_and_inf_images_are_refused(tmp_path):
    for value in (np.nan, np.inf):
        data = np.ones((4, 4), dtype=np.float32)
        data[1, 2] = value
        path = save(tmp_path / f"bad_{value}.nii.gz", data, (1, 1))
        with pytest.raises(DataError, match="NaN/Inf") as exc:
            read_image(path)
        assert_one_line_error(exc, path)


def test_non_integer_labels_are_refused(tmp_path):
    path = save(tmp_path / "lab.nii.gz", np.array([[0.0, 1.5]], dtype=np.float32), (1, 1))
    with pytest.raises(DataError, match="non-integer") as exc:
        read_labels(path)
    assert_one_line_error(exc, path)


def test_unexpected_label_values_are_refused(tmp_path):
    path = save(tmp_path / "lab_gt.nii.gz", np.array([[0, 1], [7, 3]], dtype=np.int16), (1, 1))
    with pytest.raises(DataError, match=r"unexpected label values \[7\]") as exc:
        read_labels(path, allowed=(0, 1, 2, 3))
    assert_one_line_error(exc, path)
    check_labels(np.array([0, 3]), {0, 1, 2, 3}, "x")  # allowed values pass
    with pytest.raises(DataError, match="x: unexpected"):
        check_labels(np.array([0, -1]), {0, 1}, "x")


def test_truncated_gzip_is_refused(tmp_path, rng):
    path = save(tmp_path / "big.nii.gz", rng.normal(size=(40, 40, 8)).astype(np.float32), (1, 1, 1))
    truncate(path)
    with pytest.raises(DataError, match="truncated or corrupt") as exc:
        read_image(path)
    assert_one_line_error(exc, path)


def test_file_truncated_inside_the_header_is_refused(tmp_path, rng):
    for name in ("head.nii.gz", "head.nii"):
        path = save(tmp_path / name, rng.normal(size=(8, 8)).astype(np.float32), (1, 1))
        path.write_bytes(path.read_bytes()[:60])
        with pytest.raises(DataError, match="truncated") as exc:
            read_image(path)
        assert_one_line_error(exc, path)


def test_text_file_renamed_to_nifti_is_refused(tmp_path):
    for name in ("notes.nii.gz", "notes.nii"):
        path = tmp_path / name
        path.write_text("patient notes, not an image\n")
        with pytest.raises(DataError, match="not a readable NIfTI") as exc:
            read_image(path)
        assert_one_line_error(exc, path)


def test_wrong_suffix_and_missing_file_are_refused(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG")
    with pytest.raises(DataError, match="not a NIfTI file") as exc:
        read_image(path)
    assert_one_line_error(exc, path)
    with pytest.raises(DataError, match="not found") as exc:
        read_labels(tmp_path / "missing.nii.gz")
    assert_one_line_error(exc, tmp_path / "missing.nii.gz")


def test_mismatched_dimensionality_names_both_files():
    moving = Volume(np.zeros((4, 4), np.float32), np.eye(4), (1.0, 1.0), "m.nii.gz")
    fixed = Volume(np.zeros((4, 4, 2), np.float32), np.eye(4), (1.0, 1.0, 1.0), "f.nii.gz")
    with pytest.raises(DataError, match="same dimensionality") as exc:
        check_same_ndim(moving, fixed)
    assert_one_line_error(exc, "m.nii.gz", "f.nii.gz")
    check_same_ndim(moving, moving)


def test_failed_write_leaves_old_file_and_no_temporaries(tmp_path):
    path = write_labels(tmp_path / "out.nii.gz", np.zeros((3, 3), np.int16))
    before = path.read_bytes()
    with pytest.raises(ValueError, match="non-integer"):
        write_labels(path, np.full((3, 3), 0.5))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nii.gz"]
    with pytest.raises(ValueError, match=".nii"):
        write_image(tmp_path / "out.png", np.zeros((3, 3)))
