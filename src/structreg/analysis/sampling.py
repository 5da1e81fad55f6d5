"""Sampling the generative deformation model (Krebs et al. 2018, Fig. 1b).

- :func:`sample_deformations`: codes from the prior ``z ~ N(0, scale² I)`` decoded
  conditioned on one image.
- :func:`posterior_spread`: per-pixel standard deviation of the displacement
  magnitude over ``z ~ q(z | M, F)``, an uncertainty map of a registration.
- :func:`interpolate_codes`: decode codes along the line between two codes
  (e.g. partial contraction between end-diastole and end-systole);
  :func:`interpolate_pair` between "no motion" and a pair's own code
  (:func:`endpoint_codes`).

The ``*_files`` functions read NIfTI images, run these computations on the model
grid and write the results (images on their own grid, figures).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import metrics
from ..core.layers import evaluating
from ..data.defaults import DEFAULT_SPACING
from ..errors import InputError
from ..methods.base import RegistrationResult
from ..models.cvae import CVAERegistration
from .prior import AggregatePrior
from .transport import PreparedImage, as_batch, decode_code


def sample_deformations(
    model: CVAERegistration,
    moving: torch.Tensor,
    n: int,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
    prior: AggregatePrior | None = None,
) -> RegistrationResult:
    """Decode ``n`` codes ``z ~ N(0, scale² I)``, or ``z`` from an aggregate ``prior``
    (``mean + scale · (z' − mean)``, ``z' ~ N(mean, cov)``), conditioned on one image.

    Args:
        model: a :class:`structreg.models.cvae.CVAERegistration` (eval mode is used).
        moving: ``(1, 1, *S)`` or ``(1, *S)`` image on the model grid.
        n: number of samples (>= 1).
        scale: spread of the codes about the prior's mean (1: the prior itself).
        generator: CPU generator for reproducible draws.
        prior: the aggregate posterior of the training codes
            (:mod:`structreg.analysis.prior`); None: ``N(0, I)``.
    Returns:
        :class:`RegistrationResult` with ``n`` entries (``moved``, ``disp``,
        ``jacobian_det``, ``z`` the codes drawn).
    """
    moving = as_batch(moving, "moving")
    if moving.shape[0] != 1:
        raise InputError(f"sample_deformations: give one moving image, got {moving.shape[0]}")
    if int(n) < 1:
        raise InputError(f"number of samples must be >= 1, got {n}")
    if not (float(scale) >= 0 and np.isfinite(scale)):
        raise InputError(f"scale must be a finite number >= 0, got {scale}")
    _check_decoding_fits(model, moving, int(n), "samples (--n)")
    if prior is None:
        z = torch.randn(int(n), model.config.code_dim, generator=generator) * float(scale)
    else:
        if prior.code_dim != model.config.code_dim:
            raise InputError(
                f"a prior of {prior.code_dim}-entry codes for a model of {model.config.code_dim}"
            )
        mean = torch.from_numpy(prior.mean).float()[None]
        z = mean + float(scale) * (prior.sample(int(n), generator) - mean)
    return decode_code(model, z, moving)


def _check_decoding_fits(model: CVAERegistration, moving: torch.Tensor, n: int, what: str) -> None:
    """Refuse (:class:`InputError`) decoding ``n`` codes at once on ``moving``'s grid
    when its outputs alone (codes, velocities, displacements, warped images and
    Jacobians, float32, and the decoder's widest feature map) would not fit in memory."""
    from ..io.files import memory_shortfall

    voxels = float(np.prod(moving.shape[2:], dtype=np.float64))
    ndim = moving.dim() - 2
    per_sample = 4 * (
        model.config.code_dim + voxels * (2 * ndim + 2 + max(model.config.dec_channels))
    )
    short = memory_shortfall(float(n) * per_sample)
    if short is not None:
        raise InputError(f"{n} {what} need {short}; draw fewer")


def posterior_spread(
    model: CVAERegistration,
    moving: torch.Tensor,
    fixed: torch.Tensor,
    n: int = 16,
    generator: torch.Generator | None = None,
    spacing: Sequence[float] | None = None,
) -> torch.Tensor:
    """Per-pixel standard deviation of ``|u(x)|`` over ``n`` codes
    ``z ~ q(z | M, F) = N(μ, σ²)``: where the registration is uncertain.

    Args:
        moving, fixed: ``(N, 1, *S)`` images on the model grid.
        n: samples per pair (>= 2).
        spacing: the grid's voxel spacing (mm per axis): ``|u|`` in mm; None: voxels.
    Returns:
        ``(N, 1, *S)`` tensor (CPU).
    """
    moving, fixed = as_batch(moving, "moving"), as_batch(fixed, "fixed")
    if int(n) < 2:
        raise InputError(f"posterior_spread needs n >= 2 samples, got {n}")
    _check_decoding_fits(model, moving, int(n), "posterior samples (--posterior-samples)")
    device = next(model.parameters()).device
    with evaluating(model):
        mu, logvar = model.encode(moving.to(device), fixed.to(device))
    maps = []
    for i in range(moving.shape[0]):
        mu_i = mu[i : i + 1].expand(int(n), -1)
        z = model.reparameterize(mu_i, logvar[i : i + 1].expand(int(n), -1), generator)
        res = decode_code(model, z, moving[i : i + 1], fixed[i : i + 1])
        disp = res.disp
        if spacing is not None:
            disp = disp * torch.tensor([float(s) for s in spacing], dtype=disp.dtype).to(
                disp.device
            ).view(1, -1, *([1] * (disp.ndim - 2)))
        magnitude = disp.norm(dim=1, keepdim=True)  # (n, 1, *S)
        maps.append(magnitude.std(dim=0, keepdim=True).cpu())
    return torch.cat(maps)


def interpolate_codes(
    model: CVAERegistration,
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    moving: torch.Tensor,
    steps: int = 5,
) -> tuple[np.ndarray, RegistrationResult]:
    """Decode ``z(t) = (1 - t) z_a + t z_b`` for ``steps`` values of ``t`` in [0, 1]
    conditioned on one image. Returns ``(t, result)`` with ``steps`` entries."""
    if int(steps) < 2:
        raise InputError(f"interpolation needs steps >= 2, got {steps}")
    d = model.config.code_dim
    z_a, z_b = torch.as_tensor(z_a).reshape(-1), torch.as_tensor(z_b).reshape(-1)
    if z_a.numel() != d or z_b.numel() != d:
        raise InputError(f"codes must have {d} entries, got {z_a.numel()} and {z_b.numel()}")
    t = torch.linspace(0.0, 1.0, int(steps), dtype=torch.float32)
    z = (1 - t)[:, None] * z_a.float()[None] + t[:, None] * z_b.float()[None]
    return t.numpy(), decode_code(model, z, as_batch(moving, "moving"))


def endpoint_codes(
    model: CVAERegistration, moving: torch.Tensor, fixed: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The codes (encoder ``μ``, eval mode, on the CPU) of "no motion" and of a pair.

    Args:
        moving, fixed: ``(1, 1, *S)`` or ``(1, *S)`` images on the model grid.
    Returns:
        ``(z_a, z_b)``, each ``(1, code_dim)``: ``z_a`` encodes ``(M, M)`` (the identity
        pair), ``z_b`` encodes ``(M, F)``.
    """
    moving, fixed = as_batch(moving, "moving"), as_batch(fixed, "fixed")
    device = next(model.parameters()).device
    with evaluating(model):
        m = moving.to(device)
        z_a, _ = model.encode(m, m)
        z_b, _ = model.encode(m, fixed.to(device))
    return z_a.cpu(), z_b.cpu()


def interpolate_pair(
    model: CVAERegistration, moving: torch.Tensor, fixed: torch.Tensor, steps: int = 6
) -> tuple[np.ndarray, RegistrationResult]:
    """Decode codes along the line from "no motion" to the pair's own deformation.

    :func:`interpolate_codes` between the :func:`endpoint_codes` of one pair,
    conditioned on ``moving``: ``t = 0`` is (about) the identity, ``t = 1`` the
    registration of the pair.

    Args:
        moving, fixed: ``(1, 1, *S)`` or ``(1, *S)`` images on the model grid.
        steps: values of ``t`` in [0, 1] (>= 2).
    Returns:
        ``(t (steps,), result)`` with ``steps`` entries (moved ``moving``,
        displacements in voxels, Jacobian determinants, codes).
    """
    z_a, z_b = endpoint_codes(model, moving, fixed)
    return interpolate_codes(model, z_a, z_b, as_batch(moving, "moving"), steps)


def write_frames(
    result: RegistrationResult, image: Any, out: Path, pattern: str
) -> tuple[list[str], list[float]]:
    """Write each entry of ``result`` mapped back to the image's own grid as NIfTI.

    Args:
        image: the :class:`~structreg.analysis.transport.PreparedImage` the result
            was decoded on.
        pattern: file name with one ``{}`` for the entry index.
    Returns:
        ``(file names, % det J <= 0 of each entry)``.
    """
    from ..io.nifti import to_file_layout, write_image
    from .transport import to_image_grid

    out.mkdir(parents=True, exist_ok=True)
    files, folding = [], []
    for i in range(result.moved.shape[0]):
        back = to_image_grid(result, i, image)
        name = pattern.format(i)
        write_image(
            out / name, to_file_layout(back["moved"], image.volume), affine=image.volume.affine
        )
        files.append(name)
        folding.append(metrics.folding_percent(back["disp"]))
    return files, folding


def strip_figure(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    out: str | os.PathLike,
    *,
    jacobians: Sequence[np.ndarray | None] | None = None,
    suptitle: str | None = None,
) -> Path:
    """A row of 2-D images (and, when given, a second row of Jacobian maps); volumes
    are shown by their axial middle slice."""
    from matplotlib.figure import Figure

    from ..viz.figures import display_slice, figure_format, save_figure, show_image

    figure_format(out)
    n = len(images)
    rows = 2 if jacobians is not None else 1
    fig = Figure(figsize=(1.8 * n, 2.0 * rows + (0.3 if suptitle else 0)))
    for i, (image, title) in enumerate(zip(images, titles, strict=True)):
        show_image(fig.add_subplot(rows, n, i + 1), np.asarray(image), None, None, title)
    if jacobians is not None:
        for i, det in enumerate(jacobians):
            if det is None:
                fig.add_subplot(rows, n, n + i + 1).set_axis_off()
                continue
            ax = fig.add_subplot(rows, n, n + i + 1)
            shown = display_slice(np.asarray(det))
            ax.imshow(shown, cmap="RdBu_r", vmin=0.0, vmax=2.0, interpolation="nearest")
            ax.set_title(f"det J min {np.min(det):.2f}", fontsize=7)
            ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out)


def interpolation_figure(t: np.ndarray, result: RegistrationResult, out: str | os.PathLike) -> Path:
    """Strip of the moved images along an interpolation, with Jacobian maps."""
    images = [result.moved[i, 0].detach().cpu().numpy() for i in range(len(t))]
    dets = [result.jacobian_det[i, 0].detach().cpu().numpy() for i in range(len(t))]
    return strip_figure(images, [f"t = {v:.2f}" for v in t], out, jacobians=dets)


def sample_files(
    model: CVAERegistration,
    moving_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    n: int,
    *,
    scale: float = 1.0,
    seed: int = 0,
    spacing: Sequence[float] = DEFAULT_SPACING,
    fixed_path: str | os.PathLike | None = None,
    frame: int | None = None,
    posterior_samples: int = 16,
    prior: AggregatePrior | None = None,
) -> dict[str, Any]:
    """Sample ``n`` deformations of a 2-D NIfTI image and write ``sample_000.nii.gz``...
    (the image warped at its own resolution, on its own grid) and ``samples.png``.

    With ``fixed_path`` also the registration uncertainty of the pair:
    ``uncertainty.nii.gz`` (per-pixel std of the displacement magnitude in mm over
    ``posterior_samples`` codes from ``q(z | M, F)``, on the moving image's grid)
    and ``uncertainty.png``. ``prior``: draw from this aggregate prior instead of
    ``N(0, scale² I)`` (:func:`sample_deformations`).
    Returns a summary dict (files, % non-positive Jacobian per sample).
    """
    from .transport import prepare_images

    image = prepare_images(
        model, moving_path, fixed_path, spacing=spacing, pair_id="moving", frame=frame
    )
    generator = torch.Generator().manual_seed(int(seed))
    result = sample_deformations(model, image.processed, n, scale, generator, prior)
    out = Path(out_dir)
    files, folding = write_frames(result, image, out, "sample_{:03d}.nii.gz")
    samples_figure(image.processed, result, prior_label(scale, prior), out / "samples.png")
    files.append("samples.png")
    summary: dict[str, Any] = {"out": str(out), "files": files, metrics.FOLDING: folding}
    if fixed_path is not None:
        spread = posterior_spread(
            model,
            image.processed,
            image.fixed,
            n=posterior_samples,
            generator=torch.Generator().manual_seed(int(seed) + 1),
            spacing=image.record.target_spacing,
        )
        spread_mm = spread[0, 0].numpy().astype(np.float64)
        files += write_uncertainty(spread_mm, image, out)
        summary["uncertainty_max_mm"] = float(spread_mm.max())
    return summary


def prior_label(scale: float, prior: AggregatePrior | None) -> str:
    """How codes were drawn, for titles: ``z ~ N(0, 1² I)`` or the aggregate prior's."""
    if prior is None:
        return f"z ~ N(0, {scale:g}² I)"
    spread = "" if scale == 1 else f", spread × {scale:g}"
    return f"z ~ aggregate posterior of {prior.n_codes} training codes{spread}"


def samples_figure(
    moving: torch.Tensor,
    result: RegistrationResult,
    title: str | float,
    out: str | os.PathLike,
    shown: int = 8,
) -> Path:
    """Strip of the moving image ``(1, 1, *S)`` and the first ``shown`` samples of
    ``result`` (moved images over their Jacobian maps), titled with how the codes were
    drawn (a number: the scale of ``N(0, scale² I)``)."""
    shown = min(result.moved.shape[0], shown)
    images = [moving[0, 0].numpy()] + [result.moved[i, 0].cpu().numpy() for i in range(shown)]
    dets = [None] + [result.jacobian_det[i, 0].cpu().numpy() for i in range(shown)]
    titles = ["moving"] + [f"sample {i}" for i in range(shown)]
    if not isinstance(title, str):
        title = prior_label(float(title), None)
    return strip_figure(images, titles, out, jacobians=dets, suptitle=title)


def write_uncertainty(spread_mm: np.ndarray, image: PreparedImage, out: Path) -> list[str]:
    """Write a posterior spread map as ``uncertainty.nii.gz`` (on the image's own grid)
    and ``uncertainty.png`` (with the moving and fixed images) into ``out``.

    Args:
        spread_mm: ``S`` map on the model grid in mm (:func:`posterior_spread` of the
            pair, with the grid's spacing).
        image: the prepared pair it was computed on.
    Returns:
        The file names written.
    """
    from ..data.preprocess import to_original
    from ..io.nifti import to_file_layout, write_image

    on_image = to_original(spread_mm, image.record, kind="image")
    write_image(
        out / "uncertainty.nii.gz",
        to_file_layout(on_image, image.volume).astype(np.float32),
        affine=image.volume.affine,
    )
    uncertainty_figure(
        image.processed[0, 0].numpy(),
        image.fixed[0, 0].numpy(),
        spread_mm,
        out / "uncertainty.png",
    )
    return ["uncertainty.nii.gz", "uncertainty.png"]


def uncertainty_figure(
    moving: np.ndarray, fixed: np.ndarray, spread_mm: np.ndarray, out: str | os.PathLike
) -> Path:
    """Moving, fixed and the posterior spread map (mm) side by side."""
    from matplotlib.figure import Figure

    from ..viz.figures import display_slice, save_figure, show_image

    fig = Figure(figsize=(6.6, 2.4))
    show_image(fig.add_subplot(1, 3, 1), moving, None, None, "moving")
    show_image(fig.add_subplot(1, 3, 2), fixed, None, None, "fixed")
    ax = fig.add_subplot(1, 3, 3)
    im = ax.imshow(display_slice(spread_mm), cmap="magma", interpolation="nearest")
    ax.set_title("std of |u| over q(z|M,F) (mm)", fontsize=7)
    ax.set_axis_off()
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return save_figure(fig, out)


def interpolate_files(
    model: CVAERegistration,
    moving_path: str | os.PathLike,
    fixed_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    steps: int = 6,
    *,
    spacing: Sequence[float] = DEFAULT_SPACING,
    frame: int | None = None,
) -> dict[str, Any]:
    """Decode codes along the line from "no motion" to the pair's own deformation.

    ``z_a`` is the code of ``(M, M)`` (the identity pair), ``z_b`` that of ``(M, F)``;
    ``z(t) = (1 - t) z_a + t z_b`` is decoded conditioned on ``M`` for ``steps``
    values of ``t`` (e.g. partial contractions between ED and ES). Writes
    ``interpolation_NN.nii.gz`` (``M`` warped, on its own grid) and
    ``interpolation.png``; returns the ``t`` values and % non-positive Jacobian.
    """
    from .transport import prepare_images

    image = prepare_images(
        model, moving_path, fixed_path, spacing=spacing, pair_id="moving", frame=frame
    )
    t, result = interpolate_pair(model, image.processed, image.fixed, steps)
    out = Path(out_dir)
    files, folding = write_frames(result, image, out, "interpolation_{:02d}.nii.gz")
    interpolation_figure(t, result, out / "interpolation.png")
    files.append("interpolation.png")
    return {"out": str(out), "files": files, "t": [float(v) for v in t], metrics.FOLDING: folding}
