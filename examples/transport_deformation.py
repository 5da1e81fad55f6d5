"""Transport a deformation from one subject to another through the latent code.

Two short-axis ED→ES pairs of the built-in cardiac phantom (test split): a source
subject of one group (default DCM: a low ejection fraction) and a target subject of
another (default NOR). The bundled ``builtin:cardiac`` model encodes the source pair's
deformation into its code z, decodes z conditioned on the target's ED image and warps
the target's ED labels with it. The ejection fraction (EF, from the LV blood pool's area)
of that transported motion is printed beside the source's and the target's own
registrations: the code carries the source's kind of motion onto the target's anatomy.

    python examples/transport_deformation.py
    python examples/transport_deformation.py --subjects 60     # a smoke-sized run
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import structreg
from structreg.analysis.transport import transport
from structreg.core.ops import warp
from structreg.data.spec import load_pairs

BLOOD_POOL = 3  # the phantom's (ACDC's) LV blood pool label


def ejection_fraction(ed_labels: torch.Tensor, disp: torch.Tensor) -> float:
    """1 - area(blood pool of the ED labels warped by ``disp``) / area(blood pool at ED).

    ``ed_labels``: ``(1, 1, H, W)``; ``disp``: ``(1, 2, H, W)`` in voxels (pull-back).
    """
    warped = warp(ed_labels, disp, mode="nearest")
    ed = (ed_labels == BLOOD_POOL).sum()
    return float(1 - (warped == BLOOD_POOL).sum() / ed)


def image(array: np.ndarray) -> torch.Tensor:
    """A ``(H, W)`` array as a ``(1, 1, H, W)`` float32 tensor."""
    return torch.as_tensor(array, dtype=torch.float32)[None, None]


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Transport the source pair's code onto the target; returns the three EFs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source-group", default="DCM", help="group of the source subject")
    p.add_argument("--target-group", default="NOR", help="group of the target subject")
    p.add_argument("--subjects", type=int, default=250, help="phantom subjects (the test split)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads")
    args = p.parse_args(argv)
    pairs = load_pairs("phantom:cardiac", split="test", n_subjects=args.subjects)
    source = next(q for q in pairs if q.group == args.source_group)
    target = next(q for q in pairs if q.group == args.target_group)
    network = structreg.load_model("builtin:cardiac", device="cpu").model

    with structreg.thread_limit(args.threads):
        own_source = transport(
            network, image(source.moving), image(source.fixed), image(source.moving)
        )
        own_target = transport(
            network, image(target.moving), image(target.fixed), image(target.moving)
        )
        moved = transport(network, image(source.moving), image(source.fixed), image(target.moving))
    labels = image(target.moving_labels)
    efs = {
        f"source {source.id} ({source.group}), own registration": ejection_fraction(
            image(source.moving_labels), own_source.disp
        ),
        f"target {target.id} ({target.group}), own registration": ejection_fraction(
            labels, own_target.disp
        ),
        "source code decoded on the target": ejection_fraction(labels, moved.disp),
    }
    for what, ef in efs.items():
        print(f"EF {ef:.3f}: {what}")
    return efs


if __name__ == "__main__":
    main()
