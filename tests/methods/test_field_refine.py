"""Per-pair refinement of a velocity by a smooth coarse residual: objective, exactness at
0 steps, pairs independent, recovery of a known deformation, wiring into ``ours``."""

import pytest
import torch

from helpers import smooth_field, textured_image
from structreg.core.losses import forward_lcc
from structreg.core.metrics import batch_folding_percent
from structreg.core.ops import exponentiate, warp
from structreg.errors import InputError, ShapeError
from structreg.methods import build_method, field_refine
from structreg.methods.field_refine import (
    coarse_size,
    refine_field,
    smoothness,
    upsample,
)
from structreg.methods.ours import CVAERegistrar

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (32, 32)


def warped_pairs(n, amplitude, size=SIZE, seed=0):
    """Textured images, their warps by smooth diffeomorphisms, and the true velocities."""
    moving, fixed, velocity = [], [], []
    for i in range(n):
        m = textured_image(size, seed=seed + i, dtype=torch.float32)
        v = smooth_field(size, amplitude, seed=seed + 10 + i, sigma=4.0, dtype=torch.float32)
        moving.append(m)
        fixed.append(warp(m, exponentiate(v, 4), padding_mode="border"))
        velocity.append(v)
    return torch.cat(moving), torch.cat(fixed), torch.cat(velocity)


def test_zero_steps_return_the_start_exactly():
    moving, fixed, _ = warped_pairs(2, 2.0)
    start = torch.randn(2, 2, *SIZE) * 0.3
    out = refine_field(moving, fixed, start, steps=0)
    assert torch.equal(out.velocity, start)
    assert out.objective.shape == (1, 2) and (out.residual == 0).all()
    # J at the start is the start's dissimilarity (the residual is 0)
    lcc = forward_lcc(fixed, moving, start, reduction="none").flatten(1).mean(1)
    assert torch.allclose(out.objective[0], 1 - lcc, atol=1e-6)


def test_the_objective_never_rises_and_the_registration_improves():
    moving, fixed, truth = warped_pairs(2, 3.0, seed=3)
    out = refine_field(moving, fixed, torch.zeros_like(truth), steps=40)
    history = out.objective
    assert (history[1:] <= history[:-1]).all()
    assert (history[-1] < 0.8 * history[0]).all()
    # the moved image approaches the fixed one, and the field is the true one's direction
    moved = warp(moving, exponentiate(out.velocity, 4), padding_mode="border")
    error = (moved - fixed).abs().mean((1, 2, 3))
    assert (error < 0.6 * (moving - fixed).abs().mean((1, 2, 3))).all()
    cosine = torch.nn.functional.cosine_similarity(out.velocity.flatten(1), truth.flatten(1))
    assert (cosine > 0.5).all()


def test_refining_together_equals_refining_alone():
    moving, fixed, _ = warped_pairs(3, 2.5, seed=5)
    start = torch.zeros(3, 2, *SIZE)
    together = refine_field(moving, fixed, start, steps=15)
    for i in range(3):
        rows = slice(i, i + 1)
        alone = refine_field(moving[rows], fixed[rows], start[rows], steps=15)
        assert torch.allclose(alone.velocity, together.velocity[rows], atol=1e-4)
        assert torch.allclose(alone.objective[:, 0], together.objective[:, i], atol=1e-5)


def test_a_stiffer_residual_moves_less_and_stays_diffeomorphic():
    moving, fixed, _ = warped_pairs(2, 5.0, seed=7)
    start = torch.zeros(2, 2, *SIZE)
    soft = refine_field(moving, fixed, start, steps=30, smooth=0.01)
    stiff = refine_field(moving, fixed, start, steps=30, smooth=10.0)
    assert (smoothness(stiff.residual) < smoothness(soft.residual)).all()
    for out in (soft, stiff):
        assert (batch_folding_percent(exponentiate(out.velocity, 4)) == 0).all()


def test_a_residual_that_folds_is_never_kept():
    moving, fixed, _ = warped_pairs(2, 6.0, seed=9)
    start = torch.zeros(2, 2, *SIZE)
    # no penalty, full resolution, large steps: the iterates fold (tens of pixels)
    out = refine_field(moving, fixed, start, steps=40, smooth=0.0, grid=1, lr=0.5, blur=0.0)
    problem = field_refine._Problem(moving, fixed, start, 0.0, 4, 2.0, 9)
    assert (problem.per_pair(out.residual)[1] == 0).all()
    assert (batch_folding_percent(exponentiate(out.velocity, 4)) == 0).all()
    assert (out.objective[-1] < 0.6 * out.objective[0]).all()  # it still improved


def test_the_smoothed_stage_comes_first_and_only_sharp_iterates_are_kept():
    """``blur > 0``: the first half of the steps sees smoothed images; their iterates are
    no candidates (the history stays at the start's sharp J), the sharp stage goes on
    from where it ended, and the result is never worse than the start on the sharp J.
    ``blur = 0`` is one sharp stage, as is any call with fewer than 2 steps."""
    moving, fixed, truth = warped_pairs(2, 4.0, seed=11)
    start = torch.zeros_like(truth)
    staged = refine_field(moving, fixed, start, steps=30, blur=1.5)
    sharp = refine_field(moving, fixed, start, steps=30, blur=0.0)
    history = staged.objective
    assert history.shape == (31, 2)
    assert torch.allclose(history[:15], sharp.objective[0].expand(15, 2))  # the start's J
    assert (history[1:] <= history[:-1]).all() and (history[-1] < 0.8 * history[0]).all()
    smooth = field_refine.DEFAULT_FIELD_SMOOTH
    problem = field_refine._Problem(moving, fixed, start, smooth, 4, 2.0, 9)
    with torch.no_grad():
        assert torch.allclose(problem.per_pair(staged.residual)[0], history[-1], atol=1e-6)
    assert not torch.allclose(staged.velocity, sharp.velocity, atol=1e-3)
    one = refine_field(moving, fixed, start, steps=1, blur=1.5)
    assert torch.equal(one.velocity, refine_field(moving, fixed, start, steps=1, blur=0.0).velocity)
    with pytest.raises(InputError, match="blur must be >= 0"):
        refine_field(moving, fixed, start, steps=2, blur=-1.0)


def test_3d_and_the_coarse_grid():
    moving, fixed, _ = warped_pairs(1, 1.5, size=(12, 10, 9), seed=2)
    out = refine_field(moving, fixed, torch.zeros(1, 3, 12, 10, 9), steps=5, grid=2)
    assert out.residual.shape == (1, 3, 6, 5, 5) and out.velocity.shape == (1, 3, 12, 10, 9)
    assert out.objective[-1, 0] < out.objective[0, 0]
    assert coarse_size((100, 3), 4) == (25, 2)
    # corners aligned: a constant residual upsamples to the same constant
    assert torch.allclose(upsample(torch.full((1, 2, 3, 4), 0.7), (9, 10)), torch.tensor(0.7))


def test_bad_arguments():
    moving, fixed, _ = warped_pairs(1, 1.0)
    start = torch.zeros(1, 2, *SIZE)
    with pytest.raises(ShapeError, match="velocity"):
        refine_field(moving, fixed, torch.zeros(1, 3, *SIZE), steps=1)
    with pytest.raises(ShapeError, match="fixed"):
        refine_field(moving, fixed[:, :, :16], start, steps=1)
    for kwargs, name in (
        ({"steps": -1}, "steps"),
        ({"steps": 1, "lr": 0.0}, "lr"),
        ({"steps": 1, "smooth": -1.0}, "smooth"),
        ({"steps": 1, "grid": 0}, "grid"),
    ):
        with pytest.raises(InputError, match=name):
            refine_field(moving, fixed, start, **kwargs)


def test_ours_refines_its_velocity_after_the_one_pass(tiny_run_factory):
    run = tiny_run_factory([1.0, -0.5])
    plain = build_method(f"ours:{run}")
    moving, fixed, _ = warped_pairs(2, 2.0, seed=11)
    expected = plain.register(moving, fixed)
    refined = build_method(f"ours:{run},refine_field=10,field_lr=0.2,field_grid=1,field_blur=0.5")
    assert (refined.refine_field, refined.field_lr, refined.field_grid) == (10, 0.2, 1)
    assert refined.field_blur == 0.5
    got = refined.register(moving, fixed)
    stage = refined.last_field_refinement
    assert stage is not None and stage.objective.shape == (11, 2)
    assert torch.equal(got.velocity, stage.velocity)
    assert torch.equal(got.z, expected.z)  # the code is the encoder's
    start = refine_field(moving, fixed, expected.velocity, steps=0).objective[0]
    assert torch.allclose(stage.objective[0], start, atol=1e-6)
    assert (stage.objective[-1] < stage.objective[0]).all()
    # with the code refinement first, the field stage starts from its velocity
    both = CVAERegistrar(plain.model, refine=3, refine_field=2, train=plain.train)
    both.register(moving, fixed)
    assert both.last_refinement is not None and both.last_field_refinement is not None
    after_codes = refine_field(moving, fixed, both.last_refinement.velocity, steps=0)
    assert torch.allclose(both.last_field_refinement.objective[0], after_codes.objective[0])
    coarse = build_method(f"ours:{run},exp_downsize=2")
    assert coarse.exp_downsize == 2
    got = coarse.register(moving, fixed)
    assert got.disp.shape == expected.disp.shape and not torch.equal(got.disp, expected.disp)
    assert (got.disp - expected.disp).abs().max() < 0.5
    for bad in (
        "refine_field=-1",
        "field_lr=0",
        "field_smooth=-1",
        "field_grid=0",
        "field_blur=-1",
        "exp_downsize=0",
    ):
        with pytest.raises(InputError, match=bad.split("=")[0]):
            build_method(f"ours:{run},{bad}")
