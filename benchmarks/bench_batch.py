"""Batch registration at cohort scale: pairs/s and resident memory against the number of pairs.

    python benchmarks/bench_batch.py --pairs 10000

Writes ``--pairs`` small phantom NIfTI pairs (32x32 cardiac slices at 6 mm, a CSV
listing them), trains a 2-step model on the same grid, and runs
``structreg register --data pairs:CSV`` in this process, sampling the resident set
size (VmRSS) after every pair. Prints pairs/s, RSS at 1 %, 10 %, 50 % and 100 % of
the batch, and the growth from 10 % to 100 % (memory should be flat in the number
of pairs).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    """Resident set size of this process (MB), from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_cohort(folder: Path, n: int, distinct: int = 50) -> Path:
    """``n`` rows over ``distinct`` phantom pairs written once (files are re-listed)."""
    import nibabel as nib
    import numpy as np

    from structreg.data.phantoms.cardiac import make_cardiac_pair

    affine = np.diag([6.0, 6.0, 6.0, 1.0])
    names = []
    for k in range(distinct):
        pair = make_cardiac_pair(0, k, size=(32, 32), spacing=(6.0, 6.0))
        for role, data in (("m", pair.moving), ("f", pair.fixed)):
            nib.save(nib.Nifti1Image(data[..., None], affine), str(folder / f"{role}{k}.nii.gz"))
        names.append((f"m{k}.nii.gz", f"f{k}.nii.gz"))
    path = folder / "cohort.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["moving", "fixed", "id"])
        for i in range(n):
            moving, fixed = names[i % distinct]
            writer.writerow([moving, fixed, f"pair{i:05d}"])
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=10_000)
    p.add_argument("--folder", default=None, help="work folder (default: a temporary one)")
    args = p.parse_args()

    import structreg.pipeline.batch as batch
    from structreg.cli import main as structreg

    folder = Path(args.folder or tempfile.mkdtemp(prefix="bench_batch_"))
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = write_cohort(folder, args.pairs)
    run = folder / "run"
    assert (
        structreg(
            [
                "train",
                "--data",
                "phantom:cardiac",
                "--out",
                str(run),
                "--size",
                "32x32",
                "--spacing",
                "6",
                "--subjects",
                "12",
                "--set",
                "train.steps=2",
                "--set",
                "model.latent_dim=8",
                "--set",
                "train.tensorboard=false",
            ]
        )
        == 0
    )

    samples: list[tuple[int, float]] = []
    original = batch._register_one

    def counted(*a, **k):
        row = original(*a, **k)
        samples.append((len(samples) + 1, rss_mb()))
        return row

    batch._register_one = counted
    quiet = open("/dev/null", "w")
    import contextlib

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(quiet):
        code = structreg(
            [
                "register",
                "--model",
                str(run),
                "--data",
                f"pairs:{csv_path}",
                "--out",
                str(folder / "out"),
            ]
        )
    seconds = time.perf_counter() - t0
    assert code == 0, code
    n = len(samples)

    def at(fraction: float) -> float:
        return samples[max(0, int(fraction * n) - 1)][1]

    print(
        f"{n} pairs in {seconds:.1f} s: {n / seconds:.1f} pairs/s (2-D 32x32 slices, "
        f"NIfTI in and out, 7 outputs per pair)"
    )
    print("| pairs done | RSS (MB) |")
    print("|---|---|")
    for fraction in (0.01, 0.1, 0.5, 1.0):
        print(f"| {int(fraction * n)} | {at(fraction):.1f} |")
    print(
        f"RSS growth from 10 % to 100 % of the batch: {at(1.0) - at(0.1):+.1f} MB "
        f"({(at(1.0) - at(0.1)) / max(1, 0.9 * n) * 1e3:.2f} kB per pair)"
    )


if __name__ == "__main__":
    main()
