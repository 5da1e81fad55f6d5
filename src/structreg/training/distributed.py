"""Multi-process training with PyTorch's distributed engine (torchrun + DDP).

structreg does not launch or coordinate processes itself: ``torchrun`` (the
``torch.distributed.run`` module) starts them, sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous, restarts them on failure (``--max-restarts``)
and spans machines (``--nnodes``, ``--rdzv-endpoint``). This module reads that
environment (:func:`from_env`), joins the process group (gloo on CPUs, NCCL on
GPUs) and offers the few collectives the training engine needs:

* :meth:`Dist.mean` - the global batch's loss terms for the log (all-reduce);
* :meth:`Dist.broadcast` - rank 0's decisions (early stopping, the time budget)
  to every rank, so all ranks leave the loop at the same step;

Data parallelism: rank ``r`` of ``K`` takes every K-th index of the global
batch (the partition :class:`torch.utils.data.DistributedSampler` makes), so
the union of the ranks' batches is exactly the global batch of a one-process
run with ``batch_size × K`` and the same seed. Every rank draws the
reparameterisation noise of the whole global batch from the same seeded
generator and uses its rows, so the ranks' RNG states stay equal (rank 0's
checkpoint restores them all) and the noise is the one-process run's.
DistributedDataParallel averages the gradients, so K processes follow a
one-process run at the global batch up to rounding and the batch-norm
statistics (per process unless ``train.sync_batchnorm``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch

from ..errors import UsageError

__all__ = [
    "Dist",
    "SINGLE",
    "from_env",
    "launch",
    "launched_by_structreg",
    "launched_by_torchrun",
    "restart_count",
    "shard",
    "torchrun_command",
    "without_option",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: ``rank`` of ``world_size`` processes,
    ``local_rank`` on its machine. ``world_size == 1``: no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True in a multi-process run."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that validates, logs and writes checkpoints."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: ``cuda:LOCAL_RANK`` for a CUDA run, else ``device``."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def init(self, device: torch.device, timeout_s: float = 1800.0) -> None:
        """Join the process group (NCCL for CUDA, else gloo); a no-op for one process."""
        import torch.distributed as tdist

        if not self.enabled or tdist.is_initialized():
            return
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            if self.local_rank >= torch.cuda.device_count():
                raise UsageError(
                    f"process {self.rank} has local rank {self.local_rank} but this machine "
                    f"has {torch.cuda.device_count()} GPU(s); start at most that many "
                    f"processes per node"
                )
            torch.cuda.set_device(self.local_rank)
        tdist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))

    def close(self, finished: bool = False) -> None:
        """Leave the process group.

        ``finished``: the run ended normally on this rank, so every rank first waits
        for the others (rank 0 writes its last checkpoint after the last collective)
        and all leave together. Before the group goes, objects that still hold it
        (the DistributedDataParallel wrapper lives in a reference cycle of the
        training engine) are collected, so that the backend is torn down here and
        not at interpreter exit, while the process is being finalised (a CPU run's
        worker once aborted after its last step with "terminate called without an
        active exception" when it left the group early and alone).
        """
        import gc

        import torch.distributed as tdist

        if self.enabled and tdist.is_initialized():
            try:
                if finished:
                    tdist.barrier()
            finally:
                gc.collect()
                tdist.destroy_process_group()

    def run(self, work: Callable[[], T]) -> T:
        """``work()``, then :meth:`close` (all ranks together when it returned)."""
        finished = False
        try:
            result = work()
            finished = True
            return result
        finally:
            self.close(finished=finished)

    def mean(self, values: Sequence[float]) -> list[float]:
        """The mean over ranks of each value (every rank gets it)."""
        if not self.enabled:
            return list(values)
        import torch.distributed as tdist

        t = torch.tensor(list(values), dtype=torch.float64, device=self._comm_device())
        tdist.all_reduce(t)
        return [float(v) / self.world_size for v in t.cpu()]

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable objects)."""
        if not self.enabled:
            return obj
        import torch.distributed as tdist

        box = [obj]
        tdist.broadcast_object_list(box, src=0, device=self._comm_device())
        return box[0]

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.enabled:
            import torch.distributed as tdist

            tdist.barrier()

    def _comm_device(self) -> torch.device:
        import torch.distributed as tdist

        if tdist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


SINGLE = Dist()
# set by :func:`launch` for its workers: the command's outcome is the launcher's to report
LAUNCHED = "STRUCTREG_LAUNCHED"


def launched_by_structreg() -> bool:
    """True in a worker that ``structreg ... --nproc K`` started."""
    return os.environ.get(LAUNCHED) == "1"


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher setting its variables) started us."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def from_env() -> Dist:
    """The :class:`Dist` of torchrun's environment variables (one process without them)."""
    if not launched_by_torchrun():
        return SINGLE
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise UsageError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {exc}") from exc
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"bad torchrun environment: RANK {rank} of WORLD_SIZE {world}")
    return Dist(rank=rank, world_size=world, local_rank=local)


def restart_count() -> int:
    """How often torchrun's elastic agent has restarted this run's workers."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def shard(indices: torch.Tensor, dist: Dist) -> torch.Tensor:
    """This rank's part of a global batch: every K-th index from its rank on."""
    return indices[dist.rank :: dist.world_size] if dist.enabled else indices


def without_option(argv: Sequence[str], option: str) -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE`` (what the workers get)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == option:
            skip = True
        elif not a.startswith(f"{option}="):
            out.append(a)
    return out


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The command that runs ``structreg ARGV`` in ``nproc`` processes on this machine
    (torchrun's standalone rendezvous)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "structreg",
        *argv,
    ]


def launch(nproc: int, argv: Sequence[str], device: str | None) -> int:
    """Run ``structreg ARGV`` under torchrun in ``nproc`` local processes; returns
    torchrun's exit status. Refuses more CUDA processes than GPUs."""
    if nproc < 1:
        raise UsageError(f"--nproc must be >= 1, got {nproc}")
    wants_cuda = (device or "auto").startswith("cuda") or (
        (device or "auto") == "auto" and torch.cuda.is_available()
    )
    if wants_cuda and nproc > torch.cuda.device_count():
        raise UsageError(
            f"--nproc {nproc} is more than the {torch.cuda.device_count()} GPU(s) of this "
            f"machine; use at most that many, or --device cpu"
        )
    if shutil.which(sys.executable) is None:  # pragma: no cover - defensive
        raise UsageError(f"cannot run {sys.executable}")
    env = dict(os.environ, **{LAUNCHED: "1"})
    if not wants_cuda and "OMP_NUM_THREADS" not in env:
        # CPU processes share the cores: each takes its part
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    return subprocess.call(torchrun_command(nproc, argv), env=env)
