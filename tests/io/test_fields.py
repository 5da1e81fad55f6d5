"""Exported displacement fields reproduce our warp in SimpleITK (ITK convention)."""

import numpy as np
import pytest

from helpers import smooth_field, textured_image
from structreg.core.ops import warp
from structreg.io.fields import disp_to_physical_lps, physical_lps_to_disp, write_itk_displacement

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


@pytest.mark.parametrize("ndim", [2, 3])
def test_simpleitk_resampling_with_exported_field_reproduces_our_warp(tmp_path, ndim):
    shape = (30, 26) if ndim == 2 else (16, 14, 12)
    moving = textured_image(shape, seed=1)
    disp = smooth_field(shape, amplitude=2.5, seed=2, sigma=3.0)
    ours = warp(moving, disp).numpy()[0, 0]

    affine = _affine(ndim)
    nib.save(
        nib.Nifti1Image(moving.numpy()[0, 0].astype(np.float32), affine),
        str(tmp_path / "moving.nii.gz"),
    )
    write_itk_displacement(tmp_path / "field.nii.gz", disp.numpy()[0], affine)

    m = sitk.ReadImage(str(tmp_path / "moving.nii.gz"), sitk.sitkFloat64)
    field = sitk.ReadImage(str(tmp_path / "field.nii.gz"), sitk.sitkVectorFloat64)
    assert field.GetSize() == m.GetSize() and field.GetNumberOfComponentsPerPixel() == ndim
    transform = sitk.DisplacementFieldTransform(field)
    theirs = sitk.Resample(m, m, transform, sitk.sitkLinear, 0.0)
    # SimpleITK arrays are in reversed axis order
    theirs = np.transpose(sitk.GetArrayFromImage(theirs), tuple(reversed(range(ndim))))
    inner = tuple(slice(4, -4) for _ in shape)
    np.testing.assert_allclose(theirs[inner], ours[inner], atol=1e-4)


def test_physical_round_trip():
    disp = smooth_field((8, 9), 2.0, seed=3).numpy()[0]
    affine = _affine(2)
    back = physical_lps_to_disp(disp_to_physical_lps(disp, affine), affine)
    np.testing.assert_allclose(back, disp, atol=1e-12)
    with pytest.raises(ValueError, match="disp_to_physical_lps"):
        disp_to_physical_lps(disp[:1], affine)
