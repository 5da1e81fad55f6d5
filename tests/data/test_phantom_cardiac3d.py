"""The 3-D cardiac phantom: short-axis stacks from base to apex with long-axis
shortening, exact pull-back ground truth that never folds, and the five groups."""

import numpy as np
import pytest
import torch

from structreg.core import metrics
from structreg.core.ops import jacobian_det, warp
from structreg.data.phantoms.cardiac import CARDIAC_GROUPS
from structreg.data.phantoms.cardiac_volumes import (
    LONG_AXIS_SHORTENING,
    cardiac_volume_phantom,
    make_cardiac_volume_pair,
)
from structreg.data.spec import load_pairs
from structreg.errors import InputError

SIZE, SPACING = (64, 64, 12), (3.0, 3.0, 6.0)


@pytest.fixture(scope="module")
def stacks():
    return cardiac_volume_phantom(10, seed=0, size=SIZE, spacing=SPACING)


def test_stacks_hold_both_frames_labels_and_the_groups(stacks):
    assert [p.group for p in stacks] == [CARDIAC_GROUPS[i % 5] for i in range(10)]
    for p in stacks:
        assert p.moving.shape == p.fixed.shape == p.moving_labels.shape == p.mask.shape == SIZE
        assert p.disp.shape == (3, *SIZE) and p.spacing == SPACING
        assert p.moving.dtype == np.float32 and 0 <= p.moving.min() and p.moving.max() <= 1
        assert set(np.unique(p.moving_labels)) == {0, 1, 2, 3}
        # the LV runs through every slice, base to apex
        assert (p.moving_labels == 3).any(axis=(0, 1)).all()
    again = make_cardiac_volume_pair(0, 3, size=SIZE, spacing=SPACING)
    np.testing.assert_array_equal(again.fixed, stacks[3].fixed)
    np.testing.assert_array_equal(again.disp, stacks[3].disp)


def test_the_truth_never_folds_and_moves_the_base_towards_the_apex(stacks):
    for p in stacks:
        det = jacobian_det(torch.from_numpy(p.disp)[None].double())
        assert float(det.min()) > 0
        dz = p.disp[2]  # voxels along the slice axis: ED position minus ES position
        per_slice = dz[0, 0]
        assert np.allclose(dz, per_slice)  # one through-plane shift per slice
        assert (per_slice <= 0).all() and np.all(np.diff(per_slice) > 0)  # largest at the base
        low, high = LONG_AXIS_SHORTENING[p.group]
        assert low <= p.meta["long_axis_shortening"] <= high
    assert LONG_AXIS_SHORTENING["NOR"][0] > LONG_AXIS_SHORTENING["DCM"][1]


def test_the_truth_reproduces_the_end_systolic_labels(stacks):
    for p in stacks:
        d = torch.from_numpy(p.disp)[None]
        labels = torch.from_numpy(p.moving_labels.astype(np.float32))[None, None]
        moved = warp(labels, d, mode="nearest")[0, 0].numpy()
        # slices whose ED tissue lies inside the stack (the base's comes from above it)
        inside = np.asarray(p.meta["through_plane_mm"]) + np.arange(SIZE[2]) * SPACING[2] >= 0
        assert inside.sum() >= SIZE[2] // 2
        for value in (2, 3):  # LV myocardium, blood pool
            after = metrics.dice(moved[..., inside], p.fixed_labels[..., inside], [value])
            before = metrics.dice(
                p.moving_labels[..., inside], p.fixed_labels[..., inside], [value]
            )
            assert after >= 0.88 and after > before + 0.05, (p.id, value, after, before)


def test_volume_ejection_fractions_keep_the_groups_apart(stacks):
    ef = {g: np.mean([p.meta["ef_volume"] for p in stacks if p.group == g]) for g in CARDIAC_GROUPS}
    assert ef["HCM"] > ef["NOR"] > ef["MINF"] > 0.15 and ef["NOR"] > ef["DCM"]
    assert ef["DCM"] < 0.4


def test_a_volume_size_through_the_data_spec():
    pairs = load_pairs("phantom:cardiac", split="all", size=(32, 32, 6), spacing=(6, 6, 10),
                       n_subjects=2)  # fmt: skip
    assert len(pairs) == 2 and pairs[0].moving.shape == (32, 32, 6)
    assert pairs[0].spacing == (6.0, 6.0, 10.0)
    with pytest.raises(InputError, match="one stack per subject"):
        load_pairs("phantom:cardiac", size=(32, 32, 6), spacing=(6, 6, 10), n_slices=3)
