"""Mixed precision and layout switches of the train config: bf16 autocast keeps the
field operations in float32 and trains like float32; channels-last lays the network
out channels-last and trains like the standard layout; SyncBatchNorm needs GPUs."""

import pytest
import torch

from helpers import random_pairs
from structreg.errors import ConfigError
from structreg.models.cvae import CVAERegistration, ModelConfig
from structreg.training import TrainConfig
from structreg.training.config import RunConfig
from structreg.training.distributed import Dist
from structreg.training.engine import Engine
from structreg.training.run import RunFolder
from structreg.training.tasks import VelocitySampler

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL = ModelConfig(
    image_size=(32, 32), latent_dim=8, enc_channels=(4, 4, 4, 2), dec_channels=(4, 4, 4, 4)
)


def _engine(tmp_path, dist=None, **train):
    config = RunConfig(
        model=MODEL,
        train=TrainConfig(steps=6, batch_size=4, lam=82.0, val_every=0, **train),
    )
    kwargs = {"dist": dist} if dist is not None else {}
    engine = Engine(config, random_pairs(8, 0), None, RunFolder(tmp_path), **kwargs)
    engine.init()
    return engine


def _losses(engine):
    return [engine.step()["loss"] for _ in range(6)]


def test_bf16_autocast_runs_the_network_in_bf16_and_the_field_in_float32(tmp_path):
    model = CVAERegistration(MODEL)
    moving, fixed = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    seen = []
    hook = model.decoder.velocity.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    mu, logvar, velocity = VelocitySampler(model, "bfloat16")(moving, fixed, None)
    hook.remove()
    assert seen == [torch.bfloat16]
    assert mu.dtype == logvar.dtype == velocity.dtype == torch.float32
    full = _losses(_engine(tmp_path / "f32"))
    half = _losses(_engine(tmp_path / "bf16", precision="bfloat16"))
    assert all(abs(a - b) / a < 0.01 for a, b in zip(full, half, strict=True))


def test_channels_last_lays_out_the_network_and_trains_like_the_standard_layout(tmp_path):
    engine = _engine(tmp_path / "cl", channels_last=True)
    weight = engine.model.encoder.blocks[0][0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()
    standard = _losses(_engine(tmp_path / "std"))
    assert _losses(engine) == pytest.approx(standard, rel=1e-5)


def test_sync_batchnorm_needs_cuda(tmp_path):
    with pytest.raises(ConfigError, match="needs CUDA"):
        _engine(tmp_path, dist=Dist(rank=0, world_size=2), sync_batchnorm=True)


def test_precision_must_be_known():
    with pytest.raises(ConfigError, match="train.precision must be one of float32, bfloat16"):
        TrainConfig(precision="float16")
