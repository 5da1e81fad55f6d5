"""`structreg embed / classify / transport / sample` end to end on a tiny run."""

import json

import nibabel as nib
import numpy as np
import pytest

from structreg.analysis.latent import read_codes_csv
from structreg.cli import main
from structreg.data.phantoms.cardiac import make_cardiac_pair


@pytest.fixture(scope="module")
def run_dir(tiny_run_factory):
    """A tiny trained run whose decoder outputs a known translation plus a smooth part."""
    return tiny_run_factory([1.0, -0.5])


@pytest.fixture(scope="module")
def niftis(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    affine = np.diag([3.0, 3.0, 8.0, 1.0])
    affine[:3, 3] = [-30.0, 10.0, 2.0]
    paths = {}
    for name, subject, group in (("a", 0, "DCM"), ("c", 1, "NOR")):
        pair = make_cardiac_pair(0, subject, group=group, size=(56, 52), spacing=(3.0, 3.0))
        for role, data in (("ed", pair.moving), ("es", pair.fixed)):
            paths[f"{name}_{role}"] = folder / f"{name}_{role}.nii.gz"
            nib.save(nib.Nifti1Image(data, affine), str(paths[f"{name}_{role}"]))
    paths["volume"] = folder / "volume.nii.gz"
    nib.save(
        nib.Nifti1Image(np.random.rand(20, 20, 4).astype(np.float32), affine), str(paths["volume"])
    )
    paths["text"] = folder / "broken.nii.gz"
    paths["text"].write_text("not a nifti")
    return paths


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("structreg: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_embed_and_classify(run_dir, tmp_path, capsys):
    codes_path = tmp_path / "codes.csv"
    code = main(
        [
            "embed",
            "--model",
            str(run_dir),
            "--data",
            "phantom:cardiac",
            "--subjects",
            "10",
            "--out",
            str(codes_path),
            "--device",
            "cpu",
        ]
    )
    assert code == 0, capsys.readouterr().err
    codes = read_codes_csv(codes_path)
    assert len(codes) == 10 and codes.mu.shape == (10, 8) and codes.sigma.shape == (10, 8)
    assert set(codes.groups) == {"NOR", "DCM", "HCM", "MINF", "RV"}
    names = {"feature_LV_myocardium", "feature_LV_blood_pool", "feature_left_heart", "feature_RV"}
    assert set(codes.features) == names
    pool = codes.features["feature_LV_blood_pool"]
    assert np.all((pool > 0.2) & (pool < 1.2))  # ES blood pool area / ED's
    out = tmp_path / "cls"
    assert main(["classify", "--codes", str(codes_path), "--out", str(out)]) == 0
    text = (out / "accuracy.md").read_text()
    assert "±" in text and "chance level" in text and "| NOR |" in text
    assert "2-fold" in text  # 2 subjects per group
    assert "Baseline: the same classifier on deformation features" in text
    assert "; features " in text, text
    assert (out / "cca_scatter.png").stat().st_size > 5000
    assert "accuracy" in capsys.readouterr().out


def test_classify_errors(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,group,mu_0\na,A,oops\n")
    assert main(["classify", "--codes", str(bad), "--out", str(tmp_path / "o")]) != 0
    assert "not a number" in one_line_error(capsys)
    assert (
        main(["classify", "--codes", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")])
        != 0
    )
    assert "no such codes file" in one_line_error(capsys)
    nogroup = tmp_path / "nogroup.csv"
    nogroup.write_text("id,group,mu_0\na,,1\nb,A,2\n")
    assert main(["classify", "--codes", str(nogroup), "--out", str(tmp_path / "o")]) != 0
    assert "no group" in one_line_error(capsys)


def test_transport_writes_outputs(run_dir, niftis, tmp_path, capsys):
    out = tmp_path / "transport"
    code = main(
        [
            "transport",
            "--model",
            str(run_dir),
            "--source-moving",
            str(niftis["a_ed"]),
            "--source-fixed",
            str(niftis["a_es"]),
            "--target",
            str(niftis["c_ed"]),
            "--target-fixed",
            str(niftis["c_es"]),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert code == 0, capsys.readouterr().err
    target = nib.load(str(niftis["c_ed"]))
    moved = nib.load(str(out / "transported.nii.gz"))
    assert moved.shape == target.shape and np.allclose(moved.affine, target.affine)
    disp = nib.load(str(out / "disp.nii.gz"))
    assert disp.shape == (56, 52, 1, 1, 2) and disp.header.get_intent()[0] == "vector"
    assert np.abs(np.asarray(disp.dataobj)).max() > 1.0  # the known translation (mm)
    det = np.asarray(nib.load(str(out / "jacobian_det.nii.gz")).dataobj)
    assert det.shape == target.shape and det.min() > 0
    assert len(json.loads((out / "z.json").read_text())["z"]) == 8
    assert (out / "transport.png").stat().st_size > 5000
    assert not np.allclose(np.asarray(moved.dataobj), np.asarray(target.dataobj))


def test_transport_errors(run_dir, niftis, tmp_path, capsys):
    base = [
        "transport",
        "--model",
        str(run_dir),
        "--source-fixed",
        str(niftis["a_es"]),
        "--target",
        str(niftis["c_ed"]),
        "--out",
        str(tmp_path / "o"),
        "--device",
        "cpu",
    ]
    assert main(base + ["--source-moving", str(niftis["volume"])]) != 0
    assert "this 2-D model takes a single 2-D slice" in one_line_error(capsys)
    assert main(base + ["--source-moving", str(niftis["text"])]) != 0
    one_line_error(capsys)
    assert main(base + ["--source-moving", str(tmp_path / "none.nii.gz")]) != 0
    one_line_error(capsys)
    assert (
        main(
            [
                "transport",
                "--model",
                str(tmp_path / "norun"),
                "--source-moving",
                str(niftis["a_ed"]),
                "--source-fixed",
                str(niftis["a_es"]),
                "--target",
                str(niftis["c_ed"]),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        != 0
    )
    one_line_error(capsys)


def test_sample_writes_images_and_figure(run_dir, niftis, tmp_path, capsys):
    out = tmp_path / "samples"
    code = main(
        [
            "sample",
            "--model",
            str(run_dir),
            "--moving",
            str(niftis["c_ed"]),
            "--n",
            "3",
            "--scale",
            "0.5",
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert code == 0, capsys.readouterr().err
    target = nib.load(str(niftis["c_ed"]))
    for i in range(3):
        img = nib.load(str(out / f"sample_{i:03d}.nii.gz"))
        assert img.shape == target.shape and np.allclose(img.affine, target.affine)
    assert (out / "samples.png").stat().st_size > 5000
    assert "0.000 % non-positive Jacobian" in capsys.readouterr().out


def test_sample_from_the_aggregate_prior(run_dir, niftis, tmp_path, capsys):
    prior = run_dir / "best.prior.npz"
    embed = ["embed", "--model", str(run_dir), "--data", "phantom:cardiac", "--subjects", "10"]
    embed += ["--split", "train", "--out", str(tmp_path / "train.csv"), "--no-features"]
    assert main(embed + ["--prior-out", str(prior), "--device", "cpu"]) == 0
    assert "aggregate prior of" in capsys.readouterr().out
    codes = read_codes_csv(tmp_path / "train.csv")
    assert not codes.features
    out = tmp_path / "agg"
    base = ["sample", "--model", str(run_dir), "--moving", str(niftis["c_ed"]), "--n", "2"]
    assert main(base + ["--prior", "aggregate", "--out", str(out), "--device", "cpu"]) == 0
    assert (out / "sample_001.nii.gz").is_file() and (out / "samples.png").is_file()
    prior.unlink()
    assert main(base + ["--prior", "aggregate", "--out", str(out), "--device", "cpu"]) != 0
    assert "no aggregate prior" in one_line_error(capsys)
    assert main(base + ["--prior-file", str(prior), "--out", str(out)]) == 2
    assert "--prior-file needs --prior aggregate" in one_line_error(capsys)


def test_sample_errors(run_dir, niftis, tmp_path, capsys):
    base = ["sample", "--model", str(run_dir), "--out", str(tmp_path / "o"), "--device", "cpu"]
    assert main(base + ["--moving", str(niftis["c_ed"]), "--n", "0"]) == 2
    assert "--n must be" in one_line_error(capsys)
    assert main(base + ["--moving", str(niftis["c_ed"]), "--scale", "nan"]) == 2
    assert "--scale" in one_line_error(capsys)
    assert main(base + ["--moving", str(niftis["volume"])]) != 0
    assert "this 2-D model takes a single 2-D slice" in one_line_error(capsys)


def test_embed_errors(run_dir, tmp_path, capsys):
    assert (
        main(
            [
                "embed",
                "--model",
                str(run_dir),
                "--data",
                "nonsense:xyz",
                "--out",
                str(tmp_path / "c.csv"),
            ]
        )
        != 0
    )
    one_line_error(capsys)
    assert (
        main(
            [
                "embed",
                "--model",
                str(tmp_path / "norun"),
                "--data",
                "phantom:cardiac",
                "--out",
                str(tmp_path / "c.csv"),
            ]
        )
        != 0
    )
    one_line_error(capsys)


def test_sample_with_fixed_writes_uncertainty_map(run_dir, niftis, tmp_path, capsys):
    out = tmp_path / "unc"
    code = main(
        [
            "sample",
            "--model",
            str(run_dir),
            "--moving",
            str(niftis["c_ed"]),
            "--fixed",
            str(niftis["c_es"]),
            "--n",
            "2",
            "--posterior-samples",
            "4",
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert code == 0, capsys.readouterr().err
    target = nib.load(str(niftis["c_ed"]))
    unc = nib.load(str(out / "uncertainty.nii.gz"))
    data = np.asarray(unc.dataobj)
    assert unc.shape == target.shape and np.allclose(unc.affine, target.affine)
    assert (data >= 0).all() and data.max() > 0
    assert (out / "uncertainty.png").is_file()
    assert "uncertainty map" in capsys.readouterr().out


def test_embed_refuses_another_size(run_dir, tmp_path, capsys):
    assert (
        main(
            [
                "embed",
                "--model",
                str(run_dir),
                "--size",
                "48x48",
                "--subjects",
                "5",
                "--out",
                str(tmp_path / "c.csv"),
            ]
        )
        == 2
    )
    assert "model's image size" in one_line_error(capsys)


def test_interpolate_writes_frames_from_identity_to_the_pair(run_dir, niftis, tmp_path, capsys):
    out = tmp_path / "interp"
    code = main(
        [
            "interpolate",
            "--model",
            str(run_dir),
            "--moving",
            str(niftis["c_ed"]),
            "--fixed",
            str(niftis["c_es"]),
            "--steps",
            "4",
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert code == 0, capsys.readouterr().err
    target = nib.load(str(niftis["c_ed"]))
    frames = [
        np.asarray(nib.load(str(out / f"interpolation_{i:02d}.nii.gz")).dataobj) for i in range(4)
    ]
    assert all(f.shape == target.shape for f in frames)
    # frames change progressively along the line
    d01 = np.abs(frames[1] - frames[0]).mean()
    d03 = np.abs(frames[3] - frames[0]).mean()
    assert d03 > d01 > 0
    assert (out / "interpolation.png").is_file()
    assert (
        main(
            [
                "interpolate",
                "--model",
                str(run_dir),
                "--moving",
                str(niftis["c_ed"]),
                "--fixed",
                str(niftis["c_es"]),
                "--steps",
                "1",
                "--out",
                str(out),
            ]
        )
        == 2
    )
