"""The conditional VAE registration network of Krebs et al. 2018 (Fig. 1).

``encoder(M, F) -> (μ, log σ²) -> z -> decoder(z | M at every scale) -> velocity v
-> exponentiation (scaling and squaring, N squarings) -> displacement u of exp(v)
-> spatial transformer -> moved = M ∘ exp(v)``.

Architecture (``ModelConfig`` defaults, 2-D 100×100, d = 144):

* **Encoder** on the channel-concatenated ``(M, F)``: four 3×3 convolutions
  (16, 32, 32, 4 channels), each followed by batch normalisation and a leaky ReLU,
  the first three followed by a 2×2 max-pooling with ``ceil_mode`` (100 → 50 → 25
  → 13), then two fully-connected heads giving ``μ`` and ``log σ²`` (``d`` each).
* **Decoder**: a fully-connected layer from ``z`` to a small feature map
  (29 × 13 × 13; 29 channels make the total 949,489 trainable parameters, the
  paper's ~950k), concatenated with ``M`` averaged down to 13 × 13; three
  upsampling stages (13 → 25 → 50 → 100), each a 2× bilinear resize to the
  exact size of the matching encoder scale and a 3×3 convolution (or, with
  ``upsampling = "deconv"``, a stride-2 transposed convolution whose output
  padding is chosen per axis), followed by batch normalisation and a leaky ReLU
  and then concatenated with ``M`` averaged down to that scale ("strong
  conditioning"); a final 3×3 convolution (weights and bias initialised near
  zero, so training starts at the identity) gives ``v``.

Any image size works: pooling uses ``ceil_mode`` and the decoder retraces the
encoder's sizes, so nothing is padded or cropped. Convolutions, pooling and
batch normalisation are picked by ``ndim`` (2-D or 3-D).

Units and conventions: images ``(N, C, *S)``; ``velocity`` and ``disp``
``(N, ndim, *S)`` in voxels, channel ``c`` along ``S[c]``; ``φ(x) = x + u(x)``;
``moved(x) = moving(x + u(x))``; ``M ∘ exp(v) ≈ F``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..core.layers import Exponentiation, SpatialTransformer, evaluating
from ..data.defaults import DEFAULT_SIZE
from ..errors import ConfigError, ShapeError, TypeCheckError

__all__ = [
    "ModelConfig",
    "Encoder",
    "Decoder",
    "CVAEOutput",
    "CVAERegistration",
    "batches_alike",
    "conv_memory_format",
    "decode_velocity",
    "encode_pair",
    "pyramid_sizes",
]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a :class:`CVAERegistration` (and nothing else).

    Attributes:
        image_size: spatial shape ``S`` the network is built for (``(H, W)`` or
            ``(D, H, W)``); inputs must have exactly this shape. ``ndim`` is
            ``len(image_size)``.
        in_channels: channels of each of ``moving`` and ``fixed`` (1 for MRI).
        latent_dim: size ``d`` of the code ``z`` (paper: 144).
        enc_channels: output channels of the four encoder convolutions.
        dec_channels: channels of the decoder's initial feature map followed by
            the outputs of its three transposed convolutions.
        steps: squarings of the exponentiation layer (paper: N = 4).
        condition: strong conditioning of the decoder on ``M`` at every scale
            (the paper's design); ``False`` gives a plain (unconditioned) decoder.
        upsampling: decoder stages as ``"linear"`` (bi/trilinear 2× resize, then
            a 3×3 convolution; default) or ``"deconv"`` (stride-2 3×3 transposed
            convolution). Same parameter count. ``"linear"`` avoids the
            checkerboard pattern of strided transposed convolutions, which
            roughens the velocity (and with it, folding).
        batch_norm: batch normalisation after every hidden convolution.
        leaky_slope: negative slope of the leaky ReLUs.
        velocity_init_std: standard deviation of the final convolution's initial
            weights (its bias starts at 0), so the first velocities are near zero.
        velocity_scales: scales the velocity is predicted at (1: the finest only,
            the paper's design; 2 or 3: also at ``S/2`` and ``S/4``). Each extra
            scale has its own 3×3 head on the decoder's features there; its output
            (voxels of the full grid) is linearly resized to ``S`` and added, so
            the coarse heads carry the large, smooth part of ``v`` (the
            multi-scale velocities of Krebs et al., IEEE TMI 2019, summed into one
            field before the one exponentiation).
        velocity_smoothing: standard deviation (voxels) of a Gaussian smoothing
            layer applied to ``v`` before the exponentiation (0: none; the TMI
            2019 model's smoothing layer). Window: ``2·⌈3σ⌉ + 1`` taps.
        antisymmetric: predict ``v(M, F) = ½ (D(z_MF, M) − D(z_FM, F))`` where
            ``z_MF ~ q(z | M, F)`` and ``z_FM ~ q(z | F, M)`` come from the same
            encoder and ``D`` is the one decoder, so that ``v(F, M) = −v(M, F)``
            exactly and any field the network would give every pair alike cancels.
            The pair's code is then ``[z_MF, z_FM]`` of ``code_dim = 2 d`` entries,
            both halves under the KL term. Without a fixed image (transport,
            sampling) both halves are decoded on the moving image. Made for the
            3-D model, whose plain form learns one sub-voxel field shared by all
            pairs (README, "3-D volumes").
    """

    image_size: tuple[int, ...] = DEFAULT_SIZE
    in_channels: int = 1
    latent_dim: int = 144
    enc_channels: tuple[int, int, int, int] = (16, 32, 32, 4)
    dec_channels: tuple[int, int, int, int] = (29, 32, 32, 32)
    steps: int = 4
    condition: bool = True
    upsampling: str = "linear"
    batch_norm: bool = True
    leaky_slope: float = 0.2
    velocity_init_std: float = 1e-5
    velocity_scales: int = 1
    velocity_smoothing: float = 0.0
    antisymmetric: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", _image_size(self.image_size))
        object.__setattr__(
            self, "enc_channels", _positive_ints("enc_channels", self.enc_channels, 4)
        )
        object.__setattr__(
            self, "dec_channels", _positive_ints("dec_channels", self.dec_channels, 4)
        )
        for name in ("in_channels", "latent_dim"):
            _check_positive_int(name, getattr(self, name))
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ConfigError(f"ModelConfig: steps must be a non-negative int, got {self.steps!r}")
        if self.upsampling not in ("deconv", "linear"):
            raise ConfigError(
                f"ModelConfig: upsampling must be 'deconv' or 'linear', got {self.upsampling!r}"
            )
        for name in ("condition", "batch_norm", "antisymmetric"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"ModelConfig: {name} must be true or false, got {getattr(self, name)!r}"
                )
        for name in ("leaky_slope", "velocity_init_std", "velocity_smoothing"):
            object.__setattr__(self, name, _non_negative_float(name, getattr(self, name)))
        if (
            isinstance(self.velocity_scales, bool)
            or not isinstance(self.velocity_scales, int)
            or not 1 <= self.velocity_scales <= 3
        ):
            raise ConfigError(
                f"ModelConfig: velocity_scales must be 1, 2 or 3, got {self.velocity_scales!r}"
            )
        _check_bounds(self)

    @property
    def ndim(self) -> int:
        """Spatial dimensionality (2 or 3)."""
        return len(self.image_size)

    @property
    def code_dim(self) -> int:
        """Entries of a pair's code: ``latent_dim``, twice that when ``antisymmetric``."""
        return self.latent_dim * (2 if self.antisymmetric else 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (lists instead of tuples), for TOML/JSON/checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`
        (a ``ValueError``)."""
        if not isinstance(data, dict):
            raise ConfigError(f"ModelConfig: expected a table/dict, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"ModelConfig: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


# The checks of ModelConfig's fields (messages name the field and the value given).


def _positive_ints(name: str, value: Any, length: int | None = None) -> tuple[int, ...]:
    """``value`` as a tuple of positive ints (of ``length`` entries when given)."""
    try:
        out = tuple(value)
    except TypeError:
        raise ConfigError(f"ModelConfig: {name} must be a list of ints, got {value!r}") from None
    if (
        not out
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in out)
        or (length is not None and len(out) != length)
    ):
        want = f"{length} positive ints" if length else "positive ints"
        raise ConfigError(f"ModelConfig: {name} must be {want}, got {value!r}")
    return out


# Sane bounds, checked before anything is allocated (a crafted config in a
# checkpoint must not make the process allocate gigabytes): a 1 mm brain volume
# (160 x 192 x 224) is well inside them.
MAX_IMAGE_SIDE = 1024
MAX_VOXELS = 2**24
MAX_CHANNELS = 1024
MAX_LATENT_DIM = 4096
MAX_IN_CHANNELS = 16
MAX_STEPS = 16
MAX_FC_WEIGHTS = 2**28  # the decoder's fully connected layer, ~1 GiB in float32


def _image_size(value: Any) -> tuple[int, ...]:
    """``image_size`` as a tuple of 2 or 3 ints, each in [8, MAX_IMAGE_SIDE]."""
    size = _positive_ints("image_size", value)
    if len(size) not in (2, 3):
        raise ConfigError(f"ModelConfig: image_size must have 2 or 3 entries, got {size}")
    if min(size) < 8:
        raise ConfigError(f"ModelConfig: image_size entries must be >= 8, got {size}")
    if max(size) > MAX_IMAGE_SIDE or math.prod(size) > MAX_VOXELS:
        raise ConfigError(
            f"ModelConfig: image_size {size} is beyond the supported bounds "
            f"({MAX_IMAGE_SIDE} per axis, {MAX_VOXELS} voxels)"
        )
    return size


def _check_bounds(config: ModelConfig) -> None:
    """Refuse configs whose network would be absurdly large, before building it."""
    limits = {"in_channels": MAX_IN_CHANNELS, "latent_dim": MAX_LATENT_DIM, "steps": MAX_STEPS}
    for name, limit in limits.items():
        if getattr(config, name) > limit:
            raise ConfigError(
                f"ModelConfig: {name} {getattr(config, name)} is beyond the supported bound {limit}"
            )
    if max(config.enc_channels + config.dec_channels) > MAX_CHANNELS:
        raise ConfigError(f"ModelConfig: channel counts are limited to {MAX_CHANNELS}")
    coarse = math.prod(-(-s // 8) for s in config.image_size)
    fc = config.latent_dim * config.dec_channels[0] * coarse
    if fc > MAX_FC_WEIGHTS:
        raise ConfigError(
            f"ModelConfig: the decoder's first layer would hold {fc:,} weights "
            f"(bound {MAX_FC_WEIGHTS:,}); use a smaller image_size, latent_dim "
            f"or dec_channels"
        )


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"ModelConfig: {name} must be a positive int, got {value!r}")


def _non_negative_float(name: str, value: Any) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0:
        raise ConfigError(
            f"ModelConfig: {name} must be a finite non-negative number, got {value!r}"
        )
    return float(value)


def pyramid_sizes(image_size: tuple[int, ...], levels: int = 3) -> list[tuple[int, ...]]:
    """Spatial sizes after 0..``levels`` ceil-mode 2×2 poolings: ``[S, ⌈S/2⌉, ...]``."""
    sizes = [tuple(image_size)]
    for _ in range(levels):
        sizes.append(tuple(math.ceil(s / 2) for s in sizes[-1]))
    return sizes


def _layers(ndim: int):
    """(Conv, ConvTranspose, MaxPool, BatchNorm) classes for ``ndim``."""
    if ndim == 2:
        return nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.BatchNorm2d
    return nn.Conv3d, nn.ConvTranspose3d, nn.MaxPool3d, nn.BatchNorm3d


def _downsample(image: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Area-average ``image (N, C, *S)`` down to ``size`` (identity when equal)."""
    if tuple(image.shape[2:]) == tuple(size):
        return image
    if image.dim() == 4:
        return F.adaptive_avg_pool2d(image, (size[0], size[1]))
    return F.adaptive_avg_pool3d(image, (size[0], size[1], size[2]))


def _concat(
    h: torch.Tensor, cond: torch.Tensor, memory_format: torch.memory_format
) -> torch.Tensor:
    """``torch.cat([h, cond], dim=1)`` laid out in ``memory_format``.

    ``torch.cat`` falls back to the contiguous layout when its inputs disagree,
    and a one-channel ``cond`` never reads as channels-last; the channels-last
    inference copy (:mod:`structreg.models.inference`) would then pay a full
    layout conversion before every convolution. Writing both parts into one
    buffer of the wanted layout avoids that.
    """
    if memory_format == torch.contiguous_format:
        return torch.cat([h, cond], dim=1)
    out = torch.empty(
        (h.shape[0], h.shape[1] + cond.shape[1], *h.shape[2:]),
        dtype=h.dtype,
        device=h.device,
        memory_format=memory_format,
    )
    out[:, : h.shape[1]] = h
    out[:, h.shape[1] :] = cond
    return out


def conv_memory_format(weight: torch.Tensor) -> torch.memory_format:
    """The memory layout of a convolution's ``weight``, for laying out its inputs alike.

    Args:
        weight: a convolution weight, ``(C_out, C_in, *K)`` with 2 or 3 kernel axes
            ``K`` (a transposed convolution's ``(C_in, C_out, *K)`` alike).
    Returns:
        ``torch.contiguous_format`` when ``weight`` is contiguous, else
        ``torch.channels_last`` (2-D) or ``torch.channels_last_3d`` (3-D) when it is
        laid out so (the channels-last inference copy,
        :mod:`structreg.models.inference`); ``torch.contiguous_format`` otherwise.
    """
    if weight.is_contiguous():
        return torch.contiguous_format
    if weight.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if weight.dim() == 5 and weight.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


class _Resize(nn.Module):
    """(Bi/tri)linear resize of a feature map to a fixed spatial size."""

    def __init__(self, size: tuple[int, ...]):
        super().__init__()
        self.size = tuple(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = "bilinear" if x.dim() == 4 else "trilinear"
        return F.interpolate(x, size=self.size, mode=mode, align_corners=False)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def _velocity_head(conv: Any, in_ch: int, config: ModelConfig) -> nn.modules.conv._ConvNd:
    """A 3×3 convolution to ``ndim`` velocity channels, initialised near zero."""
    head = cast(nn.modules.conv._ConvNd, conv(in_ch, config.ndim, 3, padding=1))
    nn.init.normal_(head.weight, std=config.velocity_init_std)
    nn.init.zeros_(cast(torch.Tensor, head.bias))
    return head


class Encoder(nn.Module):
    """``q(z | M, F)``: ``(moving, fixed)`` -> ``(mu, logvar)``, each ``(N, d)``.

    Shapes: ``moving``, ``fixed`` ``(N, C, *S)`` with ``S = config.image_size``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        Conv, _, MaxPool, BatchNorm = _layers(config.ndim)
        chans = (2 * config.in_channels, *config.enc_channels)
        blocks = []
        for i in range(4):
            layers: list[nn.Module] = [
                Conv(chans[i], chans[i + 1], 3, padding=1, bias=not config.batch_norm)
            ]
            if config.batch_norm:
                layers.append(BatchNorm(chans[i + 1]))
            layers.append(nn.LeakyReLU(config.leaky_slope))
            if i < 3:
                layers.append(MaxPool(2, ceil_mode=True))
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.Sequential(*blocks)
        bottom = pyramid_sizes(config.image_size)[-1]
        flat = config.enc_channels[-1] * math.prod(bottom)
        self.mu = nn.Linear(flat, config.latent_dim)
        self.logvar = nn.Linear(flat, config.latent_dim)
        # Start with a narrow posterior (σ ≈ 0.37): a code the decoder can read from step 1.
        nn.init.zeros_(self.logvar.weight)
        nn.init.constant_(self.logvar.bias, -2.0)

    def forward(
        self, moving: torch.Tensor, fixed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # the first convolution (first layer of the first block) sets the layout
        first_conv = cast(nn.Sequential, self.blocks[0])[0]
        layout = conv_memory_format(cast(torch.Tensor, first_conv.weight))
        h = self.blocks(_concat(moving, fixed, layout)).flatten(1)
        return self.mu(h), self.logvar(h)

    def both_orders(
        self, moving: torch.Tensor, fixed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``self(cat([M, F]), cat([F, M]))``: ``(mu, logvar)``, each ``(2 N, d)``, the
        ``N`` rows of ``(M, F)`` then the ``N`` of ``(F, M)``, as one batch whose input is
        written into one buffer (no intermediate concatenations of full-size images)."""
        first_conv = cast(nn.Sequential, self.blocks[0])[0]
        layout = conv_memory_format(cast(torch.Tensor, first_conv.weight))
        n, c = moving.shape[0], moving.shape[1]
        x = torch.empty(
            (2 * n, 2 * c, *moving.shape[2:]),
            dtype=moving.dtype,
            device=moving.device,
            memory_format=layout,
        )
        x[:n, :c], x[:n, c:], x[n:, :c], x[n:, c:] = moving, fixed, fixed, moving
        h = self.blocks(x).flatten(1)
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """``p(v | z, M)``: ``(z (N, d), moving (N, C, *S))`` -> velocity ``(N, ndim, *S)`` in voxels.

    With ``config.condition`` the moving image, averaged down to each scale, is
    concatenated to the initial feature map and to the output of every
    upsampling stage.
    """

    smoothing_kernel: torch.Tensor

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        Conv, ConvT, _, BatchNorm = _layers(config.ndim)
        self.sizes = pyramid_sizes(config.image_size)  # [S, S/2, S/4, S/8]
        bottom = self.sizes[-1]
        c0 = config.dec_channels[0]
        self.fc = nn.Linear(config.latent_dim, c0 * math.prod(bottom))
        cond = config.in_channels if config.condition else 0
        self.ups = nn.ModuleList()
        self.coarse_velocity = nn.ModuleDict()
        in_ch = c0 + cond
        for level in (2, 1, 0):
            small, big = self.sizes[level + 1], self.sizes[level]
            # (small - 1) * 2 - 2 + 3 + output_padding == big  (big is 2*small or 2*small - 1)
            out_ch = config.dec_channels[3 - level]
            if config.upsampling == "deconv":
                out_pad = tuple(b - (2 * s - 1) for s, b in zip(small, big, strict=True))
                layers: list[nn.Module] = [
                    ConvT(
                        in_ch,
                        out_ch,
                        3,
                        stride=2,
                        padding=1,
                        output_padding=out_pad,
                        bias=not config.batch_norm,
                    )
                ]
            else:
                layers = [
                    _Resize(big),
                    Conv(in_ch, out_ch, 3, padding=1, bias=not config.batch_norm),
                ]
            if config.batch_norm:
                layers.append(BatchNorm(out_ch))
            layers.append(nn.LeakyReLU(config.leaky_slope))
            self.ups.append(nn.Sequential(*layers))
            in_ch = out_ch + cond
            if 0 < level < config.velocity_scales:
                # a velocity head at this coarser scale (multi-scale velocities)
                self.coarse_velocity[str(level)] = _velocity_head(Conv, in_ch, config)
        self.velocity = _velocity_head(Conv, in_ch, config)
        if config.velocity_smoothing > 0:
            from ..core.ops.smoothing import gaussian_kernel1d, gaussian_window

            sigma = config.velocity_smoothing
            kernel = gaussian_kernel1d(sigma, gaussian_window(sigma))
            self.register_buffer("smoothing_kernel", kernel, persistent=False)

    def forward(self, z: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        h, coarse = self.features(z, moving)
        return self.head(h, coarse)

    def features(
        self, z: torch.Tensor, moving: torch.Tensor, *, condition_last: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(h, coarse)``: the last feature map ``(N, C, *S)`` (the velocity head's
        input) and the input of each coarse velocity head (finest last).
        ``condition_last=False`` leaves the conditioning image off the last map
        (``C`` is then ``config.dec_channels[-1]``)."""
        n = z.shape[0]
        layout = conv_memory_format(self.velocity.weight)
        h = self.fc(z).view(n, self.config.dec_channels[0], *self.sizes[-1])
        h = F.leaky_relu(h, self.config.leaky_slope)
        if self.config.condition:
            h = _concat(h, _downsample(moving, self.sizes[-1]), layout)
        coarse = []
        for level, up in zip((2, 1, 0), self.ups, strict=True):
            h = up(h)
            if self.config.condition and (level > 0 or condition_last):
                h = _concat(h, _downsample(moving, self.sizes[level]), layout)
            if str(level) in self.coarse_velocity:
                coarse.append(h)
        return h, coarse

    def head(
        self, h: torch.Tensor, coarse: list[torch.Tensor], *, bias: bool = True
    ) -> torch.Tensor:
        """Velocity ``(N, ndim, *S)`` (voxels) from :meth:`features`' output: the
        velocity convolution, plus each coarse head's velocity upsampled, then the
        smoothing. ``bias=False`` leaves the heads' biases out: the head is then linear,
        so it maps a difference of features to the difference of velocities."""
        heads = [self.coarse_velocity[k] for k in sorted(self.coarse_velocity, reverse=True)]
        velocity = _apply_head(self.velocity, h, bias).contiguous()
        for head, feature in zip(heads, coarse, strict=True):
            velocity = velocity + _Resize(self.sizes[0])(
                _apply_head(head, feature, bias).contiguous()
            )
        if self.config.velocity_smoothing > 0:
            from ..core.ops import kernels

            velocity = kernels.gaussian_smooth(velocity, self.smoothing_kernel)
        return velocity

    def half_difference(self, z: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """``½ (D(z[:N], images[:N]) − D(z[N:], images[N:]))`` ``(N, ndim, *S)`` of a batch
        of ``2 N`` rows (an antisymmetric model's two halves). The heads being linear
        but for their bias, which cancels, they run once on the features' difference
        when they are plain convolutions (half their cost); else the difference of two
        :meth:`forward` results."""
        n = z.shape[0] // 2
        if not isinstance(self.velocity, nn.modules.conv._ConvNd):  # adapted per pair
            both = self(z, images)
            return 0.5 * (both[:n] - both[n:])
        h, coarse = self.features(z, images, condition_last=False)
        if self.config.condition:  # the difference written into the head's input at once
            layout = conv_memory_format(self.velocity.weight)
            h = _difference_concat(h, _downsample(images, self.sizes[0]), n, layout)
        else:
            h = h[:n] - h[n:]
        velocity = self.head(h, [c[:n] - c[n:] for c in coarse], bias=False)
        return velocity.mul_(0.5)


def _difference_concat(
    h: torch.Tensor, cond: torch.Tensor, n: int, memory_format: torch.memory_format
) -> torch.Tensor:
    """``cat([h, cond], 1)[:n] − cat([h, cond], 1)[n:]`` ``(n, C_h + C_c, *S)`` of the
    ``2 n`` rows of ``h (2n, C_h, *S)`` and ``cond (2n, C_c, *S)``, written into one
    buffer laid out in ``memory_format`` (as :func:`_concat`): the concatenation of the
    two halves' full-resolution maps is never made (in 3-D the largest copy of a
    registration)."""
    if torch.is_grad_enabled() and (h.requires_grad or cond.requires_grad):
        return _concat(h[:n] - h[n:], cond[:n] - cond[n:], memory_format)  # out= has no grad
    ch = h.shape[1]
    out = torch.empty(
        (n, ch + cond.shape[1], *h.shape[2:]),
        dtype=h.dtype,
        device=h.device,
        memory_format=memory_format,
    )
    torch.sub(h[:n], h[n:], out=out[:, :ch])
    torch.sub(cond[:n], cond[n:], out=out[:, ch:])
    return out


def _apply_head(head: nn.Module, h: torch.Tensor, bias: bool) -> torch.Tensor:
    """``head(h)``, or its convolution without the bias when ``bias`` is False."""
    if bias:
        return cast(torch.Tensor, head(h))
    conv = cast(nn.modules.conv._ConvNd, head)
    return conv._conv_forward(h, conv.weight, None)


def encode_pair(
    encoder: nn.Module, config: ModelConfig, moving: torch.Tensor, fixed: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu, logvar)``, each ``(N, code_dim)``, of ``encoder`` on the pair: its codes
    of ``(M, F)`` and, for an ``antisymmetric`` model, of ``(F, M)`` concatenated."""
    if not config.antisymmetric:
        return cast(tuple[torch.Tensor, torch.Tensor], encoder(moving, fixed))
    n = moving.shape[0]
    if batches_alike(encoder):  # (M, F) and (F, M) as one batch of 2 N
        if isinstance(encoder, Encoder):
            mu, logvar = encoder.both_orders(moving, fixed)
        else:
            mu, logvar = encoder(torch.cat([moving, fixed]), torch.cat([fixed, moving]))
        return _halves_side_by_side(mu, n), _halves_side_by_side(logvar, n)
    mu, logvar = encoder(moving, fixed)
    mu_back, logvar_back = encoder(fixed, moving)
    return torch.cat([mu, mu_back], 1), torch.cat([logvar, logvar_back], 1)


def _halves_side_by_side(rows: torch.Tensor, n: int) -> torch.Tensor:
    """``(2 N, d)`` (the ``N`` forward rows, then the ``N`` backward ones) -> ``(N, 2 d)``."""
    return torch.cat([rows[:n], rows[n:]], 1)


def batches_alike(module: nn.Module) -> bool:
    """Whether the two halves of an antisymmetric model run as one batch of ``2 N`` (one
    call instead of two; the same result up to float rounding): ``module`` is in
    evaluation mode (registration, refinement) and no batch normalisation computes
    statistics of the batch. Training keeps one call per half, so a training run's
    weights do not depend on this shortcut (nor on how torchrun shards the batch)."""
    if module.training:
        return False
    return not any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None
        for m in module.modules()
    )


def decode_velocity(
    decoder: nn.Module,
    config: ModelConfig,
    z: torch.Tensor,
    moving: torch.Tensor,
    fixed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Velocity ``(N, ndim, *S)`` (voxels) of ``decoder`` for codes ``z (N, code_dim)``.

    Plain model: ``decoder(z, M)``. ``antisymmetric``: ``½ (decoder(z₁, M) −
    decoder(z₂, F))`` with ``z = [z₁, z₂]`` (``F = M`` when ``fixed`` is None). The
    decoder may be an adapted copy (per-pair refinement). The two halves are decoded as
    one batch of ``2 N`` (rows ``i`` and ``N + i`` both pair ``i``'s) when the decoder
    :func:`batches_alike`, else one call per half.
    """
    if not config.antisymmetric:
        return cast(torch.Tensor, decoder(z, moving))
    d, n = config.latent_dim, z.shape[0]
    back = moving if fixed is None else fixed
    if batches_alike(decoder):
        rows, images = torch.cat([z[:, :d], z[:, d:]]), torch.cat([moving, back])
        if isinstance(decoder, Decoder):
            return decoder.half_difference(rows, images)
        both = decoder(rows, images)
        return 0.5 * (both[:n] - both[n:])
    return 0.5 * (decoder(z[:, :d], moving) - decoder(z[:, d:], back))


@dataclass
class CVAEOutput:
    """Result of :meth:`CVAERegistration.forward`.

    Attributes:
        mu, logvar: ``(N, code_dim)`` posterior mean and log-variance.
        z: ``(N, code_dim)`` code used (``mu`` when not sampling).
        velocity: ``(N, ndim, *S)`` stationary velocity in voxels.
        disp: ``(N, ndim, *S)`` displacement of ``exp(velocity)`` in voxels.
        moved: ``(N, C, *S)`` ``moving ∘ exp(velocity)``.
    """

    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    velocity: torch.Tensor
    disp: torch.Tensor
    moved: torch.Tensor


class CVAERegistration(nn.Module):
    """CVAE registration network; build it with ``CVAERegistration(ModelConfig(...))``.

    The exponentiation layer and spatial transformer have no parameters and no
    buffers, so the ``state_dict`` holds only the encoder and decoder.
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        config = ModelConfig() if config is None else config
        if not isinstance(config, ModelConfig):
            raise TypeCheckError(
                f"CVAERegistration: config must be a ModelConfig, got {type(config).__name__}"
            )
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.exponentiation = Exponentiation(config.steps)
        self.transformer = SpatialTransformer(mode="linear", padding_mode="border")

    # -- checks -------------------------------------------------------------
    def _check_image(self, name: str, image: torch.Tensor) -> None:
        c = self.config
        want = (c.in_channels, *c.image_size)
        if (
            not isinstance(image, torch.Tensor)
            or image.dim() != c.ndim + 2
            or tuple(image.shape[1:]) != want
        ):
            got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ShapeError(
                f"CVAERegistration: {name} must have shape (N, {', '.join(map(str, want))})"
                f" (the model's image_size), got {got}"
            )
        if not image.is_floating_point():
            raise TypeCheckError(
                f"CVAERegistration: {name} must be a float tensor, got {image.dtype}"
            )

    def _check_pair(self, moving: torch.Tensor, fixed: torch.Tensor) -> None:
        self._check_image("moving", moving)
        self._check_image("fixed", fixed)
        if moving.shape[0] != fixed.shape[0]:
            raise ShapeError(
                f"CVAERegistration: moving and fixed batch sizes differ "
                f"({moving.shape[0]} vs {fixed.shape[0]})"
            )

    # -- parts --------------------------------------------------------------
    def encode(
        self, moving: torch.Tensor, fixed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(moving, fixed) (N, C, *S)`` -> ``(mu, logvar)``, each ``(N, code_dim)``
        (``antisymmetric``: the codes of ``(M, F)`` and of ``(F, M)`` side by side)."""
        self._check_pair(moving, fixed)
        return encode_pair(self.encoder, self.config, moving, fixed)

    def decode(
        self, z: torch.Tensor, moving: torch.Tensor, fixed: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Velocity ``(N, ndim, *S)`` (voxels) from codes ``z (N, code_dim)``
        conditioned on ``moving (N, C, *S)``. The code may come from another pair
        (deformation transport) or from the prior (sampling). ``fixed`` is read by an
        ``antisymmetric`` model only (its second half is decoded on it; None: on
        ``moving``)."""
        self._check_image("moving", moving)
        if fixed is not None:
            self._check_pair(moving, fixed)
        d = self.config.code_dim
        if (
            not isinstance(z, torch.Tensor)
            or z.dim() != 2
            or z.shape[1] != d
            or z.shape[0] != moving.shape[0]
        ):
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ShapeError(
                f"CVAERegistration: z must have shape ({moving.shape[0]}, {d}), got {got}"
            )
        return decode_velocity(self.decoder, self.config, z, moving, fixed)

    @staticmethod
    def reparameterize(
        mu: torch.Tensor,
        logvar: torch.Tensor,
        generator: torch.Generator | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> torch.Tensor:
        """``z = mu + exp(logvar / 2) · ε`` with ``ε ~ N(0, I)``.

        ``ε`` is drawn on the CPU from ``generator`` (the global generator when
        None) and moved to ``mu``'s device, so a seeded run draws the same noise
        on any device. ``shard = (rank, world)``: ``mu`` holds rank's share (every
        world-th row) of a global batch; the noise of the whole global batch is
        drawn and rank's rows taken, so K processes draw the noise one process
        draws for the same global batch.
        """
        rank, world = shard
        shape = (mu.shape[0] * world, *mu.shape[1:])
        eps = torch.randn(shape, generator=generator, dtype=torch.float32)[rank::world]
        return mu + torch.exp(0.5 * logvar) * eps.to(device=mu.device, dtype=mu.dtype)

    def sample_velocity(
        self,
        moving: torch.Tensor,
        fixed: torch.Tensor,
        sample: bool,
        generator: torch.Generator | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, pick ``z`` and decode, without exponentiating or warping
        (what training needs). Returns ``(mu, logvar, z, velocity)``; ``shard`` as
        in :meth:`reparameterize`."""
        mu, logvar = self.encode(moving, fixed)
        z = self.reparameterize(mu, logvar, generator, shard) if sample else mu
        return mu, logvar, z, decode_velocity(self.decoder, self.config, z, moving, fixed)

    def forward(
        self,
        moving: torch.Tensor,
        fixed: torch.Tensor,
        sample: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> CVAEOutput:
        """Full pass: codes, velocity, displacement ``exp(v)`` and ``moved = M ∘ exp(v)``.

        Args:
            moving, fixed: ``(N, C, *S)`` float images, ``S = config.image_size``.
            sample: draw ``z`` from ``q(z | M, F)`` (True) or use ``z = μ`` (False,
                registration). ``None`` samples in training mode only.
            generator: source of the reparameterisation noise.
        """
        sample = self.training if sample is None else bool(sample)
        mu, logvar, z, velocity = self.sample_velocity(moving, fixed, sample, generator)
        disp = self.exponentiation(velocity)
        moved = self.transformer(moving, disp)
        return CVAEOutput(mu=mu, logvar=logvar, z=z, velocity=velocity, disp=disp, moved=moved)

    def predict(self, moving: torch.Tensor, fixed: torch.Tensor) -> CVAEOutput:
        """Deterministic registration (``z = μ``, batch-norm running statistics),
        without gradients. The module's train/eval mode is restored afterwards."""
        with evaluating(self):
            return self.forward(moving, fixed, sample=False)

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def summary(self) -> str:
        """A table of the parameter count per block and the exact total."""
        c = self.config
        rows = []
        for name, module in [
            ("encoder.convs", self.encoder.blocks),
            ("encoder.mu", self.encoder.mu),
            ("encoder.logvar", self.encoder.logvar),
            ("decoder.fc", self.decoder.fc),
            ("decoder.ups", self.decoder.ups),
            ("decoder.velocity", self.decoder.velocity),
            ("decoder.coarse_velocity", self.decoder.coarse_velocity),
        ]:
            if not any(True for _ in module.parameters()):
                continue
            rows.append((name, sum(p.numel() for p in module.parameters())))
        width = max(len(r[0]) for r in rows)
        sizes = " -> ".join("×".join(map(str, s)) for s in pyramid_sizes(c.image_size))
        lines = [
            f"CVAERegistration: {c.ndim}-D, image {'×'.join(map(str, c.image_size))}, "
            f"d = {c.latent_dim}, scales {sizes}, conditioning {'on' if c.condition else 'off'}, "
            f"{c.upsampling} upsampling, exponentiation N = {c.steps}"
            + (f", velocity at {c.velocity_scales} scales" if c.velocity_scales > 1 else "")
            + (", antisymmetric velocity (code 2 d)" if c.antisymmetric else "")
            + (f", v smoothed (σ {c.velocity_smoothing:g})" if c.velocity_smoothing else "")
        ]
        lines += [f"  {name:<{width}}  {count:>9,}" for name, count in rows]
        lines.append(f"  {'trainable parameters':<{width}}  {self.num_parameters():>9,}")
        return "\n".join(lines)
