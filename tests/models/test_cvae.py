"""The CVAE registration network: shapes, size handling, parameter count,
conditioning, determinism of registration and sampling."""

import pytest
import torch

from structreg.models import CVAEOutput, CVAERegistration, ModelConfig


def tiny_config(size=(32, 32), **kw) -> ModelConfig:
    base = dict(
        image_size=size, latent_dim=16, enc_channels=(4, 8, 8, 2), dec_channels=(8, 8, 8, 8)
    )
    base.update(kw)
    return ModelConfig(**base)


def images(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, *size, generator=g), torch.rand(n, 1, *size, generator=g)


@pytest.mark.parametrize(
    "size, upsampling",
    [
        ((32, 32), "linear"),
        ((30, 27), "linear"),
        ((30, 27), "deconv"),
        ((12, 10, 9), "linear"),
        ((12, 10, 9), "deconv"),
    ],
    ids=["32x32", "odd-30x27", "odd-30x27-deconv", "3d-12x10x9", "3d-12x10x9-deconv"],
)
def test_shapes_encode_decode_forward(size, upsampling):
    torch.manual_seed(0)
    model = CVAERegistration(tiny_config(size, upsampling=upsampling))
    moving, fixed = images(3, size)
    mu, logvar = model.encode(moving, fixed)
    assert mu.shape == logvar.shape == (3, 16)
    v = model.decode(mu, moving)
    assert v.shape == (3, len(size), *size)
    out = model(moving, fixed, sample=True)
    assert isinstance(out, CVAEOutput)
    assert out.z.shape == (3, 16)
    assert out.velocity.shape == out.disp.shape == (3, len(size), *size)
    assert out.moved.shape == moving.shape
    assert all(torch.isfinite(t).all() for t in vars(out).values())


def test_default_parameter_count_matches_paper():
    model = CVAERegistration(ModelConfig())
    count = model.num_parameters()
    assert 900_000 <= count <= 1_000_000, count
    assert f"{count:,}" in model.summary()
    # the exponentiation layer and transformer add nothing to the state_dict
    assert all(k.startswith(("encoder.", "decoder.")) for k in model.state_dict())


def test_velocity_starts_near_zero_so_training_starts_at_identity():
    torch.manual_seed(0)
    model = CVAERegistration(tiny_config())
    moving, fixed = images(2, (32, 32))
    out = model.predict(moving, fixed)
    assert out.velocity.abs().max() < 1e-2
    assert torch.allclose(out.moved, moving, atol=1e-2)


def test_decoder_is_conditioned_on_moving_image():
    torch.manual_seed(0)
    model = CVAERegistration(tiny_config(velocity_init_std=0.1)).eval()
    m1, m2 = images(2, (32, 32), seed=1)
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        v1, v2 = model.decode(z, m1), model.decode(z, m2)
    assert (v1 - v2).abs().max() > 1e-3
    # without strong conditioning the same code gives the same velocity for any M
    torch.manual_seed(0)
    plain = CVAERegistration(tiny_config(velocity_init_std=0.1, condition=False)).eval()
    with torch.no_grad():
        assert torch.equal(plain.decode(z, m1), plain.decode(z, m2))


def test_registration_is_deterministic_and_sampling_is_seeded():
    torch.manual_seed(0)
    model = CVAERegistration(tiny_config(velocity_init_std=0.1))
    moving, fixed = images(2, (32, 32))
    r1, r2 = model.predict(moving, fixed), model.predict(moving, fixed)
    assert torch.equal(r1.velocity, r2.velocity) and torch.equal(r1.z, r1.mu)
    assert model.training  # predict() restores the mode
    model.eval()
    s1 = model(moving, fixed, sample=True, generator=torch.Generator().manual_seed(5))
    s2 = model(moving, fixed, sample=True, generator=torch.Generator().manual_seed(5))
    s3 = model(moving, fixed, sample=True, generator=torch.Generator().manual_seed(6))
    assert torch.equal(s1.z, s2.z) and not torch.equal(s1.z, s3.z)
    assert not torch.equal(s1.z, s1.mu)
    assert torch.equal(model(moving, fixed).z, r1.mu)  # eval mode without sample: z = μ


def test_bad_inputs_are_refused_with_clear_errors():
    model = CVAERegistration(tiny_config())
    moving, fixed = images(2, (32, 32))
    with pytest.raises(ValueError, match="image_size"):
        model.encode(moving[..., :30], fixed[..., :30])
    with pytest.raises(ValueError, match="batch sizes"):
        model.encode(moving, fixed[:1])
    with pytest.raises(ValueError, match="z must have shape"):
        model.decode(torch.zeros(2, 15), moving)
    with pytest.raises(TypeError, match="float"):
        model.encode(moving.long(), fixed.long())


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"image_size": (32,)}, "2 or 3"),
        ({"image_size": (4, 32)}, ">= 8"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"enc_channels": (4, 8, 8)}, "enc_channels"),
        ({"steps": -1}, "steps"),
        ({"condition": "yes"}, "condition"),
        ({"upsampling": "nearest"}, "upsampling"),
        ({"velocity_scales": 4}, "velocity_scales"),
        ({"velocity_scales": True}, "velocity_scales"),
        ({"velocity_smoothing": -1.0}, "velocity_smoothing"),
    ],
)
def test_model_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**kw)


def test_model_config_dict_round_trip():
    config = tiny_config((30, 27))
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown key"):
        ModelConfig.from_dict({**config.to_dict(), "bogus": 1})


def test_coarse_velocity_heads_add_a_resized_field():
    """velocity_scales = 3: the S/4 and S/2 heads' outputs, resized to S, add to v."""
    torch.manual_seed(0)
    model = CVAERegistration(tiny_config((30, 27), velocity_scales=3)).eval()
    assert sorted(model.decoder.coarse_velocity) == ["1", "2"]
    for head in (model.decoder.velocity, model.decoder.coarse_velocity["1"]):
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
    coarse = model.decoder.coarse_velocity["2"]
    torch.nn.init.zeros_(coarse.weight)
    with torch.no_grad():
        coarse.bias.copy_(torch.tensor([0.5, -2.0]))
    moving, _ = images(2, (30, 27))
    v = model.decode(torch.randn(2, model.config.latent_dim), moving)
    assert torch.allclose(v[:, 0], torch.full_like(v[:, 0], 0.5))
    assert torch.allclose(v[:, 1], torch.full_like(v[:, 1], -2.0))


def test_velocity_smoothing_layer_is_a_gaussian_of_the_raw_velocity():
    from structreg.core.ops import gaussian_smooth

    torch.manual_seed(0)
    raw = CVAERegistration(tiny_config(velocity_init_std=0.1)).eval()
    smooth = CVAERegistration(tiny_config(velocity_init_std=0.1, velocity_smoothing=1.5)).eval()
    smooth.load_state_dict(raw.state_dict())  # the kernel is not part of the weights
    moving, _ = images(2, (32, 32))
    z = torch.randn(2, raw.config.latent_dim)
    with torch.no_grad():
        expected = gaussian_smooth(raw.decode(z, moving), 1.5, 11)
        got = smooth.decode(z, moving)
    assert torch.allclose(got, expected, atol=1e-6)
    assert got.std() < 0.9 * raw.decode(z, moving).detach().std()


def test_configs_without_the_capacity_switches_load_as_the_paper_model():
    data = tiny_config().to_dict()
    del data["velocity_scales"], data["velocity_smoothing"]
    config = ModelConfig.from_dict(data)
    assert config.velocity_scales == 1 and config.velocity_smoothing == 0.0


@pytest.mark.parametrize("size", [(32, 32), (12, 10, 9)], ids=["2d", "3d"])
def test_antisymmetric_velocity_is_odd_in_the_pair_and_cancels_a_shared_field(size):
    """v(F, M) = −v(M, F) exactly; the code holds both directions' halves (2 d);
    a field the decoder adds to every code (here: a bias) cancels."""
    torch.manual_seed(0)
    config = tiny_config(size, antisymmetric=True, velocity_init_std=0.1)
    assert config.code_dim == 2 * config.latent_dim
    model = CVAERegistration(config).eval()
    with torch.no_grad():
        model.decoder.velocity.bias.copy_(torch.arange(1.0, len(size) + 1))
    moving, fixed = images(2, size)
    with torch.no_grad():
        forward = model(moving, fixed, sample=False)
        backward = model(fixed, moving, sample=False)
    d = config.latent_dim
    assert forward.mu.shape == (2, 2 * d) and forward.logvar.shape == (2, 2 * d)
    assert torch.allclose(forward.mu[:, :d], backward.mu[:, d:])
    assert torch.allclose(backward.velocity, -forward.velocity, atol=1e-6)
    assert forward.velocity.abs().max() > 1e-3  # not trivially zero
    # the same pair through the plain decoder: the bias stays in the plain velocity
    plain = model.decoder(forward.mu[:, :d], moving)
    assert plain.mean(dim=(0, *range(2, plain.dim()))).abs().min() > 0.5
    assert forward.velocity.mean(dim=(0, *range(2, plain.dim()))).abs().max() < 0.5
    # decode without a fixed image: both halves on the moving image
    with torch.no_grad():
        v = model.decode(forward.mu, moving)
        expected = 0.5 * (
            model.decoder(forward.mu[:, :d], moving) - model.decoder(forward.mu[:, d:], moving)
        )
    assert torch.allclose(v, expected, atol=1e-6)
    with pytest.raises(ValueError, match=rf"z must have shape \(2, {2 * d}\)"):
        model.decode(forward.mu[:, :d], moving)


def test_antisymmetric_defaults_off_for_older_configs():
    data = tiny_config().to_dict()
    del data["antisymmetric"]
    config = ModelConfig.from_dict(data)
    assert config.antisymmetric is False and config.code_dim == config.latent_dim
    with pytest.raises(ValueError, match="antisymmetric must be true or false"):
        tiny_config(antisymmetric="yes")


@pytest.mark.parametrize("size", [(32, 32), (12, 10, 9)], ids=["2d", "3d"])
def test_antisymmetric_halves_as_one_batch_equal_two_calls(size):
    """In eval mode the two halves run as one batch of 2 N; codes and velocity equal
    those of one call per half to float tolerance. In training mode the halves stay
    two batches, with or without batch norm, so training is unchanged."""
    from structreg.models.cvae import batches_alike, decode_velocity, encode_pair

    torch.manual_seed(0)
    config = tiny_config(size, antisymmetric=True, velocity_init_std=0.1)
    model = CVAERegistration(config)
    moving, fixed = images(3, size)
    d = config.latent_dim
    model.eval()
    assert batches_alike(model.encoder) and batches_alike(model.decoder)
    with torch.no_grad():
        mu, logvar = encode_pair(model.encoder, config, moving, fixed)
        mu1, lv1 = model.encoder(moving, fixed)
        mu2, lv2 = model.encoder(fixed, moving)
        assert torch.allclose(mu, torch.cat([mu1, mu2], 1), atol=1e-6)
        assert torch.allclose(logvar, torch.cat([lv1, lv2], 1), atol=1e-6)
        v = decode_velocity(model.decoder, config, mu, moving, fixed)
        two = 0.5 * (model.decoder(mu[:, :d], moving) - model.decoder(mu[:, d:], fixed))
    assert torch.allclose(v, two, atol=1e-6) and v.abs().max() > 1e-3
    model.train()
    assert not batches_alike(model.decoder)
    with torch.no_grad():
        v_train = decode_velocity(model.decoder, config, mu, moving, fixed)
        two_train = 0.5 * (model.decoder(mu[:, :d], moving) - model.decoder(mu[:, d:], fixed))
    assert torch.equal(v_train, two_train)  # the training path: one call per half
    no_norm = CVAERegistration(tiny_config(size, antisymmetric=True, batch_norm=False))
    assert not batches_alike(no_norm.train().decoder) and batches_alike(no_norm.eval().decoder)


@pytest.mark.parametrize(
    "size, extra",
    [((32, 32), {"velocity_scales": 3}), ((16, 12, 16), {"velocity_smoothing": 1.0})],
    ids=["2d-coarse-heads", "3d-smoothing"],
)
def test_half_difference_runs_the_heads_once_and_equals_two_decodes(size, extra):
    """The antisymmetric velocity with the linear heads applied once to the features'
    difference (their biases cancel) equals the difference of two full decodes, also
    with coarse velocity heads (nonzero biases) and the velocity smoothing."""
    torch.manual_seed(1)
    config = tiny_config(size, antisymmetric=True, velocity_init_std=0.1, **extra)
    decoder = CVAERegistration(config).eval().decoder
    for head in [decoder.velocity, *decoder.coarse_velocity.values()]:
        torch.nn.init.normal_(head.bias, std=0.5)
    moving, fixed = images(2, size)
    z = torch.randn(4, config.latent_dim)
    with torch.no_grad():
        v = decoder.half_difference(z, torch.cat([moving, fixed]))
        two = 0.5 * (decoder(z[:2], moving) - decoder(z[2:], fixed))
    assert v.shape == (2, len(size), *size) and v.abs().max() > 1e-3
    torch.testing.assert_close(v, two, atol=1e-6, rtol=1e-5)
    # with a gradient (the code refinement) the same velocity, and the gradient reaches z
    z_grad = z.clone().requires_grad_(True)
    v_grad = decoder.half_difference(z_grad, torch.cat([moving, fixed]))
    torch.testing.assert_close(v_grad.detach(), v, atol=1e-6, rtol=1e-5)
    v_grad.square().sum().backward()
    assert z_grad.grad is not None and z_grad.grad.abs().sum() > 0
