"""Run configuration: the model's and the training's settings, read from TOML with
``key=value`` overrides and written back, resolved, into the run folder.

A config file has two tables, both optional (missing keys keep their defaults)::

    [model]                 # -> structreg.models.ModelConfig
    image_size = [100, 100]
    latent_dim = 144

    [train]                 # -> TrainConfig
    lam = 82.0
    batch_size = 50

Overrides are ``section.key=value`` (``train.lr=1e-3``) or a bare ``key=value``
when the key exists in only one section; the value is read as a TOML value
(``true``, ``3``, ``1e-3``, ``[64, 64]``, ``"cpu"``) and, for text settings,
also unquoted (``device=cpu``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomllib
import torch

from ..errors import ConfigError
from ..io.files import atomic_write_text
from ..models.cvae import ModelConfig
from ..models.voxelmorph import VoxelMorphConfig

__all__ = [
    "ConfigError",
    "TrainConfig",
    "RunConfig",
    "load_config",
    "apply_overrides",
    "save_config",
    "resolve_device",
    "RESUMABLE_CHANGES",
    "MODEL_CONFIGS",
    "TRAINABLE",
]


PRECISIONS = ("float32", "bfloat16")
MONITORS = ("dice", "loss")
"""The validation scores ``train.monitor`` may name."""
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (defaults: the paper's, cardiac λ).

    Loss (Eq. 1): ``lam · (1 − LCC_sym) + kl_weight · KL + mask_weight · P`` where
    ``LCC_sym`` is the symmetric Gaussian LCC (σ = ``lcc_sigma`` voxels, window
    ``lcc_kernel``) averaged over pixels and the batch (in [0, 1]), ``KL`` is the
    closed-form KL to N(0, I) summed over the ``d`` latent dimensions and averaged
    over the batch (nats), and ``P`` the mean squared velocity (voxels²) outside
    the pair's mask (brain model; needs masks in the data).

    Attributes:
        lr: Adam learning rate (paper: 5e-4).
        batch_size: pairs per step (paper: 50); a training set smaller than this
            is used whole at every step. The remainder of an epoch is dropped.
        weight_decay: L2 weight decay added to the gradient by Adam (paper: 1e-4).
        steps: optimisation steps in total; 0 means ``epochs`` full passes.
        epochs: used only when ``steps`` is 0.
        seed: seeds weight initialisation, data order and the sampling noise.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"`` or ``"mps"``.
        lam: λ of Eq. 1 (paper: cardiac 82, brain 55).
        kl_weight: weight β of the KL term. Default 0.01 (≈ 1/d, i.e. the KL
            *averaged* over the 144 latent dimensions): with β = 1 and the KL
            summed, the paper's λ makes the code collapse to a few active
            dimensions. See :mod:`structreg.training.tasks`.
        mask_weight: weight of the outside-mask penalty (0 = off).
        lcc_sigma, lcc_kernel: Gaussian window of the LCC (paper: 2, 9).
        lcc_symmetric: the symmetric LCC of Eq. 2 (true, the paper's) or the
            one-sided ``LCC(F, M ∘ exp(v))`` (false; :func:`structreg.core.losses.forward_lcc`,
            which does not reward the smoothing of interpolating both images).
        val_every: validate every this many steps and at the end (0: at the end only).
        patience: early stopping: stop after this many validations in a row without
            an improvement of the validation score (see ``monitor``) by more than
            ``min_delta`` (0: off, train the whole budget).
        min_delta: the least improvement of the validation score that counts.
        monitor: the validation score that picks ``best.pt`` and drives early
            stopping: ``"dice"`` (mean Dice of the warped labels; minus the loss
            where the validation pairs have no labels) or ``"loss"`` (minus the
            validation loss). Dice of nearest-neighbour-warped labels does not see
            motion under half a voxel: on the brain phantom (atrophy of about a
            voxel) VoxelMorph-2's validation Dice equals no registration's in every
            digit for its first 400 steps while its validation loss falls; there
            ``"loss"`` measures whether a method still improves.
        max_seconds: stop at the first step whose cumulative training wall time
            (steps and validations) reaches this many seconds (0: no time budget);
            for equal-wall-time comparisons; not reproducible across machines.
        checkpoint_every: write ``checkpoint.pt`` every this many steps and at the end.
        num_threads: torch CPU threads (0: leave torch's default).
        tensorboard: also log to TensorBoard when it is installed.
        init: start from the weights of this model instead of a random
            initialisation (fine-tuning): a run folder, a checkpoint or
            ``.safetensors`` file, or ``builtin:NAME``; its method and model
            settings must equal this run's ("": random initialisation). The
            optimiser starts afresh; a resumed run continues from its own
            checkpoint.
        precision: ``"float32"`` or ``"bfloat16"``: the networks (encoder,
            decoder, U-Net) run under bf16 autocast; the exponentiation, grid
            sampling, LCC statistics and the optimiser stay in float32.
        channels_last: lay the networks' weights and activations out channels-last
            (``channels_last`` / ``channels_last_3d``), faster on GPUs with tensor cores.
        compile: wrap the training network in ``torch.compile`` (needs a C/C++
            compiler; the first steps pay the compilation).
        frozen_norm: keep the batch-norm layers in eval mode while training (their
            running statistics fixed): fine-tuning on a small cohort (adaptation),
            whose batches are too small to estimate them.
        sync_batchnorm: under DDP, share batch-norm statistics across processes
            (``torch.nn.SyncBatchNorm``, GPUs only); off: each process normalises
            by its own batch (the per-process batch is then the one that counts).
        workers: DataLoader worker processes reading streamed (``cache:DIR``)
            data (0: read in the training process). Each worker is a process of
            its own: more workers than the CPU cores the training's threads leave
            free slow training down.
        identical_rate: fraction in [0, 1] of each training batch made identical
            pairs: the first ``round(identical_rate · batch)`` pairs of the (shuffled)
            batch get their moving image (and labels) as the fixed image, so the
            similarity and KL terms teach zero motion for ``moving = fixed``
            (:func:`structreg.training.tasks.with_identical_pairs`; 0: off, training
            unchanged).
        identical_noise: standard deviation of Gaussian intensity noise (image
            intensity units, images in [0, 1]) added to the fixed copy of those
            pairs, which makes them near-identical (0: exact copies). Drawn from
            the run's noise generator only when both this and ``identical_rate``
            are > 0.
    """

    lr: float = 5e-4
    batch_size: int = 50
    weight_decay: float = 1e-4
    steps: int = 2000
    epochs: int = 0
    seed: int = 0
    device: str = "auto"
    lam: float = 82.0
    kl_weight: float = 0.01
    mask_weight: float = 0.0
    lcc_sigma: float = 2.0
    lcc_kernel: int = 9
    lcc_symmetric: bool = True
    val_every: int = 100
    patience: int = 0
    min_delta: float = 0.0
    monitor: str = "dice"
    max_seconds: float = 0.0
    checkpoint_every: int = 100
    num_threads: int = 0
    tensorboard: bool = True
    init: str = ""
    precision: str = "float32"
    channels_last: bool = False
    compile: bool = False
    sync_batchnorm: bool = False
    frozen_norm: bool = False
    workers: int = 1
    identical_rate: float = 0.0
    identical_noise: float = 0.0

    def __post_init__(self) -> None:
        self._check_types()
        self._check_ranges()

    def _check_types(self) -> None:
        """Each value of its field's type (ints accepted and stored as floats for floats)."""
        for f in fields(self):
            value = getattr(self, f.name)
            default = f.default
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                if ok:
                    object.__setattr__(self, f.name, float(value))
            else:
                ok = isinstance(value, str)
            if not ok:
                kind = type(default).__name__
                raise ConfigError(f"train.{f.name} must be a {kind}, got {value!r}")

    def _check_ranges(self) -> None:
        for name in ("lr", "batch_size", "lam", "lcc_sigma"):
            if not getattr(self, name) > 0 or not math.isfinite(getattr(self, name)):
                raise ConfigError(f"train.{name} must be > 0, got {getattr(self, name)!r}")
        for name in (
            "weight_decay",
            "steps",
            "epochs",
            "kl_weight",
            "mask_weight",
            "val_every",
            "patience",
            "min_delta",
            "max_seconds",
            "checkpoint_every",
            "num_threads",
            "seed",
            "workers",
            "identical_noise",
        ):
            value = getattr(self, name)
            if not value >= 0 or not math.isfinite(value):
                raise ConfigError(f"train.{name} must be >= 0, got {value!r}")
        if not 0.0 <= self.identical_rate <= 1.0:
            raise ConfigError(
                f"train.identical_rate must be in [0, 1], got {self.identical_rate!r}"
            )
        if self.steps == 0 and self.epochs == 0:
            raise ConfigError("train.steps and train.epochs are both 0; set one of them")
        if self.monitor not in MONITORS:
            raise ConfigError(
                f"train.monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}"
            )
        if self.lcc_kernel < 1 or self.lcc_kernel % 2 == 0:
            raise ConfigError(f"train.lcc_kernel must be a positive odd int, got {self.lcc_kernel}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if not _DEVICE_RE.match(self.device):
            raise ConfigError(
                f"train.device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        _check_keys("train", data, cls)
        return cls(**data)


# The network settings of each trainable method: the [model] table of its config.
MODEL_CONFIGS: dict[str, type[ModelConfig] | type[VoxelMorphConfig]] = {
    "ours": ModelConfig,
    "voxelmorph": VoxelMorphConfig,
}
TRAINABLE = tuple(MODEL_CONFIGS)


@dataclass(frozen=True)
class RunConfig:
    """A run's method, network and training settings (what a run folder records).

    Attributes:
        model: the network's settings (:class:`ModelConfig` for ``ours``,
            :class:`VoxelMorphConfig` for ``voxelmorph``).
        train: the optimisation settings.
        method: the trained method's name (``"ours"`` or ``"voxelmorph"``).
    """

    model: ModelConfig | VoxelMorphConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method: str = "ours"

    def __post_init__(self) -> None:
        if self.method not in MODEL_CONFIGS:
            raise ConfigError(f"method must be one of {', '.join(TRAINABLE)}, got {self.method!r}")
        if not isinstance(self.model, MODEL_CONFIGS[self.method]):
            raise ConfigError(
                f"method {self.method} needs a {MODEL_CONFIGS[self.method].__name__} in [model]"
            )
        for name, value in self.model.to_dict().items():
            values = value if isinstance(value, (list, tuple)) else [value]
            bad = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
            if bad:
                raise ConfigError(f"model.{name} must be a finite number, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts and lists only (TOML-, JSON- and ``weights_only``-safe)."""
        out: dict[str, Any] = {"model": self.model.to_dict(), "train": self.train.to_dict()}
        if self.method != "ours":
            out["method"] = self.method
        return out

    @classmethod
    def from_dict(cls, data: Any) -> RunConfig:
        """Build from ``{"method": ..., "model": {...}, "train": {...}}`` (all optional;
        the method defaults to ``"ours"``)."""
        if not isinstance(data, dict):
            raise ConfigError(
                f"config must be a table with [model] and [train], got {type(data).__name__}"
            )
        unknown = sorted(set(data) - {"model", "train", "method"})
        if unknown:
            raise ConfigError(f"unknown config section(s) {unknown}; expected [model] and [train]")
        method = data.get("method", "ours")
        if method not in MODEL_CONFIGS:
            raise ConfigError(f"method must be one of {', '.join(TRAINABLE)}, got {method!r}")
        model_cls = MODEL_CONFIGS[method]
        model = data.get("model", {})
        _check_keys("model", model, model_cls)
        try:
            model_config = model_cls.from_dict(model)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        return cls(
            model=model_config, train=TrainConfig.from_dict(data.get("train", {})), method=method
        )

    def to_toml(self) -> str:
        """TOML text that :func:`load_config` reads back to an equal config."""
        lines = ["# structreg run configuration (resolved)"]
        for section, values in self.to_dict().items():
            if not isinstance(values, dict):
                lines.insert(1, f"{section} = {_toml_value(values)}")
                continue
            lines.append(f"\n[{section}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        return "\n".join(lines) + "\n"


# Train settings that may differ when resuming without changing the result
# (more steps, other logging/checkpoint cadence, another device).
RESUMABLE_CHANGES = frozenset(
    {
        "steps",
        "epochs",
        "val_every",
        "checkpoint_every",
        "device",
        "num_threads",
        "tensorboard",
        "patience",
        "min_delta",
        "max_seconds",
        "workers",
        "compile",
    }
)


def _check_keys(section: str, data: Any, cls: type) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"[{section}] must be a table, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in [{section}]: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} as TOML")


def _parse_value(text: str, default: Any) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if isinstance(default, str):
            return text
        raise ConfigError(f"cannot read {text!r} as a value") from None


def apply_overrides(config: RunConfig, overrides: Sequence[str]) -> RunConfig:
    """Apply ``section.key=value`` / ``key=value`` strings; raises :class:`ConfigError`."""
    data = config.to_dict()
    sections = {"model": MODEL_CONFIGS[config.method], "train": TrainConfig}
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. train.lr=1e-3)")
        key, text = (s.strip() for s in item.split("=", 1))
        if "." in key:
            section, name = key.split(".", 1)
            if section not in sections:
                raise ConfigError(
                    f"override {item!r}: unknown section {section!r} (use model. or train.)"
                )
            if name not in data[section]:
                raise ConfigError(
                    f"override {item!r}: unknown key {name!r} in [{section}] "
                    f"(known: {', '.join(sorted(data[section]))})"
                )
        else:
            owners = [s for s in sections if key in data[s]]
            if not owners:
                raise ConfigError(
                    f"override {item!r}: unknown key {key!r} (known: "
                    f"{', '.join(sorted(set(data['model']) | set(data['train'])))})"
                )
            if len(owners) > 1:
                raise ConfigError(
                    f"override {item!r}: key {key!r} is ambiguous; write "
                    f"{' or '.join(f'{s}.{key}' for s in owners)}"
                )
            section, name = owners[0], key
        default = getattr(getattr(config, section), name)
        try:
            data[section][name] = _parse_value(text, default)
        except ConfigError as exc:
            raise ConfigError(f"override {item!r}: {exc}") from None
    try:
        return RunConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"after overrides {list(overrides)}: {exc}") from None


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a TOML config (or the defaults when ``path`` is None) and apply overrides.

    Raises:
        ConfigError: unreadable/invalid TOML, unknown keys, values of the wrong
            type or out of range, malformed overrides. The message names the file.
        FileNotFoundError: ``path`` does not exist.
    """
    if path is None:
        config = RunConfig()
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        try:
            config = RunConfig.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return apply_overrides(config, overrides) if overrides else config


def save_config(config: RunConfig, path: str | os.PathLike) -> Path:
    """Atomically write ``config`` as TOML (``path`` may be a run folder: then
    ``path/config.toml``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.toml"
    return atomic_write_text(path, config.to_toml())


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given
    (an unavailable CUDA device raises ``ConfigError``)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    if device == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ConfigError("device 'mps' requested but MPS is not available")
    return torch.device(device)


def with_train(config: RunConfig, **changes: Any) -> RunConfig:
    """A copy of ``config`` with some train settings changed (validated)."""
    return replace(config, train=replace(config.train, **changes))
