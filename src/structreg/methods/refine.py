"""Per-pair refinement of the CVAE's latent code (and optionally its last layers).

The encoder's ``μ`` is an amortised guess of the code that registers a pair.
:func:`refine_codes` improves it for each pair separately: starting from ``z0``
(usually ``μ``), it runs Adam on that pair's code ``z`` for at most ``steps``
steps on the training objective of Eq. 1 with the network frozen::

    J_i(z) = lam · (1 − LCC_sym(F_i, M_i, v_i(z))) + kl_weight · KL_i(z)
             [+ mask_weight · P_i(v_i(z))]

* ``v_i(z) = decoder(z, M_i)``: the velocity (voxels) the frozen decoder gives;
* ``LCC_sym``: :func:`structreg.core.losses.symmetric_lcc` averaged over the pair's
  pixels, in [0, 1] (σ, window and squarings as in training);
* ``KL_i``: :func:`structreg.core.losses.kl_divergence` of ``N(z, diag σ_i²)`` to
  ``N(0, I)`` with the encoder's ``σ_i²`` held fixed (``logvar``), i.e.
  ``0.5 · ||z||²`` plus a constant - the prior term of a point estimate of ``z``.
  Without ``logvar`` it is exactly ``0.5 · ||z||²`` (nats).
* ``P_i``: :func:`structreg.core.losses.outside_mask_penalty` (voxels²), only with a
  mask and ``mask_weight > 0``.

With the encoder's ``logvar``, the mean of ``J_i`` over a batch equals
:func:`structreg.training.tasks.registration_loss` of that batch at the codes
``z`` - at ``z = μ`` it is the run's validation loss of those pairs (tested).
No spatial regulariser is added: the decoder is the regulariser.

All pairs are optimised at once and the objective minimised is ``Σ_i J_i``, so
each pair's gradient - and, Adam being element-wise, each pair's update - is the
one it would get alone: refining pairs together gives the codes of refining
them one by one, up to float rounding. Each pair keeps the best code it reached
(its objective never exceeds the start) and stops when its best objective
improved by less than ``tol`` (relative) over the last ``patience`` steps;
stopped pairs leave the batch, so they cost nothing more.

With ``adapt_decoder = K > 0`` the decoder's last ``K`` convolutions (the one
producing ``v``, then the convolution of each upsampling stage before it) are
adapted too, with a copy of their weights per pair (a grouped convolution runs
all pairs' copies in one call); the shared model is never modified.

Cost per step: one decode, one exponentiation of ``±v/2``, one warp of both
images and one LCC map, forward and backward, on the batch-norm-folded
inference copy of the network (:func:`structreg.models.inference.inference_copy`),
whose weights need no gradients.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..core.losses import forward_lcc, kl_divergence, outside_mask_penalty, symmetric_lcc
from ..errors import InputError, ShapeError
from ..models.cvae import CVAERegistration, Decoder, conv_memory_format, decode_velocity
from ..models.inference import inference_copy
from ..training.config import TrainConfig

__all__ = [
    "DEFAULT_DECODER_LR",
    "DEFAULT_LR",
    "DEFAULT_PATIENCE",
    "DEFAULT_TOL",
    "MAX_ADAPTED_LAYERS",
    "Objective",
    "RefineResult",
    "refine_codes",
]

DEFAULT_LR = 0.2
"""Adam step size of the codes (``z`` is about unit scale: the prior is N(0, I)). Chosen
on the phantom:brain-inter validation split with ``builtin:brain`` (docs/results/speed.md):
0.2 reaches the Dice of 50 steps at the former 0.05 in about half the steps; 0.4
starts worse; L-BFGS (strong Wolfe line search) is behind Adam at equal evaluations."""
DEFAULT_DECODER_LR = 1e-3
"""Adam step size of the adapted decoder weights (``adapt_decoder > 0``)."""
DEFAULT_TOL = 5e-3
"""Relative improvement of a pair's best objective over ``patience`` steps below
which the pair stops (the former 1e-3 rarely stopped a pair within 50 steps)."""
DEFAULT_PATIENCE = 10
MAX_ADAPTED_LAYERS = 4
"""The decoder's convolutions: three upsampling stages and the velocity layer."""

_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


@dataclass(frozen=True)
class Objective:
    """Weights and settings of the per-pair training objective (see the module doc).

    Attributes:
        lam: λ of the data term (paper: cardiac 82, brain 55).
        kl_weight: weight β of the KL / prior term.
        mask_weight: weight of the outside-mask penalty (used only with masks).
        sigma, kernel_size: Gaussian window of the LCC (voxels, taps).
        steps: squarings of the exponentiation of ``±v/2`` (the model's).
        symmetric: the symmetric LCC, else the one-sided one (the run's
            ``train.lcc_symmetric``).
    """

    lam: float = TrainConfig.lam
    kl_weight: float = TrainConfig.kl_weight
    mask_weight: float = TrainConfig.mask_weight
    sigma: float = TrainConfig.lcc_sigma
    kernel_size: int = TrainConfig.lcc_kernel
    steps: int = 4
    symmetric: bool = TrainConfig.lcc_symmetric

    @classmethod
    def from_train(cls, train: TrainConfig | None, steps: int) -> Objective:
        """The objective a run was trained with (``TrainConfig`` defaults when None)."""
        train = TrainConfig() if train is None else train
        return cls(
            lam=train.lam,
            kl_weight=train.kl_weight,
            mask_weight=train.mask_weight,
            sigma=train.lcc_sigma,
            kernel_size=train.lcc_kernel,
            steps=steps,
            symmetric=train.lcc_symmetric,
        )

    def per_pair(
        self,
        velocity: torch.Tensor,
        z: torch.Tensor,
        moving: torch.Tensor,
        fixed: torch.Tensor,
        logvar: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``J_i`` of each pair, ``(N,)``; its mean is the training loss of the batch.

        Args:
            velocity: ``(N, ndim, *S)`` in voxels (``M ∘ exp(v) ≈ F``).
            z: ``(N, d)`` codes.
            moving, fixed: ``(N, C, *S)`` images.
            logvar: ``(N, d)`` encoder log-variances held fixed (None: 0, i.e. the
                prior term is ``0.5 · ||z||²``).
            mask: ``(N, 1, *S)`` region where motion is allowed (None: no penalty).
        """
        lcc_map = (symmetric_lcc if self.symmetric else forward_lcc)(
            fixed,
            moving,
            velocity,
            steps=self.steps,
            sigma=self.sigma,
            kernel_size=self.kernel_size,
            reduction="none",
        )
        similarity = lcc_map.flatten(1).mean(1)
        kl = kl_divergence(z, torch.zeros_like(z) if logvar is None else logvar, "none")
        total = self.lam * (1.0 - similarity) + self.kl_weight * kl
        if mask is not None and self.mask_weight > 0:
            total = total + self.mask_weight * outside_mask_penalty(velocity, mask, "none")
        return total


@dataclass
class RefineResult:
    """What :func:`refine_codes` returns (pair ``i`` is row / column ``i``).

    Attributes:
        z: ``(N, d)`` the best code of each pair.
        velocity: ``(N, ndim, *S)`` the velocity (voxels) of each pair's best code
            (and adapted layers), detached.
        objective: ``(T + 1, N)`` each pair's best objective after ``t = 0 .. T``
            steps (``T``: the most steps any pair took); row 0 is the start,
            the rows are non-increasing, and a pair that stopped keeps its value.
        steps: ``(N,)`` Adam steps each pair took before it stopped (int64).
        seconds: wall time of the refinement.
    """

    z: torch.Tensor
    velocity: torch.Tensor
    objective: torch.Tensor
    steps: torch.Tensor
    seconds: float = float("nan")

    @classmethod
    def cat(cls, results: Sequence[RefineResult]) -> RefineResult:
        """The results of consecutive batches as one (pairs concatenated; the
        shorter objective histories are extended with their last row)."""
        if len(results) == 1:
            return results[0]
        rows = max(r.objective.shape[0] for r in results)
        histories = [
            torch.cat([r.objective, r.objective[-1:].expand(rows - r.objective.shape[0], -1)])
            for r in results
        ]
        return cls(
            z=torch.cat([r.z for r in results]),
            velocity=torch.cat([r.velocity for r in results]),
            objective=torch.cat(histories, dim=1),
            steps=torch.cat([r.steps for r in results]),
            seconds=sum(r.seconds for r in results),
        )

    @property
    def initial(self) -> torch.Tensor:
        """``(N,)`` objective at the start code ``z0``."""
        return self.objective[0]

    @property
    def final(self) -> torch.Tensor:
        """``(N,)`` objective of the returned code (never above :attr:`initial`)."""
        return self.objective[-1]


class _PairwiseConv(nn.Module):
    """A convolution (or transposed convolution) with its own weights for every pair.

    Row ``i`` of the input ``(N, C_in, *S)`` is convolved with ``weight_n[i]`` and
    ``bias_n[i]`` (set before each call; ``(N, *conv.weight.shape)`` and
    ``(N, C_out)``) in one grouped convolution; an input of ``k N`` rows (the two
    halves of an antisymmetric model as one batch) uses row ``i mod N``'s weights for
    row ``i``. ``weight`` is the wrapped layer's, so code that reads the layer's
    memory layout still works.
    """

    def __init__(self, conv: nn.modules.conv._ConvNd) -> None:
        super().__init__()
        self.conv = conv
        self.weight_n: torch.Tensor | None = None
        self.bias_n: torch.Tensor | None = None

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.weight_n is not None
        c, n = self.conv, x.shape[0]
        reps = n // self.weight_n.shape[0]  # 2 for both halves of an antisymmetric model
        weight_n = self.weight_n.repeat(reps, *(1,) * (self.weight_n.dim() - 1))
        # the wrapped layer's layout (channels-last in the CPU inference copy, where
        # oneDNN runs the grouped convolution several times faster)
        layout = conv_memory_format(c.weight)
        grouped = _stack_pairs(x, layout)
        weight = weight_n.flatten(0, 1).contiguous(memory_format=layout)
        bias = None if self.bias_n is None else self.bias_n.repeat(reps, 1).flatten()
        padding = cast(tuple[int, ...], c.padding)  # the decoder's are ints, not "same"
        if c.transposed:
            deconv = F.conv_transpose2d if x.dim() == 4 else F.conv_transpose3d
            out = deconv(grouped, weight, bias, c.stride, padding, c.output_padding, n, c.dilation)
        else:
            conv = F.conv2d if x.dim() == 4 else F.conv3d
            out = conv(grouped, weight, bias, c.stride, padding, c.dilation, n)
        return _split_pairs(out, n)


def _stack_pairs(x: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    """``(N, C, *S)`` -> ``(1, N·C, *S)`` (the groups of a grouped convolution) in
    ``layout``, with one copy."""
    n, c, size = x.shape[0], x.shape[1], tuple(x.shape[2:])
    if layout == torch.contiguous_format:
        return x.reshape(1, n * c, *size)
    out = torch.empty((1, n * c, *size), dtype=x.dtype, device=x.device, memory_format=layout)
    # channels-last memory is ordered (1, *S, N·C): seen as (*S, N, C), then (N, C, *S)
    out.movedim(1, -1).view(*size, n, c).movedim((-2, -1), (0, 1)).copy_(x)
    return out


def _split_pairs(y: torch.Tensor, n: int) -> torch.Tensor:
    """``(1, N·C, *S)`` -> ``(N, C, *S)``, a view when the layout allows it."""
    size = tuple(y.shape[2:])
    if y.is_contiguous():
        return y.view(n, -1, *size)
    return y.movedim(1, -1).reshape(*size, n, -1).movedim((-2, -1), (0, 1))


def _adaptable(decoder: Decoder) -> list[tuple[nn.Module, str]]:
    """``(parent, child name)`` of the decoder's convolutions, from the output back."""
    slots: list[tuple[nn.Module, str]] = [(decoder, "velocity")]
    for stage in reversed(list(decoder.ups)):
        name = next(k for k, m in stage.named_children() if isinstance(m, nn.modules.conv._ConvNd))
        slots.append((stage, name))
    return slots


def _pairwise_decoder(decoder: Decoder, layers: int) -> tuple[Decoder, list[_PairwiseConv]]:
    """A copy of ``decoder`` whose last ``layers`` convolutions are replaced by
    :class:`_PairwiseConv` s around them (``decoder`` itself is not modified)."""
    twin = copy.deepcopy(decoder)
    adapted = []
    for parent, name in _adaptable(twin)[:layers]:
        layer = _PairwiseConv(getattr(parent, name))
        setattr(parent, name, layer)
        adapted.append(layer)
    return twin, adapted


@dataclass
class _Active:
    """The pairs still being refined: row ``r`` is pair ``index[r]``.

    ``params`` are the optimised leaves (the codes first, then each adapted
    layer's per-pair weight and bias), each with one row per active pair, with
    their Adam moments and step sizes.
    """

    index: torch.Tensor
    moving: torch.Tensor
    fixed: torch.Tensor
    logvar: torch.Tensor | None
    mask: torch.Tensor | None
    params: list[torch.Tensor]
    lrs: list[float]
    exp_avg: list[torch.Tensor] = field(init=False)
    exp_avg_sq: list[torch.Tensor] = field(init=False)

    def __post_init__(self) -> None:
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def keep(self, rows: torch.Tensor, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """Drop the pairs whose ``rows`` entry is False; returns ``grads`` likewise cut."""
        self.index, self.moving, self.fixed = self.index[rows], self.moving[rows], self.fixed[rows]
        self.logvar = None if self.logvar is None else self.logvar[rows]
        self.mask = None if self.mask is None else self.mask[rows]
        self.params = [p.detach()[rows].requires_grad_(True) for p in self.params]
        self.exp_avg = [m[rows] for m in self.exp_avg]
        self.exp_avg_sq = [v[rows] for v in self.exp_avg_sq]
        return [g[rows] for g in grads]

    @torch.no_grad()
    def adam_step(self, grads: Sequence[torch.Tensor], step: int) -> None:
        """One Adam update (β = (0.9, 0.999), ε = 1e-8, bias-corrected) of every leaf."""
        b1, b2 = _BETAS
        for p, g, m, v, lr in zip(
            self.params, grads, self.exp_avg, self.exp_avg_sq, self.lrs, strict=True
        ):
            m.mul_(b1).add_(g, alpha=1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            denom = (v / (1.0 - b2**step)).sqrt_().add_(_ADAM_EPS)
            p.addcdiv_(m, denom, value=-lr / (1.0 - b1**step))


def _check(
    model: CVAERegistration,
    moving: torch.Tensor,
    fixed: torch.Tensor,
    z0: torch.Tensor,
    steps: int,
    adapt_decoder: int,
) -> None:
    config = model.config
    want = (config.in_channels, *config.image_size)
    for name, image in (("moving", moving), ("fixed", fixed)):
        if image.dim() != config.ndim + 2 or tuple(image.shape[1:]) != want:
            raise ShapeError(
                f"refine_codes: {name} must have shape (N, {', '.join(map(str, want))}), "
                f"got {tuple(image.shape)}"
            )
    n = moving.shape[0]
    if fixed.shape[0] != n or tuple(z0.shape) != (n, config.code_dim):
        raise ShapeError(
            f"refine_codes: need {n} fixed images and z0 of shape ({n}, {config.code_dim}), "
            f"got {fixed.shape[0]} and {tuple(z0.shape)}"
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InputError(f"refine_codes: steps must be an int >= 0, got {steps!r}")
    if not 0 <= adapt_decoder <= MAX_ADAPTED_LAYERS:
        raise InputError(
            f"refine_codes: adapt_decoder must be 0..{MAX_ADAPTED_LAYERS} "
            f"(the decoder's convolutions), got {adapt_decoder!r}"
        )


def _check_settings(lr: float, decoder_lr: float, tol: float, patience: int) -> None:
    for name, value in (("lr", lr), ("decoder_lr", decoder_lr)):
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"refine_codes: {name} must be > 0, got {value!r}")
    if not (math.isfinite(tol) and tol >= 0):
        raise InputError(f"refine_codes: tol must be >= 0, got {tol!r}")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise InputError(f"refine_codes: patience must be an int >= 1, got {patience!r}")


def _stopping(
    history: torch.Tensor, t: int, index: torch.Tensor, obj: torch.Tensor, tol: float, patience: int
) -> torch.Tensor:
    """``(A,)`` True for the active pairs that stop after evaluation ``t``: a
    non-finite objective, or a relative gain of the best objective over the last
    ``patience`` steps below ``tol``."""
    stop = ~torch.isfinite(obj)
    if t >= patience:
        before, now = history[t - patience, index], history[t, index]
        stop |= (before - now) < tol * before.abs().clamp_min(1e-12)
    return stop


def refine_codes(
    model: CVAERegistration,
    moving: torch.Tensor,
    fixed: torch.Tensor,
    z0: torch.Tensor,
    *,
    steps: int,
    objective: Objective | None = None,
    logvar: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    lr: float = DEFAULT_LR,
    tol: float = DEFAULT_TOL,
    patience: int = DEFAULT_PATIENCE,
    adapt_decoder: int = 0,
    decoder_lr: float = DEFAULT_DECODER_LR,
) -> RefineResult:
    """Refine each pair's code ``z`` (and optionally the decoder's last layers) by Adam.

    Args:
        model: the trained CVAE; its weights are never modified (the refinement
            runs on its batch-norm-folded inference copy, in eval mode).
        moving, fixed: ``(N, C, *S)`` images on the model's grid.
        z0: ``(N, d)`` start codes (the encoder's ``μ``).
        steps: the most Adam steps per pair (0: the start codes are returned).
        objective: weights of the objective (None: :class:`TrainConfig` defaults;
            use ``Objective.from_train(run.train, model.config.steps)``).
        logvar: ``(N, d)`` the encoder's log-variances for the KL term (None:
            the prior term is ``0.5 · ||z||²``; the gradient is the same).
        mask: ``(N or 1, 1, *S)`` masks (1 where motion is allowed) for the
            outside-mask penalty, used when ``objective.mask_weight > 0`` (None: none).
        lr: Adam step size of the codes.
        tol, patience: a pair stops when its best objective improved by less
            than ``tol`` (relative) over its last ``patience`` steps (``tol = 0``:
            never early).
        adapt_decoder: how many of the decoder's last convolutions are also
            adapted, per pair (0..4; 1 = the layer producing ``v``).
        decoder_lr: Adam step size of those weights.
    Returns:
        :class:`RefineResult`: the best code and velocity of each pair, its best
        objective after each step, and the steps it took.
    """
    t0 = time.perf_counter()
    _check(model, moving, fixed, z0, steps, adapt_decoder)
    _check_settings(lr, decoder_lr, tol, patience)
    objective = Objective(steps=model.config.steps) if objective is None else objective
    decoder, adapted = _refined_decoder(model, adapt_decoder)
    n = z0.shape[0]
    if mask is not None:
        mask = mask.expand(n, *mask.shape[1:])
    params, lrs = _start_params(z0, adapted, lr, decoder_lr)
    state = _Active(torch.arange(n, device=z0.device), moving, fixed, logvar, mask, params, lrs)
    best = _Best(z0, moving.shape[2:], steps)
    step = _Step(model, decoder, adapted, objective)
    _optimise(step, state, best, steps, tol, patience)
    _load_weights(adapted, [])
    return best.result(time.perf_counter() - t0)


def _refined_decoder(
    model: CVAERegistration, adapt_decoder: int
) -> tuple[Decoder, list[_PairwiseConv]]:
    """The decoder of ``model``'s inference copy, with its last ``adapt_decoder``
    convolutions made per-pair (:func:`_pairwise_decoder`; none when 0)."""
    decoder = inference_copy(model).decoder
    adapted: list[_PairwiseConv] = []
    if adapt_decoder:
        decoder, adapted = _pairwise_decoder(decoder, adapt_decoder)
    return decoder, adapted


def _start_params(
    z0: torch.Tensor, adapted: list[_PairwiseConv], lr: float, decoder_lr: float
) -> tuple[list[torch.Tensor], list[float]]:
    """The optimised leaves at the start and their Adam step sizes: a copy of the codes
    ``z0`` ``(N, d)`` (``lr``), then each adapted layer's weight and bias repeated for
    each pair, ``(N, *weight.shape)`` and ``(N, C_out)`` (``decoder_lr``)."""
    n = z0.shape[0]
    params, lrs = [z0.detach().clone().requires_grad_(True)], [lr]
    for layer in adapted:
        for tensor in (layer.conv.weight, layer.conv.bias):
            if tensor is not None:
                rows = tensor.detach().unsqueeze(0).expand(n, *tensor.shape).clone()
                params.append(rows.requires_grad_(True))
                lrs.append(decoder_lr)
    return params, lrs


@dataclass
class _Step:
    """What one evaluation of the objective needs: the model (its config), the decoder
    being used, its per-pair layers and the objective."""

    model: CVAERegistration
    decoder: Decoder
    adapted: list[_PairwiseConv]
    objective: Objective

    def evaluate(self, state: _Active) -> tuple[torch.Tensor, torch.Tensor]:
        """``(J_i (A,), velocity (A, ndim, *S) in voxels)`` of the active pairs at their
        current leaves (with the autograd graph when gradients are enabled)."""
        _load_weights(self.adapted, state.params[1:])
        velocity = decode_velocity(
            self.decoder, self.model.config, state.params[0], state.moving, state.fixed
        )
        obj = self.objective.per_pair(
            velocity, state.params[0], state.moving, state.fixed, state.logvar, state.mask
        )
        return obj, velocity


def _optimise(
    step: _Step, state: _Active, best: _Best, steps: int, tol: float, patience: int
) -> None:
    """At most ``steps`` Adam steps of the active pairs, each evaluation recorded in
    ``best``; pairs leave ``state`` when they stop (:func:`_stopping`)."""
    for t in range(steps + 1):
        with torch.set_grad_enabled(t < steps):
            obj, velocity = step.evaluate(state)
            total = obj.sum()  # Σ_i J_i: each pair's gradient is its own
        best.record(t, state.index, obj.detach(), velocity.detach(), state.params[0].detach())
        if t == steps:
            break
        stop = _stopping(best.history, t, state.index, obj.detach(), tol, patience)
        if bool(stop.all()):
            break
        grads = list(torch.autograd.grad(total, state.params))
        if bool(stop.any()):
            grads = state.keep(~stop, grads)
        state.adam_step(grads, t + 1)


def _load_weights(adapted: list[_PairwiseConv], tensors: list[torch.Tensor]) -> None:
    """Hand the per-pair weight (and bias) rows to the adapted layers (empty: release)."""
    it = iter(tensors)
    for layer in adapted:
        layer.weight_n = next(it, None)
        layer.bias_n = next(it, None) if layer.conv.bias is not None else None


class _Best:
    """Each pair's best objective so far, with its code and velocity."""

    def __init__(self, z0: torch.Tensor, size: Sequence[int], steps: int) -> None:
        n = z0.shape[0]
        self.z = z0.detach().clone()
        self.velocity = z0.new_zeros((n, len(size), *size))
        self.objective = z0.new_full((n,), math.inf)
        self.history = z0.new_full((steps + 1, n), math.nan)
        self.steps = torch.zeros(n, dtype=torch.long, device=z0.device)
        self.last = 0

    def record(
        self,
        t: int,
        index: torch.Tensor,
        obj: torch.Tensor,
        velocity: torch.Tensor,
        z: torch.Tensor,
    ) -> None:
        """Take evaluation ``t`` of the active pairs ``index``."""
        better = obj < self.objective[index]
        if t == 0:  # the start always counts, even when not finite
            better = torch.ones_like(better)
        rows = index[better]
        self.objective[rows] = obj[better]
        self.z[rows] = z[better]
        self.velocity[rows] = velocity[better]
        self.history[t] = self.objective
        self.steps[index] = t
        self.last = t

    def result(self, seconds: float) -> RefineResult:
        return RefineResult(
            z=self.z,
            velocity=self.velocity,
            objective=self.history[: self.last + 1],
            steps=self.steps,
            seconds=seconds,
        )
