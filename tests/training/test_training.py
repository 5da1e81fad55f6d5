"""Training: config files and overrides, the loss, learning on small problems,
run-folder outputs and exact resumption."""

import csv
import math

import numpy as np
import pytest
import torch

from helpers import random_pairs
from helpers import train_config as _config
from structreg.core.metrics import dice
from structreg.core.ops import folding_fraction, gaussian_smooth, warp
from structreg.data import Pair
from structreg.models import CVAERegistration, ModelConfig
from structreg.training import (
    ConfigError,
    RunConfig,
    TrainConfig,
    load_config,
    load_model,
    registration_loss,
    save_config,
    train,
    train_step,
)
from structreg.training.engine import log_columns
from structreg.training.tasks import CVAETask

LOG_COLUMNS = log_columns(CVAETask())

TINY = ModelConfig(
    image_size=(32, 32), latent_dim=16, enc_channels=(4, 8, 8, 2), dec_channels=(8, 8, 8, 8)
)


# -- data ---------------------------------------------------------------------------


def _grid(n=32):
    return torch.meshgrid(
        torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32), indexing="ij"
    )


def disc(center, radius, n=32) -> torch.Tensor:
    yy, xx = _grid(n)
    return ((yy - center[0]) ** 2 + (xx - center[1]) ** 2) < radius**2


def blur(mask: torch.Tensor) -> np.ndarray:
    return gaussian_smooth(mask.float()[None, None], 1.0, 5)[0, 0].numpy()


def disc_pair() -> Pair:
    """A disc (r = 6) and a shifted, enlarged disc (r = 8), with labels."""
    m, f = disc((15, 15), 6), disc((17, 18), 8)
    return Pair(
        moving=blur(m),
        fixed=blur(f),
        spacing=(1.0, 1.0),
        id="disc",
        moving_labels=m.numpy().astype(np.int16),
        fixed_labels=f.numpy().astype(np.int16),
    )


# -- config -------------------------------------------------------------------------


def test_config_toml_load_overrides_and_round_trip(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        "[model]\nimage_size = [64, 48]\nlatent_dim = 32\n\n[train]\nlam = 55\nbatch_size = 8\n",
        encoding="utf-8",
    )
    config = load_config(
        path,
        ["train.lr=1e-3", "latent_dim=8", "device=cpu", "model.condition=false", "train.seed = 3"],
    )
    assert config.model.image_size == (64, 48) and config.model.latent_dim == 8
    assert config.model.condition is False
    assert config.train.lam == 55.0 and isinstance(config.train.lam, float)
    assert (config.train.lr, config.train.batch_size, config.train.device, config.train.seed) == (
        1e-3,
        8,
        "cpu",
        3,
    )
    assert config.train.weight_decay == 1e-4  # untouched default
    written = save_config(config, tmp_path)
    assert written.name == "config.toml"
    assert load_config(written) == config


@pytest.mark.parametrize(
    "override, match",
    [
        ("lr", "key=value"),
        ("train.bogus=1", "unknown key 'bogus'"),
        ("bogus=1", "unknown key 'bogus'"),
        ("optim.lr=1", "unknown section"),
        ("steps=10", "ambiguous"),
        ("train.lr=fast", "cannot read"),
        ("train.batch_size=2.5", "batch_size must be a int"),
        ("train.lr=-1", "lr must be > 0"),
        ("model.latent_dim=0", "latent_dim"),
        ("train.device=gpu", "device"),
        ("train.lcc_kernel=8", "odd"),
    ],
)
def test_bad_override_is_a_clear_error(override, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_config(None, [override])
    assert "\n" not in str(info.value)


def test_bad_config_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nlr = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.toml.*not valid TOML"):
        load_config(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[train]\nlearning_rate = 1e-3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown.toml.*learning_rate"):
        load_config(unknown)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    "name, lam, monitor",
    [("cardiac", 82.0, "dice"), ("brain", 55.0, "loss"), ("demo", 82.0, "dice")],
)
def test_shipped_configs_load(name, lam, monitor):
    from structreg.configs import resolve_config

    config = load_config(resolve_config(name))
    assert config.train.lam == lam
    assert config.train.monitor == monitor  # longitudinal atrophy is sub-voxel: the loss
    assert config.model.image_size == (100, 100)


# -- loss ---------------------------------------------------------------------------


def test_loss_scale_and_parts():
    g = torch.Generator().manual_seed(0)
    moving = torch.rand(2, 1, 32, 32, generator=g)
    mu, logvar = torch.zeros(2, 16), torch.zeros(2, 16)
    parts = registration_loss(mu, logvar, torch.zeros(2, 2, 32, 32), moving, moving, lam=82.0)
    # identical images and the prior as posterior: perfect similarity, zero KL
    assert parts.lcc.item() == pytest.approx(1.0, abs=1e-3)
    assert parts.kl.item() == pytest.approx(0.0, abs=1e-6)
    assert parts.total.item() == pytest.approx(82.0 * (1.0 - parts.lcc.item()), abs=1e-4)
    # KL is summed over latent dims and averaged over the batch
    mu = torch.tensor([[1.0] + [0.0] * 15, [3.0] + [0.0] * 15])
    parts = registration_loss(mu, logvar, torch.zeros(2, 2, 32, 32), moving, moving, lam=1.0)
    assert parts.kl.item() == pytest.approx((0.5 + 4.5) / 2)
    with pytest.raises(ValueError, match="mask"):
        registration_loss(
            mu, logvar, torch.zeros(2, 2, 32, 32), moving, moving, lam=1.0, mask_weight=1.0
        )
    mask = torch.zeros(2, 1, 32, 32)
    parts = registration_loss(
        mu, logvar, torch.ones(2, 2, 32, 32), moving, moving, lam=1.0, mask=mask, mask_weight=10.0
    )
    assert parts.penalty.item() == pytest.approx(2.0)


def test_dice_metric_per_label():
    a = torch.tensor([[1, 1, 0, 2]])
    b = torch.tensor([[1, 0, 0, 2]])
    assert dice(a, b, [1]) == pytest.approx(2 / 3) and dice(a, b, [2]) == 1.0
    assert math.isnan(dice(a, b, [3]))


# -- learning -----------------------------------------------------------------------


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    pairs = random_pairs(8, seed=1)
    batch = {
        k: torch.from_numpy(np.stack([getattr(p, k) for p in pairs]))[:, None]
        for k in ("moving", "fixed")
    }
    model = CVAERegistration(TINY)
    config = TrainConfig(lr=5e-3, lam=82.0)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(0)
    parts = [train_step(model, opt, batch, config, gen).as_floats() for _ in range(20)]
    losses = [p["total"] for p in parts]
    # the loss is ~λ(1 - LCC) ≈ 50 at the identity and bounded below by λ(1 - max LCC)
    assert np.mean(losses[-3:]) < 0.97 * np.mean(losses[:3]), losses
    assert np.mean([p["lcc"] for p in parts[-3:]]) > np.mean([p["lcc"] for p in parts[:3]])


def test_overfitting_one_pair_registers_it_without_folding(tmp_path):
    pair = disc_pair()
    config = TrainConfig(
        steps=100,
        lr=1e-2,
        batch_size=1,
        val_every=0,
        checkpoint_every=0,
        device="cpu",
        tensorboard=False,
    )
    rows = train(TINY, config, [pair], [pair], tmp_path / "run", progress=False)
    last = rows[-1]
    assert last["val_dice_before"] < 0.7
    assert last["val_dice"] >= 0.9, last
    assert last["val_folding_pct"] == 0.0
    # the saved model registers the pair the same way
    model, _ = load_model(tmp_path / "run", "cpu")
    moving = torch.from_numpy(pair.moving)[None, None]
    out = model.predict(moving, torch.from_numpy(pair.fixed)[None, None])
    moved = (
        warp(torch.from_numpy(pair.moving_labels).float()[None, None], out.disp, mode="nearest")
        .round()
        .long()
    )
    d = dice(moved[0, 0], torch.from_numpy(pair.fixed_labels).long(), [1])
    assert d == pytest.approx(last["val_dice"])
    assert folding_fraction(out.disp).item() == 0.0


# -- run folder and resumption ------------------------------------------------------


def test_run_folder_outputs(tmp_path):
    pairs = random_pairs(6, seed=2)
    rows = train(TINY, _config(3), pairs[:4], pairs[4:], tmp_path, progress=False)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for name in ("config.toml", "train_log.csv", "checkpoint.pt", "best.pt"):
        assert (tmp_path / name).is_file(), name
    assert load_config(tmp_path / "config.toml") == RunConfig(model=TINY, train=_config(3))
    with (tmp_path / "train_log.csv").open() as fh:
        logged = list(csv.DictReader(fh))
    assert tuple(logged[0]) == LOG_COLUMNS and len(logged) == 3
    assert logged[0]["val_dice"] == "" and float(logged[1]["val_dice"]) > 0
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(TINY, _config(3), pairs[:4], pairs[4:], tmp_path, progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(
            TINY, _config(6, lr=1e-3), pairs[:4], pairs[4:], tmp_path, resume=True, progress=False
        )
    with pytest.raises(ValueError, match="image_size"):
        train(
            ModelConfig(image_size=(40, 40)),
            _config(1),
            pairs,
            None,
            tmp_path / "x",
            progress=False,
        )


def test_resume_continues_exactly(tmp_path):
    # 10 pairs, batch 4: 2 steps per epoch, so step 3 stops in the middle of an epoch
    pairs = random_pairs(12, seed=3)
    train_pairs, val_pairs = pairs[:10], pairs[10:]
    straight = train(TINY, _config(6), train_pairs, val_pairs, tmp_path / "a", progress=False)
    train(TINY, _config(3), train_pairs, val_pairs, tmp_path / "b", progress=False)
    resumed = train(
        TINY, _config(6), train_pairs, val_pairs, tmp_path / "b", resume=True, progress=False
    )
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for key, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][key][name]), (key, name)
    assert [r["step"] for r in resumed] == list(range(1, 7))
    assert [r["loss"] for r in straight] == pytest.approx([r["loss"] for r in resumed], rel=1e-5)
    # a different seed gives different weights (the comparison above can fail)
    other = train(TINY, _config(6, seed=8), train_pairs, val_pairs, tmp_path / "c", progress=False)
    assert other[-1]["loss"] != straight[-1]["loss"]
