"""A small corpus of REAL MRI slices, written on demand, for regression tests of reading and
registering users' NIfTI files.

Plain functions (no pytest fixtures); each writes NIfTI-1 files into a given folder and returns
a dict of paths, affines and ground truth. Everything is deterministic and uses only nibabel,
numpy and scipy; nothing is downloaded.

Sources
-------
* MNI152 ICBM 2009a symmetric template (T1 and GM/WM probability maps, 1 mm, 197x233x189,
  skull-stripped, RAS) shipped inside the nilearn wheel under ``nilearn/datasets/data/`` (found
  with ``importlib.util.find_spec``; nilearn is never imported).
* ``tests/data/real/anatomical.nii.gz``: a real T1 of one person (nipy's test image, BSD-3,
  SPM-normalised to MNI space, 2 mm, 33x41x25, stored LAS). See ``tests/data/real/README.md``.

Conventions
-----------
* Arrays are in NIfTI voxel order: axis 0 = i, axis 1 = j (axis 2 = slice). For the MNI slices
  axis 0 runs left -> right (world x) and axis 1 posterior -> anterior (world y); the real
  subject is stored with axis 0 running right -> left (as in its file).
* Affines are 4x4, voxel index -> world RAS+ millimetres (the NIfTI sform; the qform is set to
  the same matrix). Single slices keep a full 4x4 affine whose third column is the slice normal
  times the slice thickness, so the world position of voxel ``(i, j, 0)`` is meaningful.
* Layouts of a single slice of ``H x W`` voxels: ``"HxW"`` (2-D array), ``"HxWx1"`` (3-D with one
  slice, the most common way 2-D slices are stored), ``"HxWx1x1"`` (4-D singleton).
* Labels (uint8, NIfTI intent "label"): 0 background, 1 CSF, 2 GM, 3 WM.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

REAL_DIR = Path(__file__).resolve().parent / "data" / "real"
#: The shipped real single-subject T1 (see REAL_DIR / "README.md").
ANATOMICAL = REAL_DIR / "anatomical.nii.gz"

LAYOUTS = ("HxW", "HxWx1", "HxWx1x1")
KINDS = ("rotated", "flipped", "oblique", "resampled", "shifted_fov", "disjoint")
LABELS = {"background": 0, "CSF": 1, "GM": 2, "WM": 3}

#: MNI z (mm) of the default axial slice: the bodies of the lateral ventricles (as in
#: structreg's brain phantom).
DEFAULT_Z_MM = 16.0
#: A voxel is GM or WM when max(p_GM, p_WM) >= this; the larger of the two wins.
TISSUE_THRESHOLD = 0.3
#: Intracranial = holes-filled (T1 > this fraction of the template maximum, 255) or tissue.
BRAIN_THRESHOLD = 0.2

_MNI_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
_SFORM_MNI = 4  # NIfTI xform code "mni"


# --------------------------------------------------------------------------- MNI template


def mni_template_paths() -> dict[str, Path]:
    """Paths of the MNI152 2009a T1/GM/WM files inside the installed nilearn package.

    Raises:
        FileNotFoundError: nilearn is not installed or lacks a template file.
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the MNI152 template comes with nilearn, which is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    paths = {key: folder / name for key, name in _MNI_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"MNI152 template files missing: {missing}")
    return paths


@lru_cache(maxsize=1)
def _mni_volumes() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """T1 (0..255) and GM/WM probabilities (0..1) as float32 (197, 233, 189), and the affine."""
    volumes, affine = {}, None
    for key, path in mni_template_paths().items():
        img = nib.load(path)
        vol = np.asarray(img.dataobj, dtype=np.float32)
        volumes[key] = vol if key == "t1" else vol / 255.0
        affine = img.affine if affine is None else affine
    for vol in volumes.values():
        vol.setflags(write=False)
    return volumes, np.asarray(affine, dtype=np.float64)


def _sample_mni(affine: np.ndarray, shape: tuple[int, int, int], fwhm_mm: float) -> dict:
    """The template's T1/GM/WM at the voxel centres of a grid ``(H, W, S)`` with ``affine``.

    The 1 mm template is first smoothed by a Gaussian that brings its resolution to
    ``fwhm_mm`` (anti-aliasing; none for fwhm_mm <= 1), then interpolated linearly.
    """
    volumes, t_affine = _mni_volumes()
    grid = np.indices(shape, dtype=np.float64).reshape(3, -1)
    world = affine[:3, :3] @ grid + affine[:3, 3:]
    tvox = np.linalg.inv(t_affine)[:3, :3] @ world + np.linalg.inv(t_affine)[:3, 3:]
    sigma = np.sqrt(max(fwhm_mm**2 - 1.0, 0.0)) * _FWHM_TO_SIGMA  # template voxels (1 mm)
    margin = int(np.ceil(4 * sigma)) + 2
    lo = np.maximum(np.floor(tvox.min(axis=1)).astype(int) - margin, 0)
    hi = np.minimum(np.ceil(tvox.max(axis=1)).astype(int) + margin + 1, volumes["t1"].shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    out = {}
    for key, vol in volumes.items():
        block = vol[crop]
        if sigma > 0:
            block = ndimage.gaussian_filter(block, sigma, mode="constant", cval=0.0)
        vals = ndimage.map_coordinates(block, tvox - lo[:, None], order=1, cval=0.0)
        out[key] = vals.reshape(shape).astype(np.float32)
    return out


def _mni_labels(t1: np.ndarray, gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """Tissue labels ``(H, W, S)`` uint8 from the template's T1 and GM/WM probabilities.

    Rule: GM/WM = argmax(p_GM, p_WM) where max(p_GM, p_WM) >= TISSUE_THRESHOLD; intracranial =
    (T1 > BRAIN_THRESHOLD * 255, or GM, or WM) with its holes filled slice by slice (this takes
    in the ventricles); CSF = intracranial voxels that are neither GM nor WM; the rest is 0.
    """
    tissue = np.maximum(gm, wm) >= TISSUE_THRESHOLD
    labels = np.zeros(t1.shape, dtype=np.uint8)
    brain = (t1 > BRAIN_THRESHOLD * 255.0) | tissue
    for k in range(t1.shape[2]):
        brain[:, :, k] = ndimage.binary_fill_holes(brain[:, :, k])
    labels[brain] = LABELS["CSF"]
    labels[tissue & (gm >= wm)] = LABELS["GM"]
    labels[tissue & (wm > gm)] = LABELS["WM"]
    return labels


def _mni_grid(spacing_mm: float, shape: tuple[int, int] | None) -> tuple[int, int, float, float]:
    """(H, W, x0, y0): an in-plane grid centred on the template's field of view (in world mm);
    by default it covers that field of view (197 x 233 mm)."""
    volumes, t_affine = _mni_volumes()
    n = np.asarray(volumes["t1"].shape[:2])
    centre = t_affine[:2, :2] @ ((n - 1) / 2.0) + t_affine[:2, 3]
    if shape is None:
        shape = tuple(int(v) for v in np.floor(n * abs(t_affine[0, 0]) / spacing_mm))
    h, w = shape
    x0 = centre[0] - (h - 1) / 2.0 * spacing_mm
    y0 = centre[1] - (w - 1) / 2.0 * spacing_mm
    return h, w, float(x0), float(y0)


def mni_axial_slice(
    folder: str | Path,
    z_mm: float = DEFAULT_Z_MM,
    spacing_mm: float = 2.0,
    layout: str = "HxWx1",
    shape: tuple[int, int] | None = None,
    name: str = "mni_slice",
) -> dict:
    """Write an axial slice of the MNI152 2009a T1 and its tissue labels.

    The slice is the template sampled on an ``H x W`` grid of ``spacing_mm`` (in-plane and
    thickness; anti-aliased by a Gaussian of FWHM ``spacing_mm``) at world ``z = z_mm``. By
    default the grid covers the template's 197 x 233 mm field of view (98 x 116 at 2 mm),
    centred on it (world x = 0 is the midline of the symmetric template); ``shape`` picks
    another ``(H, W)`` with the same centre.

    Args:
        folder: where ``{name}.nii.gz`` and ``{name}_labels.nii.gz`` are written.
        z_mm: MNI z (mm) of the slice.
        spacing_mm: voxel size (mm), in-plane and across.
        layout: ``"HxW"``, ``"HxWx1"`` or ``"HxWx1x1"``.
        shape: ``(H, W)`` voxels, or None for the whole template field of view.
        name: file name stem.

    Returns:
        ``{"image", "labels"}``: paths (T1 float32 in template units 0..255; labels uint8),
        ``"affine"``: 4x4 voxel -> world RAS mm (axis 0 = +x, axis 1 = +y, slice normal +z),
        ``"shape"``: the stored array shape, ``"z_mm"``, ``"spacing_mm"``, ``"layout"``.
    """
    _check_layout(layout)
    h, w, x0, y0 = _mni_grid(spacing_mm, shape)
    affine = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
    affine[:3, 3] = (x0, y0, z_mm)
    vols = _sample_mni(affine, (h, w, 1), fwhm_mm=spacing_mm)
    labels = _mni_labels(vols["t1"], vols["gm"], vols["wm"])
    folder = Path(folder)
    image_path = _write(folder / f"{name}.nii.gz", vols["t1"], affine, layout, _SFORM_MNI)
    label_path = _write(folder / f"{name}_labels.nii.gz", labels, affine, layout, _SFORM_MNI)
    return {
        "image": image_path,
        "labels": label_path,
        "affine": affine,
        "shape": _layout_shape((h, w), layout),
        "z_mm": float(z_mm),
        "spacing_mm": float(spacing_mm),
        "layout": layout,
    }


def mni_stack(
    folder: str | Path,
    z_mm: float = DEFAULT_Z_MM,
    n_slices: int = 5,
    slice_gap_mm: float = 4.0,
    spacing_mm: float = 2.0,
    shape: tuple[int, int] | None = None,
    name: str = "mni_stack",
) -> dict:
    """Write a small 3-D stack ``H x W x n_slices`` of axial MNI152 slices and its labels.

    Slice ``k`` lies at world ``z = z_mm + (k - (n_slices - 1) / 2) * slice_gap_mm`` (so the
    middle slice is ``mni_axial_slice``'s slice); each slice has thickness (FWHM)
    ``spacing_mm``, i.e. there are gaps between slices as in clinical stacks. In-plane grid,
    intensities and label rule as ``mni_axial_slice``.

    Returns:
        ``{"image", "labels"}`` paths, ``"affine"`` 4x4 (third column ``(0, 0, slice_gap_mm)``),
        ``"shape"`` ``(H, W, n_slices)``, ``"z_mm"`` (the slices' world z), ``"spacing_mm"``.
    """
    h, w, x0, y0 = _mni_grid(spacing_mm, shape)
    z_first = z_mm - (n_slices - 1) / 2.0 * slice_gap_mm
    affine = np.diag([spacing_mm, spacing_mm, slice_gap_mm, 1.0])
    affine[:3, 3] = (x0, y0, z_first)
    vols = _sample_mni(affine, (h, w, n_slices), fwhm_mm=spacing_mm)
    labels = _mni_labels(vols["t1"], vols["gm"], vols["wm"])
    folder = Path(folder)
    return {
        "image": _write(folder / f"{name}.nii.gz", vols["t1"], affine, "stack", _SFORM_MNI),
        "labels": _write(folder / f"{name}_labels.nii.gz", labels, affine, "stack", _SFORM_MNI),
        "affine": affine,
        "shape": (h, w, n_slices),
        "z_mm": [float(z_first + k * slice_gap_mm) for k in range(n_slices)],
        "spacing_mm": float(spacing_mm),
    }


# --------------------------------------------------------------------------- real subject


def _kmeans_thresholds(values: np.ndarray, n_iter: int = 100) -> tuple[float, float]:
    """Two thresholds splitting 1-D ``values`` into 3 k-means classes (deterministic)."""
    centres = np.percentile(values, [10.0, 50.0, 90.0])
    for _ in range(n_iter):
        cut = (centres[:-1] + centres[1:]) / 2.0
        cls = np.digitize(values, cut)
        new = np.array([values[cls == c].mean() for c in range(3)])
        if np.allclose(new, centres):
            break
        centres = new
    cut = (centres[:-1] + centres[1:]) / 2.0
    return float(cut[0]), float(cut[1])


def real_subject_slice(
    folder: str | Path,
    z_mm: float = DEFAULT_Z_MM,
    layout: str = "HxWx1",
    name: str = "subject_slice",
) -> dict:
    """Write the axial slice of the real T1 ``tests/data/real/anatomical.nii.gz`` nearest to
    world ``z_mm`` (exactly 16 mm by default), with APPROXIMATE tissue labels.

    The image is one 33 x 41 slice (2 mm, int16 scanner units, as stored: axis 0 runs right ->
    left, axis 1 posterior -> anterior) of a real brain that SPM normalised to MNI space; its
    field of view (66 x 82 mm) is a central crop of the brain, inside ``mni_axial_slice``'s.
    With an MNI slice it makes a real inter-subject pair (two brains, other grids and
    orientations, other intensity scales).

    Labels: head mask = T1 > 10 % of its 99th percentile (whole volume, holes filled per
    slice); the masked intensities of the whole volume are split into three 1-D k-means
    classes: darkest CSF (1), middle GM (2), brightest WM (3); 0 outside the mask. This is a
    rough intensity rule (partial volume, bias field), not a segmentation.

    Returns:
        ``{"image", "labels"}`` paths, ``"affine"`` 4x4 of the slice, ``"shape"``,
        ``"z_mm"`` (world z of the slice), ``"slice_index"`` (in the volume),
        ``"thresholds"`` (the two k-means cuts, scanner units).
    """
    _check_layout(layout)
    img = nib.load(ANATOMICAL)
    vol = np.asarray(img.dataobj)
    a = img.affine
    centre = np.array([(vol.shape[0] - 1) / 2.0, (vol.shape[1] - 1) / 2.0])
    z_of_k = [float((a @ [centre[0], centre[1], k, 1.0])[2]) for k in range(vol.shape[2])]
    k = int(np.argmin(np.abs(np.asarray(z_of_k) - z_mm)))
    data = vol.astype(np.float64)
    mask = data > 0.1 * np.percentile(data, 99)
    for kk in range(mask.shape[2]):
        mask[:, :, kk] = ndimage.binary_fill_holes(mask[:, :, kk])
    t_csf, t_wm = _kmeans_thresholds(data[mask])
    labels = np.digitize(data[:, :, k : k + 1], [t_csf, t_wm]).astype(np.uint8) + 1
    labels[~mask[:, :, k : k + 1]] = LABELS["background"]
    affine = a @ _translation(0.0, 0.0, float(k))
    code = int(img.header["sform_code"]) or 2
    folder = Path(folder)
    return {
        "image": _write(folder / f"{name}.nii.gz", vol[:, :, k : k + 1], affine, layout, code),
        "labels": _write(folder / f"{name}_labels.nii.gz", labels, affine, layout, code),
        "affine": affine,
        "shape": _layout_shape(vol.shape[:2], layout),
        "z_mm": z_of_k[k],
        "slice_index": k,
        "thresholds": (t_csf, t_wm),
    }


# --------------------------------------------------------------------------- transformed copies


def load_2d(path: str | Path) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Image]:
    """A single-slice NIfTI (any of LAYOUTS) as ``(array (H, W), affine 4x4, image)``.

    Raises:
        ValueError: the file holds more than one slice.
    """
    img = nib.load(path)
    data = np.asarray(img.dataobj)
    if data.ndim < 2 or any(n != 1 for n in data.shape[2:]):
        raise ValueError(f"{path}: not a single slice (shape {data.shape})")
    return data.reshape(data.shape[:2]), np.asarray(img.affine, dtype=np.float64), img


def transformed_copy(
    src_path: str | Path,
    folder: str | Path,
    kind: str,
    labels_path: str | Path | None = None,
    angle_deg: float | None = None,
    spacing_mm: float = 1.5,
    name: str | None = None,
) -> dict:
    """Write a copy of a real single-slice image (and its labels) on ANOTHER grid, with the
    ground-truth mapping between the copy's voxels and the original's.

    The copy keeps the anatomy at the same world place (except ``"disjoint"``): copy voxel
    ``p' = (i', j')`` holds the original sampled (linear; labels nearest; 0 outside the
    original's field of view) at original voxel ``T @ (i', j', 1)``. Kinds:

    * ``"rotated"``: the voxel grid rotated in-plane by ``angle_deg`` (default 12) about the
      slice centre (new affine = world rotation about the slice normal o old affine); same shape.
    * ``"flipped"``: axis 0 reversed (data flipped, affine adjusted: RAS vs LPS-like storage);
      exact, no interpolation.
    * ``"oblique"``: the slice plane tilted by ``angle_deg`` (default 10) about its in-plane
      axis 0 through the slice centre, giving an oblique sform; still one slice. A tilted plane
      meets the original plane only along a line, so its content is defined by orthogonal
      projection: copy voxel ``p'`` holds the original at the foot of the perpendicular from
      ``world(p')`` onto the original plane, and ``T`` is that projection (foreshortening axis 1
      by cos(angle)). ``M`` below is the exact 3-D voxel map (``k != 0`` off the plane).
    * ``"resampled"``: voxel size ``spacing_mm`` (default 1.5) in-plane and a field of view of
      80 % of the original's per axis, centred 10 % of the extent off the original's centre
      along axis 0 (a different shape; Gaussian anti-aliasing where the voxels grow).
    * ``"shifted_fov"``: an integer-shifted window of 75 % x 75 % of the original's shape,
      starting at voxel ``(round(0.4 H), -round(0.15 W))``: it overlaps the original only
      partly (neither contains the other); copy voxels outside the original are 0.
    * ``"disjoint"``: the original ARRAY UNCHANGED (a non-empty image) but placed on a grid
      shifted by 1.25 H voxels along axis 0, so its field of view does not overlap the
      original at all (for the error case); ``T``/``M`` say where the grids sit, the content
      is not a resampling.

    Args:
        src_path: a single-slice NIfTI (any of LAYOUTS, any orientation).
        folder: where ``{name}.nii.gz`` (and ``{name}_labels.nii.gz``) are written.
        kind: one of KINDS.
        labels_path: the original's labels on its grid, or None.
        angle_deg: rotation for "rotated" (default 12) and "oblique" (default 10), degrees.
        spacing_mm: in-plane voxel size (mm) for "resampled".
        name: file name stem; default ``{src stem}_{kind}``.

    Returns:
        ``"image"``, ``"labels"`` (path or None), ``"kind"``, ``"affine"`` (4x4, the copy),
        ``"original_affine"``, ``"shape"`` (stored, same layout as the source),
        ``"copy_to_original"``: ``M`` 4x4 homogeneous voxel map, copy ``(i', j', k', 1)`` ->
        original ``(i, j, k, 1)`` with ``original_affine @ M == affine`` (exact world identity),
        ``"copy_to_original_2d"``: ``T`` 3x3, copy ``(i', j', 1)`` -> original ``(i, j, 1)`` in
        the slice plane (= ``M`` restricted to the plane, except for "oblique", see above),
        ``"map_to_original"``: function ``(..., 2)`` copy voxel coords -> original voxel coords
        (applies ``T``), ``"valid"``: bool ``(H', W')``, copy voxels whose ``T`` position lies
        within the original's voxel grid ``[0, H-1] x [0, W-1]`` (all False for "disjoint").
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    data, a, img = load_2d(src_path)
    layout = LAYOUTS[np.asarray(img.dataobj).ndim - 2]
    h, w = data.shape
    m, out_shape, sigma = _copy_grid(kind, a, (h, w), angle_deg, spacing_mm)
    a_new = a @ m
    t = _plane_map(a, a_new)
    coords = _apply_2d(t, np.indices(out_shape, dtype=np.float64).transpose(1, 2, 0))
    valid = (
        (coords[..., 0] >= -1e-9)
        & (coords[..., 0] <= h - 1 + 1e-9)
        & (coords[..., 1] >= -1e-9)
        & (coords[..., 1] <= w - 1 + 1e-9)
    )
    if kind == "disjoint":
        new_data = data
    else:
        new_data = _resample(data.astype(np.float64), coords, order=1, sigma=sigma)
        new_data = _cast_like(new_data, data.dtype)
    stem = name or f"{_stem(src_path)}_{kind}"
    folder = Path(folder)
    code = int(img.header["sform_code"]) or 2
    out = {
        "kind": kind,
        "image": _write(folder / f"{stem}.nii.gz", new_data[..., None], a_new, layout, code),
        "labels": None,
        "affine": a_new,
        "original_affine": a,
        "shape": _layout_shape(out_shape, layout),
        "copy_to_original": m,
        "copy_to_original_2d": t,
        "map_to_original": _mapper(t),
        "valid": valid,
    }
    if labels_path is not None:
        lab, _, _ = load_2d(labels_path)
        if lab.shape != data.shape:
            raise ValueError(f"labels {lab.shape} and image {data.shape} differ in shape")
        new_lab = lab if kind == "disjoint" else _resample(lab, coords, order=0, sigma=0.0)
        path = folder / f"{stem}_labels.nii.gz"
        out["labels"] = _write(path, new_lab.astype(lab.dtype)[..., None], a_new, layout, code)
    return out


def _copy_grid(
    kind: str, a: np.ndarray, shape: tuple[int, int], angle_deg: float | None, spacing_mm: float
) -> tuple[np.ndarray, tuple[int, int], np.ndarray | float]:
    """(M 4x4 copy voxel -> original voxel, copy shape (H', W'), anti-aliasing sigma)."""
    h, w = shape
    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0, 0.0, 1.0])
    p_centre = (a @ centre)[:3]
    normal = np.cross(a[:3, 0], a[:3, 1])
    sigma: np.ndarray | float = 0.0
    if kind in ("rotated", "oblique"):
        default = 12.0 if kind == "rotated" else 10.0
        angle = np.deg2rad(default if angle_deg is None else angle_deg)
        axis = normal if kind == "rotated" else a[:3, 0]
        world = _rotation_about(axis, angle, p_centre)
        return np.linalg.inv(a) @ world @ a, (h, w), sigma
    if kind == "flipped":
        m = np.diag([-1.0, 1.0, 1.0, 1.0])
        m[0, 3] = h - 1
        return m, (h, w), sigma
    if kind == "resampled":
        vox = np.linalg.norm(a[:3, :2], axis=0)  # the original's in-plane voxel sizes (mm)
        ratio = spacing_mm / vox
        new_shape = tuple(int(v) for v in np.rint(0.8 * np.asarray(shape) * vox / spacing_mm))
        offset = np.array([0.1 * h, 0.0])
        m = np.eye(4)
        m[0, 0], m[1, 1] = ratio
        m[:2, 3] = centre[:2] + offset - ratio * (np.asarray(new_shape) - 1) / 2.0
        sigma = np.sqrt(np.maximum(ratio**2 - 1.0, 0.0)) * _FWHM_TO_SIGMA
        return m, (new_shape[0], new_shape[1]), sigma
    if kind == "shifted_fov":
        m = _translation(round(0.4 * h), -round(0.15 * w), 0.0)
        return m, (int(round(0.75 * h)), int(round(0.75 * w))), sigma
    # disjoint: the same grid moved 1.25 fields of view along axis 0
    return _translation(h + round(0.25 * h), 0.0, 0.0), (h, w), sigma


def _rotation_about(axis: np.ndarray, angle: float, point: np.ndarray) -> np.ndarray:
    """4x4 world rotation by ``angle`` (rad) about the line through ``point`` along ``axis``."""
    u = axis / np.linalg.norm(axis)
    k = np.array([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])
    r = np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)
    out = np.eye(4)
    out[:3, :3] = r
    out[:3, 3] = point - r @ point
    return out


def _plane_map(a: np.ndarray, a_new: np.ndarray) -> np.ndarray:
    """3x3 ``T``: copy voxel (i', j', 1) -> original (i, j, 1), via the orthogonal projection
    of world(copy voxel) onto the original slice plane (exact for in-plane copies)."""
    n = np.cross(a[:3, 0], a[:3, 1])
    n /= np.linalg.norm(n)
    proj = np.eye(4)
    proj[:3, :3] -= np.outer(n, n)
    proj[:3, 3] = np.outer(n, n) @ a[:3, 3]
    full = np.linalg.inv(a) @ proj @ a_new
    t = np.eye(3)
    t[:2, :2] = full[:2, :2]
    t[:2, 2] = full[:2, 3]
    return t


def _apply_2d(t: np.ndarray, ij: np.ndarray) -> np.ndarray:
    """Apply a 3x3 homogeneous 2-D map to coordinates ``(..., 2)``."""
    return ij @ t[:2, :2].T + t[:2, 2]


def _mapper(t: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def map_to_original(ij: np.ndarray) -> np.ndarray:
        """Copy voxel coordinates ``(..., 2)`` -> original voxel coordinates ``(..., 2)``."""
        return _apply_2d(t, np.asarray(ij, dtype=np.float64))

    return map_to_original


def _resample(
    data: np.ndarray, coords: np.ndarray, order: int, sigma: np.ndarray | float
) -> np.ndarray:
    """``data (H, W)`` sampled at ``coords (H', W', 2)`` (voxels), 0 outside."""
    if np.any(np.asarray(sigma) > 0):
        data = ndimage.gaussian_filter(data, sigma, mode="nearest")
    pts = np.moveaxis(coords, -1, 0)
    if order == 0:  # exact nearest (ndimage's order 0 rounds halves inconsistently)
        idx = np.rint(pts).astype(int)
        inside = (idx[0] >= 0) & (idx[0] < data.shape[0]) & (idx[1] >= 0)
        inside &= idx[1] < data.shape[1]
        out = np.zeros(coords.shape[:2], dtype=data.dtype)
        out[inside] = data[idx[0][inside], idx[1][inside]]
        return out
    return ndimage.map_coordinates(data, pts, order=order, mode="constant", cval=0.0)


def _cast_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


# --------------------------------------------------------------------------- writing


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")


def _layout_shape(hw: tuple[int, ...], layout: str) -> tuple[int, ...]:
    h, w = int(hw[0]), int(hw[1])
    return {"HxW": (h, w), "HxWx1": (h, w, 1), "HxWx1x1": (h, w, 1, 1)}[layout]


def _translation(di: float, dj: float, dk: float) -> np.ndarray:
    out = np.eye(4)
    out[:3, 3] = (di, dj, dk)
    return out


def _stem(path: str | Path) -> str:
    name = Path(path).name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return Path(path).stem


def _write(path: Path, data: np.ndarray, affine: np.ndarray, layout: str, code: int) -> Path:
    """Write ``data (H, W, S)`` as NIfTI-1 in ``layout`` ("stack" keeps (H, W, S)); sform and
    qform both set to ``affine`` with ``code``; labels (uint8) get intent "label"."""
    if layout != "stack":
        data = data.reshape(_layout_shape(data.shape, layout))
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=code)
    img.set_qform(affine, code=code)
    img.header.set_xyzt_units("mm", "sec")
    img.set_data_dtype(data.dtype)
    if data.dtype == np.uint8:
        img.header.set_intent("label")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return path
