"""Our method: registration with a trained CVAE in one forward pass (``z = μ``),
optionally followed by a per-pair refinement of the code (:mod:`.refine`) and of
the velocity by a smooth residual (:mod:`.field_refine`)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

import torch

from ..core.layers import evaluating
from ..data.pair import Pair
from ..errors import InputError
from ..models.cvae import CVAERegistration
from ..models.inference import inference_copy
from ..training.adapt import Adaptation
from ..training.config import TrainConfig
from .adaptation import adapt_registrar, check_adapt
from .base import RegistrationResult, result_from_velocity
from .field_refine import (
    DEFAULT_FIELD_BLUR,
    DEFAULT_FIELD_GRID,
    DEFAULT_FIELD_LR,
    DEFAULT_FIELD_SMOOTH,
    FieldRefineResult,
    refine_field,
)
from .refine import (
    DEFAULT_DECODER_LR,
    DEFAULT_LR,
    DEFAULT_PATIENCE,
    DEFAULT_TOL,
    MAX_ADAPTED_LAYERS,
    Objective,
    RefineResult,
    refine_codes,
)
from .registry import MethodSpec, add_method

__all__ = ["REFINE_OPTIONS", "CVAERegistrar"]

REFINE_OPTIONS: dict[str, Any] = {
    "refine": 0,
    "refine_lr": DEFAULT_LR,
    "refine_tol": DEFAULT_TOL,
    "refine_patience": DEFAULT_PATIENCE,
    "adapt_decoder": 0,
    "refine_decoder_lr": DEFAULT_DECODER_LR,
    "refine_field": 0,
    "field_lr": DEFAULT_FIELD_LR,
    "field_smooth": DEFAULT_FIELD_SMOOTH,
    "field_grid": DEFAULT_FIELD_GRID,
    "field_blur": DEFAULT_FIELD_BLUR,
}
"""The refinement options of :class:`CVAERegistrar` (and of the ``ours`` spec) and
their built-in defaults."""


def _check_options(options: dict[str, Any]) -> None:
    """Refuse refinement (and exponentiation) options of the wrong type or out of range
    (one-line InputError)."""
    positive = ("refine_patience", "field_grid", "exp_downsize")
    for name in ("refine", "adapt_decoder", "refine_field", *positive):
        value, low = options[name], 1 if name in positive else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"ours: {name} must be an int >= {low}, got {value!r}")
    if options["adapt_decoder"] > MAX_ADAPTED_LAYERS:
        raise InputError(
            f"ours: adapt_decoder must be 0..{MAX_ADAPTED_LAYERS} (the decoder's "
            f"convolutions, from the output), got {options['adapt_decoder']}"
        )
    numbers = ("refine_lr", "refine_tol", "refine_decoder_lr", "field_lr", "field_smooth")
    for name in (*numbers, "field_blur"):
        value, strict = options[name], name not in ("refine_tol", "field_smooth", "field_blur")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and (value > 0 if strict else value >= 0)):
            bound = "> 0" if strict else ">= 0"
            raise InputError(f"ours: {name} must be a finite number {bound}, got {value!r}")


class CVAERegistrar:
    """The CVAE of a trained run as a registration method.

    Args:
        model: a trained :class:`~structreg.models.cvae.CVAERegistration` (its
            device is where registration runs).
        batch_size: pairs per forward pass (and per refinement batch).
        refine: the most Adam steps of the per-pair refinement of ``z``
            (:func:`~structreg.methods.refine.refine_codes`); 0 (default): the
            plain one-pass registration ``z = μ``.
        refine_lr: Adam step size of the codes.
        refine_tol, refine_patience: a pair stops early when its objective
            improved by less than ``refine_tol`` (relative) over
            ``refine_patience`` steps (``refine_tol = 0``: never early).
        adapt_decoder: how many of the decoder's last convolutions are also
            adapted per pair (0..4; 1 = the layer producing ``v``); the model
            itself is never modified.
        refine_decoder_lr: Adam step size of those weights.
        refine_field: then refine each pair's velocity by a smooth coarse residual
            for this many Adam steps (:func:`~structreg.methods.field_refine.refine_field`;
            0, the default: off; 40 in the docs' benchmarks).
        field_lr, field_smooth, field_grid, field_blur: that stage's step size
            (voxels), the weight of the residual's squared gradient, its grid's
            coarsening and the Gaussian width (voxels) of the images in its first half
            (0: none).
        train: the run's training settings, whose λ, KL weight, mask weight and
            LCC window make the refinement objective (None: ``TrainConfig``
            defaults).
        spacing: mm per voxel of the grid the model was trained on (its size is
            ``model.config.image_size``): images are brought onto this grid before
            they are registered (None: unknown; file pipelines then need it given).
        adapt: fine-tune a copy of the model on the cohort first, at most this many
            steps (:meth:`prepare`; 0: no adaptation).
        source: the model's file or run folder (what an adaptation starts from).
        exp_downsize: ``exp(±v)`` of the result by scaling and squaring on a grid this
            many times coarser (1, the default: the model's grid, exact; 2 is about
            ``2**ndim`` times less work for the exponentiation, as VoxelMorph-2 does; an
            approximation, measured in docs/results/speed.md).

    The defaults are :data:`REFINE_OPTIONS`'. After a refining :meth:`register`,
    :attr:`last_refinement` holds its :class:`~structreg.methods.refine.RefineResult`
    and :attr:`last_field_refinement` its
    :class:`~structreg.methods.field_refine.FieldRefineResult`.
    """

    name = "ours"

    def __init__(
        self,
        model: CVAERegistration,
        batch_size: int = 64,
        *,
        refine: int = REFINE_OPTIONS["refine"],
        refine_lr: float = REFINE_OPTIONS["refine_lr"],
        refine_tol: float = REFINE_OPTIONS["refine_tol"],
        refine_patience: int = REFINE_OPTIONS["refine_patience"],
        adapt_decoder: int = REFINE_OPTIONS["adapt_decoder"],
        refine_decoder_lr: float = REFINE_OPTIONS["refine_decoder_lr"],
        refine_field: int = REFINE_OPTIONS["refine_field"],
        field_lr: float = REFINE_OPTIONS["field_lr"],
        field_smooth: float = REFINE_OPTIONS["field_smooth"],
        field_grid: int = REFINE_OPTIONS["field_grid"],
        field_blur: float = REFINE_OPTIONS["field_blur"],
        train: TrainConfig | None = None,
        spacing: tuple[float, ...] | None = None,
        adapt: int = 0,
        source: str | os.PathLike | None = None,
        exp_downsize: int = 1,
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.adapt = check_adapt("ours", adapt, source)
        self.source = source
        self.last_adaptation: Adaptation | None = None
        self.spacing = None if spacing is None else tuple(float(s) for s in spacing)
        _check_options(
            {
                "refine": refine,
                "refine_lr": refine_lr,
                "refine_tol": refine_tol,
                "refine_patience": refine_patience,
                "adapt_decoder": adapt_decoder,
                "refine_decoder_lr": refine_decoder_lr,
                "refine_field": refine_field,
                "field_lr": field_lr,
                "field_smooth": field_smooth,
                "field_grid": field_grid,
                "field_blur": field_blur,
                "exp_downsize": exp_downsize,
            }
        )
        self.exp_downsize = exp_downsize
        self.refine = refine
        self.refine_lr = float(refine_lr)
        self.refine_tol = float(refine_tol)
        self.refine_patience = refine_patience
        self.adapt_decoder = adapt_decoder
        self.refine_decoder_lr = float(refine_decoder_lr)
        self.refine_field = refine_field
        self.field_lr = float(field_lr)
        self.field_smooth = float(field_smooth)
        self.field_grid = field_grid
        self.field_blur = float(field_blur)
        self.train = train
        self.last_refinement: RefineResult | None = None
        self.last_field_refinement: FieldRefineResult | None = None

    def prepare(self, pairs: Sequence[Pair]) -> bool:
        """With ``adapt > 0``: fine-tune a copy of the model on ``pairs`` (the cohort about
        to be registered; no labels) and register with it from now on. Returns whether
        it adapted; :attr:`last_adaptation` holds what it did."""
        return adapt_registrar(self, pairs, "ours")

    def register(
        self, moving: torch.Tensor, fixed: torch.Tensor, *, mask: torch.Tensor | None = None
    ) -> RegistrationResult:
        """Register in one forward pass per ``batch_size`` pairs (``z = μ``, eval mode),
        then, with ``refine > 0``, refine each pair's code on the training objective,
        then, with ``refine_field > 0``, each pair's velocity by a smooth residual.

        Args:
            moving, fixed: ``(N, 1, *S)`` images on the model's grid
                (``S = image_size``), intensities normalised like the training data.
            mask: ``(N, 1, *S)`` regions where motion is allowed: used only by the
                code refinement, and only when the run was trained with a mask penalty
                (``train.mask_weight > 0``); the network needs none.
        Returns:
            :class:`RegistrationResult` with ``moved``, ``disp = exp(v)``,
            ``inverse_disp = exp(-v)``, ``velocity``, ``jacobian_det`` and ``z`` (μ,
            or the refined code); ``seconds`` includes the refinements.
        """
        t0 = time.perf_counter()
        model = self.model
        device = next(model.parameters()).device
        moving, fixed = moving.to(device), fixed.to(device)
        with evaluating(model):
            if self.refine:
                velocity, z = self._refined_codes(moving, fixed, mask)
            else:
                velocity, z = self._one_pass(moving, fixed)
            if self.refine_field:
                velocity = self._refined_field(moving, fixed, velocity)
            result = result_from_velocity(
                moving, velocity, steps=model.config.steps, z=z, exp_downsize=self.exp_downsize
            )
        if self.refine:
            assert self.last_refinement is not None
            result.iterations = self.last_refinement.steps
        result.seconds = time.perf_counter() - t0
        return result

    @torch.no_grad()
    def _one_pass(
        self, moving: torch.Tensor, fixed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(velocity (N, ndim, *S) in voxels, z = μ (N, d))`` in forward passes of
        ``batch_size`` pairs, on the batch-norm-folded inference copy (cached; see
        :mod:`structreg.models.inference`): the same result up to rounding, fewer passes."""
        net = inference_copy(self.model)
        velocities, codes = [], []
        for start in range(0, moving.shape[0], self.batch_size):
            m, f = moving[start : start + self.batch_size], fixed[start : start + self.batch_size]
            mu, _ = net.encode(m, f)
            velocities.append(net.decode(mu, m, f))
            codes.append(mu)
        return torch.cat(velocities), torch.cat(codes)

    def _refined_codes(
        self, moving: torch.Tensor, fixed: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode, then refine the codes (:func:`refine_codes`) per ``batch_size`` pairs:
        ``(velocity, z)`` of the best codes; :attr:`last_refinement` is set."""
        model = self.model
        objective = Objective.from_train(self.train, model.config.steps)
        if mask is not None and objective.mask_weight > 0:
            mask = mask.to(moving.device).expand(moving.shape[0], *mask.shape[1:])
        else:
            mask = None
        net = inference_copy(model)
        refined = []
        for start in range(0, moving.shape[0], self.batch_size):
            rows = slice(start, start + self.batch_size)
            m, f = moving[rows], fixed[rows]
            with torch.no_grad():
                mu, logvar = net.encode(m, f)
            refined.append(
                refine_codes(
                    model,
                    m,
                    f,
                    mu,
                    steps=self.refine,
                    objective=objective,
                    logvar=logvar,
                    mask=None if mask is None else mask[rows],
                    lr=self.refine_lr,
                    tol=self.refine_tol,
                    patience=self.refine_patience,
                    adapt_decoder=self.adapt_decoder,
                    decoder_lr=self.refine_decoder_lr,
                )
            )
        self.last_refinement = RefineResult.cat(refined)
        return self.last_refinement.velocity, self.last_refinement.z

    def _refined_field(
        self, moving: torch.Tensor, fixed: torch.Tensor, velocity: torch.Tensor
    ) -> torch.Tensor:
        """``velocity`` refined by a smooth residual (:func:`refine_field`, the run's LCC
        window and the model's squarings); :attr:`last_field_refinement` is set."""
        objective = Objective.from_train(self.train, self.model.config.steps)
        self.last_field_refinement = refine_field(
            moving,
            fixed,
            velocity,
            steps=self.refine_field,
            lr=self.field_lr,
            smooth=self.field_smooth,
            grid=self.field_grid,
            blur=self.field_blur,
            squarings=self.model.config.steps,
            sigma=objective.sigma,
            kernel_size=objective.kernel_size,
        )
        return self.last_field_refinement.velocity


@add_method(
    "ours",
    "the structured-encoding CVAE of a trained run: ours:RUN_DIR; options: refine=STEPS "
    "(per-pair Adam refinement of z on the training objective, default 0 = off), "
    "adapt_decoder=K (also adapt the decoder's last K convolutions per pair, 0..4), "
    f"refine_lr (default {DEFAULT_LR:g}), refine_tol (default {DEFAULT_TOL:g}), "
    f"refine_patience (default {DEFAULT_PATIENCE}), refine_decoder_lr "
    f"(default {DEFAULT_DECODER_LR:g}), refine_field=STEPS (then refine the velocity "
    "per pair by a smooth residual on a coarse grid, default 0 = off; field_lr, "
    f"default {DEFAULT_FIELD_LR:g}; field_smooth, default {DEFAULT_FIELD_SMOOTH:g}; "
    f"field_grid, default {DEFAULT_FIELD_GRID}; field_blur, default {DEFAULT_FIELD_BLUR:g}), "
    "adapt=STEPS (first fine-tune a copy of the model "
    "on the cohort to register, no labels, stopping when the objective stops improving; "
    "default 0 = off), exp_downsize=K (exp(v) on a K times coarser grid, default 1), "
    "e.g. ours:RUN,refine=50,adapt_decoder=1",
)
def _build(spec: MethodSpec, device: str) -> CVAERegistrar:
    from ..training.checkpoint import load_model
    from ..training.run import model_spacing

    path = spec.require_target()
    model, run = load_model(path, device, method="ours")
    options = spec.converted({"batch_size": 64, "adapt": 0, "exp_downsize": 1, **REFINE_OPTIONS})
    spacing = model_spacing(path)
    return CVAERegistrar(model, **options, train=run.train, spacing=spacing, source=path)
