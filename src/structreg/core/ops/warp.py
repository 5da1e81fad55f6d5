"""Dense spatial transformer: pull-back warping and composition of displacements."""

from __future__ import annotations

import torch

from ...errors import InputError, ShapeError, TypeCheckError
from . import kernels
from .checks import check_field, check_image, check_same_spatial

_MODES = {
    "linear": "bilinear",
    "bilinear": "bilinear",
    "trilinear": "bilinear",
    "nearest": "nearest",
}
_PADDING = ("zeros", "border", "reflection")


def warp(
    image: torch.Tensor, disp: torch.Tensor, mode: str = "linear", padding_mode: str = "zeros"
) -> torch.Tensor:
    """Warp ``image`` by the displacement ``disp`` (pull-back).

    ``moved(x) = image(x + disp(x))``, sampled with (bi/tri)linear or nearest
    interpolation; positions outside the image read ``padding_mode``
    (``"zeros"``, ``"border"`` or ``"reflection"``).

    Args:
        image: ``(N, C, *S)`` float tensor, ``S = (H, W)`` or ``(D, H, W)``.
        disp: ``(N, ndim, *S)`` float tensor in voxels; channel ``c`` moves along
            ``S[c]``. A batch of 1 on either argument broadcasts.
        mode: ``"linear"`` (also ``"bilinear"``/``"trilinear"``) or ``"nearest"``.
    Returns:
        ``(N, C, *S)`` warped image, differentiable w.r.t. ``image`` and ``disp``
        (w.r.t. ``image`` only for ``"nearest"``).
    """
    ndim = check_field("warp", "disp", disp)
    check_image("warp", "image", image, ndim, finite=False)
    check_same_spatial("warp", "image", image, "disp", disp)
    if mode not in _MODES:
        raise InputError(f"warp: mode must be one of {sorted(_MODES)}, got {mode!r}")
    if padding_mode not in _PADDING:
        raise InputError(f"warp: padding_mode must be one of {_PADDING}, got {padding_mode!r}")
    if image.dtype != disp.dtype:
        raise TypeCheckError(
            f"warp: image dtype {image.dtype} differs from disp dtype {disp.dtype}"
        )
    return kernels.warp(image, disp, _MODES[mode], padding_mode)


def compose(u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """Displacement of the composition ``φ1 ∘ φ2`` with ``φi(x) = x + ui(x)``.

    ``(φ1 ∘ φ2)(x) = x + u2(x) + u1(x + u2(x))``; ``u1`` is interpolated
    linearly with border padding (vector fields are extended, not zeroed).
    Warping by the result equals warping by ``u1`` and then by ``u2``:
    ``warp(warp(I, u1), u2) ≈ warp(I, compose(u1, u2))``.

    Args:
        u1, u2: ``(N, ndim, *S)`` displacements in voxels.
    Returns:
        ``(N, ndim, *S)`` displacement in voxels.
    """
    ndim = check_field("compose", "u1", u1)
    check_field("compose", "u2", u2)
    if u2.shape[1] != ndim:
        raise ShapeError(
            f"compose: u1 and u2 must both be {ndim}-D fields, "
            f"got {tuple(u1.shape)} and {tuple(u2.shape)}"
        )
    check_same_spatial("compose", "u1", u1, "u2", u2)
    if u1.dtype != u2.dtype:
        raise TypeCheckError(f"compose: u1 dtype {u1.dtype} differs from u2 dtype {u2.dtype}")
    return kernels.compose(u1, u2)
