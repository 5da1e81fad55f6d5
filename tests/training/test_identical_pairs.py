"""Identical pairs in training (``train.identical_rate``): the batch's share of pairs
whose fixed image is the moving image, and no change at all when the rate is 0."""

import pytest
import torch

from helpers import random_pairs
from helpers import train_config as _config
from structreg.data import collate_pairs
from structreg.errors import ConfigError
from structreg.models import ModelConfig
from structreg.training import Engine, RunConfig, RunFolder
from structreg.training.config import apply_overrides
from structreg.training.tasks import identical_count, with_identical_pairs

TINY = ModelConfig(
    image_size=(32, 32), latent_dim=16, enc_channels=(4, 8, 8, 2), dec_channels=(8, 8, 8, 8)
)


def _batch(n: int, seed: int = 2) -> dict:
    return {k: v for k, v in collate_pairs(random_pairs(n, seed=seed)).items() if v is not None}


def _identical(batch: dict) -> torch.Tensor:
    """Per pair: fixed image equal to the moving image."""
    return (batch["fixed"] == batch["moving"]).flatten(1).all(1)


def test_the_stated_fraction_of_a_batch_becomes_identical_with_consistent_labels():
    batch = _batch(10)
    assert not _identical(batch).any()
    out = with_identical_pairs(batch, 0.2)
    same = _identical(out)
    assert same.tolist() == [True, True] + [False] * 8
    assert torch.equal(out["fixed_labels"][:2], batch["moving_labels"][:2])
    assert torch.equal(out["fixed_labels"][2:], batch["fixed_labels"][2:])
    assert torch.equal(out["fixed"][2:], batch["fixed"][2:])
    assert torch.equal(out["moving"], batch["moving"]) and torch.equal(
        batch["fixed"], _batch(10)["fixed"]
    )  # the input batch is not modified
    assert with_identical_pairs(batch, 0.0) is batch
    assert identical_count(50, 0.2) == 10 and identical_count(4, 1.0) == 4


def test_near_identical_pairs_carry_noise_of_the_stated_size_from_the_generator():
    batch = _batch(10)
    a = with_identical_pairs(batch, 0.5, 0.05, torch.Generator().manual_seed(1))
    b = with_identical_pairs(batch, 0.5, 0.05, torch.Generator().manual_seed(1))
    assert torch.equal(a["fixed"], b["fixed"])
    diff = a["fixed"][:5] - batch["moving"][:5]
    assert float(diff.std()) == pytest.approx(0.05, rel=0.05)
    assert torch.equal(a["fixed_labels"][:5], batch["moving_labels"][:5])
    assert torch.equal(a["fixed"][5:], batch["fixed"][5:])


class _Recorder:
    """A training task that records the batches it is given and delegates the rest."""

    def __init__(self, task):
        self.task, self.batches = task, []

    def __getattr__(self, name):
        return getattr(self.task, name)

    def train_step(self, model, optimizer, batch, *args, **kwargs):
        self.batches.append({k: v.clone() for k, v in batch.items()})
        return self.task.train_step(model, optimizer, batch, *args, **kwargs)


def _train(tmp_path, name: str, **kw) -> tuple[Engine, _Recorder]:
    pairs = random_pairs(10, seed=4)
    config = RunConfig(model=TINY, train=_config(3, batch_size=5, val_every=0, **kw))
    engine = Engine(config, pairs, None, RunFolder(tmp_path / name))
    engine.task = recorder = _Recorder(engine.task)  # type: ignore[assignment]
    engine.init()
    engine.run()
    return engine, recorder


def test_training_batches_hold_the_stated_fraction_of_identical_pairs(tmp_path):
    _, recorder = _train(tmp_path, "r", identical_rate=0.4)
    assert len(recorder.batches) == 3
    for batch in recorder.batches:
        assert int(_identical(batch).sum()) == 2  # round(0.4 * 5)


def test_rate_zero_trains_exactly_as_without_the_option(tmp_path):
    plain, plain_batches = _train(tmp_path, "plain")
    noisy, _ = _train(tmp_path, "noise", identical_noise=0.5)  # no effect at rate 0
    on, _ = _train(tmp_path, "on", identical_rate=0.4)
    assert not any(_identical(b).any() for b in plain_batches.batches)
    assert [r["loss"] for r in plain.rows] == [r["loss"] for r in noisy.rows]
    assert torch.equal(plain.noise.get_state(), noisy.noise.get_state())
    for name, tensor in plain.model.state_dict().items():
        assert torch.equal(tensor, noisy.model.state_dict()[name]), name
    assert [r["loss"] for r in plain.rows] != [r["loss"] for r in on.rows]


def test_identical_rate_is_checked_and_set_from_the_command_line():
    with pytest.raises(ConfigError, match="identical_rate must be in"):
        _config(1, identical_rate=1.5)
    with pytest.raises(ConfigError, match="identical_noise must be >= 0"):
        _config(1, identical_noise=-0.1)
    config = apply_overrides(RunConfig(model=TINY), ["train.identical_rate=0.2"])
    assert config.train.identical_rate == 0.2
