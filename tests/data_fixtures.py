"""Tiny synthetic data sets written by the data tests: an ACDC-layout folder and NIfTI pairs."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

ACDC_SHAPE = (40, 40, 8)
ACDC_SPACING = (1.5, 1.5, 10.0)
# patient -> (group, ED frame, ES frame, LV centre (voxels), ED / ES blood-pool radius (mm))
ACDC_PATIENTS = {
    "patient001": ("NOR", 1, 10, (22.0, 17.0), 16.0, 10.0),
    "patient002": ("DCM", 1, 8, (18.0, 23.0), 20.0, 17.0),
    "patient003": ("HCM", 2, 12, (21.0, 21.0), 13.0, 7.0),
}


def heart_labels(shape, spacing, centre, bp_radius_mm: float, wall_mm: float) -> np.ndarray:
    """ACDC-like labels ``shape`` (H, W, D): LV blood pool 3, myocardium ring 2, RV 1 beside it.

    The LV shrinks towards the last slices (apex).
    """
    h, w, d = shape
    yy, xx = np.meshgrid(np.arange(h) * spacing[0], np.arange(w) * spacing[1], indexing="ij")
    cy, cx = centre[0] * spacing[0], centre[1] * spacing[1]
    labels = np.zeros(shape, dtype=np.int16)
    for k in range(d):
        taper = 1.0 - 0.5 * k / max(1, d - 1)
        r_bp, r_myo = bp_radius_mm * taper, bp_radius_mm * taper + wall_mm
        r = np.hypot(yy - cy, xx - cx)
        rv = np.hypot(yy - cy, xx - (cx - r_myo - 4.0)) < 0.8 * r_myo
        sl = np.zeros((h, w), dtype=np.int16)
        sl[rv & (r >= r_myo)] = 1
        sl[(r >= r_bp) & (r < r_myo)] = 2
        sl[r < r_bp] = 3
        labels[..., k] = sl
    return labels


def labels_to_image(labels: np.ndarray, seed: int) -> np.ndarray:
    """MR-like intensities (arbitrary scanner units) for a label map, with noise."""
    rng = np.random.default_rng(seed)
    table = np.array([80.0, 600.0, 250.0, 700.0])
    image = table[labels] + rng.normal(0.0, 20.0, labels.shape)
    return image.astype(np.float32)


def save(path: Path, data: np.ndarray, spacing) -> Path:
    affine = np.diag([*spacing, *[1.0] * (4 - len(spacing))])
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def write_acdc(root: Path, patients: dict | None = None) -> Path:
    """Write an ACDC-layout folder (Info.cfg, ED/ES frames and _gt labels) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for seed, (name, (group, ed, es, centre, r_ed, r_es)) in enumerate(
        (patients or ACDC_PATIENTS).items()
    ):
        folder = root / name
        folder.mkdir()
        (folder / "Info.cfg").write_text(
            f"ED: {ed}\nES: {es}\nGroup: {group}\nHeight: 180.0\nNbFrame: 30\nWeight: 80.0\n"
        )
        for frame, radius, wall in ((ed, r_ed, 8.0), (es, r_es, 11.0)):
            labels = heart_labels(ACDC_SHAPE, ACDC_SPACING, centre, radius, wall)
            save(folder / f"{name}_frame{frame:02d}_gt.nii.gz", labels, ACDC_SPACING)
            save(
                folder / f"{name}_frame{frame:02d}.nii.gz",
                labels_to_image(labels, seed * 10 + frame),
                ACDC_SPACING,
            )
    return root


def truncate(path: Path) -> Path:
    """Keep the first half of the bytes of ``path``."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def assert_one_line_error(excinfo, *names: str) -> str:
    """The error message is one line and names every one of ``names``."""
    message = str(excinfo.value)
    assert "\n" not in message, message
    for name in names:
        assert str(name) in message, (name, message)
    return message
