"""The paper's "BL": no registration (identity transform)."""

from __future__ import annotations

import time

import torch

from ..core.ops.checks import check_image, check_same_spatial
from .base import RegistrationResult
from .registry import MethodSpec, add_method


class Identity:
    """Identity registration: ``moved = moving``, zero displacement, det J = 1."""

    name = "identity"
    reference = True  # registers nothing: tables do not let it win on folding or velocity

    def __init__(self, batch_size: int = 256) -> None:
        self.batch_size = batch_size

    def register(
        self, moving: torch.Tensor, fixed: torch.Tensor, *, mask: torch.Tensor | None = None
    ) -> RegistrationResult:
        """``moving``, ``fixed``: ``(N, C, *S)`` images (``mask`` is not used)."""
        t0 = time.perf_counter()
        ndim = check_image("identity", "moving", moving, finite=False)
        check_image("identity", "fixed", fixed, ndim, finite=False)
        check_same_spatial("identity", "moving", moving, "fixed", fixed)
        n = max(moving.shape[0], fixed.shape[0])
        shape = moving.shape[2:]
        zero = torch.zeros(n, ndim, *shape, device=moving.device, dtype=moving.dtype)
        ones = torch.ones(n, 1, *shape, device=moving.device, dtype=moving.dtype)
        return RegistrationResult(
            moved=moving.expand(n, *moving.shape[1:]).clone(),
            disp=zero,
            inverse_disp=zero.clone(),
            velocity=None,
            jacobian_det=ones,
            seconds=time.perf_counter() - t0,
        )


@add_method("identity", "no registration (the paper's BL)")
def _build(spec: MethodSpec, device: str) -> Identity:
    spec.refuse_target()
    return Identity(**spec.converted({"batch_size": 256}))
