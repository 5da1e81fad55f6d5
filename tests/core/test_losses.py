"""Gaussian smoothing and the losses of Eq. 1-2."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from helpers import shape_for, smooth_field, textured_image
from structreg.core.losses import (
    SymmetricLCCLoss,
    kl_divergence,
    lcc,
    outside_mask_penalty,
    symmetric_lcc,
)
from structreg.core.ops import exponentiate, gaussian_kernel1d, gaussian_smooth, warp


def test_gaussian_kernel():
    k = gaussian_kernel1d(2.0, 9, dtype=torch.float64)
    assert k.shape == (9,) and k.sum().item() == pytest.approx(1.0)
    assert torch.allclose(k, k.flip(0)) and k.argmax() == 4
    with pytest.raises(ValueError, match="odd"):
        gaussian_kernel1d(2.0, 8)


def test_gaussian_smooth_matches_scipy(ndim):
    img = textured_image(shape_for(ndim), seed=3) + torch.rand(
        1, 1, *shape_for(ndim), dtype=torch.float64
    )
    ours = gaussian_smooth(img, sigma=2.0, kernel_size=9).numpy()[0, 0]
    # scipy truncates at truncate*sigma = 4 voxels -> a 9-tap kernel, same normalisation
    ref = gaussian_filter(img.numpy()[0, 0], sigma=2.0, mode="nearest", truncate=2.0)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    const = torch.full((1, 2, *shape_for(ndim)), 0.7, dtype=torch.float64)
    assert torch.allclose(gaussian_smooth(const), const)


@pytest.mark.parametrize("a, b", [(2.0, 0.3), (-0.5, 1.0), (1.0, 0.0)])
def test_lcc_of_affine_intensity_map_is_one(ndim, a, b, device):
    img = textured_image(shape_for(ndim), seed=4).to(device)
    value = lcc(img, a * img + b, eps=1e-9)
    assert value.item() == pytest.approx(1.0, abs=1e-3)


def test_lcc_of_unrelated_images_is_low():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 1, 64, 64, generator=g, dtype=torch.float64)
    b = torch.rand(1, 1, 64, 64, generator=g, dtype=torch.float64)
    assert lcc(a, b).item() < 0.15


def test_lcc_constant_and_zero_images_are_finite_with_finite_gradients():
    zero = torch.zeros(1, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    const = torch.full((1, 1, 16, 16), 0.5, dtype=torch.float64, requires_grad=True)
    img = textured_image((16, 16)).requires_grad_(True)
    for f, m in [(zero, zero), (const, img), (img, zero)]:
        value = lcc(f, m)
        value.backward()
        assert torch.isfinite(value)
        for t in (f, m):
            assert t.grad is None or torch.isfinite(t.grad).all()
    v = torch.zeros(1, 2, 16, 16, dtype=torch.float64, requires_grad=True)
    value = symmetric_lcc(zero.detach(), zero.detach(), v)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(v.grad).all()


def test_lcc_map_and_reductions():
    img = textured_image((12, 12))
    m = lcc(img, img, reduction="none")
    assert m.shape == (1, 1, 12, 12)
    assert lcc(img, img, reduction="sum").item() == pytest.approx(m.sum().item())
    with pytest.raises(ValueError, match="reduction"):
        lcc(img, img, reduction="max")


def test_symmetric_lcc_with_zero_velocity_is_plain_lcc():
    f, m = textured_image((20, 20), seed=1), textured_image((20, 20), seed=2)
    v = torch.zeros(1, 2, 20, 20, dtype=torch.float64)
    assert symmetric_lcc(f, m, v).item() == pytest.approx(lcc(f, m).item(), abs=1e-12)


def test_symmetric_lcc_is_symmetric_and_finds_the_true_velocity():
    shape = (40, 40)
    m = textured_image(shape, seed=5)
    v_true = smooth_field(shape, 2.0, seed=6, sigma=5.0)
    f = warp(m, exponentiate(v_true, 4), padding_mode="border")
    # swapping the images and negating v gives the same value
    assert symmetric_lcc(f, m, v_true).item() == pytest.approx(
        symmetric_lcc(m, f, -v_true).item(), abs=1e-10
    )
    # the true velocity scores better than none, and its gradient points downhill
    assert symmetric_lcc(f, m, v_true) > symmetric_lcc(f, m, torch.zeros_like(v_true)) + 0.02
    v = torch.zeros_like(v_true, requires_grad=True)
    loss = SymmetricLCCLoss()(f, m, v)
    loss.backward()
    with torch.no_grad():
        stepped = SymmetricLCCLoss()(f, m, -0.5 * v.grad / v.grad.abs().max())
    assert stepped < loss


def test_half_warps_are_the_images_at_the_half_transforms_and_feed_symmetric_lcc(ndim):
    from structreg.core.losses import half_warps

    shape = shape_for(ndim)
    m, f = textured_image(shape, seed=1), textured_image(shape, seed=2)
    v = smooth_field(shape, 2.0, seed=3, batch=2)
    both = half_warps(m, f, v, 4)  # a batch of 1 broadcasts
    assert both.shape == (4, 1, *shape)
    moved = warp(m.expand(2, -1, *shape), exponentiate(0.5 * v, 4), padding_mode="border")
    fixed = warp(f.expand(2, -1, *shape), exponentiate(-0.5 * v, 4), padding_mode="border")
    assert torch.allclose(both[:2], moved, atol=1e-12)
    assert torch.allclose(both[2:], fixed, atol=1e-12)
    # symmetric_lcc is the plain LCC of the two halves
    plain = lcc(both[2:], both[:2], reduction="none")
    assert torch.equal(symmetric_lcc(f, m, v, reduction="none"), plain)


def test_kl_divergence_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 144, generator=g, dtype=torch.float64)
    logvar = torch.randn(4, 144, generator=g, dtype=torch.float64) * 0.5
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(kl_divergence(mu, logvar, reduction="none"), expected)
    assert kl_divergence(mu, logvar).item() == pytest.approx(expected.mean().item())
    assert kl_divergence(torch.zeros(2, 8), torch.zeros(2, 8)).item() == 0.0
    with pytest.raises(ValueError, match="^kl_divergence: "):
        kl_divergence(mu, logvar[:, :10])


def test_outside_mask_penalty():
    disp = torch.zeros(2, 2, 10, 10, dtype=torch.float64)
    mask = torch.zeros(1, 1, 10, 10)
    mask[..., 2:8, 2:8] = 1
    disp[0, :, 4, 4] = 5.0  # inside: free
    assert outside_mask_penalty(disp, mask).item() == 0.0
    disp[1, 0, 0, 0] = 3.0  # outside: 9 over 64 outside voxels
    per_item = outside_mask_penalty(disp, mask, reduction="none")
    assert per_item[0].item() == 0.0 and per_item[1].item() == pytest.approx(9 / 64)
    with pytest.raises(ValueError, match="mask"):
        outside_mask_penalty(disp, mask[0])


def test_forward_lcc_is_the_lcc_of_the_fixed_image_and_the_warped_moving_image(ndim):
    from structreg.core.losses import forward_lcc, lcc
    from structreg.core.ops import exponentiate, warp

    shape = (20, 18) if ndim == 2 else (12, 10, 9)
    g = torch.Generator().manual_seed(0)
    moving, fixed = torch.rand(2, 1, *shape, generator=g, dtype=torch.float64).unbind(0)
    moving, fixed = moving[None], fixed[None]
    v = 0.8 * torch.randn(1, ndim, *shape, generator=g, dtype=torch.float64)
    moved = warp(moving, exponentiate(v, 4), padding_mode="border")
    assert float(forward_lcc(fixed, moving, v)) == pytest.approx(
        float(lcc(fixed, moved)), abs=1e-10
    )
    # the identity: the plain LCC of the pair
    assert float(forward_lcc(fixed, moving, 0 * v)) == pytest.approx(float(lcc(fixed, moving)))


def test_a_training_step_with_the_one_sided_lcc_is_finite_and_differs():
    from helpers import random_pairs
    from structreg.data import collate_pairs
    from structreg.models.cvae import CVAERegistration, ModelConfig
    from structreg.training import TrainConfig
    from structreg.training.tasks import train_step

    batch = collate_pairs(random_pairs(4, 0))
    losses = []
    for symmetric in (True, False):
        torch.manual_seed(0)
        model = CVAERegistration(ModelConfig(image_size=(32, 32), latent_dim=8))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        config = TrainConfig(lam=82.0, lcc_symmetric=symmetric)
        parts = train_step(model, opt, batch, config, torch.Generator().manual_seed(0))
        losses.append(float(parts.total.detach()))
    assert all(np.isfinite(losses)) and losses[0] != losses[1]
