"""The result contract: the inverse of a velocity-based result is computed when read."""

import torch

from helpers import smooth_field
from structreg.core.ops import exponentiate, warp
from structreg.methods import base
from structreg.methods.base import result_from_velocity


def test_inverse_is_exp_of_minus_v_and_computed_only_when_read(monkeypatch):
    velocity = smooth_field((16, 20), 1.5, seed=4, batch=2).float()
    moving = torch.rand(2, 1, 16, 20)
    calls = []
    real = base.exponentiate
    monkeypatch.setattr(
        base, "exponentiate", lambda v, s, **kw: calls.append(s) or real(v, s, **kw)
    )
    result = result_from_velocity(moving, velocity, steps=5)
    assert calls == [5]  # exp(v) only
    torch.testing.assert_close(result.disp, exponentiate(velocity, 5))
    torch.testing.assert_close(result.moved, warp(moving, result.disp, padding_mode="border"))
    inverse = result.inverse_disp
    assert calls == [5, 5] and inverse is not None
    torch.testing.assert_close(inverse, exponentiate(-velocity, 5))
    assert result.inverse_disp is inverse and calls == [5, 5]  # kept, not recomputed


def test_a_given_or_assigned_inverse_is_returned_as_is():
    disp = torch.zeros(1, 2, 8, 8)
    result = base.RegistrationResult(
        torch.zeros(1, 1, 8, 8), disp, None, None, torch.ones(1, 1, 8, 8)
    )
    assert result.inverse_disp is None  # no velocity: no inverse
    result.inverse_disp = disp
    assert result.inverse_disp is disp


def test_a_coarser_exponentiation_is_close_and_used_for_the_inverse_too():
    velocity = smooth_field((40, 36), 3.0, seed=2, batch=2, sigma=5.0).float()
    moving = torch.rand(2, 1, 40, 36)
    exact = result_from_velocity(moving, velocity, steps=4)
    coarse = result_from_velocity(moving, velocity, steps=4, exp_downsize=2)
    torch.testing.assert_close(coarse.disp, exponentiate(velocity, 4, downsize=2))
    error = (coarse.disp - exact.disp).norm(dim=1)
    assert 0 < error.mean() < 0.05 and error.max() < 0.3  # voxels
    assert coarse.inverse_disp is not None
    torch.testing.assert_close(coarse.inverse_disp, exponentiate(-velocity, 4, downsize=2))
