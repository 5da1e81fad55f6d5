"""3-D end to end from the command line, at a tiny size: train a 3-D CVAE on the 3-D
brain phantom (``--size DxHxW``), resume it, register two NIfTI volumes with it (a true
3-D field, read by SimpleITK) and evaluate it on the phantom's test volumes."""

import csv

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from structreg.cli import main
from structreg.data.phantoms.brain import make_brain_pair
from structreg.training.checkpoint import read_checkpoint

SIZE = "16x20x16"
DATA = ["--data", "phantom:brain", "--subjects", "10", "--size", SIZE, "--spacing", "8"]
TINY = [
    "--set", "model.latent_dim=8", "--set", "model.enc_channels=[4, 8, 8, 2]",
    "--set", "model.dec_channels=[8, 8, 8, 8]", "--set", "train.batch_size=3",
    "--set", "train.tensorboard=false", "--set", "train.val_every=2",
]  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run3d(tmp_path_factory):
    out = tmp_path_factory.mktemp("run3d") / "run"
    assert main(["train", *DATA, "--out", str(out), *TINY, "--set", "train.steps=2"]) == 0
    return out


def test_train_and_resume_a_3d_model(run3d, tmp_path):
    ckpt = read_checkpoint(run3d / "checkpoint.pt")
    assert tuple(ckpt["config"].model.image_size) == (16, 20, 16)
    assert ckpt["state_dict"]["decoder.velocity.weight"].ndim == 5  # Conv3d
    # a resumed 3-D run continues exactly where an uninterrupted one would be
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert main(["train", *DATA, "--out", str(whole), *TINY, "--set", "train.steps=3"]) == 0
    assert main(["train", *DATA, "--out", str(part), *TINY, "--set", "train.steps=2"]) == 0
    argv = ["train", *DATA, "--out", str(part), *TINY, "--set", "train.steps=3", "--resume"]
    assert main(argv) == 0
    a = read_checkpoint(whole / "checkpoint.pt")["state_dict"]
    b = read_checkpoint(part / "checkpoint.pt")["state_dict"]
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_register_3d_volumes_writes_a_3d_itk_field(run3d, tmp_path):
    pair = make_brain_pair(5, 1, size=(20, 24, 20), spacing=(7.0, 7.0, 7.0))
    affine = np.diag([7.0, 7.0, 7.0, 1.0])
    affine[:3, 3] = [-70.0, -90.0, -60.0]
    paths = {}
    for name, data in (
        ("moving", pair.moving),
        ("fixed", pair.fixed),
        ("labels", pair.moving_labels.astype(np.int16)),
    ):
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), str(paths[name]))
    out = tmp_path / "out"
    argv = ["register", "--model", str(run3d), "--moving", str(paths["moving"])]
    argv += ["--fixed", str(paths["fixed"]), "--moving-labels", str(paths["labels"])]
    assert main([*argv, "--out", str(out), "--device", "cpu"]) == 0
    disp = nib.load(str(out / "disp.nii.gz"))
    assert disp.shape == (20, 24, 20, 1, 3)  # a vector per voxel, 3 components
    field = sitk.ReadImage(str(out / "disp.nii.gz"))
    assert field.GetNumberOfComponentsPerPixel() == 3 and field.GetSize() == (20, 24, 20)
    assert np.allclose(field.GetSpacing(), 7.0)
    det = np.asarray(nib.load(str(out / "jacobian_det.nii.gz")).dataobj)
    assert det.shape == (20, 24, 20) and det.min() > 0
    moved = np.asarray(nib.load(str(out / "moved_labels.nii.gz")).dataobj)
    assert moved.shape == (20, 24, 20) and set(np.unique(moved)) <= {0, 1, 2, 3, 4}
    # a 3-D model refuses a 2-D image with one line
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(pair.moving[:, :, 10], affine), str(flat))
    argv = ["register", "--model", str(run3d), "--moving", str(flat), "--fixed", str(flat)]
    assert main([*argv, "--out", str(tmp_path / "bad")]) == 1


def test_evaluate_a_3d_model_on_3d_phantom_volumes(run3d, tmp_path):
    out = tmp_path / "eval"
    methods = f"ours:{run3d},identity"
    assert main(["evaluate", *DATA, "--methods", methods, "--out", str(out)]) == 0
    with open(out / "pairs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["method"] for r in rows} == {"ours", "identity"} and not any(r["error"] for r in rows)
    for r in rows:
        assert 0 <= float(r["dice WM"]) <= 1 and float(r["hd95 WM"]) >= 0
        assert float(r["folding_pct"]) == 0.0 and r["epe_mm"] != ""
    assert "WM Dice" in (out / "table.md").read_text()


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vol")
    affine = np.diag([8.0, 8.0, 8.0, 1.0])
    paths = {}
    for k, index in enumerate((1, 2)):
        pair = make_brain_pair(7, index, size=(16, 20, 16), spacing=(8.0, 8.0, 8.0))
        for name, data in (("m", pair.moving), ("f", pair.fixed)):
            paths[f"{name}{k}"] = folder / f"{name}{k}.nii.gz"
            nib.save(nib.Nifti1Image(data, affine), str(paths[f"{name}{k}"]))
    return paths


def _volume_outputs(folder, names):
    for name in names:
        img = nib.load(str(folder / name))
        assert img.shape[:3] == (16, 20, 16), (name, img.shape)


def test_latent_commands_take_3d_volumes(run3d, volumes, tmp_path):
    m = str(run3d)
    out = tmp_path / "transport"
    argv = ["transport", "--model", m, "--source-moving", str(volumes["m0"])]
    argv += ["--source-fixed", str(volumes["f0"]), "--target", str(volumes["m1"])]
    assert main([*argv, "--out", str(out), "--device", "cpu"]) == 0
    _volume_outputs(out, ["transported.nii.gz", "disp.nii.gz", "jacobian_det.nii.gz"])
    assert (out / "transport.png").stat().st_size > 1000
    out = tmp_path / "sample"
    argv = ["sample", "--model", m, "--moving", str(volumes["m0"]), "--fixed", str(volumes["f0"])]
    assert main([*argv, "--n", "2", "--posterior-samples", "2", "--out", str(out)]) == 0
    _volume_outputs(out, ["uncertainty.nii.gz"])
    assert (out / "samples.png").is_file()
    out = tmp_path / "interpolate"
    argv = ["interpolate", "--model", m, "--moving", str(volumes["m0"])]
    assert main([*argv, "--fixed", str(volumes["f0"]), "--steps", "3", "--out", str(out)]) == 0
    assert len(list(out.glob("*.nii.gz"))) >= 3
    out = tmp_path / "codes.csv"
    assert main(["embed", "--model", m, *DATA, "--split", "all", "--out", str(out)]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10 and sum(k.startswith("mu_") for k in rows[0]) == 8
    # a 3-D model refuses a single slice with one line
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 20), np.float32), np.eye(4)), str(flat))
    argv = ["transport", "--model", m, "--source-moving", str(flat), "--source-fixed", str(flat)]
    assert main([*argv, "--target", str(flat), "--out", str(tmp_path / "bad")]) == 1
