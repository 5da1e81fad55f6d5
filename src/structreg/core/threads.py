"""How many CPU threads structreg computes with.

PyTorch's intra-op pool and the BLAS/OpenMP pools NumPy and SciPy use
(``threadpoolctl``) each start one thread per core by default. Beside other work -
another program, several structreg processes, ``torchrun`` on a CPU machine - that
oversubscribes the cores: threads wait for each other at every parallel region and a
registration can run many times slower than on one thread. The thread count of a
command is:

1. the number given (``--threads N``, :func:`thread_limit`), else
2. the environment variable ``STRUCTREG_THREADS`` (``0``: the libraries' own
   defaults, one thread per core, left as they are), else
3. :func:`default_threads`: half the cores this process may run on (at least one,
   at most :data:`MAX_DEFAULT_THREADS`; a ``1/K`` share under ``torchrun`` with K
   processes on the machine), so that one other busy program or a second structreg
   process still finds a core of its own (measured in
   ``benchmarks/speed.py``; docs/results/speed.md).

The count changes the order of floating-point sums inside the libraries' parallel
kernels, so results computed with different thread counts agree to float rounding,
not bit for bit; with one count, results repeat exactly.

A training's ``train.num_threads`` (when not 0) sets PyTorch's threads for the
training itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from ..errors import InputError

__all__ = [
    "ENV",
    "MAX_DEFAULT_THREADS",
    "default_threads",
    "resolve_threads",
    "thread_limit",
    "usable_cores",
]

ENV = "STRUCTREG_THREADS"
"""The environment variable that sets the thread count of every command."""
MAX_DEFAULT_THREADS = 8
"""The most threads the default takes: the networks' 2-D and 3-D convolutions gain
little beyond it on a CPU."""


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads(cores: int | None = None, processes: int | None = None) -> int:
    """The default thread count on ``cores`` cores (None: :func:`usable_cores`): half of
    them, or a ``1/K`` share for each of ``processes = K > 1`` processes started together
    (None: torchrun's ``LOCAL_WORLD_SIZE``, else 1); at least 1, at most
    :data:`MAX_DEFAULT_THREADS`."""
    cores = usable_cores() if cores is None else cores
    if processes is None:
        processes = _local_processes()
    share = cores // processes if processes > 1 else cores // 2
    return max(1, min(MAX_DEFAULT_THREADS, share))


def _local_processes() -> int:
    """The processes torchrun started on this machine (1 outside torchrun)."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def resolve_threads(
    given: int | None, environ: Mapping[str, str] | None = None, cores: int | None = None
) -> int | None:
    """The thread count of a command: ``given``, else ``STRUCTREG_THREADS`` (``0``: None,
    the libraries' defaults), else :func:`default_threads` of ``cores``; a one-line
    :class:`InputError` for a bad value."""
    environ = os.environ if environ is None else environ
    if given is None and environ.get(ENV, "").strip():
        text = environ[ENV].strip()
        try:
            given = int(text)
        except ValueError:
            given = -1
        if given == 0:
            return None
        if given < 1:
            raise InputError(
                f"{ENV}={text!r}: a number of threads (an int >= 1; 0: the libraries' own)"
            )
    if given is not None and given < 1:
        raise InputError(f"threads must be an int >= 1, got {given}")
    return default_threads(cores) if given is None else given


@contextlib.contextmanager
def thread_limit(threads: int | None = None) -> Iterator[int | None]:
    """Within the block, PyTorch and the BLAS/OpenMP pools use ``threads`` threads
    (None: ``STRUCTREG_THREADS``, else :func:`default_threads`; ``STRUCTREG_THREADS=0``
    leaves the libraries' settings alone); the previous settings come back after it.
    ``with structreg.thread_limit(1): structreg.register(m, f)``"""
    n = resolve_threads(threads)
    if n is None:
        yield None
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield n
    finally:
        torch.set_num_threads(before)
