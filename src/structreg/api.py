"""The front door: register two images, adapt a model to a cohort, evaluate methods.

Everything here takes what a notebook holds - NumPy arrays (with their spacing in mm),
nibabel images, or paths of image files - in 2-D or 3-D, of any size and dtype::

    import structreg
    r = structreg.register(moving, fixed, model="builtin:cardiac", spacing=(1.5, 1.5))
    r.moved, r.displacement, r.jacobian, r.code

Images are brought onto the model's grid (resampled, cropped or padded, intensities
normalised) and the result is mapped back onto the fixed image's grid, so every
array of the returned :class:`~structreg.pipeline.registration.Registration` has the
fixed image's shape.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .io.nifti import Volume, read_image, read_labels, volume_from_image
from .methods.affine import AffineOptions, affine_align
from .methods.base import Registrar
from .methods.ours import REFINE_OPTIONS, CVAERegistrar
from .methods.registry import build_method, method_names, parse_method_spec
from .pipeline.field import FieldOptions
from .pipeline.registration import (
    Registration,
    aligned_volume,
    prepare_pairs,
    register_volumes,
)

__all__ = ["adapt", "as_volume", "evaluate", "load_model", "register", "registrar_for"]

ImageLike = Any
"""A NumPy array, a nibabel image, a :class:`~structreg.io.nifti.Volume` or a path."""


def load_model(
    model: str | os.PathLike = "builtin:brain",
    *,
    device: str = "auto",
    refine: int = 0,
    refine_lr: float = REFINE_OPTIONS["refine_lr"],
    adapt_decoder: int = 0,
    refine_field: int = 0,
    adapt: int = 0,
    batch_size: int = 64,
) -> CVAERegistrar:
    """A trained CVAE as a registration method (:class:`~structreg.methods.base.Registrar`).

    Args:
        model: ``builtin:NAME`` (a bundled model: ``structreg models``), a run folder,
            a checkpoint or a ``.safetensors`` file.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda[:N]"`` or ``"mps"``.
        refine: per-pair refinement of the code, at most this many Adam steps
            (0: one forward pass).
        refine_lr: the refinement's step size.
        adapt_decoder: also adapt the decoder's last K convolutions per pair.
        refine_field: then refine each pair's velocity by a smooth residual, this
            many Adam steps (0: off; 40 is what the benchmarks use; see
            :func:`~structreg.methods.field_refine.refine_field`).
        adapt: fine-tune a copy of the model on the cohort before registering it, at
            most this many steps (its ``prepare(pairs)``; 0: no adaptation).
        batch_size: pairs (slices) per forward pass.
    Returns:
        :class:`~structreg.methods.ours.CVAERegistrar` with its model's grid spacing.
    """
    from .training.checkpoint import load_model as load_checkpoint
    from .training.config import resolve_device
    from .training.run import model_spacing

    net, run = load_checkpoint(model, str(resolve_device(device)), method="ours")
    return CVAERegistrar(
        net,
        batch_size,
        refine=refine,
        refine_lr=refine_lr,
        adapt_decoder=adapt_decoder,
        refine_field=refine_field,
        train=run.train,
        spacing=model_spacing(model),
        adapt=adapt,
        source=model,
    )


def registrar_for(
    model: str | os.PathLike | Registrar,
    *,
    device: str = "auto",
    refine: int = 0,
    refine_lr: float = REFINE_OPTIONS["refine_lr"],
    adapt_decoder: int = 0,
    refine_field: int = 0,
    adapt: int = 0,
) -> Registrar:
    """The registration method a ``model`` argument names.

    Args:
        model: a trained model (``builtin:NAME``, a run folder, a checkpoint or a
            ``.safetensors`` file, optionally written ``ours:MODEL`` or with the method's
            options ``ours:MODEL,exp_downsize=2,...``), another method's
            spec (``ants-syn``, ``dipy-syn``, ``lcc-demons:iterations=40/30/20``,
            ``identity``, ``voxelmorph:RUN``), or a :class:`Registrar` (returned as is).
        device, refine, refine_lr, adapt_decoder, refine_field: as in
            :func:`load_model` (the refinement options apply to ours only).
        adapt: as in :func:`load_model`, for ours and ``voxelmorph:RUN`` (a spec may
            also say ``adapt=N`` itself).
    """
    if not isinstance(model, (str, os.PathLike)):
        if not isinstance(model, Registrar):
            raise InputError(f"model: a model spec, a method spec or a Registrar, got {model!r}")
        return model
    text = str(model)
    name = text.split(":", 1)[0].split(",", 1)[0]
    if name in method_names() and name != "ours" and not Path(text).exists():
        if refine or adapt_decoder or refine_field:
            raise InputError(f"refine: only ours refines its registration, not {name}")
        if adapt and name != "voxelmorph":
            raise InputError(f"adapt: only learned methods adapt to a cohort, not {name}")
        from .training.config import resolve_device

        spec = parse_method_spec(text + (f",adapt={adapt}" if adapt else ""))
        return build_method(spec, str(resolve_device(device)))
    if name == "ours" and "," in text and not Path(text).exists():  # ours:MODEL,OPTIONS
        from .training.config import resolve_device

        given: dict[str, float] = {"refine": refine, "adapt_decoder": adapt_decoder}
        given |= {"refine_field": refine_field, "adapt": adapt, "refine_lr": refine_lr}
        extra = "".join(f",{k}={v}" for k, v in given.items() if v != REFINE_OPTIONS.get(k, 0))
        return build_method(parse_method_spec(text + extra), str(resolve_device(device)))
    return load_model(
        text.removeprefix("ours:"),
        device=device,
        refine=refine,
        refine_lr=refine_lr,
        adapt_decoder=adapt_decoder,
        refine_field=refine_field,
        adapt=adapt,
    )


def as_volume(
    image: ImageLike,
    spacing: float | Sequence[float] | None = None,
    *,
    labels: bool = False,
    default_spacing: Sequence[float] = (),
    name: str = "image",
) -> Volume:
    """An image as a :class:`~structreg.io.nifti.Volume` (array + voxel-to-world affine).

    Args:
        image: a path of an image file, a nibabel image, a Volume, or a 2-D/3-D array
            (``H×W``, ``H×W×1`` or ``H×W×D``; any real dtype).
        spacing: mm per voxel of an array (one number, or one per axis); ignored for
            files and nibabel images, which carry their own.
        labels: read as an integer label map.
        default_spacing: the spacing of arrays given without one (a model's grid
            spacing; 1 mm for axes it lacks).
        name: what to call the image in error messages.
    """
    if isinstance(image, Volume):
        return image
    if isinstance(image, (str, os.PathLike)):
        return read_labels(image) if labels else read_image(image)
    if hasattr(image, "affine") and hasattr(image, "dataobj"):
        return volume_from_image(image, name=name, labels=labels)
    return _array_volume(np.asarray(image), spacing, labels, default_spacing, name)


def _array_volume(
    data: np.ndarray,
    spacing: float | Sequence[float] | None,
    labels: bool,
    default_spacing: Sequence[float],
    name: str,
) -> Volume:
    """A Volume of an array with a diagonal affine of ``spacing`` mm."""
    import nibabel as nib

    if data.dtype.kind not in "biuf":
        raise InputError(f"{name}: a real-valued array is needed, got dtype {data.dtype}")
    while data.ndim > 2 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3):
        raise InputError(f"{name}: a 2-D or 3-D array is needed, got shape {data.shape}")
    if spacing is None:
        given = tuple(default_spacing)[: data.ndim]
        spacing = given + (1.0,) * (data.ndim - len(given))
    if isinstance(spacing, (int, float)):
        spacing = (float(spacing),) * data.ndim
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != data.ndim or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise InputError(f"{name}: spacing must be {data.ndim} positive numbers, got {spacing}")
    image = nib.Nifti1Image(data, np.diag([*spacing, *(1.0,) * (3 - data.ndim), 1.0]))
    return volume_from_image(image, name=name, labels=labels)


def register(
    moving: ImageLike,
    fixed: ImageLike,
    *,
    model: str | os.PathLike | Registrar = "builtin:brain",
    spacing: float | Sequence[float] | None = None,
    moving_labels: ImageLike | None = None,
    affine: bool | str = False,
    refine: int = 0,
    refine_lr: float = REFINE_OPTIONS["refine_lr"],
    refine_field: int = 0,
    adapt: int = 0,
    device: str = "auto",
) -> Registration:
    """Register ``moving`` onto ``fixed``.

    Args:
        moving, fixed: images as arrays, nibabel images, Volumes or paths; 2-D or
            3-D, any size, dtype and grid (they meet in world space through their
            affines; arrays get a diagonal affine of ``spacing``).
        model: a trained model (``builtin:NAME``, a run folder, a ``.safetensors``
            file), another method's spec (``ants-syn``, ``dipy-syn``, ``lcc-demons``,
            ``identity``) or any :class:`~structreg.methods.base.Registrar`.
        spacing: mm per voxel of array inputs (a number or one per axis); None: the
            model's grid spacing.
        moving_labels: a label map of the moving image, warped onto the fixed grid
            (never used to register).
        affine: first align the images by a rigid then affine transform
            (:func:`~structreg.methods.affine.affine_align`): True (normalised
            cross-correlation), or the similarity ``"ncc"``, ``"lcc"`` or ``"mi"``
            (mutual information, for different contrasts).
        refine: refine the pair's code for at most this many steps (ours only).
        refine_lr: the refinement's step size (ours only).
        refine_field: then refine the velocity on the fixed image's grid, N steps.
        adapt: first fine-tune the model on this pair for this many steps, without
            labels (ours only; the bundled model itself is not changed).
        device: ``"auto"``, ``"cpu"``, ``"cuda[:N]"`` or ``"mps"``.
    Returns:
        :class:`~structreg.pipeline.registration.Registration`: ``moved``,
        ``displacement`` (mm), ``inverse``, ``jacobian``, ``code``, ``warp()``, ``save()``.
    """
    registrar = registrar_for(model, device=device, refine=refine, refine_lr=refine_lr, adapt=adapt)
    grid = tuple(getattr(registrar, "spacing", None) or ())
    m, f, labels = _volumes(moving, fixed, moving_labels, spacing, grid)
    stage = None
    if affine:
        metric = "ncc" if affine is True else str(affine)
        stage = affine_align(m, f, AffineOptions(metric=metric))
    prepare = getattr(registrar, "prepare", None)
    if prepare is not None and getattr(registrar, "adapt", None):  # adapt to the pair first
        source = m if stage is None else aligned_volume(m, f, stage)
        prepare(prepare_pairs(registrar, source, f))
    field = FieldOptions(steps=refine_field) if refine_field else None
    return register_volumes(registrar, m, f, moving_labels=labels, affine=stage, field=field)


def _volumes(
    moving: ImageLike,
    fixed: ImageLike,
    moving_labels: ImageLike | None,
    spacing: float | Sequence[float] | None,
    grid: tuple[float, ...],
) -> tuple[Volume, Volume, Volume | None]:
    """The inputs of :func:`register` as Volumes (arrays get ``spacing``, else ``grid``)."""
    m = as_volume(moving, spacing, default_spacing=grid, name="moving")
    f = as_volume(fixed, spacing, default_spacing=grid, name="fixed")
    if moving_labels is None:
        return m, f, None
    labels = as_volume(
        moving_labels, spacing, labels=True, default_spacing=grid, name="moving_labels"
    )
    return m, f, labels


def adapt(
    model: str | os.PathLike,
    pairs: Sequence[Any] | str,
    *,
    out: str | os.PathLike,
    steps: int = 300,
    device: str = "auto",
    progress: bool = False,
    **settings: Any,
) -> CVAERegistrar:
    """Fine-tune a model on a cohort's own pairs with its training objective, no labels.

    Training stops when the objective on the cohort has not improved for a few checks
    (:data:`~structreg.training.adapt.ADAPT_DEFAULTS`), or after ``steps``.

    Args:
        model: the model to start from: ``builtin:NAME``, a run folder, a checkpoint
            or a ``.safetensors`` file.
        pairs: :class:`~structreg.data.pair.Pair` s on the model's grid (e.g. from
            :func:`~structreg.pipeline.registration.prepare_pairs`) or a data spec
            (``pairs:cohort.csv``, every row); labels are never read.
        out: the new run folder (must not exist or be empty).
        steps: the most optimisation steps; a batch holds at most the cohort's pairs.
        device: where to train.
        progress: show a progress bar.
        settings: other training settings (``lr``, ``val_every``, ``patience`` ...).
    Returns:
        The adapted model (the run's ``best.pt``: the lowest objective) as a registrar.
    """
    from .training.adapt import adapt_model
    from .training.run import model_data_settings

    grid = model_data_settings(model)
    cohort = _cohort(pairs, tuple(grid.size), tuple(grid.spacing))
    overrides = {"steps": steps, "device": device, **settings}
    done = adapt_model(model, cohort, out, overrides=overrides, progress=progress)
    return load_model(done.run, device=device)


def _cohort(pairs: Sequence[Any] | str, size: tuple, spacing: tuple) -> list:
    """The cohort's pairs on the model's grid (a data spec is loaded onto it)."""
    if isinstance(pairs, str):
        from .data.spec import load_pairs

        return list(load_pairs(pairs, split="all", size=size, spacing=spacing))
    if not pairs:
        raise InputError("adapt: no pairs")
    return list(pairs)


def evaluate(
    data: str | Sequence[Any],
    methods: Sequence[str | Registrar],
    *,
    split: str = "test",
    device: str = "auto",
    size: Sequence[int] | None = None,
    spacing: Sequence[float] | None = None,
) -> list[dict]:
    """Register every pair with every method and measure each registration.

    Args:
        data: a data spec (``pairs:FILE.csv``, ``phantom:cardiac``, ``acdc:DIR``) or
            :class:`~structreg.data.pair.Pair` s on one grid.
        methods: method specs (``ours:builtin:cardiac,refine=20``, ``ants-syn``, ...)
            or registrars.
        split: the split of a data spec registered (``"test"``, ``"val"``,
            ``"train"`` or ``"all"``).
        device: where learned methods run.
        size, spacing: the grid a data spec is loaded onto (default: the first
            model's, else the 100×100 / 2 mm default).
    Returns:
        One row per pair and method, keyed by :mod:`structreg.core.metrics` keys
        (``"dice LV myocardium"``, ``folding_pct``, ``seconds_per_pair`` ...), with
        ``method``, ``id`` and ``error`` (empty unless the pair failed).
    """
    from .evaluation.evaluate import evaluate as run_all
    from .training.config import resolve_device

    where = str(resolve_device(device))
    built = [
        m if not isinstance(m, str) else build_method(parse_method_spec(m), where) for m in methods
    ]
    pairs = _load_for(data, split, built, size, spacing) if isinstance(data, str) else list(data)
    rows, _ = run_all(pairs, built, progress=False)
    return rows


def _load_for(
    data: str,
    split: str,
    methods: Sequence[Registrar],
    size: Sequence[int] | None,
    spacing: Any,
) -> list:
    """A data spec's pairs on the grid of the first trained model among ``methods``."""
    from .data.defaults import DEFAULT_SIZE, DEFAULT_SPACING
    from .data.spec import load_pairs

    for method in methods:
        model = getattr(method, "model", None)
        grid = getattr(method, "spacing", None)
        if size is None and model is not None and grid:
            size, spacing = model.config.image_size, grid
    size = tuple(size or DEFAULT_SIZE)
    spacing = tuple(spacing or DEFAULT_SPACING)
    return list(load_pairs(data, split=split, size=size, spacing=spacing))
