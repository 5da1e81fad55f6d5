"""Warping, composition, grids and field resizing."""

import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates

from helpers import shape_for, smooth_field, textured_image
from structreg.core.layers import SpatialTransformer
from structreg.core.ops import compose, identity_grid, resize_field, warp


def test_identity_grid_holds_voxel_indices():
    g = identity_grid((3, 4))
    assert g.shape == (1, 2, 3, 4)
    assert g[0, 0, 2, 1] == 2 and g[0, 1, 2, 1] == 1
    g3 = identity_grid((2, 3, 4))
    assert g3.shape == (1, 3, 2, 3, 4)
    assert tuple(g3[0, :, 1, 2, 3].tolist()) == (1.0, 2.0, 3.0)


def test_zero_field_is_identity(ndim, device):
    shape = shape_for(ndim)
    img = textured_image(shape).to(device)
    disp = torch.zeros(1, ndim, *shape, dtype=torch.float64, device=device)
    assert torch.allclose(warp(img, disp), img, atol=1e-12)
    assert torch.equal(warp(img, disp, mode="nearest"), img)


def test_integer_shift_is_exact_in_the_interior(ndim):
    shape = shape_for(ndim)
    img = textured_image(shape, seed=1)
    shift = [2, -1, 3][:ndim]
    disp = torch.zeros(1, ndim, *shape, dtype=torch.float64)
    for c, s in enumerate(shift):
        disp[:, c] = s
    moved = warp(img, disp)
    # moved(x) = img(x + shift): compare on the region where x + shift stays inside.
    out_sl = tuple(slice(max(0, -s), n - max(0, s)) for s, n in zip(shift, shape, strict=True))
    in_sl = tuple(
        slice(max(0, s), n - max(0, -s) if s < 0 else n) for s, n in zip(shift, shape, strict=True)
    )
    assert torch.allclose(moved[(0, 0) + out_sl], img[(0, 0) + in_sl], atol=1e-12)
    # outside the image: zeros padding
    if shift[0] > 0:
        assert torch.all(moved[0, 0, -shift[0] :] == 0)


def test_channel_c_moves_along_axis_c():
    img = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    img[0, 0, 6, 4] = 1.0  # a dot at row 6, col 4
    disp = torch.zeros(1, 2, 9, 9, dtype=torch.float64)
    disp[:, 0] = 2.0  # pull from two rows further down
    moved = warp(img, disp)
    assert moved[0, 0, 4, 4] == 1.0 and moved.sum() == 1.0


def test_matches_scipy_map_coordinates(ndim):
    shape = shape_for(ndim)
    img = textured_image(shape, seed=2)
    disp = smooth_field(shape, amplitude=2.5, seed=3)
    moved = warp(img, disp).numpy()[0, 0]
    coords = np.indices(shape) + disp.numpy()[0]
    ref = map_coordinates(img.numpy()[0, 0], coords, order=1, mode="grid-constant", cval=0.0)
    np.testing.assert_allclose(moved, ref, atol=1e-10)
    moved_nn = warp(img, disp, mode="nearest").numpy()[0, 0]
    ref_nn = map_coordinates(img.numpy()[0, 0], coords, order=0, mode="grid-constant", cval=0.0)
    # nearest rounding at exact .5 ties may differ between libraries; they are measure-zero here
    assert np.mean(moved_nn == ref_nn) > 0.99


def test_matches_voxelmorph_spatial_transform(ndim):
    vxm = pytest.importorskip("voxelmorph")
    shape = shape_for(ndim)
    img = textured_image(shape, seed=4).float()
    disp = smooth_field(shape, amplitude=3.0, seed=5).float()
    ours = warp(img, disp)
    theirs = vxm.nn.functional.spatial_transform(img, disp)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_batch_of_one_broadcasts():
    shape = (10, 12)
    img = textured_image(shape)
    disp = smooth_field(shape, 1.0, batch=3)
    moved = warp(img, disp)
    assert moved.shape == (3, 1, 10, 12)
    for i in range(3):
        assert torch.allclose(moved[i : i + 1], warp(img, disp[i : i + 1]))


def test_spatial_transformer_module_has_no_state():
    st = SpatialTransformer(mode="nearest")
    assert len(st.state_dict()) == 0
    img = textured_image((8, 8))
    assert torch.equal(st(img, torch.zeros(1, 2, 8, 8, dtype=torch.float64)), img)


def test_gradcheck_warp_wrt_image_and_disp(ndim):
    shape = (5, 6) if ndim == 2 else (4, 5, 3)
    g = torch.Generator().manual_seed(0)
    img = torch.rand(1, 2, *shape, generator=g, dtype=torch.float64, requires_grad=True)
    # off the integer lattice: fractional parts well inside (0.1, 0.9)
    disp = (
        torch.rand(1, ndim, *shape, generator=g, dtype=torch.float64) * 0.6
        + 0.2
        + torch.randint(-1, 2, (1, ndim, *shape), generator=g)
    ).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda i, d: warp(i, d, padding_mode="border"), (img, disp))


def test_compose_matches_sequential_warps(ndim, device):
    shape = shape_for(ndim)
    img = textured_image(shape, seed=6).to(device)
    u1 = smooth_field(shape, 1.5, seed=7).to(device)
    u2 = smooth_field(shape, 1.5, seed=8).to(device)
    sequential = warp(warp(img, u1, padding_mode="border"), u2, padding_mode="border")
    composed = warp(img, compose(u1, u2), padding_mode="border")
    inner = (0, 0) + tuple(slice(3, -3) for _ in shape)
    # both interpolate, so they agree to interpolation error, not exactly
    assert (sequential - composed)[inner].abs().max() < 0.03


def test_compose_with_zero_is_neutral(ndim):
    shape = shape_for(ndim)
    u = smooth_field(shape, 2.0, seed=9)
    zero = torch.zeros_like(u)
    assert torch.allclose(compose(u, zero), u, atol=1e-12)
    assert torch.allclose(compose(zero, u), u, atol=1e-12)


def test_resize_field_rescales_vectors():
    # an affine field u(x) = A x is reproduced exactly on any grid spanning the same extent
    a = torch.tensor([[0.1, -0.05], [0.02, 0.08]], dtype=torch.float64)

    def affine_field(shape):
        grid = identity_grid(shape, dtype=torch.float64)
        # express in the unit square so both grids describe the same physical map
        unit = grid / torch.tensor([s - 1 for s in shape], dtype=torch.float64).view(1, 2, 1, 1)
        phys = torch.einsum("cd,ndhw->nchw", a, unit)
        return phys * torch.tensor([s - 1 for s in shape], dtype=torch.float64).view(1, 2, 1, 1)

    small, large = (11, 21), (21, 41)
    resized = resize_field(affine_field(small), large)
    assert resized.shape == (1, 2, 21, 41)
    assert torch.allclose(resized, affine_field(large), atol=1e-10)
    const = torch.ones(1, 2, 11, 21, dtype=torch.float64)
    up = resize_field(const, (21, 41))
    assert torch.allclose(up[:, 0], torch.full_like(up[:, 0], 2.0))
    assert torch.allclose(up[:, 1], torch.full_like(up[:, 1], 2.0))


@pytest.mark.parametrize(
    "call, kind, words",
    [
        (lambda: warp(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8)), ValueError, "(N, 2, H, W)"),
        (
            lambda: warp(torch.zeros(1, 1, 8, 8), torch.zeros(1, 3, 8, 8)),
            ValueError,
            "one channel per",
        ),
        (
            lambda: warp(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8, 9)),
            ValueError,
            "spatial shape",
        ),
        (
            lambda: warp(torch.zeros(1, 1, 4, 8, 8), torch.zeros(1, 2, 8, 8)),
            ValueError,
            "(N, C, H, W)",
        ),
        (lambda: warp(torch.zeros(2, 1, 8, 8), torch.zeros(3, 2, 8, 8)), ValueError, "batch sizes"),
        (
            lambda: warp(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8, 8, dtype=torch.int64)),
            TypeError,
            "floating-point",
        ),
        (
            lambda: warp(torch.zeros(1, 1, 8, 8, dtype=torch.int32), torch.zeros(1, 2, 8, 8)),
            TypeError,
            "floating-point",
        ),
        (
            lambda: warp(torch.zeros(1, 1, 8, 8), torch.full((1, 2, 8, 8), float("nan"))),
            ValueError,
            "NaN",
        ),
        (lambda: warp(np.zeros((1, 1, 8, 8)), torch.zeros(1, 2, 8, 8)), TypeError, "torch.Tensor"),
        (
            lambda: warp(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8, 8), mode="cubic"),
            ValueError,
            "mode",
        ),
        (
            lambda: compose(torch.zeros(1, 2, 8, 8), torch.zeros(1, 3, 8, 8, 8)),
            ValueError,
            "compose",
        ),
        (lambda: resize_field(torch.zeros(1, 2, 8, 8), (4,)), ValueError, "resize_field"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, kind, words):
    with pytest.raises(kind) as info:
        call()
    message = str(info.value)
    assert words in message
    assert "\n" not in message
    assert message.split(":")[0] in {"warp", "compose", "resize_field"}


def test_finiteness_check_is_exact_with_overflowing_sums():
    from structreg.core.ops.checks import all_finite

    big = torch.full((1, 2, 8, 8), 3e38)  # finite values whose float32 sum overflows
    assert all_finite(big)
    assert torch.equal(
        warp(torch.ones(1, 1, 8, 8), torch.zeros(1, 2, 8, 8)), torch.ones(1, 1, 8, 8)
    )
    mixed = torch.zeros(1, 2, 8, 8)
    mixed[0, 1, 3, 4] = float("inf")
    mixed[0, 0, 2, 2] = -float("inf")  # +inf and -inf: the sum is NaN, not a pass
    assert not all_finite(mixed)
    one_nan = torch.zeros(1, 2, 8, 8, requires_grad=True).clone()
    with torch.no_grad():
        one_nan[0, 0, 7, 7] = float("nan")
    assert not all_finite(one_nan)
    with pytest.raises(ValueError, match="NaN or Inf"):
        warp(torch.ones(1, 1, 8, 8), mixed)
