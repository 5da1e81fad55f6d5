"""Every random-number state of a training run: seeding, capture and restore.

Captured states are tensors and plain containers only, so they travel in a
checkpoint read with ``torch.load(weights_only=True)``; restoring them makes a
resumed run draw exactly the numbers an uninterrupted one would have drawn.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng", "restore_rng", "seed_everything"]


def seed_everything(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """Seed the global RNGs; return (data-order generator, noise generator).

    Also sets the deterministic switches that cost little: cuDNN picks fixed
    algorithms (no benchmarking). On a CPU a run is then bit-identical for the
    same machine, thread count and library versions; on a GPU the backward pass of
    ``grid_sample`` accumulates with atomics, so runs agree only to rounding.
    """
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    noise = torch.Generator().manual_seed(seed + 0x5EED)
    return shuffle, noise


def capture_rng(shuffle: torch.Generator, noise: torch.Generator) -> dict[str, Any]:
    """Every RNG state as tensors and plain containers (``weights_only``-loadable)."""
    np_state: Any = np.random.get_state(legacy=True)
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
        "shuffle": shuffle.get_state(),
        "noise": noise.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], shuffle: torch.Generator, noise: torch.Generator) -> None:
    """Put back the states :func:`capture_rng` returned."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    shuffle.set_state(state["shuffle"])
    noise.set_state(state["noise"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
