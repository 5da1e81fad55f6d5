"""Shared timing helper of the benchmarks (run them as `python benchmarks/NAME.py`)."""

from __future__ import annotations

import statistics
import time


def _sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def compare_times(fns: dict, repeats: int, device) -> dict:
    """Median wall time (s) of each callable in ``fns``, measured round-robin
    (:func:`round_times`). Returns ``{name: median seconds}``."""
    return {name: statistics.median(ts) for name, ts in round_times(fns, repeats, device).items()}


def round_times(fns: dict, repeats: int, device) -> dict:
    """Wall time (s) of each callable in ``fns`` in each of ``repeats`` rounds.

    Every callable is warmed up once, then the callables are run in turn,
    ``repeats`` rounds, so a drift of the machine's speed during the run (other
    processes, CPU frequency) affects every implementation alike instead of
    whichever happened to be measured last; the ratio of two callables within one
    round is the least affected. Returns ``{name: [seconds of round 1, ...]}``.
    """
    for fn in fns.values():
        fn()
    _sync(device)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return times
