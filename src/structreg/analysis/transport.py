"""Deformation transport (Krebs et al. 2018, Fig. 1b and Fig. 4).

The code ``z = μ`` of a source pair ``(M_s, F_s)`` is decoded conditioned on
another image ``M_t``: the decoder adapts the encoded deformation to the target
anatomy; ``exp(v)`` warps ``M_t``. With ``M_t = M_s`` this is ordinary
registration of the source pair.

Also the file side used by ``structreg transport`` and ``structreg sample``:
NIfTI images (2-D slices for a 2-D model, volumes for a 3-D one) are preprocessed to
the model grid exactly as ``structreg register`` does
(:func:`structreg.data.preprocess.preprocess_pair`), and fields found there are mapped
back to the image's own grid.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import metrics
from ..core.layers import evaluating
from ..data.defaults import DEFAULT_SPACING
from ..errors import InputError, TypeCheckError
from ..io.grids import resample_into, same_grid
from ..methods.base import RegistrationResult, result_from_velocity, warp_array
from ..methods.ours import CVAERegistrar
from ..models.cvae import CVAERegistration


def as_batch(image: torch.Tensor, name: str) -> torch.Tensor:
    """Accept ``(C, *S)`` or ``(N, C, *S)``; return ``(N, C, *S)``."""
    if not isinstance(image, torch.Tensor):
        raise TypeCheckError(f"{name} must be a torch.Tensor, got {type(image).__name__}")
    return image[None] if image.dim() == 3 else image


def transport(
    model: CVAERegistration,
    source_moving: torch.Tensor,
    source_fixed: torch.Tensor,
    target_moving: torch.Tensor,
) -> RegistrationResult:
    """Transport the deformation ``source_moving -> source_fixed`` onto ``target_moving``.

    Encodes the source pair (``z = μ``, eval mode), decodes ``z`` conditioned on
    the target image, exponentiates the velocity and warps the target.

    Args:
        model: a :class:`structreg.models.cvae.CVAERegistration`.
        source_moving, source_fixed: ``(N, 1, *S)`` (or ``(1, *S)``) images on the
            model grid.
        target_moving: ``(N, 1, *S)`` images; with one source pair and ``N`` targets
            the source code is applied to every target.
    Returns:
        :class:`RegistrationResult` on the target grid (``z`` = the source codes used).
    """
    sm, sf = as_batch(source_moving, "source_moving"), as_batch(source_fixed, "source_fixed")
    tm = as_batch(target_moving, "target_moving")
    if sm.shape[0] not in (1, tm.shape[0]):
        raise InputError(
            f"transport: {sm.shape[0]} source pairs for {tm.shape[0]} targets "
            "(give one source pair or one per target)"
        )
    device = next(model.parameters()).device
    with evaluating(model):
        mu, _ = model.encode(sm.to(device), sf.to(device))
        z = mu.expand(tm.shape[0], -1) if mu.shape[0] == 1 else mu
        tm = tm.to(device)
        velocity = model.decode(z, tm)
        return result_from_velocity(tm, velocity, steps=model.config.steps, z=z)


def decode_code(
    model: CVAERegistration,
    z: torch.Tensor,
    moving: torch.Tensor,
    fixed: torch.Tensor | None = None,
) -> RegistrationResult:
    """Decode codes ``z (N, code_dim)`` conditioned on ``moving (N, 1, *S)`` (eval mode,
    no gradients) and warp it: the common step of transport, sampling and interpolation.
    ``fixed``: the pair's fixed image where one exists (read by an antisymmetric model
    only, see :meth:`CVAERegistration.decode`)."""
    moving = as_batch(moving, "moving")
    device = next(model.parameters()).device
    with evaluating(model):
        z = z.to(device=device, dtype=moving.dtype)
        moving = moving.to(device)
        if moving.shape[0] == 1 and z.shape[0] > 1:
            moving = moving.expand(z.shape[0], *moving.shape[1:])
        if fixed is not None:
            fixed = as_batch(fixed, "fixed").to(device).expand_as(moving)
        velocity = model.decode(z, moving, fixed)
        return result_from_velocity(moving, velocity, steps=model.config.steps, z=z)


# ---------------------------------------------------------------------------- files


@dataclass
class PreparedImage:
    """A NIfTI image read, and preprocessed to the model grid."""

    volume: Any  # structreg.io.nifti.Volume as read (the model's dimension)
    processed: torch.Tensor  # (1, 1, *size) normalised, on the model grid
    fixed: torch.Tensor  # (1, 1, *size) the partner image preprocessed with it
    record: Any  # structreg.data.preprocess.PreprocessRecord


def _read_image(path: str | os.PathLike, ndim: int, frame: int | None = None) -> Any:
    """Read an image of the model's dimension: a 2-D model takes any 2-D layout
    (``H×W``, ``H×W×1``, ``H×W×1×1``), a 3-D model a volume; anything else is refused."""
    from ..io.nifti import DataError, read_image

    vol = read_image(path, frame=frame)
    if vol.ndim != ndim:
        what = "a single 2-D slice" if ndim == 2 else "a 3-D volume"
        raise DataError(f"{Path(path).name}: shape {vol.shape}: this {ndim}-D model takes {what}")
    return vol


def prepare_images(
    model: CVAERegistration,
    moving_path: str | os.PathLike,
    fixed_path: str | os.PathLike | None = None,
    *,
    spacing: Sequence[float] = DEFAULT_SPACING,
    pair_id: str = "image",
    frame: int | None = None,
) -> PreparedImage:
    """Read a moving image (and optional fixed partner, on any grid: the moving
    image is then resampled into the partner's world grid) and preprocess them to
    the model grid like ``structreg register``."""
    from ..data.preprocess import PreprocessRecord, preprocess_pair

    ndim = len(model.config.image_size)
    moving = _read_image(moving_path, ndim, frame)
    fixed = _read_image(fixed_path, ndim, frame) if fixed_path is not None else moving
    if not same_grid(moving, fixed):  # meet on the fixed grid, in world space
        moving = resample_into(moving, fixed)
    (pair,) = preprocess_pair(
        moving,
        fixed,
        pair_id=pair_id,
        size=tuple(model.config.image_size),
        spacing=tuple(spacing),
        n_slices=None,
    )
    record = PreprocessRecord.from_dict(pair.meta["preprocess"])
    dtype = next(model.parameters()).dtype

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(array))[None, None].to(dtype)

    return PreparedImage(
        volume=moving, processed=tensor(pair.moving), fixed=tensor(pair.fixed), record=record
    )


def to_image_grid(
    result: RegistrationResult, index: int, image: PreparedImage
) -> dict[str, np.ndarray]:
    """Map one result back to the image's own grid: displacement (source voxels),
    the original image warped at its own resolution, and the Jacobian determinant."""
    from ..data.preprocess import to_original

    disp = to_original(
        result.disp[index].detach().cpu().numpy().astype(np.float64), image.record, kind="field"
    ).astype(np.float64)
    moved, det = warp_array(image.volume.data, disp)
    return {"disp": disp, "moved": moved, "jacobian_det": det}


def transport_files(
    model: CVAERegistration,
    source_moving: str | os.PathLike,
    source_fixed: str | os.PathLike,
    target: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    target_fixed: str | os.PathLike | None = None,
    spacing: Sequence[float] = DEFAULT_SPACING,
    frame: int | None = None,
) -> dict[str, Any]:
    """Transport the deformation of a source NIfTI pair onto a target image and write:

    ``transported.nii.gz`` (target warped, original intensities, target grid),
    ``disp.nii.gz`` (ITK/ANTs displacement in mm), ``jacobian_det.nii.gz``,
    ``z.json`` (the source code) and ``transport.png`` (source pair and its own
    registration, target, the target's own registration when ``target_fixed`` is
    given, transported result, Jacobian map).
    Returns a summary dict.
    """
    src = prepare_images(
        model, source_moving, source_fixed, spacing=spacing, pair_id="source", frame=frame
    )
    tgt = prepare_images(
        model, target, target_fixed, spacing=spacing, pair_id="target", frame=frame
    )
    result = transport(model, src.processed, src.fixed, tgt.processed)
    registrar = CVAERegistrar(model)
    own_source = registrar.register(src.processed, src.fixed)
    own_target = registrar.register(tgt.processed, tgt.fixed) if target_fixed is not None else None
    back = to_image_grid(result, 0, tgt)
    out = Path(out_dir)
    files = write_transported(out, back, tgt.volume)
    assert result.z is not None
    sources = {
        "source_moving": str(source_moving),
        "source_fixed": str(source_fixed),
        "target": str(target),
    }
    files.append(write_code(out / "z.json", result.z[0], sources).name)
    transport_figure(src, own_source, tgt, own_target, result, out / "transport.png")
    files.append("transport.png")
    return {"out": str(out), "files": files, metrics.FOLDING: metrics.folding_percent(back["disp"])}


def write_transported(out: Path, back: dict[str, np.ndarray], volume: Any) -> list[str]:
    """Write a result mapped back to an image's grid into ``out`` (created if needed).

    Args:
        back: :func:`to_image_grid` of the result: ``moved`` and ``jacobian_det``
            (``volume.shape``), ``disp`` (``(ndim, *volume.shape)`` in source voxels).
        volume: the :class:`structreg.io.nifti.Volume` whose grid they are on.
    Returns:
        The file names: ``transported.nii.gz`` (the moved image),
        ``disp.nii.gz`` (ITK/ANTs displacement in mm) and ``jacobian_det.nii.gz``.
    """
    from ..io.fields import write_itk_displacement
    from ..io.nifti import to_file_layout, write_image

    out.mkdir(parents=True, exist_ok=True)
    affine = volume.affine
    write_image(out / "transported.nii.gz", to_file_layout(back["moved"], volume), affine=affine)
    write_itk_displacement(out / "disp.nii.gz", back["disp"], affine, layout=volume.layout)
    write_image(
        out / "jacobian_det.nii.gz", to_file_layout(back["jacobian_det"], volume), affine=affine
    )
    return ["transported.nii.gz", "disp.nii.gz", "jacobian_det.nii.gz"]


def write_code(path: Path, z: torch.Tensor, sources: dict[str, str]) -> Path:
    """Write a code ``z`` ``(code_dim,)`` as JSON (atomically): the ``sources`` entries
    (e.g. the files of the pair it encodes) followed by ``"z"``, values rounded to 6
    decimals."""
    from ..io.files import atomic_write_text

    code = [round(float(v), 6) for v in z.cpu()]
    return atomic_write_text(path, json.dumps({**sources, "z": code}, indent=1))


def transport_figure(
    src: PreparedImage,
    own_source: RegistrationResult,
    tgt: PreparedImage,
    own_target: RegistrationResult | None,
    transported: RegistrationResult,
    out: str | os.PathLike,
) -> Path:
    """One row per image set, on the model grid: source moving, source fixed, source
    registered; target, target fixed and its own registration (when known),
    transported result and its Jacobian determinant."""
    from matplotlib.figure import Figure

    from ..viz.figures import display_slice, save_figure, show_image

    def img(t: torch.Tensor) -> np.ndarray:
        return t[0, 0].detach().cpu().numpy()

    panels = [
        (img(src.processed), "source moving"),
        (img(src.fixed), "source fixed"),
        (img(own_source.moved), "source registered"),
        (img(tgt.processed), "target"),
    ]
    if own_target is not None:
        panels += [
            (img(tgt.fixed), "target fixed"),
            (img(own_target.moved), "target: own deformation"),
        ]
    panels += [(img(transported.moved), "target: transported deformation")]
    n = len(panels) + 1
    fig = Figure(figsize=(2.0 * n, 2.3))
    for i, (data, title) in enumerate(panels):
        show_image(fig.add_subplot(1, n, i + 1), data, None, None, title)
    ax = fig.add_subplot(1, n, n)
    det = transported.jacobian_det[0, 0].detach().cpu().numpy()
    im = ax.imshow(display_slice(det), cmap="RdBu_r", vmin=0.0, vmax=2.0, interpolation="nearest")
    ax.set_title(f"det J (min {det.min():.2f})", fontsize=7)
    ax.set_axis_off()
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return save_figure(fig, out)
