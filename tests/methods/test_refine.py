"""Per-pair refinement of the latent code (issue 13): objective, batching, safety."""

import pytest
import torch

from helpers import smooth_field, textured_image
from structreg.core.metrics import batch_folding_percent
from structreg.core.ops import exponentiate, warp
from structreg.errors import InputError
from structreg.methods import build_method
from structreg.methods.ours import CVAERegistrar
from structreg.methods.refine import MAX_ADAPTED_LAYERS, Objective, refine_codes
from structreg.models.cvae import CVAERegistration, ModelConfig
from structreg.models.inference import inference_copy
from structreg.training import TrainConfig
from structreg.training.tasks import registration_loss

SIZE = (32, 32)


pytestmark = pytest.mark.usefixtures("one_thread")


def toy_config(size=SIZE, **kw):
    """The small network of these tests (d = 8), with any other ModelConfig field."""
    return ModelConfig(
        image_size=size, latent_dim=8, enc_channels=(4, 8, 8, 2), dec_channels=(8, 8, 8, 8), **kw
    )


def toy_model(velocity_std=0.5, dtype=torch.float32, seed=0):
    """A small untrained CVAE whose velocity (a few voxels) depends on z."""
    torch.manual_seed(seed)
    config = toy_config()
    model = CVAERegistration(config).to(dtype).eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        weight = model.decoder.velocity.weight
        weight.copy_(torch.randn(weight.shape, generator=g, dtype=dtype) * velocity_std)
    return model


def toy_pairs(n, amplitude, dtype=torch.float32, seed=0):
    """Textured images and their warps by smooth diffeomorphisms of ``amplitude`` voxels."""
    moving, fixed = [], []
    for i in range(n):
        m = textured_image(SIZE, seed=seed + i)
        u = exponentiate(smooth_field(SIZE, amplitude, seed=seed + 10 + i, sigma=4.0), 4)
        moving.append(m)
        fixed.append(warp(m, u, padding_mode="border"))
    return torch.cat(moving).to(dtype), torch.cat(fixed).to(dtype)


def encode(model, moving, fixed):
    with torch.no_grad():
        return inference_copy(model).encode(moving, fixed)


def test_objective_is_the_training_loss_per_pair():
    model = toy_model(dtype=torch.float64)
    moving, fixed = toy_pairs(3, 2.0, torch.float64)
    mask = (torch.rand(3, 1, *SIZE, generator=torch.Generator().manual_seed(3)) > 0.5).double()
    with torch.no_grad():
        mu, logvar = model.encode(moving, fixed)
        velocity = model.decode(mu, moving)
    objective = Objective(lam=55.0, kl_weight=0.1, mask_weight=2.0)
    per_pair = objective.per_pair(velocity, mu, moving, fixed, logvar, mask)
    loss = registration_loss(
        mu, logvar, velocity, moving, fixed, lam=55.0, kl_weight=0.1, mask=mask, mask_weight=2.0
    )
    assert per_pair.shape == (3,)
    assert torch.allclose(per_pair.mean(), loss.total, rtol=1e-12, atol=0)
    # without logvar the prior term is 0.5 ||z||^2 (same gradient, other constant)
    plain = objective.per_pair(velocity, mu, moving, fixed, None, mask)
    kl_const = 0.5 * (logvar.exp() - 1 - logvar).sum(1)
    assert torch.allclose(per_pair - plain, 0.1 * kl_const, rtol=1e-10)


def test_refinement_lowers_the_objective_monotonically():
    model = toy_model()
    moving, fixed = toy_pairs(3, 2.0)
    mu, logvar = encode(model, moving, fixed)
    out = refine_codes(model, moving, fixed, mu, steps=30, logvar=logvar, tol=0)
    assert out.objective.shape == (31, 3) and out.steps.tolist() == [30, 30, 30]
    assert (out.objective.diff(dim=0) <= 0).all()
    assert (out.final < out.initial - 0.1).all()
    # the returned code and velocity are the ones the recorded objective belongs to
    with torch.no_grad():
        velocity = inference_copy(model).decode(out.z, moving)
        again = Objective().per_pair(velocity, out.z, moving, fixed, logvar)
        start_velocity = inference_copy(model).decode(mu, moving)
        start = Objective().per_pair(start_velocity, mu, moving, fixed, logvar)
    assert torch.allclose(velocity, out.velocity, atol=1e-6)
    assert torch.allclose(again, out.final, rtol=1e-5)
    assert torch.allclose(start, out.initial, rtol=1e-5)


def test_refine_zero_is_exactly_the_plain_registration(tiny_run_factory):
    run = tiny_run_factory([1.0, -0.5])
    plain = build_method(f"ours:{run}")
    model = plain.model
    moving, fixed = toy_pairs(3, 2.0)
    expected = plain.register(moving, fixed)
    for registrar in (
        CVAERegistrar(model, refine=0),
        build_method(f"ours:{run},refine=0,adapt_decoder=0"),
    ):
        got = registrar.register(moving, fixed)
        for name in ("moved", "disp", "inverse_disp", "velocity", "jacobian_det", "z"):
            assert torch.equal(getattr(got, name), getattr(expected, name)), name
        assert registrar.last_refinement is None
    # zero refinement steps return the encoder's code and the plain velocity
    with torch.no_grad():
        mu, logvar = inference_copy(model).encode(moving, fixed)
    out = refine_codes(model, moving, fixed, mu, steps=0, logvar=logvar)
    assert torch.equal(out.z, mu) and torch.equal(out.velocity, expected.velocity)
    assert out.objective.shape == (1, 3) and out.steps.tolist() == [0, 0, 0]


def test_refined_field_stays_diffeomorphic_on_a_large_deformation():
    model = toy_model(velocity_std=0.5)
    moving, fixed = toy_pairs(2, 5.0, seed=4)
    out = CVAERegistrar(model, refine=100, refine_tol=0).register(moving, fixed)
    assert out.velocity.abs().max() > 1.0
    assert (batch_folding_percent(out.disp) == 0).all()
    assert (out.jacobian_det > 0).all()


def test_refining_together_equals_refining_alone():
    model = toy_model(dtype=torch.float64)
    moving, fixed = toy_pairs(3, 3.0, torch.float64, seed=1)
    mu, logvar = encode(model, moving, fixed)
    # early stopping on, so pairs leave the batch at different steps
    kwargs = dict(steps=40, lr=0.05, tol=0.037, patience=5, adapt_decoder=1)
    together = refine_codes(model, moving, fixed, mu, logvar=logvar, **kwargs)
    for i in range(3):
        rows = slice(i, i + 1)
        alone = refine_codes(
            model, moving[rows], fixed[rows], mu[rows], logvar=logvar[rows], **kwargs
        )
        assert alone.steps.item() == together.steps[i].item()
        assert torch.allclose(alone.z, together.z[rows], atol=1e-5, rtol=0)
        assert torch.allclose(alone.final, together.final[rows], rtol=1e-9)
    assert together.steps.tolist() == [40, 5, 40]  # one pair left the batch early


def test_adapting_the_decoder_leaves_the_model_alone_and_helps():
    model = toy_model()
    moving, fixed = toy_pairs(3, 2.0, seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    z_only = CVAERegistrar(model, refine=30, refine_tol=0)
    adapted = CVAERegistrar(model, refine=30, refine_tol=0, adapt_decoder=1)
    z_only.register(moving, fixed)
    result = adapted.register(moving, fixed)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert not model.training
    first, second = z_only.last_refinement, adapted.last_refinement
    assert first is not None and second is not None
    assert (second.final <= first.final).all()
    assert torch.equal(second.initial, first.initial)
    assert result.seconds >= second.seconds > 0
    assert torch.equal(result.z, second.z)


def test_early_stopping_keeps_the_best_code():
    model = toy_model()
    moving, fixed = toy_pairs(2, 2.0)
    mu, _ = encode(model, moving, fixed)
    out = refine_codes(model, moving, fixed, mu, steps=50, tol=0.5, patience=3)
    assert out.steps.tolist() == [3, 3]  # no pair gains 50 % in 3 steps
    assert out.objective.shape == (4, 2) and (out.final <= out.initial).all()


def test_options_from_spec_and_checks(tiny_run_factory):
    run = tiny_run_factory([0.0, 0.0])
    registrar = build_method(f"ours:{run},refine=7,adapt_decoder=2,refine_lr=0.01,batch_size=8")
    assert (registrar.refine, registrar.adapt_decoder, registrar.refine_lr) == (7, 2, 0.01)
    assert registrar.batch_size == 8
    assert registrar.train is not None and registrar.train.lam == TrainConfig().lam
    train = TrainConfig(lam=10.0)
    given = CVAERegistrar(registrar.model, refine=3, train=train)
    assert (given.refine, given.train, CVAERegistrar(registrar.model).refine) == (3, train, 0)
    for bad in ("refine=-1", f"adapt_decoder={MAX_ADAPTED_LAYERS + 1}", "refine_lr=0"):
        with pytest.raises(InputError, match=bad.split("=")[0]):
            build_method(f"ours:{run},{bad}")
    with pytest.raises(InputError, match="steps"):
        refine_codes(registrar.model, *toy_pairs(1, 1.0), torch.zeros(1, 8), steps=-2)


@pytest.mark.parametrize(
    "size, upsampling",
    [((32, 32), "linear"), ((32, 28), "deconv"), ((12, 10, 9), "linear")],
    ids=["2d", "2d-deconv", "3d"],
)
def test_per_pair_layers_start_as_the_shared_ones(size, upsampling):
    torch.manual_seed(0)
    config = toy_config(size, upsampling=upsampling, velocity_init_std=0.3)
    model = CVAERegistration(config).eval()
    g = torch.Generator().manual_seed(1)
    moving, fixed = torch.rand(2, 1, *size, generator=g), torch.rand(2, 1, *size, generator=g)
    mu, logvar = encode(model, moving, fixed)
    with torch.no_grad():
        plain = inference_copy(model).decode(mu, moving)
    for layers in range(1, MAX_ADAPTED_LAYERS + 1):
        out = refine_codes(model, moving, fixed, mu, steps=0, adapt_decoder=layers)
        assert torch.allclose(out.velocity, plain, atol=1e-5, rtol=1e-4), layers
    out = refine_codes(model, moving, fixed, mu, steps=3, tol=0, adapt_decoder=MAX_ADAPTED_LAYERS)
    assert (out.final < out.initial).all()


def test_a_run_trained_with_masks_refines_with_its_penalty():
    model = toy_model()
    moving, fixed = toy_pairs(2, 2.0)
    mask = torch.zeros(1, 1, *SIZE)
    mask[..., 8:24, 8:24] = 1
    registrar = CVAERegistrar(model, refine=5, refine_tol=0, train=TrainConfig(mask_weight=5.0))
    registrar.register(moving, fixed, mask=mask)
    with_mask = registrar.last_refinement
    registrar.register(moving, fixed)
    without = registrar.last_refinement
    assert with_mask is not None and without is not None
    assert (with_mask.initial > without.initial).all()  # the penalty is in the objective
    assert (with_mask.final < with_mask.initial).all()


def test_evaluate_records_the_refinement_steps_of_each_pair(tiny_run_factory):
    from structreg.core.metrics import ITERATIONS
    from structreg.data.phantoms.cardiac import cardiac_phantom
    from structreg.evaluation.evaluate import evaluate, format_table, structures_for

    run = tiny_run_factory([0.0, 0.0])
    plain = build_method(f"ours:{run}")
    refined = build_method(f"ours:{run},refine=6,refine_tol=0,label=ours-refined")
    pairs = cardiac_phantom(2, seed=3, size=SIZE, spacing=(6.0, 6.0))
    rows, _ = evaluate(pairs, [plain, refined], progress=False)
    assert [r[ITERATIONS] for r in rows if r["method"] == "ours-refined"] == [6, 6]
    assert all(ITERATIONS not in r for r in rows if r["method"] == "ours")
    table = format_table(rows, ["ours", "ours-refined"], structures_for(pairs))
    assert "| Refinement steps per pair | – | 6.0 ± 0.0 |" in table


def test_refinement_runs_on_a_multiscale_smoothed_decoder():
    torch.manual_seed(0)
    config = toy_config(velocity_scales=3, velocity_smoothing=1.0, velocity_init_std=0.1)
    model = CVAERegistration(config).eval()
    moving, fixed = toy_pairs(2, 2.0)
    mu, _ = encode(model, moving, fixed)
    for layers in (0, 2):
        out = refine_codes(model, moving, fixed, mu, steps=8, tol=0, adapt_decoder=layers)
        assert (out.final < out.initial).all()
        assert out.velocity.shape == (2, 2, *SIZE)


def test_refinement_of_an_antisymmetric_model_refines_both_halves():
    """Both halves of the code move; 0 steps is the registrar's plain result; the
    refined velocity is the antisymmetric decoding of the refined code."""
    torch.manual_seed(0)
    model = CVAERegistration(toy_config(antisymmetric=True, velocity_init_std=0.1)).eval()
    moving, fixed = toy_pairs(2, 2.0)
    mu, logvar = encode(model, moving, fixed)
    assert mu.shape == (2, 16)
    plain = CVAERegistrar(model).register(moving, fixed)
    zero = refine_codes(model, moving, fixed, mu, steps=0, logvar=logvar)
    assert torch.allclose(zero.velocity, plain.velocity, atol=1e-6)
    for layers in (0, 1):
        out = refine_codes(
            model, moving, fixed, mu, steps=10, logvar=logvar, tol=0, adapt_decoder=layers
        )
        assert (out.objective.diff(dim=0) <= 0).all() and (out.final < out.initial).all()
        moved = (out.z - mu).abs()
        assert (moved[:, :8].amax(1) > 0).all() and (moved[:, 8:].amax(1) > 0).all()
        if layers == 0:
            with torch.no_grad():
                expected = inference_copy(model).decode(out.z, moving, fixed)
            assert torch.allclose(out.velocity, expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"z0 of shape \(2, 16\)"):
        refine_codes(model, moving, fixed, mu[:, :8], steps=1)


def test_adapted_layers_of_an_antisymmetric_model_serve_both_halves_of_one_batch():
    """With per-pair decoder weights, the batch of 2 N (both halves) uses pair i's
    weights for rows i and N + i: the velocity equals one call per half."""
    from structreg.methods.refine import _pairwise_decoder
    from structreg.models.cvae import decode_velocity

    torch.manual_seed(0)
    model = CVAERegistration(toy_config(antisymmetric=True, velocity_init_std=0.1)).eval()
    moving, fixed = toy_pairs(2, 2.0)
    mu, _ = encode(model, moving, fixed)
    decoder, adapted = _pairwise_decoder(inference_copy(model).decoder, 2)
    g = torch.Generator().manual_seed(1)
    for layer in adapted:
        w, b = layer.conv.weight, layer.conv.bias
        layer.weight_n = w.unsqueeze(0) + 0.05 * torch.randn(2, *w.shape, generator=g)
        layer.bias_n = b.unsqueeze(0) + 0.05 * torch.randn(2, *b.shape, generator=g)
    config = model.config
    with torch.no_grad():
        v = decode_velocity(decoder, config, mu, moving, fixed)
        halves = [decoder(mu[:, :8], moving), decoder(mu[:, 8:], fixed)]
    assert torch.allclose(v, 0.5 * (halves[0] - halves[1]), atol=1e-6)
    # pair 0's velocity does not depend on pair 1's weights
    with torch.no_grad():
        alone = []
        for layer in adapted:
            alone.append((layer.weight_n, layer.bias_n))
            layer.weight_n, layer.bias_n = layer.weight_n[:1], layer.bias_n[:1]
        v0 = decode_velocity(decoder, config, mu[:1], moving[:1], fixed[:1])
    assert torch.allclose(v0, v[:1], atol=1e-6)
