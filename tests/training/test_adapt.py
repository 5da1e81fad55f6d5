"""Adaptation: fine-tuning a model on a cohort's own pairs, without labels."""

import numpy as np
import pytest
import torch

from structreg.data.spec import load_pairs
from structreg.errors import InputError
from structreg.training.adapt import (
    ADAPT_DEFAULTS,
    adapt_model,
    adaptation_config,
    cohort_objective,
)
from structreg.training.checkpoint import load_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tiny_run_factory):
    return tiny_run_factory([0.0, 0.0])


@pytest.fixture(scope="module")
def cohort():
    """Six phantom pairs on the tiny run's grid (32x32 at 6 mm)."""
    return load_pairs("phantom:cardiac", split="all", size=(32, 32), spacing=(6, 6), n_subjects=6)


def _weights(model):
    return list(model.state_dict().values())


def test_adaptation_lowers_the_cohort_objective(run, cohort, tmp_path):
    done = adapt_model(
        run, cohort, tmp_path / "a", overrides={"steps": 12, "val_every": 4, "lr": 5e-3}
    )
    assert done.steps == 12 and done.final < done.initial
    config = adaptation_config(run, len(cohort), masks=True)
    assert cohort_objective(done.run, cohort, config) == pytest.approx(done.final)
    assert done.run == str(tmp_path / "a") and (tmp_path / "a" / "best.pt").is_file()


def test_zero_steps_reproduce_the_model_exactly(run, cohort, tmp_path):
    done = adapt_model(run, cohort, tmp_path / "z", overrides={"steps": 0})
    assert done.steps == 0 and done.final == done.initial
    before, _ = load_model(run)
    after, _ = load_model(done.run)
    assert all(torch.equal(a, b) for a, b in zip(_weights(before), _weights(after), strict=True))


def test_labels_are_never_read(run, cohort, tmp_path):
    settings = {"steps": 3, "val_every": 3, "lr": 5e-3}
    plain = adapt_model(run, cohort, tmp_path / "p", overrides=settings)
    scrambled = [
        type(p)(**{**p.__dict__, "moving_labels": np.full_like(p.moving_labels, 9)}) for p in cohort
    ]
    other = adapt_model(run, scrambled, tmp_path / "s", overrides=settings)
    a, _ = load_model(plain.run)
    b, _ = load_model(other.run)
    assert all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(b), strict=True))


def test_a_small_cohort_is_one_batch_and_masks_decide_the_mask_term(run, cohort):
    config = adaptation_config(run, 3, masks=False)
    assert config.train.batch_size == 3 and config.train.mask_weight == 0.0
    assert config.train.monitor == "loss" and config.train.frozen_norm
    assert config.train.init == str(run)
    big = adaptation_config(run, 500, masks=True)
    assert big.train.batch_size == ADAPT_DEFAULTS["batch_size"]
    # a batch size given as a setting, still at most the cohort
    assert (
        adaptation_config(run, 500, masks=True, overrides={"batch_size": 2}).train.batch_size == 2
    )
    assert adaptation_config(run, 3, masks=True, overrides={"batch_size": 8}).train.batch_size == 3


@pytest.mark.parametrize(
    "settings, message",
    [(["model.latent_dim=4"], "network"), (["train.batch_size=99"], "exceeds"), ([], "no pairs")],
)
def test_bad_adaptations_are_one_line_errors(run, cohort, tmp_path, settings, message):
    pairs = cohort if settings else []
    with pytest.raises(InputError, match=message):
        adapt_model(run, pairs, tmp_path / "x", settings=settings)
