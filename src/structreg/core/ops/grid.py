"""Voxel grids and the one place where ``grid_sample``'s convention lives.

Conventions: images are ``(N, C, *S)``, fields are
``(N, ndim, *S)`` in voxels, channel ``c`` moves along spatial axis ``S[c]``,
and a transform maps ``x -> x + u(x)``.

Every call of ``F.grid_sample`` in :mod:`structreg.core.ops` is made here:
:func:`sample_displaced` (positions ``x + u(x)`` in voxels) and
:func:`sample_normalised` (positions already in ``grid_sample``'s normalised,
reversed units, built on :func:`normalised_identity`; the squaring loop of
:func:`structreg.core.ops.kernels.exponentiate` works in those units).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ...errors import InputError


def identity_grid(
    shape: Sequence[int],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Voxel coordinates of a grid.

    Args:
        shape: spatial shape ``S`` (2 or 3 entries).
    Returns:
        ``(1, ndim, *S)`` tensor whose channel ``c`` holds the index along axis ``c``
        (units: voxels).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise InputError(f"identity_grid: shape must be 2 or 3 positive sizes, got {shape}")
    axes = [torch.arange(s, device=device, dtype=dtype) for s in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0).unsqueeze(0)


def _axis_coords(
    n: int, device: torch.device | str | None, dtype: torch.dtype
) -> tuple[torch.Tensor, float]:
    """Normalised coordinate of each index on an axis of size ``n`` and the voxel->normalised
    factor: index ``i`` maps to ``2 i / (n - 1) - 1`` (``align_corners=True``; size 1 maps to 0)."""
    scale = 2.0 / (n - 1) if n > 1 else 0.0
    return torch.arange(n, device=device, dtype=dtype) * scale - (1.0 if n > 1 else 0.0), scale


def normalised_identity(
    sizes: Sequence[int],
    device: torch.device | str | None,
    dtype: torch.dtype,
    reverse: bool = False,
) -> tuple[torch.Tensor, list[float]]:
    """Identity grid in ``grid_sample``'s normalised units (``align_corners=True``).

    Args:
        sizes: spatial shape ``S`` (2 or 3 entries).
        reverse: channel order of the grid (see Returns).
    Returns:
        ``(ident, scales)``: ``ident`` ``(1, ndim, *S)``, where index ``i`` along an axis
        of size ``n`` is ``2 i / (n - 1) - 1`` (0 when ``n == 1``), channel ``c`` running
        along axis ``S[c]``, or, with ``reverse``, along ``S[ndim - 1 - c]``
        (``grid_sample``'s x, y[, z] order); ``scales``: the voxel -> normalised factor
        ``2 / (n - 1)`` of each axis in axis order (normalised units per voxel; 0 for
        ``n == 1``), whatever ``reverse``.
    """
    axes = [_axis_coords(n, device, dtype) for n in sizes]
    coords = torch.meshgrid(*[c for c, _ in axes], indexing="ij")
    ident = torch.stack(coords[::-1] if reverse else coords, dim=0).unsqueeze(0)
    return ident, [scale for _, scale in axes]


def _displaced_grid(disp: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """``grid_sample`` grid ``(N, *S, ndim)`` for the positions ``x + disp(x)``.

    The only translation to ``grid_sample``'s normalised, reversed (x, y[, z])
    coordinates; ``sizes`` is the spatial shape of the image that will be sampled
    (equal to ``disp``'s own grid here). A batch is one fused multiply-add
    against a shared identity grid; a single field is built channel by channel,
    without an identity grid or a reversed copy of ``disp``.
    """
    ndim = disp.shape[1]
    if disp.shape[0] > 1:
        # a batch: one fused multiply-add against a shared identity grid (built once,
        # batch 1) beats per-channel adds; for a single volume the identity grid would
        # cost as much as the field itself, so the per-channel path below is used
        ident, scales = normalised_identity(sizes, disp.device, disp.dtype)
        scale_t = torch.tensor(scales, device=disp.device, dtype=disp.dtype)
        scale_t = scale_t.view(1, ndim, *([1] * ndim))
        return torch.addcmul(ident, disp, scale_t).flip(1).movedim(1, -1)
    channels = []
    for c in reversed(range(ndim)):
        coords, scale = _axis_coords(sizes[c], disp.device, disp.dtype)
        shape = [1] * ndim
        shape[c] = -1
        channels.append(torch.add(coords.view(shape), disp[:, c], alpha=scale))
    return torch.stack(channels, dim=-1)


def sample_displaced(
    image: torch.Tensor, disp: torch.Tensor, mode: str, padding_mode: str
) -> torch.Tensor:
    """Sample ``image`` at the positions ``x + disp(x)`` (unchecked).

    Args:
        image: ``(N, C, *S)``.
        disp: ``(N, ndim, *S)`` displacement in voxels, channel ``c`` along ``S[c]``.
            A batch of 1 on either side broadcasts to the other's.
        mode: ``grid_sample`` mode (``"bilinear"`` or ``"nearest"``).
        padding_mode: ``grid_sample`` padding (``"zeros"``, ``"border"``, ...).
    Returns:
        ``(max N, C, *S)``: ``image(x + disp(x))`` (a pull-back warp).
    """
    grid = _displaced_grid(disp, image.shape[2:])
    if image.shape[0] != grid.shape[0]:
        n = max(image.shape[0], grid.shape[0])
        image = image.expand(n, *image.shape[1:])
        grid = grid.expand(n, *grid.shape[1:])
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def sample_normalised(
    image: torch.Tensor, positions: torch.Tensor, mode: str, padding_mode: str
) -> torch.Tensor:
    """Sample ``image`` at positions given in ``grid_sample``'s own units (unchecked).

    Args:
        image: ``(N, C, *S)``.
        positions: ``(N, ndim, *S)`` sampling positions in normalised units
            (``align_corners=True``: -1 and 1 are the centres of the first and last
            voxels) with the channels in ``grid_sample``'s reversed order (channel
            ``c`` along axis ``S[ndim - 1 - c]``), e.g. :func:`normalised_identity`
            with ``reverse=True`` plus a displacement in those units.
        mode, padding_mode: as for :func:`sample_displaced`.
    Returns:
        ``(N, C, *S)`` sampled values.
    """
    return F.grid_sample(
        image,
        positions.movedim(1, -1),
        mode=mode,
        padding_mode=padding_mode,
        align_corners=True,
    )
