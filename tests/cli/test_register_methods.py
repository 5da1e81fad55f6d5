"""structreg register with every method, and labels that never change the registration."""

import nibabel as nib
import numpy as np
import pytest

from structreg.cli import main
from structreg.data.spec import load_pairs


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A phantom ED/ES pair (100x100, 2 mm) and the ED labels as NIfTI files."""
    folder = tmp_path_factory.mktemp("pair")
    pair = load_pairs("phantom:cardiac", split="test")[0]
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    arrays = {"m": pair.moving, "f": pair.fixed, "l": pair.moving_labels.astype(np.int16)}
    for name, array in arrays.items():
        nib.save(nib.Nifti1Image(array, affine), folder / f"{name}.nii.gz")
    return folder


def _register(files, out, model, *extra):
    argv = ["register", "--model", model, "--moving", str(files / "m.nii.gz")]
    return main([*argv, "--fixed", str(files / "f.nii.gz"), "--out", str(out), *extra])


@pytest.mark.parametrize("model", ["identity", "lcc-demons:iterations=5/5/5"])
def test_any_method_registers_files(files, tmp_path, model):
    assert _register(files, tmp_path / "out", model) == 0
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"moved.nii.gz", "disp.nii.gz", "jacobian_det.nii.gz"} <= written
    assert "z.json" not in written  # only ours has a code
    moved = nib.load(tmp_path / "out" / "moved.nii.gz").get_fdata()
    assert moved.shape == nib.load(files / "f.nii.gz").shape


def test_moving_labels_never_change_the_displacement(files, tmp_path):
    assert _register(files, tmp_path / "plain", "builtin:cardiac") == 0
    labels = ["--moving-labels", str(files / "l.nii.gz")]
    assert _register(files, tmp_path / "labels", "builtin:cardiac", *labels) == 0
    plain = nib.load(tmp_path / "plain" / "disp.nii.gz").get_fdata()
    with_labels = nib.load(tmp_path / "labels" / "disp.nii.gz").get_fdata()
    np.testing.assert_array_equal(plain, with_labels)
    assert (tmp_path / "labels" / "moved_labels.nii.gz").is_file()


def test_refinement_is_refused_for_other_methods(files, tmp_path, capsys):
    assert _register(files, tmp_path / "x", "identity", "--refine", "3") == 1
    assert "only ours refines" in capsys.readouterr().err


def test_an_affine_stage_first_writes_its_itk_transform(files, tmp_path):
    import SimpleITK as sitk

    assert _register(files, tmp_path / "a", "builtin:cardiac", "--affine", "mi") == 0
    transform = sitk.ReadTransform(str(tmp_path / "a" / "affine.tfm"))
    # the files are 2-D (H x W): ITK reads a 2-D image and a 2-D affine
    assert transform.GetDimension() == 2 and len(transform.GetParameters()) == 6
    assert (tmp_path / "a" / "moved.nii.gz").is_file()
