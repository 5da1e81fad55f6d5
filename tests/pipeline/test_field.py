"""The field stage on the fixed image's own grid: whole 2-D images on another grid than the
model's, 3-D volumes, stacks of 2-D registrations, consistency of the written fields."""

import numpy as np
import pytest
import torch

import structreg
from structreg.core.ops import exponentiate
from structreg.data.spec import load_pairs
from structreg.errors import InputError
from structreg.io.nifti import Volume
from structreg.methods import build_method
from structreg.pipeline.field import FieldOptions, refine_on_grid
from structreg.pipeline.registration import register_volumes

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cardiac_pair():
    """A phantom ED/ES pair on a 128x120 grid of 1.5 mm (the model's grid: 100x100, 2 mm)."""
    pair = load_pairs("phantom:cardiac", split="test", size=(128, 120), spacing=(1.5, 1.5))[0]
    return pair.moving.astype(np.float32), pair.fixed.astype(np.float32)


def _error(r, fixed):
    return float(np.abs(r.moved - fixed).mean())


def test_the_stage_runs_on_the_fixed_grid_and_improves_the_match(cardiac_pair):
    moving, fixed = cardiac_pair
    plain = structreg.register(moving, fixed, model="builtin:cardiac", spacing=1.5)
    refined = structreg.register(
        moving, fixed, model="builtin:cardiac", spacing=1.5, refine_field=20
    )
    assert refined.velocity_voxels is not None
    assert refined.velocity_voxels.shape == (2, 128, 120)  # the fixed grid, not 100x100
    assert _error(refined, fixed) < 0.9 * _error(plain, fixed)
    assert refined.folding_pct == 0.0
    np.testing.assert_array_equal(refined.code, plain.code)
    # the written fields are one transform: disp = exp(v), inverse = exp(-v)
    v = torch.from_numpy(refined.velocity_voxels)[None]
    np.testing.assert_allclose(refined.disp_voxels, exponentiate(v, 4)[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(refined.inverse_voxels, exponentiate(-v, 4)[0].numpy(), atol=1e-4)
    assert refined.seconds > plain.seconds


def test_3d_volumes_with_a_velocity_method():
    pair = load_pairs(
        "phantom:brain-inter", split="all", size=(24, 28, 24), spacing=(6.0,), n_subjects=2
    )[0]
    affine = np.diag([6.0, 6.0, 6.0, 1.0])
    m, f = (Volume(a.astype(np.float32), affine, (6.0,) * 3) for a in (pair.moving, pair.fixed))
    demons = build_method("lcc-demons:iterations=5/5/5", "cpu")
    plain = register_volumes(demons, m, f)
    refined = register_volumes(demons, m, f, field=FieldOptions(steps=15))
    assert refined.velocity_voxels.shape == (3, 24, 28, 24)
    assert _error(refined, f.data) < _error(plain, f.data)
    assert refined.folding_pct == 0.0


def test_a_stack_of_slices_is_refined_slice_by_slice(cardiac_pair):
    moving, fixed = cardiac_pair
    stack_m = np.stack([moving, np.roll(moving, 2, axis=0)], axis=-1)
    stack_f = np.stack([fixed, np.roll(fixed, 2, axis=0)], axis=-1)
    plain = structreg.register(stack_m, stack_f, model="builtin:cardiac", spacing=1.5)
    refined = structreg.register(
        stack_m, stack_f, model="builtin:cardiac", spacing=1.5, refine_field=10
    )
    assert len(refined.slices) == 2
    assert refined.velocity_voxels.shape == (3, 128, 120, 2)
    assert (refined.velocity_voxels[2] == 0).all() and (refined.disp_voxels[2] == 0).all()
    assert _error(refined, stack_f) < _error(plain, stack_f)
    for k in range(2):  # each slice is its own 2-D problem, and each improves
        before = np.abs(plain.moved[..., k] - stack_f[..., k]).mean()
        assert np.abs(refined.moved[..., k] - stack_f[..., k]).mean() < before
    # the stage itself on one slice: the in-plane components, on that slice's grid
    single = refine_on_grid(
        plain.moving.data[..., 0],
        stack_f[..., 0],
        plain.velocity_voxels[:2, ..., 0],
        FieldOptions(steps=10),
    )
    assert single.velocity.shape == single.disp.shape == (2, 128, 120)


def test_methods_without_a_velocity_and_bad_settings_are_refused(cardiac_pair):
    moving, fixed = cardiac_pair
    with pytest.raises(InputError, match="no velocity"):
        structreg.register(moving, fixed, model="identity", refine_field=5)
    with pytest.raises(InputError, match="steps"):
        FieldOptions(steps=0)
