"""The aggregate posterior of a model's training codes, a prior to sample from.

Trained with a small KL weight, the codes ``q(z | M, F) = N(μ, σ²)`` of the training
pairs do not fill ``N(0, I)``: codes drawn from ``N(0, I)`` land where the decoder saw
few. The aggregate posterior ``q(z) = 1/N Σ_i q(z | M_i, F_i)`` is where it saw them.
:func:`fit_aggregate_prior` fits one Gaussian to it by its first two moments: mean
``mean_i μ_i`` and covariance ``Cov_i(μ_i) + diag(mean_i σ_i²)`` (the covariance of the
``μ_i`` shrunk by Ledoit-Wolf, since there are about as many codes as dimensions).

Stored beside the model file as ``<model file stem>.prior.npz`` (:func:`prior_path`;
``builtin:NAME`` models carry one in the package), read with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, InputError

PRIOR_SUFFIX = ".prior.npz"
FORMAT = "structreg aggregate prior 1"


@dataclass(frozen=True)
class AggregatePrior:
    """A Gaussian over codes fitted to training codes.

    Attributes:
        mean: ``(code_dim,)`` float64.
        cov: ``(code_dim, code_dim)`` symmetric positive definite covariance.
        n_codes: how many codes it was fitted to.
    """

    mean: np.ndarray
    cov: np.ndarray
    n_codes: int

    @property
    def code_dim(self) -> int:
        """Entries of a code."""
        return int(self.mean.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` codes ``(n, code_dim)`` float32 drawn from ``N(mean, cov)``."""
        if int(n) < 1:
            raise InputError(f"number of samples must be >= 1, got {n}")
        factor = torch.from_numpy(np.linalg.cholesky(self.cov))
        eps = torch.randn(int(n), self.code_dim, generator=generator, dtype=torch.float64)
        return (torch.from_numpy(self.mean)[None] + eps @ factor.T).float()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the prior as ``.npz`` (atomically)."""
        from ..io.files import atomic_write

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    format=np.array(FORMAT),
                    mean=self.mean.astype(np.float32),
                    cov=self.cov.astype(np.float32),
                    n_codes=np.array(self.n_codes),
                )

        return atomic_write(path, write)


def fit_aggregate_prior(mu: np.ndarray, sigma: np.ndarray | None = None) -> AggregatePrior:
    """The Gaussian with the first two moments of the aggregate posterior of the codes.

    Args:
        mu: ``(N, code_dim)`` posterior means of the training pairs (N >= 2).
        sigma: ``(N, code_dim)`` posterior standard deviations (None: treated as 0).
    Returns:
        :class:`AggregatePrior` (mean ``mean(μ)``, covariance Ledoit-Wolf ``Cov(μ)`` +
        ``diag(mean(σ²))``).
    """
    from sklearn.covariance import LedoitWolf

    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2 or mu.shape[0] < 2 or not np.isfinite(mu).all():
        raise InputError(f"need at least 2 finite codes (N, d) to fit a prior, got {mu.shape}")
    cov = LedoitWolf().fit(mu).covariance_
    if sigma is not None:
        sigma = np.asarray(sigma, dtype=np.float64)
        if sigma.shape != mu.shape:
            raise InputError(f"sigma shape {sigma.shape} differs from mu {mu.shape}")
        cov = cov + np.diag(np.mean(sigma**2, axis=0))
    cov = 0.5 * (cov + cov.T) + 1e-8 * np.eye(mu.shape[1])
    return AggregatePrior(mean=mu.mean(axis=0), cov=cov, n_codes=int(mu.shape[0]))


def prior_path(model: str | os.PathLike) -> Path:
    """Where the aggregate prior of ``model`` (a run folder, a model file or
    ``builtin:NAME``) is stored: ``<model file stem>.prior.npz`` beside the file."""
    from ..training.checkpoint import find_checkpoint

    file = find_checkpoint(model)
    return file.with_name(file.name.split(".")[0] + PRIOR_SUFFIX)


def load_aggregate_prior(path: str | os.PathLike, code_dim: int | None = None) -> AggregatePrior:
    """Read a prior written by :meth:`AggregatePrior.save`.

    Raises:
        FileNotFoundError: no such file. DataError: not a prior file, or its codes do
        not have ``code_dim`` entries.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no aggregate prior (write one from the training codes: structreg "
            f"embed --split train --prior-out {path})"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            fmt, mean, cov, n = str(data["format"]), data["mean"], data["cov"], data["n_codes"]
    except (OSError, ValueError, KeyError):
        raise DataError(f"{path}: not an aggregate prior file") from None
    d = mean.shape[0] if mean.ndim == 1 else -1
    if fmt != FORMAT or cov.shape != (d, d) or not np.isfinite(cov).all():
        raise DataError(f"{path}: not an aggregate prior file ({fmt!r}, cov {cov.shape})")
    if code_dim is not None and d != code_dim:
        raise DataError(f"{path}: a prior of {d}-entry codes, the model's have {code_dim}")
    return AggregatePrior(mean.astype(np.float64), cov.astype(np.float64), int(n))
