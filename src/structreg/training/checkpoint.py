"""Checkpoints: one ``torch.save``d dict of plain containers and tensors, written
atomically and read back with ``torch.load(weights_only=True)``.

Layout (``format_version`` 1)::

    {"format_version": 1,
     "config": {"model": {...}, "train": {...}},   # RunConfig.to_dict() (+ "method" when
                                                     # not "ours": e.g. "voxelmorph")
     "state_dict": {name: tensor},                   # the network's weights and buffers
     "optimizer": Adam state_dict or None,
     "step": int,                                    # optimisation steps done
     "rng": {...} or None,                           # RNG states (see training.rng)
     "loop": {...} or None,                          # data-order position, best score (resume)
     "digest": str,                                  # SHA-256 of the weights
     "state_digest": str}                            # SHA-256 of everything else above

Both digests are verified on load (:func:`verify_digest`): the weights, the optimiser
state, the RNG states, the data-order position, the step and the config are all covered,
so a flipped byte or an edited setting anywhere a run resumes from is refused.
Checkpoints written before a digest existed pass without that check.

Anything else - not a torch file, a pickle of arbitrary objects, missing keys,
another format version, weights that do not fit the config's model - is refused
with :class:`CheckpointError`, a one-line message naming the file.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..io.files import atomic_write
from .config import RunConfig, resolve_device
from .run import RunFolder
from .safetensors_format import is_safetensors, read_safetensors

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "save_checkpoint",
    "read_checkpoint",
    "load_model",
    "find_checkpoint",
    "read_model",
    "init_weights",
    "state_digest",
    "verify_digest",
    "weights_digest",
]

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "config", "state_dict", "optimizer", "step", "rng")


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    config: RunConfig,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
    rng: dict[str, Any] | None = None,
    loop: dict[str, Any] | None = None,
) -> Path:
    """Atomically write a checkpoint of ``model`` (tensors moved to the CPU).

    Args:
        path: target file (conventionally ``checkpoint.pt`` or ``best.pt``).
        model: the network; its ``config`` must equal ``config.model``.
        config: the run's resolved configuration.
        optimizer, rng, loop: training state for exact resumption (optional).
        step: optimisation steps done.
    """
    if getattr(model, "config", None) != config.model:
        raise ConfigError("save_checkpoint: model.config differs from config.model")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "state_dict": state,
        "optimizer": _to_cpu(optimizer.state_dict()) if optimizer is not None else None,
        "step": int(step),
        "rng": rng,
        "loop": loop,
        "digest": weights_digest(state),
    }
    payload["state_digest"] = state_digest(payload)
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def verify_digest(checkpoint: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Refuse (:class:`CheckpointError` naming ``path``) weights, or a training state and
    config, that do not match the checkpoint's stored digests; a checkpoint written
    before a digest existed passes that check."""
    digest = checkpoint.get("digest")
    if digest is not None and digest != weights_digest(checkpoint["state_dict"]):
        raise CheckpointError(
            f"{path}: the weights do not match the checkpoint's digest (the "
            f"file is corrupted); use another copy or retrain"
        )
    stored = checkpoint.get("state_digest")
    if stored is not None and stored != state_digest(checkpoint):
        raise CheckpointError(
            f"{path}: the config or training state (optimiser, RNG, data order) does not "
            f"match the checkpoint's digest (the file is corrupted or was edited); use "
            f"another copy or retrain"
        )


STATE_KEYS = ("format_version", "config", "optimizer", "step", "rng", "loop")
"""What :func:`state_digest` covers: everything a checkpoint holds but its weights."""


def state_digest(checkpoint: Mapping[str, Any]) -> str:
    """SHA-256 over the :data:`STATE_KEYS` entries of a checkpoint (a config as its
    ``to_dict()``, or as the file stored it when read back: ``stored_config``, so settings
    added to the config later, at their defaults, do not change an older file's digest):
    tensors by dtype, shape and bytes, containers by their items, keys sorted, numbers
    exactly; stored with a checkpoint and verified on load."""
    digest = hashlib.sha256()
    for key in STATE_KEYS:
        value = checkpoint.get(key)
        if key == "config" and checkpoint.get("stored_config") is not None:
            value = checkpoint["stored_config"]
        if isinstance(value, RunConfig):
            value = value.to_dict()
        digest.update(f"{key}=".encode())
        _feed(digest, value)
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    """Add ``value`` (plain containers, numbers, text, tensors) to ``digest``, tagged by kind."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"t{tensor.dtype}{tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Mapping):
        digest.update(f"d{len(value)}:".encode())
        for k in sorted(value, key=lambda k: (type(k).__name__, str(k))):
            _feed(digest, k)
            _feed(digest, value[k])
    elif isinstance(value, (list, tuple)):
        digest.update(f"l{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, float):
        digest.update(f"f{value.hex()};".encode())
    elif value is None or isinstance(value, (bool, int, str)):
        digest.update(f"{type(value).__name__[0]}{value!r};".encode())
    else:
        digest.update(f"?{type(value).__name__}{value!r};".encode())


def weights_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the weights (names, dtypes, shapes and bytes, by name): stored with
    a checkpoint and verified on load, so corrupted weights are refused."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a checkpoint file (tensors on the CPU).

    Returns the checkpoint dict with ``"config"`` replaced by a :class:`RunConfig`.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: anything that is not a valid format-1 checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4" on foreign pickles
            warnings.simplefilter("ignore", UserWarning)
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's own message suggests weights_only=False, which must never be
        # done with an untrusted file: report the cause without that advice.
        raise CheckpointError(
            f"{path}: not a structreg checkpoint: not a PyTorch file, or it "
            f"holds objects other than tensors and plain data, which are "
            f"refused for safety ({type(exc).__name__})"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path}: not a structreg checkpoint (holds a {type(data).__name__}, expected a dict)"
        )
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(
            f"{path}: not a structreg checkpoint (missing key(s) {', '.join(missing)})"
        )
    version = data["format_version"]
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise CheckpointError(
            f"{path}: unsupported checkpoint format_version {version!r} "
            f"(this structreg reads {FORMAT_VERSION})"
        )
    try:
        config = RunConfig.from_dict(data["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: invalid config in checkpoint ({exc})") from None
    state = data["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path}: state_dict must map parameter names to tensors")
    step = data["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path}: step must be a non-negative int, got {step!r}")
    for key in ("optimizer", "rng", "loop"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise CheckpointError(f"{path}: {key} must be a dict or None")
    return {**data, "config": config, "stored_config": data["config"]}


def build_model(checkpoint: dict[str, Any], path: str | os.PathLike) -> nn.Module:
    """The network of a :func:`read_checkpoint` result, weights loaded (CPU, eval mode)."""
    from .tasks import task_for

    config: RunConfig = checkpoint["config"]
    model = task_for(config.method).build(config.model)
    expected = model.state_dict()
    state = checkpoint["state_dict"]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(
                f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}"
            )
        raise CheckpointError(
            f"{path}: state_dict does not match the model of its config ({'; '.join(parts)})"
        )
    for name, tensor in state.items():
        want = expected[name]
        if tensor.shape != want.shape or tensor.dtype != want.dtype:
            raise CheckpointError(
                f"{path}: state_dict entry {name} is {tuple(tensor.shape)} "
                f"{tensor.dtype}, the config's model needs "
                f"{tuple(want.shape)} {want.dtype}"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: state_dict entry {name} holds NaN or inf")
    verify_digest(checkpoint, path)
    model.load_state_dict(state, strict=True)
    return model.eval()


def find_checkpoint(run_dir_or_file: str | os.PathLike) -> Path:
    """A file as given; for a run folder ``best.pt``, else ``checkpoint.pt``; for
    ``builtin:NAME`` the bundled model file (:mod:`structreg.pretrained`)."""
    from ..pretrained import resolve_model

    path = Path(resolve_model(run_dir_or_file))
    if path.is_dir():
        return RunFolder(path).model_file()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def read_model(run_dir_or_file: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    """``(checkpoint dict, file)`` of any ``--model``: a run folder, a checkpoint or
    ``.safetensors`` file, or ``builtin:NAME`` (not yet verified: see :func:`build_model`)."""
    path = find_checkpoint(run_dir_or_file)
    return (read_safetensors(path) if is_safetensors(path) else read_checkpoint(path)), path


def init_weights(source: str | os.PathLike, config: RunConfig) -> dict[str, torch.Tensor]:
    """The verified weights of ``source`` to start a run of ``config`` from
    (``train.init``, fine-tuning).

    Args:
        source: a run folder, checkpoint or ``.safetensors`` file, or ``builtin:NAME``.
        config: the run to start; its method and model settings must equal the
            source's.
    Returns:
        The state dict (CPU tensors), digest checked.
    Raises:
        FileNotFoundError, CheckpointError (another method, other model settings,
        corrupted weights).
    """
    checkpoint, path = read_model(source)
    saved: RunConfig = checkpoint["config"]
    if saved.method != config.method:
        raise CheckpointError(
            f"train.init {source}: a {saved.method} model, this run trains {config.method}"
        )
    # antisymmetric changes how the same encoder and decoder are combined, not their weights
    ours = hasattr(saved.model, "antisymmetric")  # VoxelMorph's settings have no such field
    kept: dict[str, Any] = {"antisymmetric": getattr(config.model, "antisymmetric", None)}
    if replace(saved.model, **(kept if ours else {})) != config.model:
        then, now = saved.model.to_dict(), config.model.to_dict()
        diff = [
            f"{k}: {then.get(k)!r} -> {v!r}"
            for k, v in now.items()
            if then.get(k) != v and k != "antisymmetric"
        ]
        raise CheckpointError(
            f"train.init {source}: model settings differ from the init model's "
            f"({'; '.join(diff)}); drop those settings or train from scratch"
        )
    build_model(checkpoint, path)  # shapes, finiteness and digest
    return {k: v.detach().clone() for k, v in checkpoint["state_dict"].items()}


def load_model(
    run_dir_or_file: str | os.PathLike,
    device: str | torch.device = "cpu",
    method: str | None = "ours",
) -> tuple[Any, RunConfig]:
    """Load a trained model for registration.

    Args:
        run_dir_or_file: a checkpoint file, a ``.safetensors`` model file
            (``structreg export``), a run folder (``best.pt`` is used when
            present, else ``checkpoint.pt``), or ``builtin:NAME`` (a model bundled
            with the package, :mod:`structreg.pretrained`).
        device: where to put the model (``"auto"``: CUDA when available).
        method: the method the run must have trained (``"ours"``: a
            :class:`~structreg.models.cvae.CVAERegistration`, ``"voxelmorph"``: a
            :class:`~structreg.models.voxelmorph.VoxelMorph2`); None accepts any.
    Returns:
        ``(model, config)``: the model in eval mode on ``device`` and the run's
        :class:`RunConfig` (``config.model`` built it).
    Raises:
        FileNotFoundError, CheckpointError.
    """
    checkpoint, path = read_model(run_dir_or_file)
    trained = checkpoint["config"].method
    if method is not None and trained != method:
        raise CheckpointError(
            f"{path}: a {trained} run, not a {method} one (use {trained}:{run_dir_or_file})"
        )
    model = build_model(checkpoint, path)
    device = resolve_device(device) if isinstance(device, str) else device
    return model.to(device), checkpoint["config"]
