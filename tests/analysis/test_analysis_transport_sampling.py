"""Deformation transport, prior sampling, posterior spread and interpolation on a tiny model."""

import numpy as np
import pytest
import torch

from helpers import textured_image
from structreg.analysis.sampling import (
    endpoint_codes,
    interpolate_codes,
    interpolate_pair,
    interpolation_figure,
    posterior_spread,
    sample_deformations,
)
from structreg.analysis.transport import decode_code, transport
from structreg.core.metrics import batch_folding_percent
from structreg.methods.ours import CVAERegistrar
from structreg.models.cvae import CVAERegistration, ModelConfig


def register(model, moving, fixed):
    return CVAERegistrar(model).register(moving, fixed)


SIZE = (32, 32)


@pytest.fixture(scope="module")
def model():
    """A tiny untrained model whose velocities are clearly non-zero (about a voxel)
    and depend on both the code and the conditioning image."""
    torch.manual_seed(0)
    m = CVAERegistration(ModelConfig(image_size=SIZE, latent_dim=8, velocity_init_std=0.5))
    m.eval()
    return m


def images(n, seed=0):
    return torch.cat([textured_image(SIZE, seed=seed + i, dtype=torch.float32) for i in range(n)])


def test_encode_decode_shapes(model):
    m, f = images(3), images(3, seed=10)
    mu, logvar = model.encode(m, f)
    assert mu.shape == (3, 8) and logvar.shape == (3, 8)
    v = model.decode(mu, m)
    assert v.shape == (3, 2, *SIZE)
    res = decode_code(model, mu, m)
    assert res.moved.shape == (3, 1, *SIZE) and res.disp.shape == (3, 2, *SIZE)
    assert res.jacobian_det.shape == (3, 1, *SIZE)


def test_transport_with_source_equal_target_is_registration(model):
    m, f = images(2), images(2, seed=5)
    ours = transport(model, m, f, m)
    ref = register(model, m, f)
    assert ref.disp.abs().max() > 0.1  # a non-trivial deformation
    for name in ("moved", "disp", "velocity", "jacobian_det", "z"):
        assert torch.allclose(getattr(ours, name), getattr(ref, name), atol=1e-6), name


def test_transport_applies_source_code_to_another_anatomy(model):
    src_m, src_f, target = images(1), images(1, seed=5), images(1, seed=20)
    res = transport(model, src_m, src_f, target)
    mu, _ = model.encode(src_m, src_f)
    assert torch.allclose(res.z, mu)
    # the source code decoded conditioned on the target, warping the target
    assert torch.allclose(res.disp, decode_code(model, mu, target).disp, atol=1e-6)
    assert not torch.allclose(res.disp, register(model, src_m, src_f).disp, atol=1e-3)
    from structreg.core.ops import warp

    assert torch.allclose(res.moved, warp(target, res.disp, padding_mode="border"), atol=1e-6)
    # one source code applied to several targets
    many = transport(model, src_m, src_f, images(3, seed=30))
    assert many.moved.shape == (3, 1, *SIZE) and torch.allclose(many.z, mu.expand(3, -1))
    with pytest.raises(ValueError, match="source pairs"):
        transport(model, images(2), images(2), images(3))


def test_sampling_shapes_reproducibility_and_no_folding(model):
    moving = images(1)
    g = torch.Generator().manual_seed(1)
    res = sample_deformations(model, moving, 6, scale=0.5, generator=g)
    assert res.moved.shape == (6, 1, *SIZE) and res.disp.shape == (6, 2, *SIZE)
    assert res.z.shape == (6, 8)
    assert res.disp.abs().max() > 0.1
    assert (batch_folding_percent(res.disp) == 0).all()
    again = sample_deformations(
        model, moving, 6, scale=0.5, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(res.disp, again.disp)
    # the samples differ from each other; scale 0 gives the zero code for all
    assert (res.disp[0] - res.disp[1]).abs().max() > 1e-3
    zero = sample_deformations(model, moving, 2, scale=0.0)
    assert torch.allclose(zero.disp[0], zero.disp[1]) and zero.z.abs().max() == 0
    with pytest.raises(ValueError):
        sample_deformations(model, moving, 0)
    with pytest.raises(ValueError):
        sample_deformations(model, images(2), 3)


def test_posterior_spread_is_an_uncertainty_map(model):
    m, f = images(2), images(2, seed=5)
    spread = posterior_spread(model, m, f, n=8, generator=torch.Generator().manual_seed(0))
    assert spread.shape == (2, 1, *SIZE)
    assert (spread >= 0).all() and spread.max() > 0
    # a posterior squeezed to its mean has (almost) no spread

    class Certain(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.config = inner.config

        def encode(self, a, b):
            mu, logvar = self.inner.encode(a, b)
            return mu, torch.full_like(logvar, -30.0)

        def decode(self, z, moving, fixed=None):
            return self.inner.decode(z, moving, fixed)

        reparameterize = staticmethod(CVAERegistration.reparameterize)

    certain = Certain(model).eval()
    small = posterior_spread(certain, m, f, n=4)
    assert small.max() < 1e-4


def test_interpolation_endpoints_and_figure(model, tmp_path):
    m, f = images(1), images(1, seed=5)
    z_a = torch.zeros(8)
    z_b, _ = model.encode(m, f)
    t, res = interpolate_codes(model, z_a, z_b[0], m, steps=4)
    assert np.allclose(t, [0, 1 / 3, 2 / 3, 1]) and res.moved.shape == (4, 1, *SIZE)
    assert torch.allclose(res.disp[-1:], register(model, m, f).disp, atol=1e-6)
    assert torch.allclose(res.disp[:1], decode_code(model, z_a[None], m).disp, atol=1e-6)
    out = interpolation_figure(t, res, tmp_path / "strip.png")
    assert out.is_file() and out.stat().st_size > 1000
    with pytest.raises(ValueError):
        interpolate_codes(model, torch.zeros(3), torch.zeros(8), m)


def test_interpolate_pair_runs_from_no_motion_to_the_registration(model):
    m, f = images(1), images(1, seed=5)
    z_a, z_b = endpoint_codes(model, m[0], f[0])  # (1, *S) images are accepted
    with torch.no_grad():
        assert torch.equal(z_a, model.encode(m, m)[0]) and torch.equal(z_b, model.encode(m, f)[0])
    t, res = interpolate_pair(model, m, f, steps=3)
    t_codes, expected = interpolate_codes(model, z_a, z_b, m, steps=3)
    assert np.array_equal(t, t_codes) and torch.equal(res.disp, expected.disp)
    assert torch.allclose(res.disp[-1:], register(model, m, f).disp, atol=1e-6)
    with pytest.raises(ValueError):
        interpolate_pair(model, m, f, steps=1)


def test_latent_operations_on_an_antisymmetric_model():
    """Codes of 2 d entries through transport, sampling, interpolation and the
    posterior spread; a pair's own code transported onto its moving image decodes
    both halves on that image."""
    torch.manual_seed(0)
    config = ModelConfig(image_size=SIZE, latent_dim=8, velocity_init_std=0.5, antisymmetric=True)
    anti = CVAERegistration(config).eval()
    m, f = images(2), images(2, seed=5)
    moved = transport(anti, m, f, m)
    with torch.no_grad():
        mu, _ = anti.encode(m, f)
        expected = anti.decode(mu, m)
    assert moved.z.shape == (2, 16)
    assert torch.allclose(moved.velocity, expected, atol=1e-6)
    samples = sample_deformations(anti, m[:1], n=3, generator=torch.Generator().manual_seed(0))
    assert samples.z.shape == (3, 16) and samples.disp.abs().max() > 0.05
    t, frames = interpolate_codes(anti, torch.zeros(16), mu[0], m[:1], steps=3)
    assert frames.disp[0].abs().max() < 1e-6  # the zero code: both halves equal, v = 0
    assert torch.allclose(frames.velocity[-1], expected[0], atol=1e-6)
    with pytest.raises(ValueError, match="codes must have 16 entries"):
        interpolate_codes(anti, torch.zeros(8), torch.zeros(8), m[:1])
    spread = posterior_spread(anti, m, f, n=4, generator=torch.Generator().manual_seed(1))
    assert spread.shape == (2, 1, *SIZE) and spread.max() > 0
