"""Input validation shared by the public ops.

Every public function of :mod:`structreg.core.ops` validates its arguments once at
its entry with these helpers and then calls unchecked private kernels, so inner
loops (the squaring steps of :func:`exponentiate`) do not pay for the checks.
Errors name the function and the expected shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...errors import InputError, NonFiniteError, ShapeError, TypeCheckError


def _shape_str(ndim: int, leading: str) -> str:
    spatial = ("H", "W") if ndim == 2 else ("D", "H", "W")
    return "(" + ", ".join((*leading.split(","), *spatial)) + ")"


def all_finite(x: torch.Tensor) -> bool:
    """True when no element of ``x`` is NaN or ±Inf.

    One reduction instead of the several passes of ``isfinite(x).all()``: a NaN or
    Inf anywhere makes the sum NaN or Inf, so a finite sum proves every element
    finite; only a non-finite sum (which may also be a float overflow of large
    finite values) falls back to the exact element-wise test.
    """
    x = x.detach()
    if bool(torch.isfinite(x.sum())):
        return True
    return bool(torch.isfinite(x).all())


def check_float_tensor(fn: str, name: str, x: object) -> torch.Tensor:
    """Raise :class:`TypeCheckError` unless ``x`` is a floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeCheckError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeCheckError(f"{fn}: {name} must have a floating-point dtype, got {x.dtype}")
    return x


def check_field(fn: str, name: str, field: object, *, finite: bool = True) -> int:
    """Validate a vector field ``(N, ndim, *S)`` with ``ndim == len(S)`` in {2, 3}.

    Returns ``ndim``. Raises :class:`TypeCheckError` for non-float tensors and
    :class:`ShapeError` for wrong ranks, a channel count that does not match the
    spatial rank, or (when ``finite``) NaN/Inf values.
    """
    field = check_float_tensor(fn, name, field)
    if field.dim() not in (4, 5):
        raise ShapeError(
            f"{fn}: {name} must have shape (N, 2, H, W) or (N, 3, D, H, W), "
            f"got {tuple(field.shape)}"
        )
    ndim = field.dim() - 2
    if field.shape[1] != ndim:
        raise ShapeError(
            f"{fn}: {name} must have shape {_shape_str(ndim, 'N,' + str(ndim))} "
            f"(one channel per spatial axis), got {tuple(field.shape)}"
        )
    if finite and not all_finite(field):
        raise NonFiniteError(f"{fn}: {name} contains NaN or Inf values")
    return ndim


def check_image(
    fn: str, name: str, image: object, ndim: int | None = None, *, finite: bool = True
) -> int:
    """Validate an image ``(N, C, *S)`` with 2 or 3 spatial axes; returns ndim."""
    image = check_float_tensor(fn, name, image)
    if image.dim() not in (4, 5):
        raise ShapeError(
            f"{fn}: {name} must have shape (N, C, H, W) or (N, C, D, H, W), "
            f"got {tuple(image.shape)}"
        )
    got = image.dim() - 2
    if ndim is not None and got != ndim:
        raise ShapeError(
            f"{fn}: {name} must have shape {_shape_str(ndim, 'N,C')} to match a "
            f"{ndim}-D field, got {tuple(image.shape)}"
        )
    if finite and not all_finite(image):
        raise NonFiniteError(f"{fn}: {name} contains NaN or Inf values")
    return got


def check_same_spatial(fn: str, a_name: str, a: torch.Tensor, b_name: str, b: torch.Tensor) -> None:
    """Raise :class:`ShapeError` unless ``a`` and ``b`` share spatial shape and batch size
    (a batch of 1 broadcasts)."""
    if a.shape[2:] != b.shape[2:]:
        raise ShapeError(
            f"{fn}: {a_name} spatial shape {tuple(a.shape[2:])} does not match "
            f"{b_name} spatial shape {tuple(b.shape[2:])}"
        )
    if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
        raise ShapeError(
            f"{fn}: batch sizes of {a_name} ({a.shape[0]}) and {b_name} "
            f"({b.shape[0]}) differ and neither is 1"
        )


def check_spacing(fn: str, spacing: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """Normalise ``spacing`` (None, scalar or sequence of ``ndim`` positives)."""
    if spacing is None:
        return (1.0,) * ndim
    if isinstance(spacing, (int, float)):
        spacing = (float(spacing),) * ndim
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != ndim or not all(s > 0 for s in spacing):
        raise InputError(
            f"{fn}: spacing must be {ndim} positive numbers (mm per voxel along each "
            f"spatial axis), got {spacing}"
        )
    return spacing
