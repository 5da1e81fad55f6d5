"""Registration networks, each built only from its config dataclass."""

from .cvae import CVAEOutput, CVAERegistration, Decoder, Encoder, ModelConfig
from .inference import fold_batch_norm, inference_copy

__all__ = [
    "CVAEOutput",
    "CVAERegistration",
    "Decoder",
    "Encoder",
    "ModelConfig",
    "fold_batch_norm",
    "inference_copy",
]
