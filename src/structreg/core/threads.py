"""How many CPU threads structreg computes with.

PyTorch's intra-op pool and the BLAS/OpenMP pools NumPy and SciPy use
(``threadpoolctl``) each start one thread per core by default. Beside other work -
another program, several structreg processes, ``torchrun`` on a CPU machine - that
oversubscribes the cores: threads wait for each other at every parallel region and a
registration can run many times slower than on one thread. The thread count of a
command is:

1. the number given (``--threads N``, :func:`thread_limit`), else
2. the environment variable ``STRUCTREG_THREADS``, else
3. the libraries' own defaults (one thread per core), left as they are.

A training's ``train.num_threads`` (when not 0) sets PyTorch's threads for the
training itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from ..errors import InputError

__all__ = ["ENV", "resolve_threads", "thread_limit"]

ENV = "STRUCTREG_THREADS"
"""The environment variable that sets the thread count of every command."""


def resolve_threads(given: int | None, environ: Mapping[str, str] | None = None) -> int | None:
    """The thread count of a command: ``given``, else ``STRUCTREG_THREADS``, else None
    (the libraries' defaults); a one-line :class:`InputError` for a bad value."""
    environ = os.environ if environ is None else environ
    if given is None and environ.get(ENV, "").strip():
        text = environ[ENV].strip()
        try:
            given = int(text)
        except ValueError:
            raise InputError(f"{ENV}={text!r}: a number of threads (an int >= 1)") from None
    if given is not None and given < 1:
        raise InputError(f"threads must be an int >= 1, got {given}")
    return given


@contextlib.contextmanager
def thread_limit(threads: int | None = None) -> Iterator[int | None]:
    """Within the block, PyTorch and the BLAS/OpenMP pools use ``threads`` threads
    (None: ``STRUCTREG_THREADS``, else nothing changes); the previous settings come
    back after it. ``with structreg.thread_limit(1): structreg.register(m, f)``"""
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
