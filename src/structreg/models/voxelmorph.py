"""The VoxelMorph-2 network: the ``voxelmorph`` package's U-Net predicting a plain
(non-diffeomorphic) displacement, trained with NCC + λ_smooth · ‖∇u‖² (λ = 1.5 as
in the paper's comparison).

The U-Net needs spatial sizes divisible by ``2 ** len(nb_features)``; inputs are
zero-padded to that multiple and the field is cropped back, invisibly to the user
(voxel units are unchanged by padding).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..core.ops import warp
from ..errors import ConfigError, MissingDependencyError


@dataclass(frozen=True)
class VoxelMorphConfig:
    """Architecture and loss of the VoxelMorph-2 baseline.

    Attributes:
        ndim: spatial dimensions.
        nb_features: U-Net widths per level (VoxelMorph-2 encoder: 16, 32, 32, 32).
        smoothness: weight of the mean squared displacement gradient (paper: 1.5).
        ncc_window: side of the NCC window in voxels.
    """

    ndim: int = 2
    nb_features: tuple[int, ...] = (16, 32, 32, 32)
    smoothness: float = 1.5
    ncc_window: int = 9

    def __post_init__(self) -> None:
        if self.ndim not in (2, 3):
            raise ConfigError(f"VoxelMorphConfig: ndim must be 2 or 3, got {self.ndim!r}")
        try:
            features = tuple(int(v) for v in self.nb_features)
        except (TypeError, ValueError):
            raise ConfigError(
                f"VoxelMorphConfig: nb_features must be a list of ints, got {self.nb_features!r}"
            ) from None
        if not features or min(features) < 1:
            raise ConfigError(f"VoxelMorphConfig: nb_features must be positive, got {features}")
        object.__setattr__(self, "nb_features", features)
        if not self.smoothness >= 0:
            raise ConfigError(f"VoxelMorphConfig: smoothness must be >= 0, got {self.smoothness}")
        if self.ncc_window < 1:
            raise ConfigError(f"VoxelMorphConfig: ncc_window must be >= 1, got {self.ncc_window}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists for tuples): TOML-, JSON- and ``weights_only``-safe."""
        d = asdict(self)
        d["nb_features"] = list(self.nb_features)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VoxelMorphConfig:
        """Inverse of :meth:`to_dict` (missing keys keep their defaults)."""
        d = dict(d)
        d["nb_features"] = tuple(d.get("nb_features", cls.nb_features))
        return cls(**d)


def _require_voxelmorph() -> Any:
    try:
        import voxelmorph
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "the VoxelMorph baseline needs the 'voxelmorph' package: "
            "pip install 'structreg[baselines]'"
        ) from exc
    return voxelmorph


class VoxelMorph2(nn.Module):
    """``forward(moving, fixed)`` -> displacement ``(N, ndim, *S)`` in voxels.

    Shapes: ``moving``, ``fixed`` ``(N, 1, *S)`` for any ``S``.
    """

    def __init__(self, config: VoxelMorphConfig | None = None) -> None:
        super().__init__()
        self.config = config or VoxelMorphConfig()
        vxm = _require_voxelmorph()
        self.net = vxm.nn.models.VxmPairwise(
            ndim=self.config.ndim,
            source_channels=1,
            target_channels=1,
            nb_features=list(self.config.nb_features),
            integration_steps=0,
        )
        self.multiple = 2 ** len(self.config.nb_features)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        shape = moving.shape[2:]
        pad = []
        for s in reversed(shape):
            extra = (-s) % self.multiple
            pad += [extra // 2, extra - extra // 2]
        if any(pad):
            moving_p, fixed_p = F.pad(moving, pad), F.pad(fixed, pad)
        else:
            moving_p, fixed_p = moving, fixed
        disp = self.net(moving_p, fixed_p, return_field_type="displacement")
        crop = tuple(
            slice(pad[2 * (len(shape) - 1 - i)], pad[2 * (len(shape) - 1 - i)] + s)
            for i, s in enumerate(shape)
        )
        return disp[(slice(None), slice(None)) + crop]


def voxelmorph_loss(
    model: VoxelMorph2, moving: torch.Tensor, fixed: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """VoxelMorph's unsupervised loss: ``-NCC(F, M∘φ) + λ · mean ‖∇u‖²``.

    NCC is neurite's windowed squared correlation (the one ``voxelmorph`` uses);
    the smoothness term is the mean squared forward difference of ``u``.

    Returns:
        ``(loss, {"loss", "ncc", "smooth"} as floats, disp (N, ndim, *S) in voxels)``.
    """
    return voxelmorph_loss_of(model.config, moving, fixed, model(moving, fixed))


def voxelmorph_loss_of(
    config: VoxelMorphConfig, moving: torch.Tensor, fixed: torch.Tensor, disp: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """:func:`voxelmorph_loss` of a displacement ``disp (N, ndim, *S)`` (voxels) the
    network already predicted (training runs the network through its DDP wrapper)."""
    import neurite as ne

    moved = warp(moving, disp)
    ncc = ne.nn.modules.NCC(window_size=config.ncc_window)(fixed, moved).mean()
    grads = [torch.diff(disp, dim=d) for d in range(2, disp.dim())]
    total = grads[0].pow(2).mean()
    for g in grads[1:]:
        total = total + g.pow(2).mean()
    smooth = total / len(grads)
    loss = -ncc + config.smoothness * smooth
    return loss, {"loss": loss.item(), "ncc": ncc.item(), "smooth": float(smooth.detach())}, disp
