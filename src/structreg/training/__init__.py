"""Training: run configuration (TOML + overrides), checkpoints, and the loop."""

from .checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from .config import ConfigError, RunConfig, TrainConfig, load_config, save_config
from .loop import LossParts, dice, registration_loss, train, train_step, validate

__all__ = ["CheckpointError", "ConfigError", "LossParts", "RunConfig", "TrainConfig", "dice",
           "load_config", "load_model", "read_checkpoint", "registration_loss", "save_checkpoint",
           "save_config", "train", "train_step", "validate"]
