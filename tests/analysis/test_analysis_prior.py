"""The aggregate posterior prior: fit, file, sampling from it."""

import numpy as np
import pytest
import torch

from structreg.analysis.prior import (
    fit_aggregate_prior,
    load_aggregate_prior,
    prior_path,
)
from structreg.analysis.sampling import prior_label, sample_deformations
from structreg.errors import DataError, InputError
from structreg.models.cvae import CVAERegistration, ModelConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def training_codes(n=400, d=6, seed=0):
    """Correlated codes off the origin, as a small KL weight leaves them."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(0.0, 0.5, (d, d))
    mu = rng.normal(size=(n, d)) @ mixing + np.linspace(-0.3, 0.3, d)
    sigma = np.full((n, d), 0.2)
    return mu, sigma


def test_fit_matches_the_moments_of_the_aggregate_posterior():
    mu, sigma = training_codes()
    prior = fit_aggregate_prior(mu, sigma)
    assert prior.n_codes == 400 and prior.code_dim == 6
    assert np.allclose(prior.mean, mu.mean(0))
    want = np.cov(mu.T, bias=True) + np.diag(np.full(6, 0.04))
    assert np.abs(prior.cov - want).max() < 0.05 * np.abs(want).max()
    z = prior.sample(20000, torch.Generator().manual_seed(0)).double().numpy()
    assert np.abs(z.mean(0) - prior.mean).max() < 0.03
    assert np.abs(np.cov(z.T) - prior.cov).max() < 0.05 * np.abs(prior.cov).max()


def test_prior_file_round_trip_and_errors(tmp_path):
    prior = fit_aggregate_prior(*training_codes())
    path = prior.save(tmp_path / "model.prior.npz")
    back = load_aggregate_prior(path, code_dim=6)
    assert back.n_codes == 400
    assert np.allclose(back.mean, prior.mean, atol=1e-6)
    assert np.allclose(back.cov, prior.cov, atol=1e-6)
    with pytest.raises(DataError, match="6-entry codes"):
        load_aggregate_prior(path, code_dim=8)
    with pytest.raises(FileNotFoundError, match="--prior-out"):
        load_aggregate_prior(tmp_path / "none.prior.npz")
    (tmp_path / "bad.prior.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not an aggregate prior"):
        load_aggregate_prior(tmp_path / "bad.prior.npz")
    with pytest.raises(InputError):
        fit_aggregate_prior(np.zeros((1, 4)))


def test_prior_path_is_beside_the_model_file(tmp_path):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"")
    assert prior_path(file) == tmp_path / "model.prior.npz"
    assert prior_path("builtin:cardiac").name == "cardiac.prior.npz"


def test_samples_from_the_aggregate_prior_are_its_codes():
    torch.manual_seed(0)
    model = CVAERegistration(ModelConfig(image_size=(16, 16), latent_dim=6)).eval()
    prior = fit_aggregate_prior(*training_codes())
    moving = torch.rand(1, 1, 16, 16)
    res = sample_deformations(
        model, moving, 3000, generator=torch.Generator().manual_seed(1), prior=prior
    )
    z = res.z.double().numpy()
    assert np.abs(z.mean(0) - prior.mean).max() < 0.05
    tight = sample_deformations(model, moving, 5, scale=0.0, prior=prior)
    assert np.allclose(tight.z.numpy(), prior.mean[None].astype(np.float32), atol=1e-5)
    assert "aggregate posterior of 400" in prior_label(1.0, prior)
    assert prior_label(0.5, None) == "z ~ N(0, 0.5² I)"
    small = CVAERegistration(ModelConfig(image_size=(16, 16), latent_dim=4)).eval()
    with pytest.raises(InputError, match="6-entry codes"):
        sample_deformations(small, moving, 2, prior=prior)


def test_the_bundled_cardiac_model_carries_its_prior():
    from structreg.training.checkpoint import load_model

    model, _ = load_model("builtin:cardiac", "cpu")
    prior = load_aggregate_prior(prior_path("builtin:cardiac"), model.config.code_dim)
    assert prior.n_codes == 175  # the model's training pairs
    assert np.all(np.linalg.eigvalsh(prior.cov) > 0)
