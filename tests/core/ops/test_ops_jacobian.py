"""Jacobian determinant, folding fraction and velocity statistics."""

import math

import pytest
import torch

from helpers import shape_for
from structreg.core.ops import (
    folding_fraction,
    identity_grid,
    jacobian_det,
    jacobian_matrix,
    velocity_gradient_magnitude,
    velocity_magnitude,
)


def _affine_disp(a: torch.Tensor, shape) -> torch.Tensor:
    """u(x) = A x in voxels, shape (1, ndim, *S)."""
    grid = identity_grid(shape, dtype=torch.float64)
    return torch.einsum("cd,nd...->nc...", a, grid)


AFFINES = {
    2: torch.tensor([[0.3, -0.2], [0.1, -0.4]], dtype=torch.float64),
    3: torch.tensor([[0.2, 0.1, 0.0], [-0.1, -0.3, 0.05], [0.0, 0.2, 0.1]], dtype=torch.float64),
}


def test_affine_field_gives_det_of_identity_plus_a(ndim, device):
    a = AFFINES[ndim]
    det = jacobian_det(_affine_disp(a, shape_for(ndim)).to(device)).cpu()
    expected = torch.linalg.det(torch.eye(ndim, dtype=torch.float64) + a)
    assert det.shape == (1, 1, *shape_for(ndim))
    assert torch.allclose(det, expected.expand_as(det), atol=1e-10)


def test_jacobian_matrix_layout_and_spacing():
    a = AFFINES[2]
    disp = _affine_disp(a, (8, 9))
    j = jacobian_matrix(disp)
    assert j.shape == (1, 8, 9, 2, 2)
    assert torch.allclose(j[0, 4, 4], torch.eye(2, dtype=torch.float64) + a)
    # anisotropic spacing: J_phys = S (I + A) S^-1, same determinant
    s = (2.0, 0.5)
    js = jacobian_matrix(disp, spacing=s)
    expected = (
        torch.diag(torch.tensor(s, dtype=torch.float64))
        @ (torch.eye(2, dtype=torch.float64) + a)
        @ torch.diag(1 / torch.tensor(s, dtype=torch.float64))
    )
    assert torch.allclose(js[0, 4, 4], expected)
    assert torch.allclose(jacobian_det(disp, spacing=s), jacobian_det(disp))


def test_folding_fraction_of_a_known_folded_region():
    shape = (20, 30)
    disp = torch.zeros(1, 2, *shape, dtype=torch.float64)
    # along axis 1, u_1(x) = -2 x_1 in columns 10..19 (continuous ramp) -> ∂u_1/∂x_1 = -2 there
    cols = torch.arange(30, dtype=torch.float64)
    ramp = torch.where((cols >= 10) & (cols <= 19), -2.0 * (cols - 10), torch.zeros_like(cols))
    ramp = torch.where(cols > 19, torch.full_like(cols, -18.0), ramp)
    disp[0, 1] = ramp
    det = jacobian_det(disp)[0, 0]
    # interior of the ramp: det = 1 - 2 = -1; at its two edges one-sided/central mixes give 0
    assert torch.allclose(det[:, 11:19], torch.full_like(det[:, 11:19], -1.0))
    frac = folding_fraction(disp).item()
    assert frac == pytest.approx(float((det <= 0).sum()) / det.numel())
    assert 8 / 30 <= frac <= 12 / 30
    mask = torch.zeros(1, 1, *shape)
    mask[..., :10] = 1
    assert folding_fraction(disp, mask).item() == 0.0


def test_velocity_magnitude_and_gradient():
    v = torch.zeros(1, 2, 10, 10, dtype=torch.float64)
    v[:, 0], v[:, 1] = 3.0, 4.0
    assert velocity_magnitude(v).item() == pytest.approx(5.0)
    assert velocity_magnitude(v, spacing=(2.0, 1.0)).item() == pytest.approx(math.hypot(6, 4))
    assert velocity_gradient_magnitude(v).item() == pytest.approx(0.0)
    a = AFFINES[2]
    lin = _affine_disp(a, (10, 10))
    assert velocity_gradient_magnitude(lin).item() == pytest.approx(torch.linalg.norm(a).item())


def test_bad_input():
    with pytest.raises(ValueError, match="^jacobian_det: spacing"):
        jacobian_det(torch.zeros(1, 2, 4, 4), spacing=(1.0, -1.0))
    with pytest.raises(ValueError, match="^velocity_magnitude: "):
        velocity_magnitude(torch.zeros(1, 3, 4, 4))
    with pytest.raises(TypeError):
        jacobian_det(torch.zeros(1, 2, 4, 4, dtype=torch.int32))


@pytest.mark.parametrize("ndim", [2, 3])
def test_closed_form_determinant_matches_lu_of_the_jacobian_matrix(ndim):
    g = torch.Generator().manual_seed(3)
    disp = 2.0 * torch.randn(2, ndim, *shape_for(ndim), generator=g, dtype=torch.float64)
    spacing = (1.5, 0.7, 2.0)[:ndim]
    reference = torch.linalg.det(jacobian_matrix(disp, spacing)).unsqueeze(1)
    assert torch.allclose(jacobian_det(disp, spacing=spacing), reference, atol=1e-10)
    assert (reference <= 0).any()  # rough enough to test the folded branch too
