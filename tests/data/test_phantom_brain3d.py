"""The brain phantom as 3-D volumes (``--size DxHxW``): whole-brain MNI152 volumes with
the longitudinal atrophy of the 2-D phantom, exact ground truth, and the data path."""

import numpy as np
import pytest
import torch

from structreg.core.ops import folding_fraction, warp
from structreg.data import BRAIN_LABELS, BRAIN_STRUCTURES
from structreg.data.phantoms.brain import BRAIN_GROUPS, brain_phantom, make_brain_pair
from structreg.data.spec import grid_spacing, load_pairs
from structreg.errors import InputError

SIZE, SPACING = (24, 28, 24), (6.0, 6.0, 6.0)


@pytest.fixture(scope="module")
def pairs():
    """4 subjects (2 normal, 2 dementia), one volume each."""
    return brain_phantom(4, seed=0, size=SIZE, spacing=SPACING)


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _dice(a, b, values):
    a, b = np.isin(a, values), np.isin(b, values)
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


def test_volumes_shapes_dtypes_labels(pairs):
    assert [p.group for p in pairs] == ["normal", "dementia"] * 2
    for p in pairs:
        assert p.moving.shape == p.fixed.shape == SIZE and p.moving.dtype == np.float32
        assert p.disp.shape == (3, *SIZE) and p.disp.dtype == np.float32
        assert p.spacing == SPACING and p.id.endswith("_3d")
        assert 0.0 <= p.moving.min() and p.moving.max() <= 1.0
        for labels in (p.moving_labels, p.fixed_labels):
            assert set(np.unique(labels)) == set(BRAIN_LABELS.values()) | {0}
        # the brain fills the volume's centre: tissue on most axial levels, and
        # a part of the volume that a 144 x 168 x 144 mm box around a brain leaves
        assert (p.moving_labels > 0).any(axis=(0, 1)).sum() > SIZE[2] // 2
        assert 0.2 < (p.moving_labels > 0).mean() < 0.8 and p.mask.sum() > 0


def test_ground_truth_is_diffeomorphic_and_explains_the_atrophy(pairs):
    disp = torch.stack([_t(p.disp) for p in pairs])
    assert folding_fraction(disp).max().item() == 0.0
    for p in pairs:
        inside = p.mask > 0
        moving = _t(p.moving)[None, None]
        err = {
            s: ((warp(moving, s * _t(p.disp)[None])[0, 0].numpy() - p.fixed)[inside] ** 2).mean()
            for s in (1.0, -1.0, 0.0)
        }
        # the pull-back field maps the baseline onto the follow-up better than none or its opposite
        assert err[1.0] < err[0.0] < err[-1.0], (p.id, err)
    growth = {
        g: [p.meta["ventricle_area_change"] for p in pairs if p.group == g] for g in BRAIN_GROUPS
    }
    assert min(growth["normal"]) > 0 and np.mean(growth["dementia"]) > 2 * np.mean(growth["normal"])


def test_true_field_reproduces_the_followup_labels_at_4mm():
    """At a finer grid the atrophy moves labels by more than a voxel: warping the
    baseline labels with the true field must explain the follow-up's ventricles."""
    p = make_brain_pair(0, 1, size=(40, 48, 40), spacing=(4.0, 4.0, 4.0))
    labels = _t(p.moving_labels.astype(np.float32))[None, None]
    moved = warp(labels, _t(p.disp)[None], mode="nearest")[0, 0].numpy()
    for name, values in BRAIN_STRUCTURES.items():
        assert _dice(moved, p.fixed_labels, values) >= 0.8, name
    assert p.meta["ventricle_area_change"] > 0.1  # a dementia subject


def test_deterministic_and_different_subjects():
    a, b = (make_brain_pair(3, 1, size=SIZE, spacing=SPACING) for _ in range(2))
    c = make_brain_pair(3, 2, size=SIZE, spacing=SPACING)
    assert np.array_equal(a.moving, b.moving) and np.array_equal(a.disp, b.disp)
    assert not np.array_equal(a.moving, c.moving)


def test_the_data_spec_takes_a_3d_size_and_an_isotropic_spacing():
    pairs = load_pairs("phantom:brain", split="all", size=SIZE, spacing=(6.0, 6.0), n_subjects=2)
    assert [p.moving.shape for p in pairs] == [SIZE, SIZE]
    assert pairs[0].spacing == SPACING
    assert grid_spacing((8, 8, 8), (2.0,)) == (2.0, 2.0, 2.0)
    assert grid_spacing((8, 8, 8), (1.5, 1.5, 10.0)) == (1.5, 1.5, 10.0)
    with pytest.raises(InputError, match="has 2 entries but size 8x8x8 has 3"):
        grid_spacing((8, 8, 8), (1.5, 2.0))


@pytest.mark.parametrize(
    "spec, kwargs, message",
    [
        ("phantom:brain", {"n_slices": 3}, "one volume per subject"),
        ("phantom:brain-inter", {"n_slices": 3}, "one volume per subject"),
        ("phantom:cardiac", {"n_slices": 3}, "one stack per subject"),
    ],
)
def test_3d_sizes_the_phantom_cannot_make_are_clear_errors(spec, kwargs, message):
    with pytest.raises(InputError, match=message):
        load_pairs(spec, split="all", size=SIZE, spacing=SPACING, n_subjects=4, **kwargs)


# ----------------------------------------------------------------- inter-subject volumes


@pytest.fixture(scope="module")
def inter_pairs():
    return load_pairs("phantom:brain-inter", split="all", size=SIZE, spacing=(6.0,), n_subjects=4)


def test_inter_subject_volumes_pair_subjects_of_a_cohort(inter_pairs):
    assert [p.id for p in inter_pairs] == [
        "brainx0_0000-0001_3d",
        "brainx0_0001-0002_3d",
        "brainx0_0002-0003_3d",
        "brainx0_0003-0000_3d",
    ]
    assert {p.subject for p in inter_pairs} == {"brainx0_c000"}
    for p in inter_pairs:
        assert p.moving.shape == SIZE and p.disp.shape == (3, *SIZE)
        assert folding_fraction(_t(p.disp)[None]).item() == 0.0
    # subject 1 is the fixed image of the first pair and the moving one of the second
    assert np.array_equal(inter_pairs[0].fixed_labels, inter_pairs[1].moving_labels)


def test_inter_subject_ground_truth_maps_the_moving_subject_onto_the_fixed_one():
    from structreg.core.ops import compose
    from structreg.data.phantoms.brain_subjects import seeded_rng, subject_maps_3d

    size, spacing = (24, 28, 24), (6.0, 6.0, 6.0)
    u_m, inv_m = subject_maps_3d(seeded_rng(0, 0, 0), size, spacing, 1 / 3)
    u_f, _ = subject_maps_3d(seeded_rng(0, 1, 0), size, spacing, 1 / 3)
    p = load_pairs("phantom:brain-inter", split="all", size=size, spacing=spacing, n_subjects=2)[0]
    assert np.allclose(p.disp, compose(inv_m, u_f)[0].numpy())
    # φ_m(x + disp(x)) = φ_f(x): the moving subject's template point is the fixed one's
    err = (compose(u_m, _t(p.disp)[None]) - u_f).norm(dim=1)[0][4:-4, 4:-4, 4:-4]
    assert float(torch.quantile(err.flatten(), 0.99)) < 0.1 and float(err.max()) < 0.5
    # inter-subject motion: several millimetres, far more than the longitudinal atrophy
    mean_mm = float(np.linalg.norm(p.disp, axis=0)[p.mask > 0].mean() * spacing[0])
    assert 4.0 < mean_mm < 25.0
    # the field explains the labels: Dice after warping with it beats no registration
    moved = warp(_t(p.moving_labels.astype(np.float32))[None, None], _t(p.disp)[None], "nearest")
    for values in ((2,), (3,)):
        after = _dice(moved[0, 0].numpy(), p.fixed_labels, values)
        assert after > _dice(p.moving_labels, p.fixed_labels, values) + 0.1
