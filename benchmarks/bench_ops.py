"""Speed of warp and exponentiation (N = 4) against voxelmorph and MONAI, measured in one run.

Prints the median time of each operation for each implementation and our ratio to the
fastest peer (< 1 means faster). Runs on CPU, and on CUDA too when available.

    .venv/bin/python benchmarks/bench_ops.py [--repeats 20] [--device cpu|cuda|all]
"""

from __future__ import annotations

import argparse
import warnings
from functools import partial

import torch

from structreg.core.ops import exponentiate, warp
from timing import compare_times

CASES = [("2-D batch", (50, 2, 100, 100)), ("3-D volume", (1, 3, 128, 128, 128))]


def _peers(ndim: int):
    peers = {}
    try:
        import voxelmorph as vxm

        peers["voxelmorph"] = (
            lambda img, d: vxm.nn.functional.spatial_transform(img, d),
            lambda v: vxm.nn.functional.integrate_vec(v, steps=4),
        )
    except ImportError:
        print("voxelmorph not installed: skipped")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from monai.networks.blocks import DVF2DDF, Warp
        w, e = Warp(mode="bilinear", padding_mode="zeros"), DVF2DDF(num_steps=4)
        peers["MONAI"] = (lambda img, d: w(img, d), lambda v: e(v))
    except ImportError:
        print("MONAI not installed: skipped")
    return peers


def run(device: str, repeats: int) -> list[tuple]:
    rows = []
    warnings.simplefilter("ignore")
    for name, shape in CASES:
        ndim = len(shape) - 2
        g = torch.Generator().manual_seed(0)
        v = (torch.randn(*shape, generator=g) * 2).to(device)
        img = torch.rand(shape[0], 1, *shape[2:], generator=g).to(device)
        fns = {
            "warp": {"structreg": partial(warp, img, v)},
            "exponentiate N=4": {"structreg": partial(exponentiate, v, 4)},
        }
        for peer, (pw, pe) in _peers(ndim).items():
            fns["warp"][peer] = partial(pw, img, v)
            fns["exponentiate N=4"][peer] = partial(pe, v)
        # implementations of one operation are timed round-robin (see timing.compare_times)
        results = {op: compare_times(impls, repeats, device) for op, impls in fns.items()}
        for op, times in results.items():
            peers = {k: t for k, t in times.items() if k != "structreg"}
            best = min(peers.values()) if peers else float("nan")
            rows.append((device, f"{name} {tuple(shape)}", op, times, times["structreg"] / best))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    args = p.parse_args()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, devices {devices}")
    print(
        "| device | input | op | structreg (ms) | voxelmorph (ms) | MONAI (ms) "
        "| ratio to fastest peer |"
    )
    print("|---|---|---|---|---|---|---|")
    for device in devices:
        for dev, case, op, times, ratio in run(device, args.repeats):

            def fmt(k, times=times):
                return f"{1e3 * times[k]:.1f}" if k in times else "n/a"

            print(
                f"| {dev} | {case} | {op} | {fmt('structreg')} | {fmt('voxelmorph')} | "
                f"{fmt('MONAI')} | {ratio:.2f} |"
            )


if __name__ == "__main__":
    main()
