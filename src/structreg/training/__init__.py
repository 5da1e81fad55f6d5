"""Training: run configuration (TOML + overrides), the run folder, checkpoints, and
one engine (with hooks) for every trainable method."""

from ..errors import CheckpointError, ConfigError
from .checkpoint import load_model, read_checkpoint, save_checkpoint
from .config import RunConfig, TrainConfig, load_config, save_config
from .engine import train, train_run
from .hooks import log_columns
from .loop import Engine, Hook
from .run import DataSettings, RunFolder
from .tasks import LossParts, registration_loss, train_step

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataSettings",
    "Engine",
    "Hook",
    "LossParts",
    "RunConfig",
    "RunFolder",
    "TrainConfig",
    "load_config",
    "load_model",
    "log_columns",
    "read_checkpoint",
    "registration_loss",
    "save_checkpoint",
    "save_config",
    "train",
    "train_run",
    "train_step",
]
