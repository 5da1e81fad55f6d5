"""Our method: registration with a trained CVAE in one forward pass (``z = μ``)."""

from __future__ import annotations

import time

import torch

from ..layers import evaluating
from ..models.cvae import CVAERegistration
from ..models.inference import inference_copy
from .base import RegistrationResult, result_from_velocity
from .registry import MethodSpec, add_method


class CVAERegistrar:
    """The CVAE of a trained run as a registration method.

    Args:
        model: a trained :class:`~structreg.models.cvae.CVAERegistration` (its
            device is where registration runs).
        batch_size: pairs per forward pass.
    """

    name = "ours"

    def __init__(self, model: CVAERegistration, batch_size: int = 64) -> None:
        self.model = model
        self.batch_size = batch_size

    def register(
        self, moving: torch.Tensor, fixed: torch.Tensor, *, mask: torch.Tensor | None = None
    ) -> RegistrationResult:
        """Register in one forward pass per ``batch_size`` pairs (``z = μ``, eval mode).

        Args:
            moving, fixed: ``(N, 1, *S)`` images on the model's grid
                (``S = image_size``), intensities normalised like the training data.
            mask: not used (the network needs none at inference).
        Returns:
            :class:`RegistrationResult` with ``moved``, ``disp = exp(v)``,
            ``inverse_disp = exp(-v)``, ``velocity``, ``jacobian_det`` and ``z`` (μ).
        """
        t0 = time.perf_counter()
        model = self.model
        device = next(model.parameters()).device
        moving, fixed = moving.to(device), fixed.to(device)
        with evaluating(model):
            # same network with batch norm folded into its convolutions (cached; see
            # structreg.models.inference): identical result up to rounding, fewer passes
            net = inference_copy(model)
            velocities, codes = [], []
            for start in range(0, moving.shape[0], self.batch_size):
                m, f = (
                    moving[start : start + self.batch_size],
                    fixed[start : start + self.batch_size],
                )
                mu, _ = net.encode(m, f)
                velocities.append(net.decode(mu, m))
                codes.append(mu)
            velocity, z = torch.cat(velocities), torch.cat(codes)
            result = result_from_velocity(moving, velocity, steps=model.config.steps, z=z)
        result.seconds = time.perf_counter() - t0
        return result


@add_method("ours", "the structured-encoding CVAE of a trained run: ours:RUN_DIR")
def _build(spec: MethodSpec, device: str) -> CVAERegistrar:
    from ..training.checkpoint import load_model

    path = spec.require_target()
    model, _ = load_model(path, device, method="ours")
    return CVAERegistrar(model, **spec.converted({"batch_size": 64}))
