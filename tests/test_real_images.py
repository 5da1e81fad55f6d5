"""The real-image corpus of ``tests/real_images.py`` is what it claims: layouts, world affines,
tissue labels, and the ground-truth mappings of the transformed copies."""

import hashlib
import importlib.util
import re

import nibabel as nib
import numpy as np
import pytest
from nibabel.processing import resample_from_to
from scipy import ndimage

import real_images as R

needs_mni = pytest.mark.skipif(
    importlib.util.find_spec("nilearn") is None, reason="the MNI152 template comes with nilearn"
)
SOURCES = [pytest.param("mni", marks=needs_mni), "subject"]
#: Largest mean |copy resampled back - original| over the overlap, as a fraction of the
#: original's intensity range (two linear interpolations; measured about 0.9 % for the smooth
#: MNI slice and 2.9 % for the noisy 2 mm real subject, rotated copy).
BACK_TOLERANCE = {"mni": 0.02, "subject": 0.04}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("real")


@pytest.fixture(scope="module")
def mni(folder):
    return R.mni_axial_slice(folder)


@pytest.fixture(scope="module")
def subject(folder):
    return R.real_subject_slice(folder)


@pytest.fixture(scope="module", params=SOURCES)
def source(request, folder):
    """A real single slice and its labels: the MNI slice or the real subject's slice."""
    return {**request.getfixturevalue(request.param), "name": request.param}


def _world(affine, ijk):
    """World mm ``(N, 3)`` of voxel coordinates ``(N, 3)``."""
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _tissue_means(image, labels):
    return [image[labels == v].mean() for v in (1, 2, 3)]


# --------------------------------------------------------------------------- MNI slices


@needs_mni
@pytest.mark.parametrize(
    ("layout", "shape"), [("HxW", (98, 116)), ("HxWx1", (98, 116, 1)), ("HxWx1x1", (98, 116, 1, 1))]
)
def test_mni_slice_layouts(tmp_path, layout, shape):
    out = R.mni_axial_slice(tmp_path, layout=layout)
    assert out["shape"] == shape
    for key in ("image", "labels"):
        img = nib.load(out[key])
        assert img.shape == shape
        np.testing.assert_allclose(img.affine, out["affine"])
        np.testing.assert_allclose(img.get_qform(), out["affine"], atol=1e-5)
        assert int(img.header["sform_code"]) == 4  # MNI152
        assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    assert nib.load(out["labels"]).get_data_dtype() == np.uint8
    # 2 mm voxels, slice at z = 16 mm, grid centred on the template (x = 0 midline)
    a = out["affine"]
    np.testing.assert_allclose(a[:3, :3], np.diag([2.0, 2.0, 2.0]))
    np.testing.assert_allclose(_world(a, np.array([[48.5, 0.0, 0.0]])), [[0.0, -133.0, 16.0]])


@needs_mni
def test_mni_slice_sits_at_its_world_position(mni):
    """nibabel's own resampling of the 1 mm template onto the slice's grid (affine and shape
    only) reproduces the slice: the affine is the slice's real world affine."""
    image, affine, _ = R.load_2d(mni["image"])
    template = nib.load(R.mni_template_paths()["t1"])
    ref = resample_from_to(template, (image.shape + (1,), affine), order=1).get_fdata()[..., 0]
    assert np.corrcoef(ref.ravel(), image.ravel())[0, 1] > 0.99
    assert np.abs(ref - image).mean() < 0.03 * np.ptp(image)
    # the symmetric template mirrors onto itself about the grid's centre (world x = 0)
    assert np.corrcoef(image.ravel(), image[::-1].ravel())[0, 1] > 0.99


@needs_mni
def test_mni_labels(mni):
    image, _, _ = R.load_2d(mni["image"])
    labels, _, _ = R.load_2d(mni["labels"])
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    assert all((labels == v).mean() > 0.01 for v in (1, 2, 3))
    csf, gm, wm = _tissue_means(image, labels)
    assert image[labels == 0].mean() < 0.05 * 255 < csf < gm < wm  # T1 contrast
    assert nib.load(mni["labels"]).header.get_intent()[0] == "label"


@needs_mni
def test_mni_stack(tmp_path, mni):
    out = R.mni_stack(tmp_path)
    img = nib.load(out["image"])
    data = img.get_fdata()
    labels = np.asarray(nib.load(out["labels"]).dataobj)
    assert img.shape == labels.shape == out["shape"] == (98, 116, 5)
    np.testing.assert_allclose(img.affine[:3, 2], [0.0, 0.0, 4.0])
    z = _world(img.affine, np.array([[0.0, 0.0, k] for k in range(5)]))[:, 2]
    np.testing.assert_allclose(z, [8.0, 12.0, 16.0, 20.0, 24.0])
    for k in range(5):
        assert set(np.unique(labels[:, :, k])) == {0, 1, 2, 3}
    # the middle slice is the single slice at the same z
    single, _, _ = R.load_2d(mni["image"])
    np.testing.assert_allclose(data[:, :, 2], single, atol=1e-4)


# --------------------------------------------------------------------------- real subject


def test_shipped_anatomical_matches_readme():
    readme = (R.REAL_DIR / "README.md").read_text()
    digest = re.search(r"SHA-256\*\*: `([0-9a-f]{64})`", readme).group(1)
    assert hashlib.sha256(R.ANATOMICAL.read_bytes()).hexdigest() == digest
    img = nib.load(R.ANATOMICAL)
    assert img.shape == (33, 41, 25)
    assert img.get_data_dtype() == np.dtype(">i2")
    expected = np.array([[-2, 0, 0, 32], [0, 2, 0, -40], [0, 0, 2, -16], [0, 0, 0, 1.0]])
    np.testing.assert_allclose(img.affine, expected)


def test_real_subject_slice(subject):
    img = nib.load(subject["image"])
    assert img.shape == subject["shape"] == (33, 41, 1)
    assert img.get_data_dtype() == np.int16
    assert nib.aff2axcodes(img.affine) == ("L", "A", "S")
    assert subject["slice_index"] == 16 and subject["z_mm"] == 16.0
    image, affine, _ = R.load_2d(subject["image"])
    np.testing.assert_array_equal(image, np.asarray(nib.load(R.ANATOMICAL).dataobj)[:, :, 16])
    labels, _, _ = R.load_2d(subject["labels"])
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    assert all((labels == v).mean() > 0.05 for v in (1, 2, 3))
    csf, gm, wm = _tissue_means(image, labels)
    assert csf < gm < wm


@needs_mni
def test_subject_and_mni_make_an_inter_subject_pair(subject, mni):
    """Two different brains in the same (MNI) space: the subject's field of view lies inside
    the MNI slice's and their anatomy agrees only roughly."""
    s_img, s_aff, _ = R.load_2d(subject["image"])
    m_img, m_aff, _ = R.load_2d(mni["image"])
    ij = np.indices(s_img.shape, dtype=float).reshape(2, -1).T
    world = _world(s_aff, np.c_[ij, np.zeros(len(ij))])
    in_mni = _world(np.linalg.inv(m_aff), world)
    assert np.allclose(in_mni[:, 2], 0.0)
    assert (in_mni[:, :2] >= 0).all() and (in_mni[:, :2] <= np.array(m_img.shape) - 1).all()
    m_vals = ndimage.map_coordinates(m_img, in_mni[:, :2].T, order=1)
    assert 0.5 < np.corrcoef(m_vals, s_img.ravel())[0, 1] < 0.95
    m_lab = ndimage.map_coordinates(R.load_2d(mni["labels"])[0], in_mni[:, :2].T, order=0)
    s_wm, m_wm = R.load_2d(subject["labels"])[0].ravel() == 3, m_lab == 3
    assert 2 * (s_wm & m_wm).sum() / (s_wm.sum() + m_wm.sum()) > 0.5  # WM Dice


# --------------------------------------------------------------------------- transformed copies


@pytest.mark.parametrize("kind", R.KINDS)
def test_copy_ground_truth_maps_world_to_world(source, folder, kind):
    copy = R.transformed_copy(source["image"], folder, kind, source["labels"])
    img = nib.load(copy["image"])
    a, a_new = copy["original_affine"], copy["affine"]
    m, t = copy["copy_to_original"], copy["copy_to_original_2d"]
    np.testing.assert_allclose(img.affine, a_new, atol=1e-6)
    assert img.shape == copy["shape"] == nib.load(copy["labels"]).shape
    assert img.ndim == nib.load(source["image"]).ndim  # the source's layout
    h, w = copy["shape"][:2]
    rng = np.random.default_rng(0)
    ij = np.r_[[[0, 0], [h - 1, 0], [0, w - 1], [h - 1, w - 1]], rng.uniform(0, [h, w], (6, 2))]
    p = np.c_[ij, np.zeros(len(ij)), np.ones(len(ij))]
    # M: exact 3-D world identity
    np.testing.assert_allclose((a @ m @ p.T).T[:, :3], (a_new @ p.T).T[:, :3], atol=1e-6)
    # T: in-plane, world of the original voxel = copy world projected onto the original plane
    orig_ij = copy["map_to_original"](ij)
    np.testing.assert_allclose(orig_ij, (t[:2, :2] @ ij.T).T + t[:2, 2])
    n = np.cross(a[:3, 0], a[:3, 1])
    n /= np.linalg.norm(n)
    q = _world(a_new, p[:, :3])
    q_plane = q - np.outer((q - a[:3, 3]) @ n, n)
    np.testing.assert_allclose(_world(a, np.c_[orig_ij, np.zeros(len(ij))]), q_plane, atol=1e-6)
    if kind != "oblique":  # the copy lies in the original's plane
        np.testing.assert_allclose(q_plane, q, atol=1e-6)


def test_copy_geometry(source, folder):
    a = nib.load(source["image"]).affine
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    rot = R.transformed_copy(source["image"], folder, "rotated")["affine"]
    angle = np.degrees(np.arccos(unit(rot[:3, 0]) @ unit(a[:3, 0])))
    np.testing.assert_allclose(angle, 12.0, atol=1e-6)
    obl = R.transformed_copy(source["image"], folder, "oblique")["affine"]
    normal = lambda b: unit(np.cross(b[:3, 0], b[:3, 1]))  # noqa: E731
    np.testing.assert_allclose(np.degrees(np.arccos(normal(obl) @ normal(a))), 10.0, atol=1e-6)
    assert not np.allclose(obl[:3, :3], np.diag(np.diag(obl[:3, :3])))  # an oblique sform
    res = nib.load(R.transformed_copy(source["image"], folder, "resampled")["image"])
    np.testing.assert_allclose(res.header.get_zooms()[:2], [1.5, 1.5])
    flip = R.transformed_copy(source["image"], folder, "flipped")["affine"]
    assert nib.aff2axcodes(flip)[0] != nib.aff2axcodes(a)[0]


@pytest.mark.parametrize("kind", ["rotated", "flipped", "oblique", "resampled", "shifted_fov"])
def test_copy_resampled_back_reproduces_original(source, folder, kind):
    """Pulling the copy back onto the original grid through T^-1 (map_coordinates, order 1)
    gives the original over the overlap, exactly for the integer re-gridding kinds."""
    copy = R.transformed_copy(source["image"], folder, kind, source["labels"])
    orig, _, _ = R.load_2d(source["image"])
    orig_lab, _, _ = R.load_2d(source["labels"])
    data, _, _ = R.load_2d(copy["image"])
    lab, _, _ = R.load_2d(copy["labels"])
    t_inv = np.linalg.inv(copy["copy_to_original_2d"])
    ij = np.indices(orig.shape, dtype=float).reshape(2, -1)
    q = t_inv[:2, :2] @ ij + t_inv[:2, 2:]
    overlap = ndimage.map_coordinates(copy["valid"].astype(float), q, order=1, cval=0.0) > 0.999
    assert overlap.mean() > (0.15 if kind == "shifted_fov" else 0.6)
    back = ndimage.map_coordinates(data.astype(float), q, order=1)[overlap]
    back_lab = ndimage.map_coordinates(lab, np.rint(q), order=0)[overlap]
    ref, ref_lab = orig.ravel()[overlap].astype(float), orig_lab.ravel()[overlap]
    if kind in ("flipped", "shifted_fov"):
        np.testing.assert_array_equal(back, ref)
        np.testing.assert_array_equal(back_lab, ref_lab)
    else:
        assert np.abs(back - ref).mean() < BACK_TOLERANCE[source["name"]] * np.ptp(orig)
        assert (back_lab == ref_lab).mean() > 0.95


def test_disjoint_copy_has_no_world_overlap(source, folder):
    copy = R.transformed_copy(source["image"], folder, "disjoint", source["labels"])
    h, w = copy["shape"][:2]
    assert not copy["valid"].any()
    # world boxes (voxel edges) of the two slices, in the original's voxel frame
    corners = np.array([[i, j, 0.0] for i in (-0.5, h - 0.5) for j in (-0.5, w - 0.5)])
    in_orig = _world(np.linalg.inv(copy["original_affine"]), _world(copy["affine"], corners))
    oh, ow = R.load_2d(source["image"])[0].shape
    lo, hi = in_orig.min(axis=0), in_orig.max(axis=0)
    assert lo[0] > oh - 0.5 or hi[0] < -0.5 or lo[1] > ow - 0.5 or hi[1] < -0.5
    # a non-empty image: the original array, only placed elsewhere
    np.testing.assert_array_equal(R.load_2d(copy["image"])[0], R.load_2d(source["image"])[0])


@needs_mni
@pytest.mark.parametrize("layout", R.LAYOUTS)
def test_copy_keeps_the_source_layout(tmp_path, layout):
    src = R.mni_axial_slice(tmp_path, layout=layout, spacing_mm=4.0, shape=(40, 48))
    assert nib.load(src["image"]).shape == R._layout_shape((40, 48), layout)
    for kind in ("rotated", "resampled"):
        copy = R.transformed_copy(src["image"], tmp_path, kind, src["labels"])
        assert nib.load(copy["image"]).ndim == nib.load(copy["labels"]).ndim == len(src["shape"])


@needs_mni
def test_corpus_is_deterministic(tmp_path):
    one = R.mni_axial_slice(tmp_path / "a")
    two = R.mni_axial_slice(tmp_path / "b")
    for key in ("image", "labels"):
        np.testing.assert_array_equal(R.load_2d(one[key])[0], R.load_2d(two[key])[0])
    c1 = R.transformed_copy(one["image"], tmp_path / "a", "rotated")
    c2 = R.transformed_copy(two["image"], tmp_path / "b", "rotated")
    np.testing.assert_array_equal(R.load_2d(c1["image"])[0], R.load_2d(c2["image"])[0])


def test_bad_arguments(tmp_path, subject):
    with pytest.raises(ValueError, match="unknown kind"):
        R.transformed_copy(subject["image"], tmp_path, "sheared")
    with pytest.raises(ValueError, match="unknown layout"):
        R.real_subject_slice(tmp_path, layout="1xHxW")
    with pytest.raises(ValueError, match="not a single slice"):
        R.transformed_copy(R.ANATOMICAL, tmp_path, "rotated")
