"""Inference copies of a trained network: batch norm folded into the convolutions.

At registration time batch normalisation uses its running statistics, so each
``Conv -> BatchNorm`` pair is one affine map and can be folded into the
convolution's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``),
removing a full pass over every feature map. On the CPU the copy also uses the
channels-last memory layout, which oneDNN convolutions run faster. The result
equals the unfused network's output up to float rounding (tested).

:func:`inference_copy` caches the folded copy on the module and rebuilds it as
soon as any parameter or buffer changed (an optimiser step, ``load_state_dict``,
a replaced tensor, a move to another device), so it is safe to call from inside
a training loop's validation.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CACHE_ATTR = "_structreg_inference_copy"
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_M = TypeVar("_M", bound=nn.Module)


def _weights_key(module: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is modified in place, replaced or moved."""
    tensors = [*module.parameters(), *module.buffers()]
    return tuple((id(t), t.data_ptr(), t._version, t.device, t.dtype) for t in tensors)


def fold_batch_norm(module: _M) -> _M:
    """A copy of ``module`` in eval mode with every ``Conv -> BatchNorm`` pair that sits
    next to each other in an ``nn.Sequential`` replaced by one convolution (and an
    ``nn.Identity``). The copy is for inference only: it has no batch-norm layers left
    to train. ``module`` itself is not changed."""
    cached = module.__dict__.pop(_CACHE_ATTR, None)
    try:
        folded = copy.deepcopy(module).eval()
    finally:
        if cached is not None:
            module.__dict__[_CACHE_ATTR] = cached
    for seq in folded.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, norm = seq._modules[first], seq._modules[second]
            if (
                isinstance(conv, _CONVS)
                and isinstance(norm, nn.modules.batchnorm._BatchNorm)
                and norm.track_running_stats
            ):
                seq._modules[first] = fuse_conv_bn_eval(conv, norm)
                seq._modules[second] = nn.Identity()
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded


def channels_last(module: _M, spatial_dims: int) -> _M:
    """``module`` with its convolution weights laid out channels-last
    (``channels_last`` for 2-D networks, ``channels_last_3d`` for 3-D ones)."""
    fmt = torch.channels_last if spatial_dims == 2 else torch.channels_last_3d
    # Module.to accepts memory_format (documented), torch's stubs omit it
    return module.to(memory_format=fmt)  # type: ignore[call-overload]


def _channels_last(module: _M) -> _M:
    """Convert 4-D / 5-D weights to channels-last on the CPU (no effect elsewhere)."""
    params = list(module.parameters())
    if not params or params[0].device.type != "cpu":
        return module
    ndim = max(p.dim() for p in params)
    return channels_last(module, ndim - 2) if ndim in (4, 5) else module


def _inplace_activations(module: _M) -> _M:
    """``module`` with its leaky ReLUs computing in place (no new tensor per call; the
    backward of a leaky ReLU with a positive slope needs only its output)."""
    for m in module.modules():
        if isinstance(m, nn.LeakyReLU) and m.negative_slope > 0:
            m.inplace = True
    return module


def inference_copy(module: _M) -> _M:
    """The cached batch-norm-folded (and, on the CPU, channels-last) copy of ``module``
    for deterministic inference; rebuilt when ``module``'s weights changed."""
    key = _weights_key(module)
    cached = module.__dict__.get(_CACHE_ATTR)
    if cached is not None and cached[0] == key:
        return cached[1]
    folded = _inplace_activations(_channels_last(fold_batch_norm(module)))
    module.__dict__[_CACHE_ATTR] = (key, folded)
    return folded
