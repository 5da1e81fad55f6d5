"""How close are the inter-subject brain phantom's pairs (``phantom:brain-inter``) to real ones?

Prints, for phantom inter-subject pairs and for the real inter-subject pairs available offline,
(a) the distribution (mean, s.d., quartiles) of tissue Dice before registration and (b) the
displacement magnitude (mean |u| in mm inside the fixed brain) that a classical method finds:
dipy's SymmetricDiffeomorphicRegistration (SyN) with CCMetric, level_iters [100, 50, 25];
also the s.d. of log det J of SyN's field (how local the deformation is) and the GM/WM
intensity ratio of each image (tissue contrast).

Pairs (all 2 mm):

* ``phantom``: ``brain_inter_phantom(n, seed)`` at 100 x 100 (central slice). Its true mean
  |disp| is printed next to SyN's.
* ``real axial (normalised)``: the MNI152 2009a template vs a real subject (nipy's
  ``anatomical.nii.gz``, tests/data/real) at MNI z = 8 ... 24 mm, on the subject's 33 x 41 grid.
  The subject was SPM-normalised to MNI space, so these are inter-subject pairs AFTER a
  spatial normalisation (a lower bound of raw inter-subject differences); its field of view is
  a central crop of the brain (no outer cortex).
* ``real coronal (centred)``: dipy's real T1 coronal slice (``dipy/data/files/t1_coronal_slice
  .npy``, taken as 1 mm, block-averaged to 2 mm) vs the MNI coronal slice (y in -30 ... 0 mm)
  most correlated with it, both centred on their brain's bounding box: a raw inter-subject pair
  (no scaling, no rotation removed), the setting the phantom mimics.

Tissue labels: every image of every pair (phantom included) is labelled by the same intensity
rule as ``tests/real_images.real_subject_slice``: brain = intensity > 10 % of the 99th
percentile (holes filled), three 1-D k-means classes inside it (CSF, GM, WM); the phantom's
true labels (CSF = CSF + ventricles) are printed as an extra row.

    .venv/bin/python benchmarks/brain_inter_realism.py [--pairs 24] [--seed 0]

Measured (40 phantom pairs, seed 0; 90 s on 2 cores): Dice CSF / GM / WM before registration
0.20 / 0.51 / 0.65 (phantom) vs 0.22 / 0.54 / 0.69 (real coronal) and 0.59 / 0.40 / 0.67
(real axial, normalised); SyN mean |u| 6.4 ± 1.7 mm vs 5.3 and 2.0 mm; s.d. log det J
0.30 vs 0.41 and 0.33; GM/WM intensity 0.74 ± 0.03 vs 0.77 and 0.79.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_brains import centred, dipy_coronal, kmeans_labels, mni_coronal
from real_images import ANATOMICAL, _sample_mni

TISSUES = {"CSF": (1,), "GM": (2,), "WM": (3,)}
SPACING = 2.0
AXIAL_Z_MM = (8.0, 12.0, 16.0, 20.0, 24.0)
CORONAL_Y_MM = np.arange(-30.0, 1.0, 2.0)


# --------------------------------------------------------------------------- labels, metrics


def dice(a: np.ndarray, b: np.ndarray, values: tuple[int, ...]) -> float:
    a, b = np.isin(a, values), np.isin(b, values)
    total = a.sum() + b.sum()
    return float(2.0 * (a & b).sum() / total) if total else float("nan")


def syn_field_stats(moving: np.ndarray, fixed: np.ndarray, inside: np.ndarray) -> tuple:
    """(mean |u| in mm, s.d. of log det J) inside ``inside`` of dipy SyN (CC) registering
    moving onto fixed."""
    from dipy.align.imwarp import SymmetricDiffeomorphicRegistration
    from dipy.align.metrics import CCMetric

    def norm(img: np.ndarray) -> np.ndarray:
        img = np.asarray(img, dtype=np.float64)
        return img / max(np.percentile(img, 99.5), 1e-12)

    # small fields of view are zero-padded so that the coarsest level (1/4) fits CC's window
    pad = [(m, m) for m in (max(0, (72 - n + 1) // 2) for n in fixed.shape)]
    fixed, moving = np.pad(norm(fixed), pad), np.pad(norm(moving), pad)
    inside = np.pad(inside, pad)
    logging.getLogger("dipy").setLevel(logging.WARNING)
    sdr = SymmetricDiffeomorphicRegistration(CCMetric(2), level_iters=[100, 50, 25])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mapping = sdr.optimize(fixed, moving)
    field = np.asarray(mapping.get_forward_field())  # (H, W, 2) voxels (identity grid2world)
    grads = [np.gradient(field[..., c]) for c in range(2)]  # d u_c / d x_a
    det = (1 + grads[0][0]) * (1 + grads[1][1]) - grads[0][1] * grads[1][0]
    log_det = np.log(np.clip(det, 1e-3, None))[inside]
    return float(np.linalg.norm(field, axis=-1)[inside].mean() * SPACING), float(log_det.std())


# --------------------------------------------------------------------------- pairs


def phantom_pairs(n: int, seed: int) -> list[dict]:
    from structreg.data.phantoms.brain_inter import brain_inter_phantom

    out = []
    for p in brain_inter_phantom(max(n, 2), seed=seed)[:n]:
        true = p.moving_labels.copy(), p.fixed_labels.copy()
        for lab in true:
            lab[lab == 4] = 1  # ventricles are CSF
        inside = p.fixed_labels > 0
        out.append(
            {
                "moving": p.moving,
                "fixed": p.fixed,
                "true_labels": true,
                "true_mm": float(np.linalg.norm(p.disp, axis=0)[inside].mean() * SPACING),
            }
        )
    return out


def real_axial_pairs() -> list[dict]:
    """MNI template (moving) vs the nipy subject (fixed) on the subject's grid."""
    import nibabel as nib

    img = nib.load(ANATOMICAL)
    vol = np.asarray(img.dataobj, dtype=np.float64)
    out = []
    for z in AXIAL_Z_MM:
        k = int(round((np.linalg.inv(img.affine) @ [0.0, 0.0, z, 1.0])[2]))
        affine = img.affine @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, k], [0, 0, 0, 1.0]])
        mni = _sample_mni(affine, (*vol.shape[:2], 1), fwhm_mm=SPACING)
        out.append({"moving": mni["t1"][..., 0], "fixed": vol[:, :, k], "z_mm": z})
    return out


def real_coronal_pair() -> dict:
    """dipy's T1 coronal slice (fixed) vs the best-matching MNI coronal slice (moving)."""
    shape = (110, 110)
    fixed = centred(dipy_coronal(), shape)
    best = None
    for y in CORONAL_Y_MM:
        moving = centred(mni_coronal(y), shape)
        score = np.corrcoef(moving.ravel(), fixed.ravel())[0, 1]
        if best is None or score > best[0]:
            best = (score, y, moving)
    assert best is not None
    return {"moving": best[2], "fixed": fixed, "y_mm": float(best[1]), "ncc": float(best[0])}


# --------------------------------------------------------------------------- report


def summarise(values: list[float]) -> str:
    v = np.asarray(values, dtype=np.float64)
    q1, q2, q3 = np.percentile(v, [25, 50, 75])
    sd = v.std(ddof=1) if v.size > 1 else 0.0
    return f"{v.mean():6.3f} ± {sd:5.3f}  [{q1:5.3f} {q2:5.3f} {q3:5.3f}]"


def measure(pairs: list[dict]) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {}
    for p in pairs:
        lm, lf = kmeans_labels(p["moving"]), kmeans_labels(p["fixed"])
        for image, labels in ((p["moving"], lm), (p["fixed"], lf)):
            gm, wm = (float(np.mean(image[labels == k])) for k in (2, 3))
            rows.setdefault("GM/WM intensity (per image)", []).append(gm / wm)
        for name, values in TISSUES.items():
            rows.setdefault(f"dice {name}", []).append(dice(lm, lf, values))
            if "true_labels" in p:
                d = dice(*p["true_labels"], values)
                rows.setdefault(f"dice {name} (true labels)", []).append(d)
        magnitude, log_jac_sd = syn_field_stats(p["moving"], p["fixed"], lf > 0)
        rows.setdefault("SyN mean |u| mm", []).append(magnitude)
        rows.setdefault("SyN sd log det J", []).append(log_jac_sd)
        if "true_mm" in p:
            rows.setdefault("true mean |disp| mm", []).append(p["true_mm"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=24, help="phantom pairs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    coronal = real_coronal_pair()
    sets = {
        f"phantom brain-inter (n={args.pairs})": phantom_pairs(args.pairs, args.seed),
        f"real axial, MNI-normalised (n={len(AXIAL_Z_MM)})": real_axial_pairs(),
        f"real coronal, centred (n=1, MNI y={coronal['y_mm']:+.0f} mm)": [coronal],
    }
    print("mean ± sd  [q1 median q3]; Dice before registration; |u| from dipy SyN (CC)\n")
    for title, pairs in sets.items():
        print(title)
        for key, values in measure(pairs).items():
            print(f"  {key:28s} {summarise(values)}")
        print()
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
