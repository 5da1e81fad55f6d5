"""Real images through every command: layouts, grids, label tables, splits, bad input.

The images are real MRI (the MNI152 2009a template of the nilearn wheel and a real
single-subject T1 shipped in tests/data/real), written at test time by
tests/real_images.py in each layout users store slices in.
"""

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from real_images import mni_axial_slice, mni_stack, real_subject_slice, transformed_copy
from structreg.cli import main

LAYOUTS = ("HxW", "HxWx1", "HxWx1x1")
# a one-step training run on the tiny grid
ONE_STEP = (
    "--size 32x32 --spacing 6 --set train.steps=1 --set train.val_every=0 "
    "--set model.latent_dim=8 --set train.tensorboard=false"
).split()


@pytest.fixture(scope="module")
def model(tiny_run_factory):
    return tiny_run_factory([1.0, -0.5])


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Real slices in every layout (z = 16 mm and z = 24 mm: one moving/fixed pair per
    layout), a stack, a 4-D file, another subject, and copies on other grids."""
    folder = tmp_path_factory.mktemp("real")
    out = {}
    for layout in LAYOUTS:
        out[layout] = (
            mni_axial_slice(folder, z_mm=16.0, layout=layout, name=f"m_{layout}"),
            mni_axial_slice(folder, z_mm=24.0, layout=layout, name=f"f_{layout}"),
        )
    out["stack"] = (
        mni_stack(folder, z_mm=16.0, name="m_stack"),
        mni_stack(folder, z_mm=20.0, name="f_stack"),
    )
    slice_ = out["HxWx1"][0]
    img = nib.load(str(slice_["image"]))
    frames = np.concatenate([np.asarray(img.dataobj)[..., None]] * 3, axis=-1)  # H x W x 1 x 3
    frames[..., 2] *= 0.5
    out["frames"] = folder / "frames.nii.gz"
    nib.save(nib.Nifti1Image(frames.astype(np.float32), img.affine), str(out["frames"]))
    out["subject"] = real_subject_slice(folder, layout="HxWx1")
    for kind in ("rotated", "flipped", "oblique", "resampled", "disjoint"):
        out[kind] = transformed_copy(
            slice_["image"], folder, kind, labels_path=slice_["labels"], name=f"copy_{kind}"
        )
    return out


def register_argv(model, moving, fixed, out, *extra):
    """``structreg register`` arguments for one pair."""
    return [
        "register",
        "--model",
        str(model),
        "--moving",
        str(moving),
        "--fixed",
        str(fixed),
        "--out",
        str(out),
        *[str(e) for e in extra],
    ]


def _shape_affine(path):
    img = nib.load(str(path))
    return img.shape, img.affine


# ---------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("layout", [*LAYOUTS, "stack"])
def test_register_accepts_every_layout_and_keeps_it(model, real, layout, tmp_path):
    moving, fixed = real[layout]
    out = tmp_path / "out"
    args = register_argv(
        model, moving["image"], fixed["image"], out, "--moving-labels", str(moving["labels"])
    )
    assert main(args) == 0
    want_shape, want_affine = _shape_affine(fixed["image"])
    for name in ("moved.nii.gz", "moved_labels.nii.gz", "jacobian_det.nii.gz"):
        shape, affine = _shape_affine(out / name)
        assert shape == want_shape, name
        np.testing.assert_allclose(affine, want_affine, atol=1e-5)
    disp = nib.load(str(out / "disp.nii.gz"))
    # the field has the dimension ITK reads the images with: H x W is 2-D, H x W x 1
    # (x 1) 3-D (a one-slice 3-D field is stored with its slice twice)
    ndim_field = 2 if layout == "HxW" else 3
    assert disp.shape[-1] == ndim_field and disp.shape[:2] == want_shape[:2]
    z = json.loads((out / "z.json").read_text())
    assert len(z["codes"]) == (5 if layout == "stack" else 1)


def test_register_takes_a_frame_of_a_4d_file(model, real, tmp_path, capsys):
    frames = str(real["frames"])
    args = register_argv(model, frames, frames, tmp_path / "x")
    assert main(args) == 1
    assert "give a frame index" in capsys.readouterr().err
    assert main([*args, "--frame", "2"]) == 0
    assert nib.load(str(tmp_path / "x" / "moved.nii.gz")).shape == (98, 116, 1)


def _pairs_csv(folder, rows, name="pairs.csv", header=None):
    header = header or list(rows[0])
    path = folder / name
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("layout", [*LAYOUTS, "stack"])
def test_evaluate_embed_preview_and_train_accept_every_layout(model, real, layout, tmp_path):
    moving, fixed = real[layout]
    csv_path = _pairs_csv(
        tmp_path,
        [
            {
                "moving": moving["image"],
                "fixed": fixed["image"],
                "moving_labels": moving["labels"],
                "fixed_labels": fixed["labels"],
                "id": f"s{i}",
            }
            for i in range(2)
        ],
    )
    data = f"pairs:{csv_path}"
    grid = ["--size", "32x32", "--spacing", "6"]
    assert (
        main(
            [
                "evaluate",
                "--data",
                data,
                "--methods",
                f"ours:{model},identity",
                "--out",
                str(tmp_path / "eval"),
                *grid,
            ]
        )
        == 0
    )
    rows = list(csv.DictReader((tmp_path / "eval" / "pairs.csv").open()))
    assert len(rows) == 2 * 2 * (5 if layout == "stack" else 1)
    assert (
        main(["embed", "--model", str(model), "--data", data, "--out", str(tmp_path / "codes.csv")])
        == 0
    )
    assert main(["data", "preview", "--data", data, "--out", str(tmp_path / "p.png"), *grid]) == 0
    assert (
        main(
            [
                "train",
                "--data",
                data,
                "--out",
                str(tmp_path / "run"),
                *ONE_STEP,
                "--split",
                "all",
            ]
        )
        == 0
    )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_transport_sample_interpolate_accept_every_2d_layout(model, real, layout, tmp_path):
    moving, fixed = real[layout]
    m, f = str(moving["image"]), str(fixed["image"])
    assert (
        main(
            [
                "transport",
                "--model",
                str(model),
                "--source-moving",
                m,
                "--source-fixed",
                f,
                "--target",
                m,
                "--out",
                str(tmp_path / "t"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "sample",
                "--model",
                str(model),
                "--moving",
                m,
                "--fixed",
                f,
                "--n",
                "2",
                "--posterior-samples",
                "2",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "interpolate",
                "--model",
                str(model),
                "--moving",
                m,
                "--fixed",
                f,
                "--steps",
                "2",
                "--out",
                str(tmp_path / "i"),
            ]
        )
        == 0
    )
    want = nib.load(m).shape
    for path in (
        tmp_path / "t" / "transported.nii.gz",
        tmp_path / "s" / "sample_000.nii.gz",
        tmp_path / "s" / "uncertainty.nii.gz",
        tmp_path / "i" / "interpolation_00.nii.gz",
    ):
        assert nib.load(str(path)).shape == want, path


# ---------------------------------------------------------------------------- grids


@pytest.mark.parametrize("kind", ["rotated", "flipped", "resampled"])
def test_moving_on_another_grid_is_reproduced_by_simpleitk(model, real, kind, tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    fixed = real["HxWx1"][1]
    copy = real[kind]
    out = tmp_path / "out"
    assert (
        main(
            register_argv(
                model, copy["image"], fixed["image"], out, "--moving-labels", str(copy["labels"])
            )
        )
        == 0
    )
    # ITK reads the H x W x 1 images, and the field written for them, as 3-D
    reference = sitk.ReadImage(str(out / "moved.nii.gz"))
    moved = sitk.GetArrayFromImage(reference)
    field = sitk.ReadImage(str(out / "disp.nii.gz"), sitk.sitkVectorFloat64)
    transform = sitk.DisplacementFieldTransform(field)
    original = sitk.ReadImage(str(copy["image"]), sitk.sitkFloat64)
    resampled = sitk.GetArrayFromImage(
        sitk.Resample(original, reference, transform, sitk.sitkLinear, 0.0)
    )
    scale = float(np.abs(moved).max())
    diff = np.abs(resampled - moved)
    print(
        f"\n{kind}: max |SimpleITK - moved| = {diff.max():.3g} "
        f"({100 * diff.max() / scale:.2g} % of the range)"
    )
    assert diff.max() <= 1e-3 * scale
    # the outputs lie on the fixed grid
    np.testing.assert_allclose(
        nib.load(str(out / "moved.nii.gz")).affine, nib.load(str(fixed["image"])).affine, atol=1e-5
    )


def test_an_oblique_moving_slice_is_registered_on_the_fixed_grid(model, real, tmp_path):
    fixed = real["HxWx1"][1]
    out = tmp_path / "out"
    assert main(register_argv(model, real["oblique"]["image"], fixed["image"], out)) == 0
    moved = nib.load(str(out / "moved.nii.gz"))
    assert moved.shape == (98, 116, 1) and np.asarray(moved.dataobj).std() > 0


def test_no_overlap_and_other_dimensionality_are_one_line_errors(model, real, tmp_path, capsys):
    fixed = real["HxWx1"][1]
    args = [
        "register",
        "--model",
        str(model),
        "--fixed",
        str(fixed["image"]),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main([*args, "--moving", str(real["disjoint"]["image"])]) == 1
    err = capsys.readouterr().err
    assert "do not overlap" in err and len(err.strip().splitlines()) == 1
    assert main([*args, "--moving", str(real["stack"][0]["image"])]) == 1
    assert "dimensionality" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------- labels, splits


def test_evaluate_names_structures_from_the_label_table(model, real, tmp_path):
    moving, fixed = real["HxWx1"]
    subject = real["subject"]
    rows = [
        {
            "moving": moving["image"],
            "fixed": fixed["image"],
            "moving_labels": moving["labels"],
            "fixed_labels": fixed["labels"],
            "id": "mni",
        },
        {
            "moving": subject["image"],
            "fixed": fixed["image"],
            "moving_labels": subject["labels"],
            "fixed_labels": fixed["labels"],
            "id": "inter",
        },
    ]
    data = f"pairs:{_pairs_csv(tmp_path, rows)}"
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--data",
                data,
                "--labels",
                "1=CSF,2=GM,3=WM",
                "--methods",
                f"ours:{model},identity",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    table = (out / "table.md").read_text()
    for name in ("CSF Dice", "GM Dice", "WM Dice", "CSF HD95"):
        assert f"| {name}" in table
    assert "LV" not in table and "left heart" not in table and "RV" not in table
    assert len(list(csv.DictReader((out / "pairs.csv").open()))) == 4  # all pairs, no split
    out2 = tmp_path / "plain"
    assert main(["evaluate", "--data", data, "--methods", "identity", "--out", str(out2)]) == 0
    plain = (out2 / "table.md").read_text()
    assert "| label 1 Dice" in plain and "| label 3 Dice" in plain and "LV" not in plain
    table_file = tmp_path / "tissue.tsv"
    table_file.write_text("# tissues\n1\tCSF\n2\tGM\n3\tWM\nbrain = 2+3\n", encoding="utf-8")
    out3 = tmp_path / "tsv"
    assert (
        main(
            [
                "evaluate",
                "--data",
                data,
                "--label-table",
                str(table_file),
                "--methods",
                "identity",
                "--out",
                str(out3),
            ]
        )
        == 0
    )
    assert "| brain Dice" in (out3 / "table.md").read_text()


def test_a_split_column_is_honoured(model, real, tmp_path, capsys):
    moving, fixed = real["HxWx1"]
    rows = [
        {"moving": moving["image"], "fixed": fixed["image"], "id": f"s{i}", "split": split}
        for i, split in enumerate(["train", "train", "val", "test"])
    ]
    data = f"pairs:{_pairs_csv(tmp_path, rows)}"
    assert (
        main(["evaluate", "--data", data, "--methods", "identity", "--out", str(tmp_path / "e")])
        == 0
    )
    assert "1 pairs (test split)" in capsys.readouterr().out
    assert (
        main(
            [
                "train",
                "--data",
                data,
                "--out",
                str(tmp_path / "run"),
                *ONE_STEP,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "on 2 pairs, validating on 1 (the data's split column)" in printed
    assert "train: s0, s1" in printed and "val: s2" in printed


def test_training_on_a_csv_without_split_holds_out_validation_subjects(real, tmp_path, capsys):
    moving, fixed = real["HxWx1"]
    rows = [{"moving": moving["image"], "fixed": fixed["image"], "id": f"s{i}"} for i in range(10)]
    data = f"pairs:{_pairs_csv(tmp_path, rows)}"
    common = [
        *ONE_STEP,
    ]
    assert (
        main(
            [
                "train",
                "--data",
                data,
                "--out",
                str(tmp_path / "a"),
                "--val-fraction",
                "0.2",
                *common,
            ]
        )
        == 0
    )
    assert "on 8 pairs, validating on 2 (subject-wise, 0.2" in capsys.readouterr().out
    assert (
        main(["train", "--data", data, "--out", str(tmp_path / "b"), "--split", "all", *common])
        == 0
    )
    assert "on 10 pairs, validating on 0 (all pairs" in capsys.readouterr().out


# ---------------------------------------------------------------------------- bad input


def test_pairs_csv_with_bom_crlf_spaces_and_non_ascii_paths_works(real, tmp_path):
    moving, fixed = real["HxWx1"]
    folder = tmp_path / "Größe daten"
    folder.mkdir()
    for src, name in ((moving["image"], "moving é 1.nii.gz"), (fixed["image"], "fixed ü.nii.gz")):
        (folder / name).write_bytes(src.read_bytes())
    text = "moving,fixed,id\r\nmoving é 1.nii.gz,fixed ü.nii.gz,a\r\n"
    (folder / "pairs.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    out = tmp_path / "e"
    assert (
        main(
            [
                "evaluate",
                "--data",
                f"pairs:{folder / 'pairs.csv'}",
                "--methods",
                "identity",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert len(list(csv.DictReader((out / "pairs.csv").open()))) == 1


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda m, f: "moving,fixed,split\n{m},{f},holdout\n", "not one of train, val, test"),
        (lambda m, f: "moving,fixed,split\n{m},{f},train\n{m},{f},\n", "no split"),
        (lambda m, f: "moving,fixed\nmissing.nii.gz,{f}\n", "not found"),
        (lambda m, f: "moving,fixed,frame\n{m},{f},two\n", "not an integer"),
    ],
)
def test_bad_pairs_csv_is_a_one_line_error(real, tmp_path, capsys, make, words):
    moving, fixed = real["HxWx1"]
    path = tmp_path / "bad.csv"
    path.write_text(make(None, None).format(m=moving["image"], f=fixed["image"]))
    out = tmp_path / "e"
    assert (
        main(["evaluate", "--data", f"pairs:{path}", "--methods", "identity", "--out", str(out)])
        == 1
    )
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "labels, words",
    [
        ("1=CSF,2", "malformed entry"),
        ("0=bg", "malformed entry"),
        ("1=CSF,1=CSF", "named twice"),
        ("pool=2+x", "must list label values"),
    ],
)
def test_malformed_label_table_is_a_one_line_error(real, tmp_path, capsys, labels, words):
    moving, fixed = real["HxWx1"]
    data = f"pairs:{_pairs_csv(tmp_path, [{'moving': moving['image'], 'fixed': fixed['image']}])}"
    assert (
        main(
            [
                "evaluate",
                "--data",
                data,
                "--labels",
                labels,
                "--methods",
                "identity",
                "--out",
                str(tmp_path / "e"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_a_table_naming_an_absent_value_warns_and_goes_on(real, tmp_path, capsys):
    moving, fixed = real["HxWx1"]
    rows = [
        {
            "moving": moving["image"],
            "fixed": fixed["image"],
            "moving_labels": moving["labels"],
            "fixed_labels": fixed["labels"],
        }
    ]
    data = f"pairs:{_pairs_csv(tmp_path, rows)}"
    assert (
        main(
            [
                "evaluate",
                "--data",
                data,
                "--labels",
                "1=CSF,2=GM,3=WM,7=lesion",
                "--methods",
                "identity",
                "--out",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "structreg: warning:" in err and "[7]" in err


def test_label_map_of_another_shape_is_a_one_line_error(model, real, tmp_path, capsys):
    moving, fixed = real["HxWx1"]
    other = real["resampled"]["labels"]  # another grid than the moving image
    assert (
        main(
            register_argv(
                model,
                moving["image"],
                fixed["image"],
                tmp_path / "o",
                "--moving-labels",
                str(other),
            )
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "differs from the moving image" in err and len(err.strip().splitlines()) == 1


def test_every_command_takes_a_frame_of_a_4d_file(model, real, tmp_path):
    frames = str(real["frames"])
    m = ["--model", str(model)]
    assert (
        main(
            [
                "transport",
                *m,
                "--source-moving",
                frames,
                "--source-fixed",
                frames,
                "--target",
                frames,
                "--frame",
                "1",
                "--out",
                str(tmp_path / "t"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "sample",
                *m,
                "--moving",
                frames,
                "--n",
                "2",
                "--frame",
                "0",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "interpolate",
                *m,
                "--moving",
                frames,
                "--fixed",
                frames,
                "--steps",
                "2",
                "--frame",
                "2",
                "--out",
                str(tmp_path / "i"),
            ]
        )
        == 0
    )
    rows = [{"moving": frames, "fixed": frames, "frame": "2", "id": "f"}]
    data = f"pairs:{_pairs_csv(tmp_path, rows)}"
    assert (
        main(
            [
                "evaluate",
                "--data",
                data,
                "--methods",
                f"ours:{model},identity",
                "--out",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    assert main(["embed", *m, "--data", data, "--out", str(tmp_path / "codes.csv")]) == 0


def test_batch_ids_never_write_outside_out_and_failures_do_not_stop_the_batch(
    model, real, tmp_path, capsys
):
    moving, fixed = real["HxWx1"]
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"not a nifti at all")
    ids = [
        "../x",
        str(tmp_path / "abs" / "x"),
        "a/b",
        "..",
        "con",
        "y" * 300,
        "new\nline",
        "dup",
        "dup",
    ]
    rows = [{"moving": moving["image"], "fixed": fixed["image"], "id": i} for i in ids]
    rows += [
        {"moving": tmp_path / "missing.nii.gz", "fixed": fixed["image"], "id": "missing"},
        {"moving": corrupt, "fixed": fixed["image"], "id": "corrupt"},
    ]
    csv_path = _pairs_csv(tmp_path, rows, name="batch.csv")
    out = tmp_path / "deep" / "out"
    before = {p for p in tmp_path.rglob("*")}
    code = main(
        ["register", "--model", str(model), "--data", f"pairs:{csv_path}", "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert f"{len(ids)} registered, 2 failed" in captured.out
    assert "missing" in captured.err and "corrupt" in captured.err
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(out in p.parents or p == out or p in out.parents for p in created)
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(folders) == len(ids)  # one per registered row: duplicates did not collide
    assert "dup" in folders and "dup_2" in folders and "con_" in folders
    assert all(len(name) <= 100 and "/" not in name and "\n" not in name for name in folders)
    assert not (tmp_path / "x").exists() and not (tmp_path / "abs").exists()


def test_a_failed_re_registration_keeps_the_old_outputs_whole(
    model, real, tmp_path, monkeypatch, capsys
):
    import structreg.pipeline.registration

    moving, fixed = real["HxWx1"]
    out = tmp_path / "out"
    args = register_argv(model, moving["image"], fixed["image"], out)
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(*a, **k):
        raise OSError(28, "No space left on device", str(out / "jacobian_det.nii.gz"))

    monkeypatch.setattr(structreg.pipeline.registration, "write_itk_displacement", fail)
    assert main([*args, "--moving-labels", str(moving["labels"])]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "jacobian_det.nii.gz" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no mix
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left


def test_an_exported_safetensors_model_registers_like_its_run(model, real, tmp_path):
    from safetensors import safe_open

    exported = tmp_path / "model.safetensors"
    assert main(["export", "--model", str(model), "--out", str(exported)]) == 0
    with safe_open(str(exported), framework="pt") as fh:
        meta = fh.metadata()
    assert meta["format"] == "structreg" and len(meta["digest"]) == 64
    assert json.loads(meta["data"])["spacing"] == [6.0, 6.0]
    moving, fixed = real["HxWx1"]
    outs = []
    for name, source in (("run", model), ("file", exported)):
        outs.append(tmp_path / name)
        assert main(register_argv(source, moving["image"], fixed["image"], outs[-1])) == 0
    a, b = (np.asarray(nib.load(str(o / "moved.nii.gz")).dataobj) for o in outs)
    np.testing.assert_array_equal(a, b)
    assert main(["export", "--model", str(model), "--out", str(tmp_path / "m.pt")]) == 1


def test_batch_summary_and_resume_skip_finished_pairs(model, real, tmp_path, capsys):
    moving, fixed = real["HxWx1"]
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"garbage")
    rows = [{"moving": moving["image"], "fixed": fixed["image"], "id": f"p{i}"} for i in range(3)]
    rows.insert(1, {"moving": corrupt, "fixed": fixed["image"], "id": "bad"})
    csv_path = _pairs_csv(tmp_path, rows, name="cohort.csv")
    out = tmp_path / "out"
    args = ["register", "--model", str(model), "--data", f"pairs:{csv_path}", "--out", str(out)]
    assert main(args) == 1
    summary = list(csv.DictReader((out / "summary.csv").open()))
    assert [(r["name"], r["status"]) for r in summary] == [
        ("p0", "ok"),
        ("bad", "failed"),
        ("p1", "ok"),
        ("p2", "ok"),
    ]
    assert "not a readable NIfTI" in summary[1]["error"] and float(summary[0]["seconds"]) > 0
    stamp = (out / "p0" / "moved.nii.gz").stat().st_mtime_ns
    capsys.readouterr()
    corrupt.write_bytes((moving["image"]).read_bytes())  # the bad input is mended
    assert main([*args, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "bad:" in printed and "p0:" not in printed  # only the failed pair ran again
    assert (out / "p0" / "moved.nii.gz").stat().st_mtime_ns == stamp
    from structreg.pipeline.batch import read_summary

    latest = read_summary(out / "summary.csv")  # the last row of a name is its status
    assert {name: row["status"] for name, row in latest.items()} == {
        "p0": "ok",
        "bad": "ok",
        "p1": "ok",
        "p2": "ok",
    }
    assert len((out / "summary.csv").read_text().splitlines()) == 1 + 4 + 1  # + the retry


def test_register_refuses_a_folder_holding_other_files(model, real, tmp_path, capsys):
    moving, fixed = real["HxWx1"]
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(register_argv(model, moving["image"], fixed["image"], out)) == 1
    assert "holds other files (notes.txt)" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
