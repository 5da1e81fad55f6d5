"""The paper's "BL": no registration (identity transform)."""

from __future__ import annotations

import time

import torch

from ..ops._checks import check_image, check_same_spatial
from ..registration import RegistrationResult


def register(moving: torch.Tensor, fixed: torch.Tensor) -> RegistrationResult:
    """Identity registration: ``moved = moving``, zero displacement, det J = 1.

    Args:
        moving, fixed: ``(N, C, *S)`` images.
    """
    t0 = time.perf_counter()
    ndim = check_image("identity.register", "moving", moving, finite=False)
    check_image("identity.register", "fixed", fixed, ndim, finite=False)
    check_same_spatial("identity.register", "moving", moving, "fixed", fixed)
    n = max(moving.shape[0], fixed.shape[0])
    zero = torch.zeros(n, ndim, *moving.shape[2:], device=moving.device, dtype=moving.dtype)
    return RegistrationResult(moved=moving.expand(n, *moving.shape[1:]).clone(), disp=zero,
                              inverse_disp=zero.clone(), velocity=None,
                              jacobian_det=torch.ones(n, 1, *moving.shape[2:], device=moving.device,
                                                      dtype=moving.dtype),
                              seconds=time.perf_counter() - t0)
