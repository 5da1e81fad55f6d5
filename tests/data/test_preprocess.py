"""Preprocessing: resampling, crop/pad, normalisation, slices, and the inverse mapping."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter, zoom

from data_fixtures import assert_one_line_error
from structreg.core.ops import jacobian_det
from structreg.data.preprocess import (
    FIELD_TAPER_MIN,
    PreprocessRecord,
    central_slices,
    denormalise,
    label_centroid,
    normalise_intensity,
    plan_geometry,
    preprocess_pair,
    processed_region,
    to_original,
    to_processed,
)
from structreg.io.nifti import DataError, Volume


def smooth_image(shape, seed=0, sigma=4.0):
    img = gaussian_filter(np.random.default_rng(seed).normal(size=shape), sigma)
    return ((img - img.min()) / (img.max() - img.min())).astype(np.float32)


def blob_labels(shape, centre, radii=(6.0, 10.0, 14.0)):
    """Nested discs: 3 inside, 2 ring, 1 outer ring (voxel units)."""
    r = np.hypot(
        *np.meshgrid(*(np.arange(n) - c for n, c in zip(shape, centre, strict=True)), indexing="ij")
    )
    labels = np.zeros(shape, np.int16)
    labels[r < radii[2]] = 1
    labels[r < radii[1]] = 2
    labels[r < radii[0]] = 3
    return labels


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_central_slices():
    assert central_slices(8, 5) == (1, 2, 3, 4, 5)
    assert central_slices(10, 7) == (1, 2, 3, 4, 5, 6, 7)
    assert central_slices(8, 9) == tuple(range(8))
    assert central_slices(9, 1) == (4,)
    with pytest.raises(ValueError):
        central_slices(8, 0)


def test_normalise_intensity_maps_percentiles_to_unit_range():
    image = np.arange(101, dtype=np.float32) * 3.0 + 10.0  # 10 .. 310
    out, (lo, hi) = normalise_intensity(image, (1.0, 99.0))
    assert (lo, hi) == pytest.approx((13.0, 307.0))
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    assert out[50] == pytest.approx((160.0 - 13.0) / 294.0)
    inner = slice(1, 100)
    np.testing.assert_allclose(denormalise(out, (lo, hi))[inner], image[inner], rtol=1e-5)
    const, _ = normalise_intensity(np.full((3, 3), 5.0))
    assert np.isfinite(const).all()


def test_same_spacing_and_size_is_the_identity():
    image = smooth_image((30, 24))
    record = plan_geometry(image.shape, (2.0, 2.0), target_spacing=(2.0, 2.0), size=(30, 24))
    assert record.offset == (0, 0) and record.scale == (1.0, 1.0)
    np.testing.assert_array_equal(to_processed(image, record), image)


def test_crop_is_an_exact_shift_centred_on_the_given_centre():
    labels = blob_labels((60, 50), centre=(40.0, 12.0))
    record = plan_geometry(
        labels.shape, (2.0, 2.0), target_spacing=(2.0, 2.0), size=(20, 30), centre=(40.0, 12.0)
    )
    out = to_processed(labels, record, "labels")
    assert out.dtype == np.int16 and out.shape == (20, 30)
    # the centre lands in the middle; outside the image it is padding (0)
    assert label_centroid(out, (3,)) == pytest.approx((9.5, 14.5), abs=0.51)
    oy, ox = record.offset
    assert ox < 0
    np.testing.assert_array_equal(out[:, -ox:], labels[oy : oy + 20, 0 : 30 + ox])
    assert (out[:, :-ox] == 0).all()


def test_resampling_matches_scipy_zoom_with_aligned_pixel_edges():
    image = smooth_image((40, 36))
    record = plan_geometry(image.shape, (1.5, 1.5), target_spacing=(2.0, 2.0), size=(30, 27))
    assert record.resampled_shape == (30, 27) and record.offset == (0, 0)
    ours = to_processed(image, record)
    ref = zoom(image, 0.75, order=1, grid_mode=True, mode="nearest")
    assert ref.shape == ours.shape
    np.testing.assert_allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("spacing", [(1.5, 1.25), (2.0, 2.0), (2.6, 3.0)])
def test_image_round_trip_to_the_original_grid(spacing):
    image = smooth_image((48, 40), sigma=5.0)
    record = plan_geometry(image.shape, spacing, size=(30, 30), centre=(20.0, 22.0))
    back = to_original(to_processed(image, record), record)
    region = processed_region(record)
    inner = np.zeros_like(region)
    inner[2:-2, 2:-2] = True
    inner &= _eroded(region)
    assert back.shape == image.shape and inner.sum() > 100
    err = np.abs(back - image)[inner]
    tol = 1e-6 if spacing == (2.0, 2.0) else 0.03
    assert err.max() < tol
    assert (back[~region] == 0).all()


def _eroded(region, n=2):
    from scipy.ndimage import binary_erosion

    return binary_erosion(region, iterations=n)


def test_label_round_trip_is_exact_without_resampling():
    labels = blob_labels((60, 50), centre=(25.0, 30.0))
    record = plan_geometry(labels.shape, (2.0, 2.0), size=(40, 40), centre=(25.0, 30.0))
    back = to_original(to_processed(labels, record, "labels"), record, "labels")
    region = processed_region(record)
    np.testing.assert_array_equal(back[region], labels[region])
    assert (back[~region] == 0).all()


def test_label_round_trip_with_resampling_has_high_dice():
    labels = blob_labels((80, 80), centre=(40.0, 38.0), radii=(8.0, 14.0, 20.0))
    record = plan_geometry(labels.shape, (1.5, 1.5), size=(100, 100), centre=(40.0, 38.0))
    back = to_original(to_processed(labels, record, "labels"), record, "labels")
    for value in (1, 2, 3):
        assert dice(back == value, labels == value) > 0.9


def test_field_vectors_are_rescaled_both_ways():
    record = plan_geometry((45, 36), (1.5, 1.2), size=(20, 20))
    field = np.zeros((2, 20, 20), np.float32)
    field[0] = 2.0  # 2 processed voxels = 4 mm along axis 0
    field[1] = -1.0  # -2 mm along axis 1
    back = to_original(field, record, "field")
    region = processed_region(record)
    assert back.shape == (2, 45, 36)
    np.testing.assert_allclose(back[0][region] * 1.5, 4.0, rtol=1e-5)
    np.testing.assert_allclose(back[1][region] * 1.2, -2.0, rtol=1e-5)
    again = to_processed(back, record, "field")
    np.testing.assert_allclose(again[:, 2:-2, 2:-2], field[:, 2:-2, 2:-2], rtol=1e-5)


@pytest.mark.parametrize(
    ("source", "spacing", "size", "target"),
    [
        ((100, 50), (1.0, 1.0), (20, 20), (2.0, 2.0)),
        ((60, 34, 28), (1.5, 1.0, 2.0), (8, 10, 8), (3.0, 3.0, 3.0)),
    ],
)
def test_a_field_mapped_back_fades_outside_the_region_without_folding(
    source, spacing, size, target
):
    # the processed grid covers a box in the middle of a larger source image; a field
    # of 3 processed voxels along axis 0 (a step to zero at the box's faces would fold
    # there: det J = 1 - 3 * scale < 0)
    record = plan_geometry(source, spacing, size=size, target_spacing=target)
    field = np.zeros((len(size), *size), np.float32)
    field[0] = 3.0
    back = to_original(field, record, "field")
    region = processed_region(record)
    assert (~region).any()
    scale = record.scale[0]
    np.testing.assert_allclose(back[0][region], 3.0 * scale, rtol=1e-5)
    det = jacobian_det(torch.from_numpy(back[None].astype(np.float64)))
    assert det.min() > 0.4, float(det.min())  # the fall-off stretches by at most a half
    # the vectors fade: smaller away from the box, zero beyond the band
    edge = np.argmax(region.any(axis=tuple(range(1, len(size))))[::-1])
    last = len(region) - 1 - edge  # the last source row along axis 0 inside the box
    line = back[0][(slice(last, None), *[s // 2 for s in source[1:]])]
    assert np.all(np.diff(line) <= 1e-6) and line[0] > line[-1]
    band = max(FIELD_TAPER_MIN, 2 * 3.0 * scale)
    assert len(region) - 1 - last > band  # the image reaches beyond the band
    assert line[-1] == 0.0


def test_record_survives_json_and_maps_to_world_coordinates():
    angle = 0.3
    affine = np.eye(4)
    affine[:3, :3] = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    ) @ np.diag([1.5, 1.4, 10.0])
    affine[:3, 3] = (-30.0, 12.0, 7.0)
    record = plan_geometry(
        (50, 44, 9),
        (1.5, 1.4, 10.0),
        size=(32, 32),
        affine=affine,
        slice_axis=2,
        slice_index=4,
        centre=(20.0, 25.0),
    )
    again = PreprocessRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record
    assert again.source_shape == (50, 44) and again.axes == (0, 1)
    p = np.array([3.0, 17.0])
    o = record.source_coordinates(p)
    world_orig = nib.affines.apply_affine(affine, [o[0], o[1], 4.0])
    world_proc = nib.affines.apply_affine(record.processed_affine(), [p[0], p[1], 0.0])
    np.testing.assert_allclose(world_proc, world_orig, atol=1e-9)
    # processed voxels are 2 mm apart in world space
    assert np.linalg.norm(record.processed_affine()[:3, 0]) == pytest.approx(2.0)


def test_wrong_shapes_are_refused():
    record = plan_geometry((10, 10), (1.0, 1.0), size=(8, 8))
    with pytest.raises(ValueError, match="shape"):
        to_processed(np.zeros((9, 10)), record)
    with pytest.raises(ValueError, match="shape"):
        to_original(np.zeros((8, 8)), record, "field")
    with pytest.raises(ValueError, match="entries"):
        plan_geometry((10, 10, 5), (1.0, 1.0, 1.0), size=(8, 8))


def _volume(data, spacing, name):
    return Volume(data, np.diag([*spacing, 1.0]), spacing, name)


def test_preprocess_pair_slices_volumes_and_centres_on_the_labels():
    shape, spacing = (48, 40, 7), (1.5, 1.5, 8.0)
    labels = np.stack([blob_labels(shape[:2], (30.0, 14.0), (4.0, 7.0, 9.0))] * 7, axis=-1)
    labels[..., 0] = 0  # an empty slice does not move the centre
    image = smooth_image(shape, sigma=2.0) * 100 + labels * 50
    pairs = preprocess_pair(
        _volume(image, spacing, "m.nii.gz"),
        _volume(image * 1.1, spacing, "f.nii.gz"),
        pair_id="s1",
        moving_labels=_volume(labels, spacing, "ml.nii.gz"),
        fixed_labels=_volume(labels, spacing, "fl.nii.gz"),
        subject="s1",
        group="G",
        size=(24, 24),
        n_slices=5,
        centre_labels=(2, 3),
    )
    assert [p.id for p in pairs] == [f"s1_slice{k:02d}" for k in (1, 2, 3, 4, 5)]
    for p in pairs:
        assert p.spacing == (2.0, 2.0) and p.moving.shape == (24, 24)
        assert p.subject == "s1" and p.group == "G"
        assert 0.0 <= p.moving.min() and p.moving.max() <= 1.0
        assert label_centroid(p.moving_labels, (2, 3)) == pytest.approx((11.5, 11.5), abs=0.6)
        rec = PreprocessRecord.from_dict(p.meta["preprocess"])
        assert rec.slice_axis == 2 and rec.original_shape == shape
        assert set(rec.intensity) == {"moving", "fixed"}
    assert p.meta["moving_file"] == "m.nii.gz"


def test_preprocess_pair_volume_mode_and_errors():
    vol = _volume(smooth_image((20, 20, 6)), (2.0, 2.0, 4.0), "v.nii.gz")
    (pair,) = preprocess_pair(
        vol, vol, pair_id="v", size=(16, 16, 8), spacing=(2.0, 2.0, 2.0), n_slices=None
    )
    assert pair.moving.shape == (16, 16, 8) and pair.spacing == (2.0, 2.0, 2.0)
    with pytest.raises(DataError, match="3 entries") as exc:
        preprocess_pair(vol, vol, pair_id="v", size=(16, 16), n_slices=None)
    assert_one_line_error(exc, "v.nii.gz")
    flat = _volume(smooth_image((20, 20)), (2.0, 2.0), "flat.nii.gz")
    flat.affine = np.eye(4)
    with pytest.raises(DataError, match="dimensionality") as exc:
        preprocess_pair(vol, flat, pair_id="v")
    assert_one_line_error(exc, "v.nii.gz", "flat.nii.gz")
    other = _volume(smooth_image((20, 18, 6)), (2.0, 2.0, 4.0), "o.nii.gz")
    with pytest.raises(DataError, match="one voxel grid") as exc:
        preprocess_pair(
            vol,
            vol,
            pair_id="v",
            moving_labels=Volume(
                np.zeros((20, 18, 6), np.int16), np.eye(4), (2.0, 2.0, 4.0), "lab.nii.gz"
            ),
        )
    assert_one_line_error(exc, "lab.nii.gz")
    # moving and fixed on different grids meet on the fixed grid (world space)
    pairs = preprocess_pair(vol, other, pair_id="v", size=(16, 16), n_slices=2)
    assert len(pairs) == 2 and pairs[0].meta["moving_file"] == "v.nii.gz"
    assert pairs[0].meta["preprocess"]["original_shape"] == [20, 18, 6]
