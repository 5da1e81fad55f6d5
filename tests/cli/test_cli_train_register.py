"""`structreg train` and `structreg register` end to end on tiny data."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from helpers import TINY_TRAIN as TINY
from helpers import TINY_TRAIN_VOXELMORPH as TINY_VM
from structreg.cli import main
from structreg.data.phantoms.cardiac import make_cardiac_pair


@pytest.fixture(scope="module")
def run_dir(tiny_run_factory):
    """A tiny trained run whose decoder outputs a known translation plus a smooth part."""
    return tiny_run_factory([1.5, -1.0])


@pytest.fixture(scope="module")
def nifti_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    pair = make_cardiac_pair(0, 1, size=(48, 44), spacing=(2.0, 2.0))
    affine = np.diag([2.0, 2.0, 8.0, 1.0])
    affine[:3, 3] = [-40.0, 12.0, 3.0]
    paths = {}
    for name, data in (
        ("moving", pair.moving),
        ("fixed", pair.fixed),
        ("moving_labels", pair.moving_labels.astype(np.int16)),
    ):
        paths[name] = folder / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), str(paths[name]))
    return paths


def test_training_refuses_to_overwrite_a_run(run_dir, capsys):
    for name in ("best.pt", "checkpoint.pt", "config.toml", "data.json", "train_log.csv"):
        assert (run_dir / name).is_file(), name
    code = main(["train", "--data", "phantom:cardiac", "--out", str(run_dir), *TINY])
    assert code != 0
    assert "already holds a run" in capsys.readouterr().err


def test_register_writes_all_outputs_that_simpleitk_reproduces(run_dir, nifti_pair, tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    out = tmp_path / "out"
    code = main(
        [
            "register",
            "--model",
            str(run_dir),
            "--moving",
            str(nifti_pair["moving"]),
            "--fixed",
            str(nifti_pair["fixed"]),
            "--moving-labels",
            str(nifti_pair["moving_labels"]),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    for name in ("moved", "moved_labels", "disp", "inverse_disp", "velocity", "jacobian_det"):
        assert (out / f"{name}.nii.gz").is_file(), name
    codes = json.loads((out / "z.json").read_text())["codes"]
    assert len(codes) == 1 and len(codes[0]["z"]) == 8
    fixed_img = nib.load(str(nifti_pair["fixed"]))
    moved = nib.load(str(out / "moved.nii.gz"))
    assert moved.shape == fixed_img.shape and np.allclose(moved.affine, fixed_img.affine)
    labels = np.asarray(nib.load(str(out / "moved_labels.nii.gz")).dataobj)
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    det = np.asarray(nib.load(str(out / "jacobian_det.nii.gz")).dataobj)
    assert det.min() > 0

    # Applying our exported field with SimpleITK reproduces our moved image.
    m = sitk.ReadImage(str(nifti_pair["moving"]), sitk.sitkFloat64)
    field = sitk.ReadImage(str(out / "disp.nii.gz"), sitk.sitkVectorFloat64)
    theirs = sitk.Resample(m, m, sitk.DisplacementFieldTransform(field), sitk.sitkLinear, 0.0)
    theirs = sitk.GetArrayFromImage(theirs).T
    ours = np.asarray(moved.dataobj)
    inner = (slice(6, -6), slice(6, -6))
    disp_mm = np.asarray(nib.load(str(out / "disp.nii.gz")).dataobj)
    assert np.abs(disp_mm).max() > 2.0  # the known translation is really there
    np.testing.assert_allclose(theirs[inner], ours[inner], atol=1e-3)


def test_register_batch_mode_reports_bad_rows_and_keeps_the_good(
    run_dir, nifti_pair, tmp_path, capsys
):
    folder = nifti_pair["moving"].parent
    bad = folder / "nan.nii.gz"
    nib.save(nib.Nifti1Image(np.full((48, 44), np.nan, np.float32), np.eye(4)), str(bad))
    csv = folder / "pairs.csv"
    csv.write_text(
        "moving,fixed,id\nmoving.nii.gz,fixed.nii.gz,good\nnan.nii.gz,fixed.nii.gz,bad\n"
    )
    code = main(
        [
            "register",
            "--model",
            str(run_dir),
            "--data",
            f"pairs:{csv}",
            "--out",
            str(tmp_path / "batch"),
        ]
    )
    err = capsys.readouterr().err
    assert code != 0 and "bad" in err and "NaN" in err and "Traceback" not in err
    assert (tmp_path / "batch" / "good" / "moved.nii.gz").is_file()
    assert not (tmp_path / "batch" / "bad").exists()


@pytest.mark.parametrize("make_bad", ["random_bytes", "foreign_pickle", "bad_version"])
def test_tampered_checkpoint_is_refused(run_dir, nifti_pair, tmp_path, capsys, make_bad):
    bad = tmp_path / "bad.pt"
    if make_bad == "random_bytes":
        bad.write_bytes(np.random.default_rng(0).bytes(300))
    elif make_bad == "foreign_pickle":
        import argparse

        # an object weights_only loading must not execute
        torch.save({"format_version": 1, "config": argparse.Namespace(lr=1.0)}, bad)
    else:
        ckpt = torch.load(run_dir / "best.pt", weights_only=True)
        ckpt["format_version"] = 999
        torch.save(ckpt, bad)
    code = main(
        [
            "register",
            "--model",
            str(bad),
            "--moving",
            str(nifti_pair["moving"]),
            "--fixed",
            str(nifti_pair["fixed"]),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.startswith("structreg: error:") and "\n" not in err
    assert "bad.pt" in err and "False" not in err  # never advise weights_only=False
    assert not (tmp_path / "o").exists()


def test_register_bad_inputs(run_dir, nifti_pair, tmp_path, capsys):
    text = tmp_path / "notnifti.nii.gz"
    text.write_text("hello")
    code = main(
        [
            "register",
            "--model",
            str(run_dir),
            "--moving",
            str(text),
            "--fixed",
            str(nifti_pair["fixed"]),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0 and "notnifti.nii.gz" in err and "\n" not in err
    code = main(["register", "--model", str(run_dir), "--out", str(tmp_path / "o")])
    assert code == 2 and "--moving" in capsys.readouterr().err


def test_voxelmorph_resumes_through_the_cli(tmp_path):
    pytest.importorskip("voxelmorph")
    out = tmp_path / "vm"
    base = ["train", "--method", "voxelmorph", "--data", "phantom:cardiac", "--out", str(out)]
    assert main([*base, *TINY_VM]) == 0
    first = torch.load(out / "checkpoint.pt", weights_only=True)
    assert first["config"]["method"] == "voxelmorph" and first["step"] == 2
    assert main([*base, *TINY_VM]) != 0  # refused without --resume
    assert main([*base, *TINY_VM, "--resume", "--set", "train.steps=4"]) == 0
    resumed = torch.load(out / "checkpoint.pt", weights_only=True)
    assert resumed["step"] == 4
    log = (out / "train_log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["1", "2", "3", "4"]


def test_register_batch_in_two_processes_equals_one_process(run_dir, nifti_pair, tmp_path):
    import csv as csvlib
    import os
    import subprocess
    import sys

    folder = nifti_pair["moving"].parent
    bad = folder / "nan2.nii.gz"
    nib.save(nib.Nifti1Image(np.full((48, 44), np.nan, np.float32), np.eye(4)), str(bad))
    rows = [f"moving.nii.gz,fixed.nii.gz,p{i}" for i in range(4)] + ["nan2.nii.gz,fixed.nii.gz,bad"]
    table = folder / "five.csv"
    table.write_text("moving,fixed,id\n" + "\n".join(rows) + "\n")
    common = ["register", "--model", str(run_dir), "--data", f"pairs:{table}", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 1  # the bad pair fails
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "structreg",
            *common,
            "--nproc",
            "2",
            "--out",
            str(tmp_path / "two"),
        ],
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "bad" in done.stderr and "Traceback" not in done.stderr
    assert "4 registered, 1 failed" in done.stdout
    two = tmp_path / "two"
    summary = list(csvlib.DictReader((two / "summary.csv").open()))
    assert [r["name"] for r in summary] == ["p0", "p1", "p2", "p3", "bad"]  # pair order
    assert [r["status"] for r in summary] == ["ok"] * 4 + ["failed"]
    assert not list(two.glob("summary.part*.csv"))
    for name in ("p0", "p3"):
        a = nib.load(str(tmp_path / "one" / name / "disp.nii.gz")).get_fdata()
        b = nib.load(str(two / name / "disp.nii.gz")).get_fdata()
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_register_nproc_needs_a_batch(run_dir, nifti_pair, tmp_path, capsys):
    code = main(["register", "--model", str(run_dir), "--moving", str(nifti_pair["moving"]),
                 "--fixed", str(nifti_pair["fixed"]), "--nproc", "2",
                 "--out", str(tmp_path / "x")])  # fmt: skip
    assert code == 2 and "--nproc registers a batch" in capsys.readouterr().err


def test_voxelmorph_model_settings_through_the_cli(tmp_path, capsys):
    pytest.importorskip("voxelmorph")
    out = tmp_path / "vm"
    base = ["train", "--method", "voxelmorph", "--data", "phantom:cardiac", "--out", str(out)]
    assert main([*base, *TINY_VM, "--set", "model.smoothness=0", "--set", "ncc_window=5"]) == 0
    config = torch.load(out / "checkpoint.pt", weights_only=True)["config"]
    assert config["model"]["smoothness"] == 0.0 and config["model"]["ncc_window"] == 5
    assert config["train"]["steps"] == 2  # train.* overrides still reach the training
    capsys.readouterr()
    code = main([*base, *TINY_VM, "--resume", "--set", "model.smoothness=1.5"])
    assert code != 0 and "smoothness" in capsys.readouterr().err  # another loss, another run
    # our CVAE's keys are refused, not ignored; the dimension follows --size
    for setting, named in (("model.latent_dim=8", "latent_dim"), ("model.ndim=3", "--size")):
        code = main([*base[:-1], str(tmp_path / named.strip("-")), *TINY_VM, "--set", setting])
        err = capsys.readouterr().err.strip()
        assert code != 0 and named in err and "\n" not in err
