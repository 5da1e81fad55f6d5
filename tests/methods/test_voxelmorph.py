"""The VoxelMorph-2 baseline wraps the real voxelmorph package."""

import pytest
import torch

from helpers import smooth_field, textured_image
from structreg.core.ops import exponentiate, warp
from structreg.methods.voxelmorph import VoxelMorphRegistrar
from structreg.models.voxelmorph import VoxelMorph2, VoxelMorphConfig, voxelmorph_loss

pytest.importorskip("voxelmorph")


@pytest.mark.parametrize("size", [(100, 100), (37, 50)])
def test_any_size_is_padded_invisibly(size):
    model = VoxelMorph2()
    x = torch.rand(2, 1, *size)
    disp = model(x, x)
    assert disp.shape == (2, 2, *size)
    assert sum(p.numel() for p in model.parameters()) > 50_000


def test_training_steps_lower_the_loss_and_register():
    torch.manual_seed(0)
    shape = (32, 32)
    # a sharp pattern, so that NCC is far from 1 before registration
    m = (textured_image(shape, seed=1) > 0.5).float().expand(4, 1, *shape).contiguous()
    v = smooth_field(shape, 3.0, seed=2, sigma=5.0, batch=4).float()
    f = warp(m, exponentiate(v, 4), padding_mode="border")
    model = VoxelMorph2(VoxelMorphConfig(nb_features=(8, 16, 16)))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    first, _, _ = voxelmorph_loss(model, m, f)
    for _ in range(40):
        opt.zero_grad()
        loss, parts, _ = voxelmorph_loss(model, m, f)
        loss.backward()
        opt.step()
    assert loss.item() < first.item() - 0.01
    result = VoxelMorphRegistrar(model).register(m, f)
    assert result.inverse_disp is None and result.velocity is None
    assert result.jacobian_det.shape == (4, 1, *shape)
    assert (result.moved - f).pow(2).mean() < (m - f).pow(2).mean()
