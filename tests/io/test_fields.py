"""Exported displacement fields reproduce our warp in SimpleITK (ITK convention), for
images stored ``H×W`` (2-D in ITK), ``H×W×1`` / ``H×W×1×1`` (3-D in ITK) and volumes."""

import numpy as np
import pytest

from helpers import smooth_field, textured_image
from structreg.core.ops import warp
from structreg.errors import DataError
from structreg.io.fields import (
    disp_to_physical_lps,
    itk_dims,
    itk_frame,
    itk_vectors,
    physical_lps_to_disp,
    write_itk_displacement,
)

sitk = pytest.importorskip("SimpleITK")
nib = pytest.importorskip("nibabel")


def _affine(ndim: int) -> np.ndarray:
    """Anisotropic spacing, an axis flip, a small rotation and an offset."""
    a = np.eye(4)
    theta = 0.3
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    a[:2, :2] = rot @ np.diag([2.0, -1.5])
    if ndim == 3:
        a[2, 2] = 3.0
    a[:3, 3] = [12.0, -30.0, 5.0]
    return a


def _oblique() -> np.ndarray:
    """Axes leaving the axial plane (a tilt about x, then a rotation about z)."""
    tilt, turn = 0.35, 0.4
    rx = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    rz = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = rx @ rz @ np.diag([2.0, -1.5, 3.0])
    a[:3, 3] = [12.0, -30.0, 5.0]
    return a


CASES = {  # name: (array shape, stored layout, affine)
    "HxW": ((30, 26), (30, 26), _affine(2)),
    "HxW-oblique": ((30, 26), (30, 26), _oblique()),
    "HxWx1": ((30, 26), (30, 26, 1), _affine(2)),
    "HxWx1-oblique": ((30, 26), (30, 26, 1), _oblique()),
    "HxWx1x1-oblique": ((30, 26), (30, 26, 1, 1), _oblique()),
    "3D": ((16, 14, 12), (16, 14, 12), _affine(3)),
    "3D-oblique": ((16, 14, 12), (16, 14, 12), _oblique()),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_simpleitk_resampling_with_exported_field_reproduces_our_warp(tmp_path, case):
    shape, layout, affine = CASES[case]
    ndim = len(shape)
    moving = textured_image(shape, seed=1)
    disp = smooth_field(shape, amplitude=2.5, seed=2, sigma=3.0)
    ours = warp(moving, disp).numpy()[0, 0]

    stored = moving.numpy()[0, 0].astype(np.float32).reshape(layout)
    nib.save(nib.Nifti1Image(stored, affine), str(tmp_path / "moving.nii.gz"))
    write_itk_displacement(tmp_path / "field.nii.gz", disp.numpy()[0], affine, layout=layout)

    m = sitk.ReadImage(str(tmp_path / "moving.nii.gz"), sitk.sitkFloat64)
    field = sitk.ReadImage(str(tmp_path / "field.nii.gz"), sitk.sitkVectorFloat64)
    dims = itk_dims(layout)
    assert m.GetDimension() == field.GetDimension() == dims
    assert field.GetNumberOfComponentsPerPixel() == dims
    assert field.GetSize()[:ndim] == m.GetSize()[:ndim]
    transform = sitk.DisplacementFieldTransform(field)
    theirs = sitk.Resample(m, m, transform, sitk.sitkLinear, 0.0)
    # SimpleITK arrays are in reversed axis order
    theirs = np.transpose(sitk.GetArrayFromImage(theirs), tuple(reversed(range(dims))))
    inner = tuple(slice(4, -4) for _ in shape)
    np.testing.assert_allclose(theirs.reshape(shape)[inner], ours[inner], atol=1e-4)


@pytest.mark.parametrize(
    ("layout", "stored"),
    [
        ((9, 8), (9, 8, 1, 1, 2)),
        ((9, 8, 1), (9, 8, 2, 1, 3)),
        ((9, 8, 1, 1), (9, 8, 2, 1, 3)),
    ],
)
def test_a_slice_field_is_stored_as_itk_reads_images_of_its_layout(tmp_path, layout, stored):
    disp = smooth_field((9, 8), 2.0, seed=4).numpy()[0]
    affine = _oblique()
    write_itk_displacement(tmp_path / "f.nii.gz", disp, affine, layout=layout)
    img = nib.load(str(tmp_path / "f.nii.gz"))
    assert img.shape == stored and img.header.get_intent()[0] == "vector"
    np.testing.assert_allclose(img.affine, affine, atol=1e-5)
    data = np.asarray(img.dataobj)
    if len(layout) > 2:  # the slice twice; its vectors are the 3-D LPS displacement
        np.testing.assert_array_equal(data[:, :, 0], data[:, :, 1])
        disp3 = np.concatenate([disp, np.zeros_like(disp[:1])])
        lps = np.einsum("cd,d...->...c", np.diag([-1.0, -1.0, 1.0]) @ affine[:3, :3], disp3)
        np.testing.assert_allclose(data[:, :, 0, 0], lps, atol=1e-5)


def test_default_layout_is_the_grid_and_axial_slices_keep_their_lps_vectors(tmp_path):
    disp = smooth_field((9, 8), 2.0, seed=5).numpy()[0]
    affine = _affine(2)
    write_itk_displacement(tmp_path / "a.nii.gz", disp, affine)
    write_itk_displacement(tmp_path / "b.nii.gz", disp, affine, layout=(9, 8))
    a = np.asarray(nib.load(str(tmp_path / "a.nii.gz")).dataobj)
    b = np.asarray(nib.load(str(tmp_path / "b.nii.gz")).dataobj)
    np.testing.assert_array_equal(a, b)
    want = disp_to_physical_lps(disp, affine).astype(np.float32)
    np.testing.assert_array_equal(a[:, :, 0, 0], want)  # bit-identical to LPS mm
    # a through-plane component on a 2-D grid is left out of a 2-D field
    with_z = np.concatenate([disp, np.ones_like(disp[:1])])
    np.testing.assert_array_equal(itk_vectors(with_z, affine), a)


def test_itk_frame_of_a_2d_image_is_the_frame_itk_reads_it_in(tmp_path):
    affine = _oblique()
    nib.save(nib.Nifti1Image(np.zeros((9, 8), np.float32), affine), str(tmp_path / "i.nii.gz"))
    image = sitk.ReadImage(str(tmp_path / "i.nii.gz"))
    direction = np.asarray(image.GetDirection()).reshape(2, 2)
    np.testing.assert_allclose(itk_frame(affine, 2), direction @ np.diag(image.GetSpacing()))
    np.testing.assert_allclose(
        itk_frame(_affine(3), 2), np.diag([-1, -1, 1])[:2, :2] @ _affine(3)[:2, :2]
    )


def test_a_field_that_does_not_fit_the_layout_is_refused(tmp_path):
    disp = np.zeros((2, 9, 8))
    for layout in [(9, 7), (9, 8, 2), (8, 9, 1)]:
        with pytest.raises(DataError, match="does not fit"):
            write_itk_displacement(tmp_path / "f.nii.gz", disp, np.eye(4), layout=layout)
    with pytest.raises(DataError, match="must be"):
        write_itk_displacement(tmp_path / "f.nii.gz", np.zeros((1, 9, 8)), np.eye(4))
    assert not (tmp_path / "f.nii.gz").exists()


def test_physical_round_trip():
    disp = smooth_field((8, 9), 2.0, seed=3).numpy()[0]
    affine = _affine(2)
    back = physical_lps_to_disp(disp_to_physical_lps(disp, affine), affine)
    np.testing.assert_allclose(back, disp, atol=1e-12)
    with pytest.raises(ValueError, match="disp_to_physical_lps"):
        disp_to_physical_lps(disp[:1], affine)
