"""ANTs and SimpleITK applying ``OUT/disp.nii.gz`` to the original moving file reproduce
``OUT/moved.nii.gz``, for every layout a slice is stored in and for volumes.

End to end through ``structreg register``: the phantom's cardiac slice pair (100×100,
2 mm) registered by the built-in model, stored ``H×W`` (ITK reads a 2-D image),
``H×W×1`` and ``H×W×1×1`` (ITK reads a 3-D image of one slice), on an axial grid, an
oblique one (axes leaving the axial plane, a flipped axis) and with the moving image
on another grid than the fixed one; small volumes registered in 3-D. A non-coplanar
moving slice is reproduced for the layouts ITK reads as 3-D only (a 2-D ``H×W`` image
has no place off its plane in ITK).
"""

from functools import cache

import nibabel as nib
import numpy as np
import pytest

from structreg.cli import main
from structreg.data.phantoms.brain import make_brain_pair
from structreg.data.spec import load_pairs

pytestmark = pytest.mark.usefixtures("one_thread")

SLICE_LAYOUTS = {"HxW": (), "HxWx1": (1,), "HxWx1x1": (1, 1)}
DEMONS = "lcc-demons:iterations=5/5/5"


def _rotation(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _affine(rotation=None, spacing=(2.0, 2.0, 2.0), origin=(-90.0, 40.0, 10.0)):
    a = np.eye(4)
    a[:3, :3] = (np.eye(3) if rotation is None else rotation) @ np.diag(spacing)
    a[:3, 3] = origin
    return a


AXIAL = _affine()
OBLIQUE = _affine(_rotation(0, 0.3) @ _rotation(2, 0.4), (2.0, -2.0, 2.0))
# (moving affine, fixed affine) of each geometry
GEOMETRIES = {
    "axial": (AXIAL, AXIAL),
    "oblique": (OBLIQUE, OBLIQUE),
    "other-grid": (_affine(_rotation(2, 0.15), origin=(-85.0, 35.0, 10.0)), AXIAL),
    "tilted": (_affine(_rotation(0, 0.02) @ _rotation(2, 0.1), origin=(-88, 38, 10.5)), AXIAL),
}

VOLUME_GEOMETRIES = {
    "axial": (_affine(spacing=(7.0, 7.0, 7.0), origin=(-70.0, -90.0, -60.0)),) * 2,
    "oblique": (_affine(_rotation(0, 0.3) @ _rotation(2, 0.4), (7.0, -7.0, 7.0)),) * 2,
    "other-grid": (
        _affine(_rotation(1, 0.1) @ _rotation(2, 0.15), (7.0, 7.0, 7.0), (-60.0, -85.0, -55.0)),
        _affine(spacing=(7.0, 7.0, 7.0), origin=(-70.0, -90.0, -60.0)),
    ),
}


@cache
def _phantom():
    return load_pairs("phantom:cardiac", split="test")[0]


def _register(folder, moving, fixed, affines, tail, model):
    """Write the pair (arrays reshaped to ``shape + tail``) and register it."""
    folder.mkdir(parents=True)
    paths = []
    for name, data, affine in (("moving", moving, affines[0]), ("fixed", fixed, affines[1])):
        path = folder / f"{name}.nii.gz"
        array = np.asarray(data, np.float32).reshape(*data.shape, *tail)
        nib.save(nib.Nifti1Image(array, affine), str(path))
        paths.append(path)
    out = folder / "out"
    argv = ["register", "--model", model, "--moving", str(paths[0]), "--fixed", str(paths[1])]
    assert main([*argv, "--out", str(out)]) == 0
    return paths[0], paths[1], out


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """``case -> (moving path, fixed path, out folder)``, each registered once."""
    done = {}

    def get(case):
        if case not in done:
            folder = tmp_path_factory.mktemp("itk") / case
            kind, layout, geometry = case.split("/")
            if kind == "slice":
                pair, affines = _phantom(), GEOMETRIES[geometry]
                tail = SLICE_LAYOUTS[layout]
                args = (pair.moving, pair.fixed, affines, tail, "builtin:cardiac")
            else:
                pair = make_brain_pair(5, 1, size=(20, 24, 20), spacing=(7.0, 7.0, 7.0))
                affines = VOLUME_GEOMETRIES[geometry]
                model = DEMONS if geometry != "other-grid" else "identity"
                args = (pair.moving, pair.fixed, affines, (), model)
            done[case] = _register(folder, *args)
        return done[case]

    return get


def _apply_ants(moving, fixed, field):
    ants = pytest.importorskip("ants")
    fixed_image, moving_image = ants.image_read(str(fixed)), ants.image_read(str(moving))
    return ants.apply_transforms(fixed_image, moving_image, transformlist=[str(field)]).numpy()


def _apply_simpleitk(moving, fixed, field):
    sitk = pytest.importorskip("SimpleITK")
    vectors = sitk.ReadImage(str(field), sitk.sitkVectorFloat64)
    transform = sitk.DisplacementFieldTransform(vectors)
    reference = sitk.ReadImage(str(fixed), sitk.sitkFloat64)
    image = sitk.ReadImage(str(moving), sitk.sitkFloat64)
    array = sitk.GetArrayFromImage(sitk.Resample(image, reference, transform, sitk.sitkLinear, 0.0))
    return np.transpose(array, tuple(reversed(range(array.ndim))))  # back to NIfTI order


APPLY = {"ants": _apply_ants, "simpleitk": _apply_simpleitk}
CASES = [
    *[
        f"slice/{layout}/{geometry}"
        for layout in SLICE_LAYOUTS
        for geometry in GEOMETRIES
        if (layout, geometry) != ("HxW", "tilted")
    ],
    "volume/3D/axial",
    "volume/3D/oblique",
    "volume/3D/other-grid",
]


@pytest.mark.parametrize("tool", sorted(APPLY))
@pytest.mark.parametrize("case", CASES)
def test_applying_disp_to_the_original_moving_file_reproduces_moved(registered, case, tool):
    moving, fixed, out = registered(case)
    moved = np.asarray(nib.load(str(out / "moved.nii.gz")).dataobj, dtype=np.float64)
    theirs = APPLY[tool](moving, fixed, out / "disp.nii.gz")
    # the tool resamples onto the fixed image as it reads it: H x W or H x W x 1
    assert theirs.size == moved.size, (theirs.shape, moved.shape)
    theirs = theirs.reshape(moved.shape)
    inner = tuple(slice(8, -8) if n > 16 else slice(None) for n in moved.shape)
    scale = float(np.ptp(moved))
    original = np.asarray(nib.load(str(moving)).dataobj, dtype=np.float64)
    if original.shape == moved.shape:  # the field really moves something
        assert np.abs(original - moved)[inner].max() > 0.02 * scale
    diff = np.abs(theirs - moved)[inner].max()
    assert diff <= 1e-4 * scale, f"{tool}: max |applied - moved| = {diff / scale:.3g} of the range"


@pytest.mark.parametrize("layout", sorted(SLICE_LAYOUTS))
def test_the_field_has_the_dimension_itk_reads_the_images_with(registered, layout):
    sitk = pytest.importorskip("SimpleITK")
    _, fixed, out = registered(f"slice/{layout}/oblique")
    image = sitk.ReadImage(str(fixed))
    field = sitk.ReadImage(str(out / "disp.nii.gz"))
    assert field.GetDimension() == image.GetDimension() == field.GetNumberOfComponentsPerPixel()
    assert field.GetSize()[:2] == image.GetSize()[:2]
    for get in ("GetOrigin", "GetSpacing", "GetDirection"):
        np.testing.assert_allclose(getattr(field, get)(), getattr(image, get)(), atol=1e-5)
    header = nib.load(str(out / "disp.nii.gz")).header
    assert header.get_intent()[0] == "vector" and header["dim"][5] == image.GetDimension()
