"""Training throughput (pairs/s) and peak memory: in-memory vs streamed data, float32 vs
bf16, 1 vs K processes, in 2-D and 3-D, next to VoxelMorph-2.

Every configuration is one ``structreg train`` run in its own process (so its peak
resident memory is its own), on the same machine in one run of this script:

* 2-D: the bundled ``cardiac`` config (100x100, d = 144) at its batch (50) on the
  cardiac phantom; 3-D: the bundled ``brain3d`` config (24x28x24 at 6 mm) at its
  batch (8) on the inter-subject brain phantom volumes;
* ``memory``: pairs held in one tensor (the default); ``streamed``: the same pairs
  written once by ``structreg data cache`` and read by a DataLoader with its default 1 worker;
* ``bf16``: ``train.precision=bfloat16`` (the networks under autocast);
* ``K proc``: ``structreg train --nproc K`` (torchrun, DDP; gloo on CPUs, one
  process per GPU), per-process batch = batch / K so the global batch is the same;
* VoxelMorph-2: ``--method voxelmorph`` (the voxelmorph package's U-Net and its
  NCC + smoothness loss) on the same pairs and batch.

Throughput = global batch / median step time over the steps after ``--warmup``
(``step_time_s`` of ``train_log.csv``, rank 0's under DDP); peak memory = the
largest resident set of the run's processes (``ru_maxrss`` of the children). The
ratios are against float32 in-memory one-process training of the same
dimension. The GPU targets (``--device cuda``): the cardiac config's 20,000 steps
at batch 50 in <= 15 minutes, and bf16 >= 2x the float32 throughput of a 3-D step.

    .venv/bin/python benchmarks/bench_train.py [--steps 12] [--nproc 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CONFIGS = {
    2: {"config": "cardiac", "data": "phantom:cardiac", "grid": ["--size", "100x100"], "n": 100},
    3: {
        "config": "brain3d",
        "data": "phantom:brain-inter",
        "grid": ["--size", "24x28x24", "--spacing", "6"],
        "n": 40,
    },
}


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


_PEAK = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:]).returncode\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


def _run(cmd: list[str], env: dict[str, str], peak_file: Path) -> float:
    """Run ``cmd`` under a fresh parent process; returns the peak RSS (MB) of the
    largest process it started (``ru_maxrss`` of that parent's children)."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, str(peak_file), *cmd], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return int(peak_file.read_text()) / 1024.0


def _step_times(run: Path, warmup: int) -> list[float]:
    with open(run / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    # validation steps carry the validation's time too: leave them out
    return [
        float(r["step_time_s"])
        for r in rows[warmup:]
        if r["step_time_s"] and not r.get("val_dice") and not r.get("val_loss")
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=12, help="steps per configuration")
    p.add_argument("--warmup", type=int, default=2, help="first steps left out of the timing")
    p.add_argument("--nproc", type=int, default=2, help="K of the multi-process rows")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dims", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    args = p.parse_args()
    exe = [sys.executable, "-m", "structreg"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    threads = os.cpu_count() or 1
    print(
        f"# bench_train: {cpu_name()}, {threads} CPU threads, torch {torch.__version__}, "
        f"device {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
    )
    print(f"# {args.steps} steps per row, median step time after {args.warmup}")
    print()
    print("| dims | method | data | precision | processes | global batch | s/step | pairs/s "
          "| ratio | peak RSS (MB) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for dims in args.dims:
            c = CONFIGS[dims]
            cache = root / f"cache{dims}"
            subprocess.run(
                [
                    *exe,
                    "data",
                    "cache",
                    "--data",
                    c["data"],
                    *c["grid"],
                    "--subjects",
                    str(c["n"]),
                    "--out",
                    str(cache),
                ],  # fmt: skip
                env=env,
                check=True,
                capture_output=True,
            )
            from structreg.configs import resolve_config
            from structreg.training.config import load_config

            batch = load_config(resolve_config(c["config"])).train.batch_size
            rows = [
                ("ours", "memory", "float32", 1),
                ("ours", "streamed", "float32", 1),
                ("ours", "memory", "bfloat16", 1),
                ("ours", "memory", "float32", args.nproc),
                ("voxelmorph", "memory", "float32", 1),
            ]
            base = None
            for method, data, precision, nproc in rows:
                out = root / f"{dims}-{method}-{data}-{precision}-{nproc}"
                spec = f"cache:{cache}"
                cmd = [*exe, "train", "--config", c["config"], "--data", spec, "--out", str(out),
                       "--method", method, "--device", args.device,
                       "--set", f"train.steps={args.steps}", "--set", "train.val_every=0",
                       "--set", f"train.checkpoint_every={args.steps}",
                       "--set", "train.tensorboard=false", "--set", "train.patience=0",
                       "--set", f"train.precision={precision}",
                       "--set", f"train.batch_size={max(1, batch // nproc)}"]  # fmt: skip
                if data == "memory":  # the same pairs, loaded whole
                    cmd += ["--in-memory"]
                if nproc > 1:
                    cmd += ["--nproc", str(nproc)]
                t0 = time.perf_counter()
                rss = _run(cmd, env, root / "peak.txt")
                wall = time.perf_counter() - t0
                times = _step_times(out, args.warmup)
                step = statistics.median(times)
                global_batch = max(1, batch // nproc) * nproc
                rate = global_batch / step
                if base is None:
                    base = rate
                print(
                    f"| {dims}-D | {method} | {data} | {precision} | {nproc} | {global_batch} | "
                    f"{step:.3f} | {rate:.1f} | {rate / base:.2f} | {rss:.0f} |",
                    flush=True,
                )
                if dims == 2 and method == "ours" and data == "memory" and nproc == 1:
                    print(
                        f"<!-- {precision}: 20,000 steps at batch {batch} would take "
                        f"{20000 * step / 60:.1f} min (run wall {wall:.0f} s) -->",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
