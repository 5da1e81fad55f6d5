"""Real inter-subject brain slices, made offline from images that installed packages ship.

Used by ``real_pairs.py`` (the registration benchmark) and ``brain_inter_realism.py``.

* ``coronal``: dipy's real T1 coronal slice (``dipy/data/files/t1_coronal_slice.npy``, one
  person; taken as 1 mm and block-averaged to 2 mm) against coronal slices of the MNI152
  2009a template (nilearn wheel) at the level most correlated with it and at ±2, ±4 mm.
* ``axial``: a real subject's T1 (nipy's ``anatomical.nii.gz`` in ``tests/data/real``,
  SPM-normalised to MNI space, 2 mm) against the MNI152 template at MNI z = 8 ... 24 mm, on
  the subject's 33 x 41 grid (a central crop of the brain).

Every image is put on a ``100 x 100`` canvas at 2 mm with its brain's bounding box centred
(a crude pre-alignment, the same for every method), intensities mapped to [0, 1] by the 1st
and 99th percentiles, and labelled by one intensity rule: brain = intensity > 10 % of the
99th percentile (holes filled), three 1-D k-means classes inside it (1 CSF, 2 GM, 3 WM).
Pairs go both ways (template -> subject and subject -> template).

What a model trained on the phantoms has and has not seen: one side of every pair is the
MNI152 2009a template, which the brain phantoms are made from (axial slices around
MNI z = 16 mm, each subject a warp of it); the other side is a real person no phantom
contains. The coronal pairs show an orientation the phantoms never do; the axial pairs
cover the phantoms' own levels, but as a 66 x 82 mm crop of the brain.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from real_images import ANATOMICAL, _kmeans_thresholds, _sample_mni

SPACING = 2.0
SHAPE = (100, 100)
TISSUES = {"CSF": (1,), "GM": (2,), "WM": (3,)}
AXIAL_Z_MM = (8.0, 12.0, 16.0, 20.0, 24.0)
CORONAL_SEARCH_Y_MM = np.arange(-30.0, 1.0, 2.0)
CORONAL_OFFSETS_MM = (-4.0, -2.0, 0.0, 2.0, 4.0)


def kmeans_labels(image: np.ndarray) -> np.ndarray:
    """0 background, 1 CSF, 2 GM, 3 WM by the intensity rule of the module doc."""
    image = np.asarray(image, dtype=np.float64)
    mask = ndimage.binary_fill_holes(image > 0.1 * np.percentile(image, 99))
    t_csf, t_wm = _kmeans_thresholds(image[mask])
    labels = np.digitize(image, [t_csf, t_wm]).astype(np.uint8) + 1
    labels[~mask] = 0
    return labels


def centred(image: np.ndarray, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """``image`` on a ``shape`` canvas with its brain's bounding box centred (integer shift)."""
    brain = image > 0.1 * np.percentile(image, 99)
    out = np.zeros(shape)
    lo = [np.flatnonzero(brain.any(axis=1 - a))[0] for a in range(2)]
    hi = [np.flatnonzero(brain.any(axis=1 - a))[-1] for a in range(2)]
    block = image[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1][: shape[0], : shape[1]]
    start = [(n - m) // 2 for n, m in zip(shape, block.shape, strict=True)]
    out[start[0] : start[0] + block.shape[0], start[1] : start[1] + block.shape[1]] = block
    return out


def dipy_coronal() -> np.ndarray:
    """dipy's T1 coronal slice at 2 mm, ``(x, z)`` with z inferior -> superior."""
    import dipy

    path = Path(dipy.__file__).parent / "data" / "files" / "t1_coronal_slice.npy"
    raw = np.load(path).T[:, ::-1]
    h, w = (n // 2 for n in raw.shape)
    return raw[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))


def mni_coronal(y_mm: float) -> np.ndarray:
    """The MNI152 T1 at world y = ``y_mm``, 2 mm, ``(x, z)``."""
    affine = np.array(
        [[SPACING, 0, 0, -110.0], [0, 0, 1.0, y_mm], [0, SPACING, 0, -80.0], [0, 0, 0, 1.0]]
    )
    return _sample_mni(affine, (110, 90, 1), fwhm_mm=SPACING)["t1"][..., 0]


def coronal_images() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, template slice, subject slice)`` at the best-matching level and around it."""
    subject = centred(dipy_coronal())
    scores = [
        np.corrcoef(centred(mni_coronal(y)).ravel(), subject.ravel())[0, 1]
        for y in CORONAL_SEARCH_Y_MM
    ]
    best = float(CORONAL_SEARCH_Y_MM[int(np.argmax(scores))])
    return [
        (f"coronal_y{best + d:+.0f}", centred(mni_coronal(best + d)), subject)
        for d in CORONAL_OFFSETS_MM
    ]


def axial_images() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, template slice, subject slice)`` on the subject's grid, padded to 100 x 100."""
    import nibabel as nib

    img = nib.load(ANATOMICAL)
    vol = np.asarray(img.dataobj, dtype=np.float64)
    out = []
    for z in AXIAL_Z_MM:
        k = int(round((np.linalg.inv(img.affine) @ [0.0, 0.0, z, 1.0])[2]))
        affine = img.affine @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, k], [0, 0, 0, 1.0]])
        mni = _sample_mni(affine, (*vol.shape[:2], 1), fwhm_mm=SPACING)["t1"][..., 0]
        gaps = [n - m for n, m in zip(SHAPE, vol.shape[:2], strict=True)]
        pad = [(g // 2, g - g // 2) for g in gaps]
        out.append((f"axial_z{z:+.0f}", np.pad(mni, pad), np.pad(vol[:, :, k], pad)))
    return out


def real_pairs(sets: tuple[str, ...] = ("coronal", "axial")) -> list:
    """The real inter-subject pairs as :class:`structreg.data.Pair` s (both directions)."""
    from structreg.data.labels import LabelTable
    from structreg.data.pair import Pair
    from structreg.data.preprocess import normalise_intensity

    table = LabelTable({name: values for name, values in TISSUES.items()})
    images = (coronal_images() if "coronal" in sets else []) + (
        axial_images() if "axial" in sets else []
    )
    pairs = []
    for name, template, subject in images:
        for direction, (m, f) in (("t2s", (template, subject)), ("s2t", (subject, template))):
            pairs.append(
                Pair(
                    moving=normalise_intensity(m)[0],
                    fixed=normalise_intensity(f)[0],
                    spacing=(SPACING, SPACING),
                    id=f"{name}_{direction}",
                    subject=name,
                    group=name.split("_")[0],
                    moving_labels=kmeans_labels(m).astype(np.int16),
                    fixed_labels=kmeans_labels(f).astype(np.int16),
                    label_table=table,
                )
            )
    return pairs
