"""Registration networks, each built only from its config dataclass."""

from .cvae import CVAEOutput, CVAERegistration, Decoder, Encoder, ModelConfig

__all__ = ["CVAEOutput", "CVAERegistration", "Decoder", "Encoder", "ModelConfig"]
