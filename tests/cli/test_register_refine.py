"""`structreg register --refine N [--adapt-decoder K] [--refine-field N]` end to end on a
tiny run."""

import json

import nibabel as nib
import numpy as np
import pytest

from structreg.cli import main
from structreg.cli import register as register_cli
from structreg.data.phantoms.cardiac import make_cardiac_pair
from structreg.methods import refine

OUTPUTS = ("moved", "disp", "inverse_disp", "velocity", "jacobian_det")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir(tiny_run_factory):
    return tiny_run_factory([1.5, -1.0])


@pytest.fixture(scope="module")
def nifti_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    pair = make_cardiac_pair(0, 1, size=(40, 36), spacing=(2.0, 2.0))
    affine = np.diag([2.0, 2.0, 8.0, 1.0])
    paths = {}
    for name, data in (("moving", pair.moving), ("fixed", pair.fixed)):
        paths[name] = folder / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), str(paths[name]))
    return paths


def _register(run_dir, pair, out, *extra):
    argv = ["register", "--model", str(run_dir), "--moving", str(pair["moving"])]
    argv += ["--fixed", str(pair["fixed"]), "--out", str(out), "--device", "cpu", *extra]
    return main([str(a) for a in argv])


def _codes(out):
    return json.loads((out / "z.json").read_text())["codes"]


def test_register_refines_the_code(run_dir, nifti_pair, tmp_path, capsys):
    assert _register(run_dir, nifti_pair, tmp_path / "plain") == 0
    for extra, name in (
        (["--refine", "5"], "refined"),
        (["--refine", "5", "--adapt-decoder", "1"], "adapted"),
    ):
        out = tmp_path / name
        assert _register(run_dir, nifti_pair, out, *extra) == 0
        for output in OUTPUTS:
            assert (out / f"{output}.nii.gz").is_file(), (name, output)
        det = np.asarray(nib.load(str(out / "jacobian_det.nii.gz")).dataobj)
        assert det.min() > 0
        plain, refined = _codes(tmp_path / "plain"), _codes(out)
        assert len(refined) == 1 and len(refined[0]["z"]) == 8
        assert refined[0]["z"] != plain[0]["z"]  # the code really was refined
    assert "non-positive Jacobian" in capsys.readouterr().out


def test_register_refines_the_field(run_dir, nifti_pair, tmp_path):
    assert _register(run_dir, nifti_pair, tmp_path / "plain") == 0
    assert _register(run_dir, nifti_pair, tmp_path / "field", "--refine-field", "5") == 0
    for output in OUTPUTS:
        assert (tmp_path / "field" / f"{output}.nii.gz").is_file(), output
    plain, field = (
        np.asarray(nib.load(str(tmp_path / name / "velocity.nii.gz")).dataobj)
        for name in ("plain", "field")
    )
    assert np.abs(field - plain).max() > 1e-3  # the velocity really was refined
    assert _codes(tmp_path / "field") == _codes(tmp_path / "plain")  # not the code


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--refine-field", "-1"], "--refine-field"),
        (["--refine", "-1"], "--refine"),
        (["--refine", "two"], "--refine"),
        (["--refine", "3", "--adapt-decoder", "-2"], "--adapt-decoder"),
        (["--refine", "3", "--adapt-decoder", "5"], "--adapt-decoder"),
        (["--refine", "3", "--refine-lr", "0"], "--refine-lr"),
        (["--refine", "3", "--refine-lr", "fast"], "--refine-lr"),
        (["--refine", "3", "--refine-lr", "inf"], "--refine-lr"),
    ],
)
def test_bad_refine_flags_are_one_line_usage_errors(
    extra, words, run_dir, nifti_pair, tmp_path, capsys
):
    with pytest.raises(SystemExit) as info:
        _register(run_dir, nifti_pair, tmp_path / "out", *extra)
    assert info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and words in errors[0]
    assert not (tmp_path / "out").exists()


def test_adapt_decoder_needs_refine(run_dir, nifti_pair, tmp_path, capsys):
    assert _register(run_dir, nifti_pair, tmp_path / "out", "--adapt-decoder", "1") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--refine" in err
    assert not (tmp_path / "out").exists()


def test_the_parser_knows_the_decoder_layers():
    assert register_cli.MAX_ADAPTED_LAYERS == refine.MAX_ADAPTED_LAYERS


def test_refine_lr_sets_the_step_size(run_dir, nifti_pair, tmp_path, capsys):
    """--refine-lr reaches the refinement (another step size, another code; the same
    one given explicitly, the same code); without --refine it is a usage error."""
    runs = {
        "default": [],
        "explicit": ["--refine-lr", str(refine.DEFAULT_LR)],
        "other": ["--refine-lr", str(refine.DEFAULT_LR * 4)],
    }
    codes = {}
    for name, extra in runs.items():
        assert _register(run_dir, nifti_pair, tmp_path / name, "--refine", "3", *extra) == 0
        codes[name] = _codes(tmp_path / name)[0]["z"]
    assert codes["explicit"] == codes["default"] and codes["other"] != codes["default"]
    assert _register(run_dir, nifti_pair, tmp_path / "x", "--refine-lr", "0.1") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--refine-lr needs --refine" in err
