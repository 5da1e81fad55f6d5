"""Thread count and speed: one-pass registration and refinement of a 2-D pair with
``builtin:brain`` at each thread count, interleaved, median of repeats, printed as
ratios against structreg's default thread count (``structreg.thread_limit()`` with
nothing given: half the cores); ``0`` is the libraries' own setting (one thread per
core, ``STRUCTREG_THREADS=0``). Run it on an idle machine and beside other work
(``--busy K`` starts K processes that keep a core busy each for the run)::

    .venv/bin/python benchmarks/threads.py [--busy 2] [--repeats 7]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import time

import numpy as np
import torch

import structreg
from structreg.core.threads import ENV
from structreg.data.spec import load_pairs


def _spin() -> None:
    while True:
        sum(i * i for i in range(10_000))


def _time(registrar, moving, fixed, threads: int | None) -> float:
    """Seconds of one registration with ``threads`` (None: the default; 0: the libraries')."""
    before = os.environ.get(ENV)
    if threads == 0:
        os.environ[ENV] = "0"
    try:
        with structreg.thread_limit(threads or None):
            t0 = time.perf_counter()
            structreg.register(moving, fixed, model=registrar)
            return time.perf_counter() - t0
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=0, help="competing busy processes")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    pair = load_pairs("phantom:brain-inter", split="test", n_subjects=40)[0]
    moving, fixed = pair.moving.astype(np.float64), pair.fixed.astype(np.float64)
    cores = os.cpu_count() or 1
    counts = [None, 0, *range(1, cores + 1)]
    busy = [mp.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for p in busy:
        p.start()
    try:
        for refine in (0, 20):
            registrar = structreg.load_model("builtin:brain", device="cpu", refine=refine)
            _time(registrar, moving, fixed, 1)  # warm-up
            times: dict[int | None, list[float]] = {c: [] for c in counts}
            for _ in range(args.repeats):
                for c in counts:
                    times[c].append(_time(registrar, moving, fixed, c))
            base = statistics.median(times[None])
            what = "one pass" if not refine else f"refined {refine} steps"
            for c in counts:
                med = statistics.median(times[c])
                name = {None: "default", 0: "libraries'"}.get(c, f"{c} thread(s)")
                print(f"{what:18s} {name:12s} {med * 1e3:8.1f} ms  x{med / base:.2f} of default")
    finally:
        for p in busy:
            p.terminate()
    print(
        f"machine: {platform.processor() or platform.machine()}, {cores} cores, torch "
        f"{torch.__version__}, busy processes: {args.busy}, median of {args.repeats}"
    )


if __name__ == "__main__":
    main()
