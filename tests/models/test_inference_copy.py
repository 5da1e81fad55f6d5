"""Batch-norm folding for registration: same result as the network, cache kept fresh."""

import pytest
import torch
from torch import nn

from structreg.methods.ours import CVAERegistrar
from structreg.models import CVAERegistration, ModelConfig, fold_batch_norm, inference_copy


def register(model, moving, fixed, **kwargs):
    return CVAERegistrar(model, **kwargs).register(moving, fixed)


def _model(size):
    torch.manual_seed(0)
    model = CVAERegistration(
        ModelConfig(
            image_size=size, latent_dim=16, enc_channels=(4, 8, 8, 2), dec_channels=(8, 8, 8, 8)
        )
    )
    g = torch.Generator().manual_seed(1)
    for m in model.modules():  # running statistics far from (0, 1), so folding matters
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
    with torch.no_grad():  # a velocity of a few voxels, not ~0
        model.decoder.velocity.weight.copy_(
            torch.randn(model.decoder.velocity.weight.shape, generator=g) * 0.3
        )
    return model


def _pair(size, n=3, seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, *size, generator=g), torch.rand(n, 1, *size, generator=g)


@pytest.mark.parametrize("size", [(32, 32), (12, 10, 9)], ids=["2d", "3d"])
def test_folded_network_matches_the_network(size):
    model = _model(size).train()
    moving, fixed = _pair(size)
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert model.training  # the original is left alone
    with torch.no_grad():
        out = model.predict(moving, fixed)
        mu, _ = folded.encode(moving, fixed)
        velocity = folded.decode(mu, moving)
    assert out.velocity.abs().max() > 0.5
    assert torch.allclose(mu, out.mu, atol=1e-4, rtol=1e-4)
    assert torch.allclose(velocity, out.velocity, atol=1e-4, rtol=1e-4)
    result = register(model, moving, fixed)
    assert torch.allclose(result.velocity, out.velocity, atol=1e-4, rtol=1e-4)
    assert torch.allclose(result.disp, out.disp, atol=1e-3)
    assert model.training


def test_cached_copy_is_reused_until_the_weights_change():
    model = _model((32, 32))
    moving, fixed = _pair((32, 32))
    first = inference_copy(model)
    assert inference_copy(model) is first
    state = {k: v.clone() for k, v in model.state_dict().items()}

    # an optimiser step changes the weights in place: the copy must follow
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    out = model(moving, fixed, sample=False)
    out.velocity.square().mean().backward()
    opt.step()
    second = inference_copy(model)
    assert second is not first
    assert torch.allclose(
        register(model, moving, fixed).velocity,
        model.predict(moving, fixed).velocity,
        atol=1e-4,
        rtol=1e-4,
    )

    # loading other weights (in place) is seen too
    model.load_state_dict(state)
    third = inference_copy(model)
    assert third is not second
    assert torch.allclose(
        register(model, moving, fixed).velocity,
        model.predict(moving, fixed).velocity,
        atol=1e-4,
        rtol=1e-4,
    )
    # the cache never shows up in the state dict or the parameters
    assert set(model.state_dict()) == set(state)
    assert sum(p.numel() for p in model.parameters()) == model.num_parameters(False)


@pytest.mark.parametrize("size", [(32, 32), (12, 10, 9)], ids=["2d", "3d"])
def test_channels_last_copy_keeps_its_layout_and_returns_a_standard_velocity(size):
    from structreg.models.cvae import _concat

    model = _model(size).eval()
    moving, fixed = _pair(size)
    layout = torch.channels_last if len(size) == 2 else torch.channels_last_3d
    h = torch.randn(3, 5, *size).contiguous(memory_format=layout)
    both = _concat(h, moving, layout)
    assert both.is_contiguous(memory_format=layout)
    assert torch.equal(both, torch.cat([h, moving], dim=1))
    net = inference_copy(model)
    assert net.decoder.velocity.weight.is_contiguous(memory_format=layout)
    with torch.no_grad():
        velocity = net.decode(net.encode(moving, fixed)[0], moving)
        expected = model.predict(moving, fixed).velocity
    assert velocity.is_contiguous()
    assert torch.allclose(velocity, expected, atol=1e-4, rtol=1e-4)
