"""Time to register one 3-D volume, and training memory of the 3-D CVAE.

One run, one process, on the same machine: seconds per volume pair of ours (the
``brain3d`` network, one forward pass: encode, decode, exp(v) by scaling and squaring,
warp, det J), VoxelMorph-2 3-D (the voxelmorph package's U-Net, forward and warp) and
ANTs SyN (antspyx, ``SyNOnly`` with CC; when installed) on inter-subject brain phantom
volumes at 2 mm (80x96x80) and, for the learned methods, at 1 mm (160x192x224; a pair
made by resampling the 2 mm pair). Untrained networks: the time of a forward pass does
not depend on the weights. Then the peak resident memory and time of one training step
of ours at the bundled batch on the bundled grid, and at 2 mm.

    .venv/bin/python benchmarks/bench_3d.py [--repeats 3] [--ants-1mm] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import torch
from scipy import ndimage

from timing import compare_times


def _pair(size: tuple[int, ...], spacing: float) -> tuple[torch.Tensor, torch.Tensor]:
    from structreg.data.spec import load_pairs

    p = load_pairs("phantom:brain-inter", split="all", size=size, spacing=(spacing,), n_subjects=2)
    return torch.from_numpy(p[0].moving)[None, None], torch.from_numpy(p[0].fixed)[None, None]


def _upsampled(t: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    zoom = [n / m for n, m in zip(size, t.shape[2:], strict=True)]
    return torch.from_numpy(ndimage.zoom(t[0, 0].numpy(), zoom, order=1))[None, None]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    from structreg.configs import resolve_config
    from structreg.methods.ours import CVAERegistrar
    from structreg.methods.voxelmorph import VoxelMorphRegistrar
    from structreg.models.cvae import CVAERegistration
    from structreg.models.voxelmorph import VoxelMorph2, VoxelMorphConfig
    from structreg.training.config import load_config
    from structreg.training.tasks import task_for

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ants-1mm", action="store_true", help="also time ANTs SyN at 1 mm")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    device = torch.device(args.device)
    base = load_config(resolve_config("brain3d"))
    print(f"device {device}, torch threads {torch.get_num_threads()}")

    m2, f2 = _pair((80, 96, 80), 2.0)
    grids = {"2 mm, 80x96x80": (m2, f2)}
    one = (160, 192, 224)
    grids["1 mm, 160x192x224"] = (_upsampled(m2, one), _upsampled(f2, one))
    print("\n| grid | method | s per volume |\n|---|---|---|")
    for name, (m, f) in grids.items():
        size = tuple(m.shape[2:])
        config = base.model.__class__(**{**base.model.to_dict(), "image_size": list(size)})
        torch.manual_seed(0)
        ours = CVAERegistrar(CVAERegistration(config).to(device).eval())
        vm = VoxelMorphRegistrar(VoxelMorph2(VoxelMorphConfig(ndim=3)).to(device).eval())
        fns = {
            "ours (one pass)": lambda o=ours, m=m, f=f: o.register(m.to(device), f.to(device)),
            "VoxelMorph-2": lambda v=vm, m=m, f=f: v.register(m.to(device), f.to(device)),
        }
        times = compare_times(fns, args.repeats, device)
        if size == (80, 96, 80) or args.ants_1mm:
            try:
                from structreg.methods.ants_syn import AntsSyN

                ants = AntsSyN()
                t0 = time.perf_counter()
                ants.register(m, f)
                times["ANTs SyN (CC)"] = time.perf_counter() - t0
            except ImportError as exc:
                print(f"ANTs SyN not timed: {exc}")
        for method, seconds in times.items():
            print(f"| {name} | {method} | {seconds:.3f} |")
        if "ANTs SyN (CC)" in times:
            ratio = times["ANTs SyN (CC)"] / times["ours (one pass)"]
            print(f"| {name} | ANTs SyN / ours | {ratio:.0f}x |")

    lcc = "symmetric" if base.train.lcc_symmetric else "one-sided"
    print(f"\nOne training step of ours (forward, {lcc} LCC, KL, mask penalty, backward, Adam):")
    print("\n| grid | batch | parameters | s per step | peak RSS (MB) |\n|---|---|---|---|---|")
    task = task_for("ours")
    for size, batch in ((tuple(base.model.image_size), base.train.batch_size), ((80, 96, 80), 2)):
        config = base.model.__class__(**{**base.model.to_dict(), "image_size": list(size)})
        model = CVAERegistration(config).to(device)
        opt = task.optimizer(model, base.train)
        g = torch.Generator().manual_seed(0)
        data = {
            "moving": torch.rand(batch, 1, *size, device=device),
            "fixed": torch.rand(batch, 1, *size, device=device),
            "mask": torch.ones(batch, 1, *size, device=device),
        }
        data = {k: data[k] for k in task.batch_keys(base.train)}
        task.train_step(model, opt, data, base.train, g)  # warm-up
        t0 = time.perf_counter()
        task.train_step(model, opt, data, base.train, g)
        step = time.perf_counter() - t0
        grid = "x".join(map(str, size))
        print(f"| {grid} | {batch} | {model.num_parameters():,} | {step:.2f} | {_rss_mb():.0f} |")
    print("\n(peak RSS is the process's maximum so far: each row includes the rows before it)")


if __name__ == "__main__":
    main()
