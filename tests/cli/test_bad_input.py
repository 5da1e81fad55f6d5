"""Bad input through the command line, as one table: each case is a one-line error
with a non-zero exit status, no traceback, and nothing written to --out."""

import gzip
import pickle

import nibabel as nib
import numpy as np
import pytest
import torch

from structreg.cli import main


@pytest.fixture(scope="module")
def run_dir(tiny_run_factory):
    return tiny_run_factory([0.5, 0.5])


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    rng = np.random.default_rng(0)
    paths = {}
    for name in ("moving", "fixed"):
        paths[name] = folder / f"{name}.nii.gz"
        nib.save(
            nib.Nifti1Image(rng.random((40, 36, 1)).astype(np.float32), np.eye(4)), str(paths[name])
        )
    paths["labels"] = folder / "labels.nii.gz"
    nib.save(
        nib.Nifti1Image(rng.integers(0, 3, (40, 36, 1)).astype(np.int16), np.eye(4)),
        str(paths["labels"]),
    )
    return paths


def _nifti(path, data, affine=None):
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def _register(run_dir, good, out, moving=None, fixed=None, *extra):
    return [
        "register",
        "--model",
        str(run_dir),
        "--moving",
        str(moving or good["moving"]),
        "--fixed",
        str(fixed or good["fixed"]),
        "--out",
        str(out),
        *extra,
    ]


def _csv(tmp, text, name="pairs.csv"):
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def _evaluate(path, out):
    return ["evaluate", "--data", f"pairs:{path}", "--methods", "identity", "--out", str(out)]


def _checkpoint(run_dir, tmp, edit):
    data = torch.load(run_dir / "best.pt", weights_only=True)
    edit(data)
    path = tmp / "edited.pt"
    torch.save(data, path)
    return path


CASES = {
    # ---- NIfTI images
    "missing image": (
        lambda r, g, t, o: _register(r, g, o, moving=t / "none.nii.gz"),
        "file not found",
    ),
    "not a NIfTI name": (
        lambda r, g, t, o: _register(r, g, o, moving=_csv(t, "x", "a.txt")),
        "not a NIfTI file",
    ),
    "random bytes": (
        lambda r, g, t, o: _register(r, g, o, moving=_csv(t, "\x00garbage", "junk.nii.gz")),
        "not a readable NIfTI",
    ),
    "truncated gzip": (
        lambda r, g, t, o: _register(r, g, o, moving=_truncated(g, t)),
        "truncated or corrupt",
    ),
    "NaN in an image": (
        lambda r, g, t, o: _register(
            r, g, o, moving=_nifti(t / "nan.nii.gz", np.full((40, 36, 1), np.nan, np.float32))
        ),
        "NaN/Inf",
    ),
    "5-D image": (
        lambda r, g, t, o: _register(
            r, g, o, moving=_nifti(t / "5d.nii.gz", np.zeros((4, 4, 1, 1, 2), np.float32))
        ),
        "2-D, 3-D or 4-D",
    ),
    "frames without --frame": (
        lambda r, g, t, o: _register(
            r, g, o, moving=_nifti(t / "4d.nii.gz", np.zeros((40, 36, 1, 3), np.float32))
        ),
        "give a frame index",
    ),
    "frame out of range": (
        lambda r, g, t, o: _register(
            r,
            g,
            o,
            _nifti(t / "4d.nii.gz", np.zeros((40, 36, 1, 3), np.float32)),
            None,
            "--frame",
            "7",
        ),
        "out of range",
    ),
    "non-integer labels": (
        lambda r, g, t, o: _register(
            r,
            g,
            o,
            None,
            None,
            "--moving-labels",
            str(_nifti(t / "l.nii.gz", np.full((40, 36, 1), 1.5, np.float32))),
        ),
        "non-integer",
    ),
    "labels of another shape": (
        lambda r, g, t, o: _register(
            r,
            g,
            o,
            None,
            None,
            "--moving-labels",
            str(_nifti(t / "l.nii.gz", np.zeros((20, 18, 1), np.int16))),
        ),
        "differs from the moving",
    ),
    "no overlap": (
        lambda r, g, t, o: _register(
            r,
            g,
            o,
            moving=_nifti(
                t / "far.nii.gz",
                np.ones((40, 36, 1), np.float32),
                np.diag([1.0, 1.0, 1.0, 1.0]) + np.array([[0, 0, 0, 500]] + [[0] * 4] * 3),
            ),
        ),
        "do not overlap",
    ),
    "other dimensionality": (
        lambda r, g, t, o: _register(
            r, g, o, moving=_nifti(t / "vol.nii.gz", np.ones((40, 36, 5), np.float32))
        ),
        "dimensionality",
    ),
    # ---- pairs CSV
    "CSV not found": (lambda r, g, t, o: _evaluate(t / "none.csv", o), "pairs CSV not found"),
    "CSV empty": (lambda r, g, t, o: _evaluate(_csv(t, ""), o), "empty file"),
    "CSV missing column": (
        lambda r, g, t, o: _evaluate(_csv(t, f"moving\n{g['moving']}\n"), o),
        "missing column(s) fixed",
    ),
    "CSV field count": (
        lambda r, g, t, o: _evaluate(
            _csv(t, f"moving,fixed\n{g['moving']},{g['fixed']},extra\n"), o
        ),
        "3 fields",
    ),
    "CSV missing file": (
        lambda r, g, t, o: _evaluate(_csv(t, f"moving,fixed\nnone.nii.gz,{g['fixed']}\n"), o),
        "not found",
    ),
    "CSV bad split": (
        lambda r, g, t, o: _evaluate(
            _csv(t, f"moving,fixed,split\n{g['moving']},{g['fixed']},dev\n"), o
        ),
        "not one of",
    ),
    "CSV bad frame": (
        lambda r, g, t, o: _evaluate(
            _csv(t, f"moving,fixed,frame\n{g['moving']},{g['fixed']},x\n"), o
        ),
        "not an integer",
    ),
    "CSV no rows": (lambda r, g, t, o: _evaluate(_csv(t, "moving,fixed\n"), o), "no pairs listed"),
    # ---- label tables
    "malformed --labels": (
        lambda r, g, t, o: [
            *_evaluate(_csv(t, f"moving,fixed\n{g['moving']},{g['fixed']}\n"), o),
            "--labels",
            "CSF",
        ],
        "malformed entry",
    ),
    "missing --label-table": (
        lambda r, g, t, o: [
            *_evaluate(_csv(t, f"moving,fixed\n{g['moving']},{g['fixed']}\n"), o),
            "--label-table",
            str(t / "none.tsv"),
        ],
        "label table not found",
    ),
    # ---- checkpoints and models
    "no run folder": (lambda r, g, t, o: _register(t / "norun", g, o), "not found"),
    "checkpoint of random bytes": (
        lambda r, g, t, o: _register(_csv(t, "\x01\x02" * 50, "x.pt"), g, o),
        "not a structreg checkpoint",
    ),
    "foreign pickle": (
        lambda r, g, t, o: _register(_pickle(t), g, o),
        "not a structreg checkpoint",
    ),
    "other format version": (
        lambda r, g, t, o: _register(_checkpoint(r, t, lambda d: d.update(format_version=9)), g, o),
        "format_version",
    ),
    "corrupted weights": (
        lambda r, g, t, o: _register(
            _checkpoint(r, t, lambda d: d["state_dict"]["decoder.velocity.bias"].add_(1.0)), g, o
        ),
        "digest",
    ),
    "huge config": (
        lambda r, g, t, o: _register(
            _checkpoint(r, t, lambda d: d["config"]["model"].update(image_size=[3000, 3000])), g, o
        ),
        "beyond the supported bounds",
    ),
    "not a safetensors model": (
        lambda r, g, t, o: _register(_csv(t, "nope", "m.safetensors"), g, o),
        "not a readable safetensors",
    ),
    # ---- training options
    "unknown config key": (
        lambda r, g, t, o: ["train", "--out", str(o), "--set", "train.lrr=1"],
        "unknown key",
    ),
    "bad config value": (
        lambda r, g, t, o: ["train", "--out", str(o), "--set", "train.batch_size=-3"],
        "must be > 0",
    ),
    "unknown method": (
        lambda r, g, t, o: ["evaluate", "--methods", "elastix", "--out", str(o)],
        "unknown method",
    ),
}


def _truncated(good, tmp):
    raw = good["moving"].read_bytes()
    path = tmp / "cut.nii.gz"
    path.write_bytes(gzip.compress(gzip.decompress(raw)[:400]))
    return path


def _pickle(tmp):
    path = tmp / "foreign.pt"
    # an object that weights_only loading must refuse to build
    path.write_bytes(pickle.dumps({"format_version": 1, "config": ValueError("x")}))
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_a_one_line_error_and_writes_nothing(case, run_dir, good, tmp_path, capsys):
    make, words = CASES[case]
    out = tmp_path / "out"
    argv = make(run_dir, good, tmp_path, out)
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code != 0, case
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("structreg: error:")]
    assert len(lines) == 1 and words in lines[0], (case, err)
    assert not out.exists(), case
