"""Time and peak memory to register one 3-D volume, and training memory of the 3-D CVAE.

One run, one process, on the same machine: seconds per volume pair of ours (the
``brain3d`` network, one forward pass: encode both orders of the pair, decode both
halves of the antisymmetric velocity, exp(±v) by scaling and squaring, warp, det J),
VoxelMorph-2 3-D (the voxelmorph package's U-Net, forward and warp) and ANTs SyN
(antspyx, ``SyNOnly`` with CC; when installed) on inter-subject brain phantom volumes
at 2 mm (80x96x80) and, for the learned methods, at 1 mm (160x192x224; a pair made by
resampling the 2 mm pair). Ours and VoxelMorph-2 are timed interleaved (median of the
repeats). Untrained networks: the time of a forward pass does not depend on the
weights. The peak memory of one registration is measured in a fresh process per method
and grid, after a warm-up registration: the growth of the peak resident set over the
resident set before it (Linux ``/proc/self/clear_refs``, ``VmHWM``); on CUDA
``torch.cuda.max_memory_allocated``. Then the peak resident memory and time of one
training step of ours at the bundled batch on the bundled grid, and at 2 mm.

    .venv/bin/python benchmarks/bench_3d.py [--repeats 3] [--ants-1mm | --no-ants]
        [--no-train] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings

import torch
from scipy import ndimage

from timing import round_times

GRIDS = {"2 mm": ((80, 96, 80), 2.0), "1 mm": ((160, 192, 224), 1.0)}
GOAL_1MM_GPU_S = 0.2
"""The GPU goal: seconds per 1 mm volume (160x192x224) of ours."""


def volume_pair(grid: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(moving, fixed)``, each ``(1, 1, *S)``, of the phantom pair on ``grid``
    (``"2 mm"`` or ``"1 mm"``, the latter resampled from the 2 mm pair)."""
    from structreg.data.spec import load_pairs

    size2, spacing2 = GRIDS["2 mm"]
    p = load_pairs(
        "phantom:brain-inter", split="all", size=size2, spacing=(spacing2,), n_subjects=2
    )[0]
    m, f = (torch.from_numpy(a)[None, None].float() for a in (p.moving, p.fixed))
    if grid == "2 mm":
        return m, f
    size = GRIDS[grid][0]
    zoom = [n / k for n, k in zip(size, size2, strict=True)]
    return tuple(  # type: ignore[return-value]
        torch.from_numpy(ndimage.zoom(t[0, 0].numpy(), zoom, order=1))[None, None] for t in (m, f)
    )


EXP2 = "ours, exp_downsize=2"
"""Ours with ``exp(v)`` squared on a 2x coarser grid (as VoxelMorph-2 integrates)."""


def learned_registrars(size: tuple[int, ...], device: torch.device) -> dict:
    """``{"ours": CVAERegistrar, EXP2: the same with exp_downsize=2, "VoxelMorph-2":
    VoxelMorphRegistrar}`` on ``size`` (the ``brain3d`` network at that size; untrained,
    eval mode)."""
    from structreg.configs import resolve_config
    from structreg.methods.ours import CVAERegistrar
    from structreg.methods.voxelmorph import VoxelMorphRegistrar
    from structreg.models.cvae import CVAERegistration
    from structreg.models.voxelmorph import VoxelMorph2, VoxelMorphConfig
    from structreg.training.config import load_config

    base = load_config(resolve_config("brain3d"))
    config = base.model.__class__(**{**base.model.to_dict(), "image_size": list(size)})
    torch.manual_seed(0)
    net = CVAERegistration(config).to(device).eval()
    return {
        "ours": CVAERegistrar(net),
        EXP2: CVAERegistrar(net, exp_downsize=2),
        "VoxelMorph-2": VoxelMorphRegistrar(
            VoxelMorph2(VoxelMorphConfig(ndim=3)).to(device).eval()
        ),
    }


def time_learned(grid: str, device: torch.device, repeats: int) -> dict[str, float]:
    """Median seconds per volume pair of ours and VoxelMorph-2 on ``grid``, interleaved."""
    return {k: statistics.median(v) for k, v in time_learned_rounds(grid, device, repeats).items()}


def time_learned_rounds(grid: str, device: torch.device, repeats: int) -> dict[str, list[float]]:
    """Seconds per volume pair of ours and VoxelMorph-2 on ``grid`` in each interleaved
    round (:func:`timing.round_times`)."""
    m, f = (t.to(device) for t in volume_pair(grid))
    methods = learned_registrars(tuple(m.shape[2:]), device)
    fns = {name: (lambda r=r: r.register(m, f)) for name, r in methods.items()}
    return round_times(fns, repeats, device)


HEAP_REUSE = {"MALLOC_MMAP_THRESHOLD_": str(2**34), "MALLOC_TRIM_THRESHOLD_": str(2**34)}
"""glibc settings (environment, read at process start) that keep freed memory for reuse:
a large tensor then comes from the heap instead of fresh pages the kernel must zero (by
default glibc maps every block over 32 MB anew and unmaps it when freed)."""


def time_learned_in_child(
    grid: str, device: str, repeats: int, env: dict[str, str]
) -> dict[str, list[float]]:
    """:func:`time_learned_rounds` in a fresh process whose environment adds ``env``
    (e.g. :data:`HEAP_REUSE`), under structreg's default thread setting."""
    cmd = [sys.executable, __file__, "--times-of", grid, "--repeats", str(repeats)]
    cmd += ["--device", device]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr.strip()}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _times_child(grid: str, device: torch.device, repeats: int) -> None:
    """Print :func:`time_learned_rounds`' result as JSON (the child of
    :func:`time_learned_in_child`)."""
    import structreg

    with structreg.thread_limit():
        print(json.dumps(time_learned_rounds(grid, device, repeats)))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_memory_mb(method: str, grid: str, device: str) -> float:
    """Peak memory (MB) one registration adds, measured in a fresh process: the growth
    of its peak resident set (CPU) or ``max_memory_allocated`` (CUDA)."""
    cmd = [sys.executable, __file__, "--peak-of", method, "--grid", grid, "--device", device]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"])


def _status_mb(key: str) -> float:
    """``VmRSS`` / ``VmHWM`` (peak) of this process from ``/proc/self/status``, in MB."""
    with open("/proc/self/status") as status:
        for row in status:
            if row.startswith(key + ":"):
                return float(row.split()[1]) / 1024.0
    return float("nan")


def _peak_child(method: str, grid: str, device: torch.device) -> None:
    """Print the memory one registration adds to the process (after a warm-up one)."""
    m, f = (t.to(device) for t in volume_pair(grid))
    registrar = learned_registrars(tuple(m.shape[2:]), device)[method]
    registrar.register(m, f)  # warm-up: lazily built copies and pools exist afterwards
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:  # reset the peak resident set to the current one (Linux: clear_refs 5)
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        base = _status_mb("VmRSS")
    registrar.register(m, f)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = _status_mb("VmHWM") - base
    print(json.dumps({"peak_mb": peak}))


def _ants_seconds(m: torch.Tensor, f: torch.Tensor) -> float | None:
    try:
        from structreg.methods.ants_syn import AntsSyN

        ants = AntsSyN()
        t0 = time.perf_counter()
        ants.register(m, f)
        return time.perf_counter() - t0
    except ImportError as exc:
        print(f"ANTs SyN not timed: {exc}")
        return None


def _train_steps(device: torch.device) -> None:
    """One training step of ours at the bundled grid and batch, and at 2 mm."""
    from structreg.configs import resolve_config
    from structreg.models.cvae import CVAERegistration
    from structreg.training.config import load_config
    from structreg.training.tasks import task_for

    base = load_config(resolve_config("brain3d"))
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ants-1mm", action="store_true", help="also time ANTs SyN at 1 mm")
    p.add_argument("--no-ants", action="store_true", help="do not time ANTs SyN")
    p.add_argument("--no-train", action="store_true", help="leave out the training steps")
    p.add_argument("--peak-of", help=argparse.SUPPRESS)
    p.add_argument("--grid", help=argparse.SUPPRESS)
    p.add_argument("--times-of", help=argparse.SUPPRESS)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    device = torch.device(args.device)
    if args.peak_of:
        _peak_child(args.peak_of, args.grid, device)
        return
    if args.times_of:
        _times_child(args.times_of, device, args.repeats)
        return
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device {device}, torch threads {torch.get_num_threads()}, load average {load:.1f}")
    print("\n| grid | method | s per volume | peak memory (MB) |\n|---|---|---|---|")
    for grid, (size, _) in GRIDS.items():
        name = f"{grid}, {'x'.join(map(str, size))}"
        times = time_learned(grid, device, args.repeats)
        peaks = {k: peak_memory_mb(k, grid, args.device) for k in times}
        want_ants = not args.no_ants and (grid == "2 mm" or args.ants_1mm)
        ants = _ants_seconds(*volume_pair(grid)) if want_ants else None
        for method, seconds in times.items():
            print(f"| {name} | {method} | {seconds:.3f} | {peaks[method]:.0f} |")
        if ants is not None:
            print(f"| {name} | ANTs SyN (CC) | {ants:.3f} | |")
        print(f"| {name} | ours / VoxelMorph-2 | {times['ours'] / times['VoxelMorph-2']:.2f}x | |")
        print(f"| {name} | {EXP2} / VoxelMorph-2 | {times[EXP2] / times['VoxelMorph-2']:.2f}x | |")
        if grid == "1 mm" and device.type == "cuda":
            ok = "met" if times["ours"] <= GOAL_1MM_GPU_S else "NOT met"
            print(f"goal ours <= {GOAL_1MM_GPU_S} s per 1 mm volume: {ok} ({times['ours']:.3f} s)")
    if not args.no_train:
        _train_steps(device)


if __name__ == "__main__":
    main()
