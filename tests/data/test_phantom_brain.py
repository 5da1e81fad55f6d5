"""Built-in brain phantom: label consistency with the ground-truth field, atrophy by
group, diffeomorphism, determinism, slices and errors."""

import numpy as np
import pytest
import torch

from structreg.core.ops import folding_fraction, warp
from structreg.data import BRAIN_LABELS, BRAIN_STRUCTURES, Pair
from structreg.data.phantoms import brain_template
from structreg.data.phantoms.brain import (
    BRAIN_GROUPS,
    brain_phantom,
    make_brain_pair,
    ventricle_volume_change,
)


@pytest.fixture(scope="module")
def pairs():
    """6 subjects (3 normal, 3 dementia) x 3 central slices."""
    return brain_phantom(6, seed=0, slices_per_subject=3)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _dice(a: np.ndarray, b: np.ndarray, values) -> float:
    a, b = np.isin(a, values), np.isin(b, values)
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


def _warp_labels(p: Pair) -> np.ndarray:
    labels = _t(p.moving_labels.astype(np.float32))[None, None]
    return warp(labels, _t(p.disp)[None], mode="nearest")[0, 0].numpy().astype(np.int16)


def test_pair_shapes_dtypes_ranges(pairs):
    assert len(pairs) == 18
    for p in pairs:
        assert p.moving.shape == p.fixed.shape == (100, 100)
        assert p.moving.dtype == p.fixed.dtype == np.float32
        assert p.disp.shape == (2, 100, 100) and p.disp.dtype == np.float32
        assert p.moving_labels.dtype == p.fixed_labels.dtype == np.int16
        assert p.mask.dtype == np.uint8 and set(np.unique(p.mask)) == {0, 1}
        assert p.spacing == (2.0, 2.0)
        for img in (p.moving, p.fixed):
            assert img.min() >= 0.0 and img.max() <= 1.0
            assert img[p.mask > 0].mean() > 3 * img[p.mask == 0].mean()  # brain on dark background
        assert p.group in BRAIN_GROUPS
        assert {
            "ventricle_growth",
            "cortical_thinning_mm",
            "atrophy_severity",
            "slice_z_mm",
        } <= set(p.meta)


def test_labels_known_values_inside_mask(pairs):
    known = {0, *BRAIN_LABELS.values()}
    for p in pairs:
        for labels in (p.moving_labels, p.fixed_labels):
            assert set(np.unique(labels)) == known  # every structure present
        assert not np.any((p.moving_labels > 0) & (p.mask == 0))
        assert p.mask[0].sum() == p.mask[-1].sum() == 0  # brain inside the field of view
        assert p.mask[:, 0].sum() == p.mask[:, -1].sum() == 0


def test_ground_truth_disp_warps_baseline_labels_onto_followup(pairs):
    for p in pairs:
        moved = _warp_labels(p)
        for name, values in BRAIN_STRUCTURES.items():
            d = _dice(moved, p.fixed_labels, values)
            assert d >= 0.9, (p.id, name, d)
            if p.group == "dementia" and name in ("CSF", "ventricles"):
                # the change is beyond a voxel there: the field must explain it
                assert d > _dice(p.moving_labels, p.fixed_labels, values) + 0.05, (p.id, name)


def test_ground_truth_disp_has_pullback_sign(pairs):
    for p in pairs:
        if p.group != "dementia":
            continue
        moving, d, inside = _t(p.moving)[None, None], _t(p.disp)[None], p.mask > 0
        err = {
            s: ((warp(moving, s * d)[0, 0].numpy() - p.fixed)[inside] ** 2).mean()
            for s in (1.0, -1.0)
        }
        assert err[1.0] < 0.5 * err[-1.0], (p.id, err)


def test_ground_truth_is_diffeomorphic(pairs):
    disp = torch.stack([_t(p.disp) for p in pairs])
    assert folding_fraction(disp).max().item() == 0.0


def test_ventricles_grow_more_with_dementia(pairs):
    change = {g: [ventricle_volume_change(p) for p in pairs if p.group == g] for g in BRAIN_GROUPS}
    assert len(change["normal"]) == len(change["dementia"]) == 9
    assert min(min(c) for c in change.values()) > 0
    assert np.mean(change["dementia"]) > 2 * np.mean(change["normal"])
    assert np.mean(change["dementia"]) > 0.15
    for p in pairs:
        assert ventricle_volume_change(p) == pytest.approx(p.meta["ventricle_area_change"])


def test_same_seed_identical_other_seed_different():
    a, b = make_brain_pair(7, 3), make_brain_pair(7, 3)
    for name in ("moving", "fixed", "moving_labels", "fixed_labels", "mask", "disp"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.id == b.id and a.meta == b.meta
    c = make_brain_pair(8, 3)
    assert not np.array_equal(a.moving, c.moving)
    assert not np.array_equal(a.disp, c.disp)


def test_slices_of_a_subject_differ_but_share_subject_and_group():
    ps = brain_phantom(2, seed=4, slices_per_subject=3)
    assert [p.id for p in ps] == [f"brain4_{s:04d}_s{k:02d}" for s in range(2) for k in range(3)]
    assert len({p.id for p in ps}) == 6
    for subject in (ps[:3], ps[3:]):
        assert len({p.subject for p in subject}) == 1 and len({p.group for p in subject}) == 1
        assert len({p.meta["slice_z_mm"] for p in subject}) == 3
        assert not np.array_equal(subject[0].moving_labels, subject[1].moving_labels)
        assert subject[0].meta["ventricle_growth"] == subject[2].meta["ventricle_growth"]
    assert ps[0].subject != ps[3].subject and ps[0].group != ps[3].group


def test_group_changes_only_the_atrophy():
    normal = make_brain_pair(1, 2, group="normal")
    dementia = make_brain_pair(1, 2, group="dementia")
    np.testing.assert_array_equal(normal.moving, dementia.moving)  # same baseline subject
    assert ventricle_volume_change(dementia) > ventricle_volume_change(normal)
    assert make_brain_pair(1, 2).group == "normal" and make_brain_pair(1, 3).group == "dementia"


def test_size_and_spacing_are_configurable():
    p = make_brain_pair(0, 1, size=(64, 72), spacing=(3.0, 3.0))
    assert p.moving.shape == (64, 72) and p.disp.shape == (2, 64, 72) and p.spacing == (3.0, 3.0)
    assert (p.moving_labels == BRAIN_LABELS["ventricles"]).any()
    assert ventricle_volume_change(p) > 0


@pytest.mark.parametrize(
    "kwargs", [{"group": "MCI"}, {"seed": -1}, {"size": (100,)}, {"spacing": (0.0, 2.0)}]
)
def test_bad_arguments_raise(kwargs):
    args = {"seed": 0, "index": 0, **kwargs}
    with pytest.raises(ValueError):
        make_brain_pair(**args)


def test_missing_nilearn_or_template_gives_clear_error(monkeypatch):
    real = brain_template.importlib.util.find_spec
    monkeypatch.setattr(
        brain_template.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "nilearn" else real(name, *a),
    )
    with pytest.raises(ImportError, match="pip install nilearn"):
        brain_template.template_paths()
    monkeypatch.undo()
    monkeypatch.setitem(brain_template.TEMPLATE_FILES, "gm", "no_such_template.nii.gz")
    with pytest.raises(FileNotFoundError, match="no_such_template"):
        brain_template.template_paths()
