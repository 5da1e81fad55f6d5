"""What the training engine trains: one :class:`TrainingTask` per trainable method.

A task builds its network from the run's ``[model]`` settings, makes its
optimiser, takes one optimisation step on a batch and scores a batch without
gradients (for validation). The engine (:mod:`structreg.training.engine`) does
everything else - data order, validation, checkpoints, logging, resume - the
same way for every method.

Our objective (Eq. 1 of the paper, per batch)::

    total = lam · (1 − LCC_sym) + kl_weight · KL + mask_weight · P

* ``LCC_sym = symmetric_lcc(F, M, v)``: squared local correlation of
  ``F ∘ exp(−v/2)`` and ``M ∘ exp(v/2)`` (Gaussian window σ = 2, k = 9), averaged
  over pixels and batch - a number in [0, 1], 1 = perfect local match.
* ``KL``: closed-form ``KL(q(z|M,F) || N(0, I))`` **summed over the d latent
  dimensions and averaged over the batch**, in nats.
* ``P``: mean squared velocity (voxels²) outside the pair's mask (0 unless
  ``mask_weight > 0``; the velocity rather than ``exp(v)`` is penalised, which
  costs no extra exponentiation and vanishes exactly where ``exp(v)`` does).

Scale of the terms (the λ / KL decision). With these reductions and the
paper's λ (cardiac 82, brain 55), one nat of code information must buy 1/λ ≈
0.012 of pixel-mean LCC. That is too expensive: the optimiser switches the code
off (posterior collapse) and the decoder, conditioned on M, predicts roughly one
mean deformation per anatomy. So the default is ``kl_weight = 0.01``, about 1/d:
in effect the KL *averaged* over the latent dimensions (``K.mean`` over the last
axis, a common Keras idiom; the paper's code is not available to check which
reduction it used). That is a reading under which the paper's λ keeps an
informative code, as its transport and clustering experiments need. Raise β
towards 0.1 for a code closer to N(0, I) (sampling, transport), lower it for
closer registration.

VoxelMorph-2's objective is its package's: ``-NCC(F, M∘φ) + λ_smooth · mean ‖∇u‖²``
(:func:`structreg.models.voxelmorph.voxelmorph_loss`), Adam without weight decay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import torch
from torch import nn

from ..core.layers import set_training
from ..core.losses import forward_lcc, kl_divergence, outside_mask_penalty, symmetric_lcc
from ..errors import InputError, NonFiniteError
from ..models.cvae import CVAERegistration
from ..models.voxelmorph import VoxelMorph2, voxelmorph_loss, voxelmorph_loss_of
from .config import TrainConfig

__all__ = [
    "CVAETask",
    "LossParts",
    "NetworkTask",
    "TASKS",
    "TrainingTask",
    "VoxelMorphTask",
    "registration_loss",
    "task_for",
    "train_step",
    "autocast",
    "descend",
    "identical_count",
    "with_identical_pairs",
]


class TrainingTask(Protocol):
    """One trainable method, as the engine sees it.

    Attributes:
        method: the method's name (``"ours"``, ``"voxelmorph"``).
        terms: the loss terms logged next to the total, as log columns
            (validation logs ``val_loss`` and ``val_<term>`` for :attr:`val_terms`).
        val_terms: the terms :meth:`evaluate` returns besides ``loss``.
    """

    method: str
    terms: tuple[str, ...]
    val_terms: tuple[str, ...]

    def build(self, config: Any) -> nn.Module:
        """The untrained network of the run's ``[model]`` settings."""
        ...

    def optimizer(self, model: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
        """The optimiser of ``model``."""
        ...

    def batch_keys(self, train: TrainConfig) -> tuple[str, ...]:
        """The collated data keys a training batch needs."""
        ...

    def training_module(
        self, model: nn.Module, train: TrainConfig, shard: tuple[int, int] = (0, 1)
    ) -> nn.Module:
        """The module whose ``forward`` a training step runs: the network's part of
        the step, under the config's precision (the engine wraps it in
        DistributedDataParallel and ``torch.compile`` when asked). ``shard = (rank,
        world)``: its batches are rank's share of a global batch."""
        ...

    def train_step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batch: dict[str, torch.Tensor],
        train: TrainConfig,
        noise: torch.Generator,
        net: nn.Module | None = None,
    ) -> dict[str, float]:
        """One optimisation step (the forward through ``net``, by default
        :meth:`training_module` of ``model``); returns ``total`` and each of :attr:`terms`."""
        ...

    def evaluate(
        self,
        model: nn.Module,
        moving: torch.Tensor,
        fixed: torch.Tensor,
        mask: torch.Tensor | None,
        train: TrainConfig,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Deterministic registration of a batch in eval mode, without gradients:
        ``(disp (N, ndim, *S) in voxels, {"loss": ..., term: ...})`` (batch means)."""
        ...


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context of ``precision`` (``"bfloat16"``: bf16 autocast; else off)."""
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"
    )


class VelocitySampler(nn.Module):
    """Our CVAE's training forward: ``(moving, fixed, generator)`` ->
    ``(mu, logvar, velocity)`` (float32) with ``z`` drawn by the reparameterisation
    trick; the encoder and decoder run under the precision's autocast."""

    def __init__(
        self, model: CVAERegistration, precision: str = "float32", shard: tuple[int, int] = (0, 1)
    ):
        super().__init__()
        self.model = model
        self.precision = precision
        self.shard = shard

    def forward(
        self, moving: torch.Tensor, fixed: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with autocast(moving.device, self.precision):
            mu, logvar, _, velocity = self.model.sample_velocity(
                moving, fixed, True, generator, self.shard
            )
        return mu.float(), logvar.float(), velocity.float()


class DisplacementPredictor(nn.Module):
    """VoxelMorph-2's training forward: ``(moving, fixed)`` -> displacement (float32),
    the U-Net under the precision's autocast."""

    def __init__(self, model: VoxelMorph2, precision: str = "float32"):
        super().__init__()
        self.model = model
        self.precision = precision

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        with autocast(moving.device, self.precision):
            disp = self.model(moving, fixed)
        return disp.float()


@dataclass
class LossParts:
    """Terms of our training loss (0-d tensors).

    Attributes:
        total: the optimised loss.
        lcc: mean symmetric LCC (similarity in [0, 1], higher is better).
        kl: KL divergence in nats per pair (summed over latent dims).
        penalty: outside-mask penalty in voxels² (0 when unused).
    """

    total: torch.Tensor
    lcc: torch.Tensor
    kl: torch.Tensor
    penalty: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """The terms as Python floats."""
        return {k: float(getattr(self, k).detach()) for k in ("total", "lcc", "kl", "penalty")}


def registration_loss(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    velocity: torch.Tensor,
    moving: torch.Tensor,
    fixed: torch.Tensor,
    *,
    lam: float,
    kl_weight: float = 1.0,
    mask: torch.Tensor | None = None,
    mask_weight: float = 0.0,
    steps: int = 4,
    sigma: float = 2.0,
    kernel_size: int = 9,
    symmetric: bool = True,
) -> LossParts:
    """Eq. 1: ``lam · (1 − LCC_sym) + kl_weight · KL + mask_weight · P``.

    Args:
        mu, logvar: ``(N, d)`` posterior parameters.
        velocity: ``(N, ndim, *S)`` in voxels (``M ∘ exp(v) ≈ F``).
        moving, fixed: ``(N, C, *S)``.
        mask: ``(N, 1, *S)`` region where motion is allowed (needed when
            ``mask_weight > 0``).
        steps: squarings used for the half transforms ``exp(±v/2)``.
        symmetric: the symmetric LCC (Eq. 2), else the one-sided ``LCC(F, M ∘ exp(v))``
            (``train.lcc_symmetric``).
    """
    similarity = (symmetric_lcc if symmetric else forward_lcc)(
        fixed, moving, velocity, steps=steps, sigma=sigma, kernel_size=kernel_size
    )
    kl = kl_divergence(mu, logvar, reduction="mean")
    if mask_weight > 0:
        if mask is None:
            raise InputError(
                "registration_loss: mask_weight > 0 needs masks in the data "
                "(set train.mask_weight=0 or provide masks)"
            )
        penalty = outside_mask_penalty(velocity, mask)
    else:
        penalty = velocity.new_zeros(())
    total = lam * (1.0 - similarity) + kl_weight * kl + mask_weight * penalty
    return LossParts(total=total, lcc=similarity, kl=kl, penalty=penalty)


def _loss_of(
    model: CVAERegistration,
    outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    moving: torch.Tensor,
    fixed: torch.Tensor,
    mask: torch.Tensor | None,
    config: TrainConfig,
    mask_weight: float,
) -> LossParts:
    """:func:`registration_loss` of the network's ``(mu, logvar, velocity)`` with the
    run's settings (``mask_weight`` as the caller decides)."""
    mu, logvar, velocity = outputs
    return registration_loss(
        mu,
        logvar,
        velocity,
        moving,
        fixed,
        lam=config.lam,
        kl_weight=config.kl_weight,
        mask=mask,
        mask_weight=mask_weight,
        steps=model.config.steps,
        sigma=config.lcc_sigma,
        kernel_size=config.lcc_kernel,
        symmetric=config.lcc_symmetric,
    )


def train_step(
    model: CVAERegistration,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    config: TrainConfig,
    generator: torch.Generator | None = None,
    net: nn.Module | None = None,
) -> LossParts:
    """One optimisation step of our CVAE on ``batch`` (``moving``, ``fixed``, optional
    ``mask``), with ``z`` sampled by the reparameterisation trick from ``generator``.
    The network runs through ``net`` (a :class:`VelocitySampler` of ``model``, possibly
    wrapped by DDP or ``torch.compile``; default: one made here)."""
    net = VelocitySampler(model, config.precision) if net is None else net
    set_training(net, config.frozen_norm)
    outputs = net(batch["moving"], batch["fixed"], generator)
    moving, fixed, mask = batch["moving"], batch["fixed"], batch.get("mask")
    try:
        parts = _loss_of(model, outputs, moving, fixed, mask, config, config.mask_weight)
    except NonFiniteError:
        if not _data_parallel():
            raise
        nan = _nan_loss(*outputs)
        parts = LossParts(total=nan, lcc=nan.detach(), kl=nan.detach(), penalty=nan.detach())
    descend(optimizer, parts.total)
    return parts


def _data_parallel() -> bool:
    """True inside a multi-process (DDP) training."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _nan_loss(*outputs: torch.Tensor) -> torch.Tensor:
    """A NaN loss joined to every output of the network, for a rank whose loss an op
    refused (NaN/Inf): its backward still takes part in DDP's gradient all-reduce, so
    the other ranks do not wait for it, and the averaged gradients become NaN on every
    rank alike."""
    total = outputs[0].float().sum()
    for output in outputs[1:]:
        total = total + output.float().sum()
    return total * math.nan


def _step_if_finite(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``, skipped under DDP when a gradient is not finite.

    The gradients are all-reduced, hence equal on every rank, so every rank takes the
    same decision and the weights stay equal; the engine then stops all ranks alike
    (the averaged loss is not finite). One process steps unconditionally (its engine
    stops on the loss)."""
    if _data_parallel():
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
        if not all(g is None or bool(torch.isfinite(g).all()) for g in grads):
            return
    optimizer.step()


def descend(optimizer: torch.optim.Optimizer, total: torch.Tensor) -> None:
    """One gradient step on the 0-d loss ``total``: zero the gradients, backpropagate,
    step (skipped under DDP when a gradient is not finite, see :func:`_step_if_finite`)."""
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    _step_if_finite(optimizer)


def identical_count(batch_size: int, rate: float) -> int:
    """Pairs of a batch of ``batch_size`` made identical at ``rate`` (``round(rate · N)``,
    halves to even)."""
    return int(round(rate * batch_size))


def with_identical_pairs(
    batch: dict[str, torch.Tensor],
    rate: float,
    noise_std: float = 0.0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """``batch`` with its first :func:`identical_count` pairs made identical pairs.

    For those pairs the fixed image becomes a copy of the moving image (plus Gaussian
    intensity noise of standard deviation ``noise_std`` drawn on the CPU from
    ``generator``, when ``noise_std > 0``), and ``fixed_labels`` (when present)
    a copy of ``moving_labels``; ``mask`` and every other entry are kept (the mask
    is the moving image's region). The batch order is random already (the engine
    shuffles), so the first pairs are a random subset. ``rate = 0`` returns
    ``batch`` itself, untouched.

    Args:
        batch: ``moving`` and ``fixed`` ``(N, C, *S)``, optional ``moving_labels``
            and ``fixed_labels`` ``(N, 1, *S)``.
        rate: fraction of the batch in [0, 1].
        noise_std: intensity noise of the fixed copies (image units).
        generator: the noise's source (CPU generator).
    """
    k = identical_count(int(batch["moving"].shape[0]), rate)
    if k == 0:
        return batch
    out = dict(batch)
    copy = batch["moving"][:k]
    if noise_std > 0:
        noise = torch.randn(copy.shape, generator=generator, dtype=copy.dtype)
        copy = copy + noise_std * noise.to(copy.device)
    out["fixed"] = torch.cat([copy, batch["fixed"][k:]])
    if batch.get("fixed_labels") is not None and batch.get("moving_labels") is not None:
        labels = batch["moving_labels"][:k]
        out["fixed_labels"] = torch.cat([labels, batch["fixed_labels"][k:]])
    return out


NetworkT = TypeVar("NetworkT", bound=nn.Module)


class NetworkTask(Generic[NetworkT]):
    """What the tasks share: the network class built from the run's ``[model]``
    settings, Adam at ``train.lr``, the batch keys ``moving`` and ``fixed``.

    Subclasses set :attr:`method`, :attr:`terms`, :attr:`val_terms` and :attr:`network`
    and implement ``training_module``, ``train_step`` and ``evaluate`` of
    :class:`TrainingTask`.
    """

    method: str
    terms: tuple[str, ...]
    val_terms: tuple[str, ...]
    network: type[NetworkT]

    def build(self, config: Any) -> NetworkT:
        """The untrained network of the run's ``[model]`` settings."""
        return self.network(config)

    def adam_options(self, train: TrainConfig) -> dict[str, Any]:
        """Keyword arguments of Adam besides the learning rate (none here)."""
        return {}

    def optimizer(self, model: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
        """Adam over ``model``'s parameters at ``train.lr`` (with :meth:`adam_options`)."""
        return torch.optim.Adam(model.parameters(), lr=train.lr, **self.adam_options(train))

    def batch_keys(self, train: TrainConfig) -> tuple[str, ...]:
        """The collated data keys a training batch needs."""
        return ("moving", "fixed")

    def network_of(self, model: nn.Module) -> NetworkT:
        """``model``, asserted to be this task's network."""
        assert isinstance(model, self.network)
        return model


class CVAETask(NetworkTask[CVAERegistration]):
    """Our CVAE: Eq. 1, Adam with the config's weight decay."""

    method: str = "ours"
    terms: tuple[str, ...] = ("lcc", "kl", "penalty")
    val_terms: tuple[str, ...] = ("lcc", "kl")
    network = CVAERegistration

    def adam_options(self, train: TrainConfig) -> dict[str, Any]:
        return {"weight_decay": train.weight_decay}

    def batch_keys(self, train: TrainConfig) -> tuple[str, ...]:
        return ("moving", "fixed", "mask") if train.mask_weight > 0 else ("moving", "fixed")

    def training_module(
        self, model: nn.Module, train: TrainConfig, shard: tuple[int, int] = (0, 1)
    ) -> nn.Module:
        return VelocitySampler(self.network_of(model), train.precision, shard)

    def train_step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batch: dict[str, torch.Tensor],
        train: TrainConfig,
        noise: torch.Generator,
        net: nn.Module | None = None,
    ) -> dict[str, float]:
        return train_step(self.network_of(model), optimizer, batch, train, noise, net).as_floats()

    @torch.no_grad()
    def evaluate(
        self,
        model: nn.Module,
        moving: torch.Tensor,
        fixed: torch.Tensor,
        mask: torch.Tensor | None,
        train: TrainConfig,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        cvae = self.network_of(model)
        out = cvae(moving, fixed, sample=False)
        mask_weight = train.mask_weight if mask is not None else 0.0
        outputs = (out.mu, out.logvar, out.velocity)
        parts = _loss_of(cvae, outputs, moving, fixed, mask, train, mask_weight)
        return out.disp, {
            "loss": float(parts.total),
            "lcc": float(parts.lcc),
            "kl": float(parts.kl),
        }


class VoxelMorphTask(NetworkTask[VoxelMorph2]):
    """VoxelMorph-2: its package's NCC + smoothness loss, Adam without weight decay
    (as VoxelMorph trains)."""

    method: str = "voxelmorph"
    terms: tuple[str, ...] = ("ncc", "smooth")
    val_terms: tuple[str, ...] = ("ncc", "smooth")
    network = VoxelMorph2

    def training_module(
        self, model: nn.Module, train: TrainConfig, shard: tuple[int, int] = (0, 1)
    ) -> nn.Module:
        return DisplacementPredictor(self.network_of(model), train.precision)

    def train_step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batch: dict[str, torch.Tensor],
        train: TrainConfig,
        noise: torch.Generator,
        net: nn.Module | None = None,
    ) -> dict[str, float]:
        voxelmorph = self.network_of(model)
        net = self.training_module(voxelmorph, train) if net is None else net
        set_training(net, train.frozen_norm)
        moving, fixed = batch["moving"], batch["fixed"]
        loss, parts, _ = voxelmorph_loss_of(voxelmorph.config, moving, fixed, net(moving, fixed))
        descend(optimizer, loss)
        return {"total": parts["loss"], "ncc": parts["ncc"], "smooth": parts["smooth"]}

    @torch.no_grad()
    def evaluate(
        self,
        model: nn.Module,
        moving: torch.Tensor,
        fixed: torch.Tensor,
        mask: torch.Tensor | None,
        train: TrainConfig,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        _, parts, disp = voxelmorph_loss(self.network_of(model), moving, fixed)
        return disp, parts


TASKS: dict[str, TrainingTask] = {"ours": CVAETask(), "voxelmorph": VoxelMorphTask()}


def task_for(method: str) -> TrainingTask:
    """The :class:`TrainingTask` of a trainable method."""
    if method not in TASKS:
        raise InputError(f"method {method!r} cannot be trained (trainable: {', '.join(TASKS)})")
    return TASKS[method]
