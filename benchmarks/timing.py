"""Shared timing helper of the benchmarks (run them as `python benchmarks/NAME.py`)."""

from __future__ import annotations

import statistics
import time


def median_time(fn, repeats: int, device) -> float:
    """Median wall time (s) of ``fn()`` over ``repeats`` runs after one warm-up,
    synchronising CUDA when ``device`` is a CUDA device (``torch.device`` or str)."""
    import torch

    cuda = str(device).startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
