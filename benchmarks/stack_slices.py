"""2-D inter-subject phantom pairs written as volumes of identical slices (a 3-D check).

Each pair of ``phantom:brain-inter`` (``--size``, ``--spacing`` in-plane) is repeated
``--depth`` times along a third axis and written as NIfTI volumes with a pairs CSV, so
that a 3-D model can be trained on exactly the content a 2-D model learns from (the
true motion is in-plane and the same in every slice):

    .venv/bin/python benchmarks/stack_slices.py --out /tmp/stk --subjects 400
    .venv/bin/structreg train --data pairs:/tmp/stk/pairs.csv --size 28x28x16 --spacing 6 \\
        --config brain-inter --out runs/stk3 --set train.steps=300 --set train.val_every=50 \\
        --set train.batch_size=8 --set train.mask_weight=0 --set model.latent_dim=32 \\
        --set "model.enc_channels=[8, 16, 16, 4]" --set "model.dec_channels=[16, 16, 16, 16]" \\
        --set model.velocity_smoothing=3.0
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import nibabel as nib
import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--subjects", type=int, default=400)
    p.add_argument("--size", type=int, default=28, help="in-plane size (square)")
    p.add_argument("--spacing", type=float, default=6.0)
    p.add_argument("--depth", type=int, default=16)
    args = p.parse_args()

    from structreg.data.spec import load_pairs

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = load_pairs(
        "phantom:brain-inter",
        split="all",
        n_subjects=args.subjects,
        size=(args.size, args.size),
        spacing=(args.spacing, args.spacing),
    )
    affine = np.diag([args.spacing] * 3 + [1.0])
    fields = ["id", "moving", "fixed", "moving_labels", "fixed_labels"]
    with open(out / "pairs.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for pair in pairs:
            row = {"id": pair.id}
            for key in fields[1:]:
                data = np.repeat(getattr(pair, key)[:, :, None], args.depth, axis=2)
                dtype = np.int16 if "labels" in key else np.float32
                path = out / f"{pair.id}_{key}.nii.gz"
                nib.save(nib.Nifti1Image(data.astype(dtype), affine), str(path))
                row[key] = path.name
            writer.writerow(row)
    print(f"wrote {len(pairs)} pairs to {out / 'pairs.csv'}")


if __name__ == "__main__":
    main()
