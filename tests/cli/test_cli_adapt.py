"""structreg adapt, register --adapt and evaluate's adapt=N: adaptation from the CLI."""

import csv

import nibabel as nib
import numpy as np
import pytest

from structreg.cli import main
from structreg.data.spec import load_pairs

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tiny_run_factory):
    return tiny_run_factory([0.0, 0.0])


@pytest.fixture(scope="module")
def cohort_csv(tmp_path_factory):
    """Four phantom pairs as NIfTI files (no masks) listed in a pairs CSV."""
    folder = tmp_path_factory.mktemp("cohort")
    pairs = load_pairs("phantom:cardiac", split="all", size=(32, 32), spacing=(6, 6), n_subjects=4)
    rows = []
    for i, pair in enumerate(pairs):
        for role in ("moving", "fixed"):
            image = nib.Nifti1Image(getattr(pair, role), np.diag([6.0, 6.0, 6.0, 1.0]))
            nib.save(image, folder / f"{role}{i}.nii.gz")
        rows.append(f"moving{i}.nii.gz,fixed{i}.nii.gz,p{i}")
    table = folder / "cohort.csv"
    table.write_text("moving,fixed,id\n" + "\n".join(rows) + "\n")
    return table


def test_adapt_writes_a_run_that_registers(run, cohort_csv, tmp_path, capsys):
    out = tmp_path / "adapted"
    argv = ["adapt", "--model", str(run), "--data", f"pairs:{cohort_csv}", "--out", str(out)]
    assert main([*argv, "--set", "train.steps=4", "--set", "train.lr=5e-3", "--device", "cpu"]) == 0
    said = capsys.readouterr().out
    assert "mask term is off" in said and "4 pairs" in said and "objective" in said
    folder = cohort_csv.parent
    reg = ["register", "--model", str(out), "--moving", str(folder / "moving0.nii.gz")]
    assert main([*reg, "--fixed", str(folder / "fixed0.nii.gz"), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "moved.nii.gz").is_file()


def test_adapt_refuses_the_network_settings(run, cohort_csv, tmp_path, capsys):
    argv = ["adapt", "--model", str(run), "--data", f"pairs:{cohort_csv}", "--out", str(tmp_path)]
    assert main([*argv, "--set", "model.latent_dim=4"]) == 1
    assert "network" in capsys.readouterr().err


def test_batch_register_adapts_once_to_every_pair(run, cohort_csv, tmp_path, capsys):
    argv = ["register", "--model", str(run), "--data", f"pairs:{cohort_csv}"]
    assert main([*argv, "--out", str(tmp_path / "b"), "--adapt", "3", "--device", "cpu"]) == 0
    assert "adapted to 4 pair(s)" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "b" / "summary.csv").open()))
    assert [r["status"] for r in rows] == ["ok"] * 4


def test_evaluate_reports_the_adaptation_time(run, tmp_path):
    methods = f"ours:{run},ours:{run},adapt=3,label=adapted"
    argv = ["evaluate", "--data", "phantom:cardiac", "--subjects", "12", "--methods", methods]
    assert main([*argv, "--out", str(tmp_path / "e"), "--device", "cpu"]) == 0
    rows = list(csv.DictReader((tmp_path / "e" / "pairs.csv").open()))
    adapted = [r for r in rows if r["method"] == "adapted"]
    assert adapted and all(float(r["adapt_seconds"]) > 0 for r in adapted)
    assert all(r["adapt_seconds"] == "" for r in rows if r["method"] == "ours")
    assert "One-off adaptation (s)" in (tmp_path / "e" / "table.md").read_text()


def test_adapt_aligns_each_pair_first_with_affine(run, cohort_csv, tmp_path, capsys):
    out = tmp_path / "aligned"
    argv = ["adapt", "--model", str(run), "--data", f"pairs:{cohort_csv}", "--out", str(out)]
    assert main([*argv, "--affine", "--set", "train.steps=2", "--device", "cpu"]) == 0
    said = capsys.readouterr().out
    assert "4 pairs, each aligned by an affine stage (ncc)" in said
    assert (out / "best.pt").is_file()
    assert main([*argv[:-1], str(tmp_path / "x"), "--affine", "--data", "phantom:cardiac"]) == 2


def test_adapt_help_states_the_library_defaults():
    """The --set help of `structreg adapt` names ADAPT_DEFAULTS' values (written out there
    so that parsing the command line does not import torch)."""
    from structreg.cli import build_parser
    from structreg.training.adapt import ADAPT_DEFAULTS

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = " ".join(sub.choices["adapt"].format_help().split())
    for key in ("steps", "val_every", "patience"):
        assert f"train.{key} (" in text and f"default {ADAPT_DEFAULTS[key]})" in text
    assert f"train.lr (default {ADAPT_DEFAULTS['lr']:g})" in text
