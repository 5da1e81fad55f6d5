"""LCC-Demons recovers a known smooth diffeomorphism."""

import pytest
import torch

from helpers import smooth_field, textured_image
from structreg.core.ops import exponentiate, folding_fraction, warp
from structreg.methods.identity import Identity
from structreg.methods.lcc_demons import LCCDemons, LCCDemonsConfig


def register(moving, fixed, config=None):
    return LCCDemons(config).register(moving, fixed)


def _pair(shape, amplitude, seed=0):
    m = (
        (textured_image(shape, seed=seed + 1) + 0.5 * textured_image(shape, seed=seed + 5)) / 1.5
    ).float()
    v_true = smooth_field(shape, amplitude, seed=seed + 2, sigma=8.0).float()
    u_true = exponentiate(v_true, 6)
    return m, warp(m, u_true, padding_mode="border"), u_true


def test_recovers_known_smooth_diffeomorphism():
    m, f, u_true = _pair((64, 64), amplitude=8.0)
    result = register(m, f)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    epe = (result.disp - u_true).norm(dim=1, keepdim=True)[inner]
    before = u_true.norm(dim=1, keepdim=True)[inner]
    print(
        f"\nLCC-Demons EPE mean {epe.mean():.3f} max {epe.max():.3f} vox "
        f"(identity: mean {before.mean():.3f} max {before.max():.3f}); {result.seconds:.1f}s"
    )
    assert epe.mean() < 0.25 and epe.max() < 1.0 and before.max() > 3.0
    assert folding_fraction(result.disp).item() == 0.0
    rmse_before = (m - f).pow(2).mean().sqrt()
    rmse_after = (result.moved - f).pow(2).mean().sqrt()
    assert rmse_after < 0.5 * rmse_before
    assert result.inverse_disp is not None and result.velocity is not None


def test_runs_batched_and_in_3d():
    m, f, _ = _pair((16, 16, 16), amplitude=2.0)
    cfg = LCCDemonsConfig(levels=2, iterations=[10, 5])
    result = register(torch.cat([m, m]), torch.cat([f, m]), cfg)
    assert result.disp.shape == (2, 3, 16, 16, 16)
    err = (result.moved - torch.cat([f, m])).pow(2).flatten(1).mean(1).sqrt()
    assert err[0] < (m - f).pow(2).mean().sqrt()
    # registering an image to itself barely moves
    assert result.disp[1].abs().max() < 0.2


def test_identity_baseline_and_config_errors():
    m = textured_image((8, 8)).float()
    r = Identity().register(m, m)
    assert torch.equal(r.moved, m) and r.disp.abs().sum() == 0 and torch.all(r.jacobian_det == 1)
    with pytest.raises(ValueError, match="iterations"):
        LCCDemonsConfig(levels=2, iterations=[5])
    with pytest.raises(ValueError, match="lcc_demons"):
        register(m, torch.zeros(1, 1, 9, 9))
