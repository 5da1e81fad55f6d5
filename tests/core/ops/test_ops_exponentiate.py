"""The exponentiation layer (scaling and squaring)."""

import math
from functools import partial

import pytest
import torch

from helpers import shape_for, smooth_field
from structreg.core.layers import Exponentiation
from structreg.core.ops import (
    compose,
    exponentiate,
    folding_fraction,
    half_transforms,
    identity_grid,
    integrate_velocity_rk4,
)
from structreg.errors import InputError

# exp(v) ∘ exp(-v) = id up to this many voxels (max over the interior) for a smooth
# field of max amplitude 3 voxels at N = 4 (measured ~0.02; bound leaves margin).
INVERSE_TOLERANCE_VOX = 0.06
# Scaling and squaring with N = 4 vs a 256-step RK4 reference: mean endpoint error
# (voxels) on fields of max speed 6 voxels / unit time (measured table in the test output).
N4_MEAN_ERROR_BOUND_VOX = 0.05


def test_zero_velocity_gives_identity(ndim, device):
    v = torch.zeros(2, ndim, *shape_for(ndim), dtype=torch.float64, device=device)
    assert torch.equal(exponentiate(v, 4), v)


def test_constant_velocity_gives_the_same_translation(ndim, device):
    shape = shape_for(ndim)
    v = torch.zeros(1, ndim, *shape, dtype=torch.float64, device=device)
    for c, t in enumerate([1.5, -2.25, 0.75][:ndim]):
        v[:, c] = t
    for steps in (0, 1, 4, 7):
        assert torch.allclose(exponentiate(v, steps), v, atol=1e-12)


def test_inverse_consistency(ndim, device):
    shape = (40, 36) if ndim == 2 else (20, 18, 16)
    v = smooth_field(shape, amplitude=3.0, seed=1, sigma=4.0).to(device)
    u, u_inv = exponentiate(v, 4), exponentiate(-v, 4)
    inner = (slice(None), slice(None)) + tuple(slice(5, -5) for _ in shape)
    err_fwd = compose(u, u_inv).norm(dim=1, keepdim=True)[inner].max().item()
    err_bwd = compose(u_inv, u).norm(dim=1, keepdim=True)[inner].max().item()
    print(
        f"\n{ndim}-D |exp(v)∘exp(-v) - id| max interior = {err_fwd:.4f} vox, reverse {err_bwd:.4f}"
    )
    assert err_fwd < INVERSE_TOLERANCE_VOX and err_bwd < INVERSE_TOLERANCE_VOX


def _rotation_velocity(size: int, omega: float) -> torch.Tensor:
    """v(x) = ω J (x - c): a rotation about the centre, damped to 0 at the border."""
    grid = identity_grid((size, size), dtype=torch.float64)
    c = (size - 1) / 2
    y, x = grid[:, 0] - c, grid[:, 1] - c
    r = torch.sqrt(x**2 + y**2)
    damp = torch.clamp(1 - r / (0.45 * size), min=0.0) ** 2
    return torch.stack([-omega * x * damp, omega * y * damp], dim=1)


def _accuracy_table(v: torch.Tensor) -> dict[int, float]:
    reference = integrate_velocity_rk4(v, steps=256)
    return {n: (exponentiate(v, n) - reference).norm(dim=1).mean().item() for n in range(2, 9)}


@pytest.mark.parametrize("kind", ["rotation", "random"])
def test_accuracy_against_runge_kutta_reference(kind):
    size = 48
    if kind == "rotation":
        v = _rotation_velocity(size, omega=1.5)
    else:
        v = smooth_field((size, size), amplitude=6.0, seed=2, sigma=5.0)
    table = _accuracy_table(v)
    print(
        f"\n{kind} SVF (max speed {v.norm(dim=1).max():.2f} vox): mean |exp_N(v) - RK4| in voxels"
    )
    for n, err in table.items():
        print(f"  N={n}: {err:.5f}")
    assert table[4] < N4_MEAN_ERROR_BOUND_VOX
    # more squarings never hurt much, and N=8 is clearly better than N=2
    assert table[8] < 0.5 * table[2]
    assert all(table[n + 1] <= table[n] * 1.05 for n in range(2, 8))


def test_large_smooth_velocity_stays_diffeomorphic():
    v = smooth_field((64, 64), amplitude=12.0, seed=3, sigma=6.0)
    u = exponentiate(v, 4)
    assert folding_fraction(u).item() == 0.0
    # the same field used directly as a displacement folds
    assert folding_fraction(v * 3).item() > 0.0


def test_half_transforms_match_exponentiate(ndim):
    v = smooth_field(shape_for(ndim), 2.0, seed=4)
    fwd, bwd = half_transforms(v, 4)
    assert torch.allclose(fwd, exponentiate(0.5 * v, 4), atol=1e-12)
    assert torch.allclose(bwd, exponentiate(-0.5 * v, 4), atol=1e-12)
    # the two halves compose to the full transform (up to interpolation error)
    inner = (slice(None), slice(None)) + tuple(slice(3, -3) for _ in shape_for(ndim))
    assert (compose(fwd, fwd) - exponentiate(v, 4))[inner].abs().max() < 0.05


def test_gradcheck_exponentiate(ndim):
    shape = (6, 5) if ndim == 2 else (4, 4, 3)
    v = smooth_field(shape, amplitude=1.7, seed=5, sigma=1.0).requires_grad_(True)
    # off the integer lattice: the sampled positions are fractional
    assert torch.autograd.gradcheck(lambda x: exponentiate(x, 3), (v,))


def test_matches_voxelmorph_integration(ndim):
    vxm = pytest.importorskip("voxelmorph")
    shape = shape_for(ndim)
    v = smooth_field(shape, 3.0, seed=6).float()
    transformer = partial(vxm.nn.functional.spatial_transform, padding_mode="border")
    theirs = vxm.nn.functional.integrate_vec(v, steps=4, transformer=transformer)
    assert torch.allclose(exponentiate(v, 4), theirs, atol=1e-4)
    # with their default zero padding the two agree away from the border
    theirs_zero = vxm.nn.functional.integrate_vec(v, steps=4)
    inner = (slice(None), slice(None)) + tuple(slice(4, -4) for _ in shape)
    assert (exponentiate(v, 4) - theirs_zero)[inner].abs().max() < 0.05


def test_matches_monai_dvf2ddf(ndim):
    blocks = pytest.importorskip("monai.networks.blocks")
    shape = shape_for(ndim)
    v = smooth_field(shape, 3.0, seed=7).float()
    theirs = blocks.DVF2DDF(num_steps=4, mode="bilinear", padding_mode="border")(v)
    assert torch.allclose(exponentiate(v, 4), theirs, atol=1e-4)


def test_exponentiation_module():
    layer = Exponentiation(steps=4)
    assert len(layer.state_dict()) == 0 and "steps=4" in repr(layer)
    v = smooth_field((16, 16), 2.0, seed=8).float().requires_grad_(True)
    out = layer(v)
    out.square().sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad).all()
    with pytest.raises(ValueError, match="steps"):
        Exponentiation(steps=-1)


@pytest.mark.parametrize(
    "bad, kind",
    [
        (torch.zeros(1, 2, 8), ValueError),
        (torch.zeros(1, 3, 8, 8), ValueError),
        (torch.zeros(1, 2, 8, 8, dtype=torch.int64), TypeError),
        (torch.full((1, 2, 8, 8), math.nan), ValueError),
    ],
)
def test_bad_velocity_is_refused(bad, kind):
    with pytest.raises(kind, match=r"^exponentiate: "):
        exponentiate(bad, 4)
    with pytest.raises(ValueError, match="steps"):
        exponentiate(torch.zeros(1, 2, 8, 8), steps=1.5)


@pytest.mark.parametrize("ndim", [2, 3])
def test_exponentiation_on_a_coarser_grid(ndim):
    size = (40, 36) if ndim == 2 else (24, 20, 22)
    v = smooth_field(size, 3.0, seed=ndim, sigma=5.0)
    exact = exponentiate(v, 4)
    assert torch.equal(exponentiate(v, 4, downsize=1), exact)
    coarse = exponentiate(v, 4, downsize=2)
    assert coarse.shape == exact.shape
    error = (coarse - exact).norm(dim=1)
    assert 0 < error.mean() < 0.05 and error.max() < 0.5  # voxels (measured 0.02, 0.35)
    # a constant velocity is exact on any grid
    shift = torch.full((1, ndim, *size), 1.5, dtype=torch.float64)
    torch.testing.assert_close(exponentiate(shift, 4, downsize=3), exponentiate(shift, 4))
    with pytest.raises(InputError, match="downsize"):
        exponentiate(v, 4, downsize=0)


@pytest.mark.parametrize("ndim", [2, 3])
def test_buffered_path_equals_the_differentiable_one(ndim):
    """Without a gradient the squarings run in two reused buffers with the channel
    reversal folded into the scalings; the displacement equals the differentiable
    path's to float rounding, in every channel order."""
    torch.manual_seed(0)
    size = (9, 11, 7)[:ndim]
    v = 2.0 * torch.randn(2, ndim, *size)
    with torch.no_grad():
        fast = exponentiate(v, 4)
    slow = exponentiate(v.clone().requires_grad_(True), 4).detach()
    assert fast.abs().max() > 0.5
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=1e-6)
