"""pairs.csv reading and loading.

Columns, relative paths, preprocessing of 2-D and 3-D pairs, errors naming the line.
"""

import numpy as np
import pytest

from data_fixtures import assert_one_line_error, save, truncate
from structreg.data.pairs import load_pairs_csv, read_pairs_csv
from structreg.io.nifti import DataError

SIZE = (32, 32)


def _disc(shape, centre, radius):
    grids = np.meshgrid(
        *(np.arange(n) - c for n, c in zip(shape, centre, strict=True)), indexing="ij"
    )
    return np.sqrt(sum(g**2 for g in grids)) < radius


@pytest.fixture
def folder(tmp_path):
    """sub1: 3-D volumes with labels and mask; sub2: 2-D slices without labels."""
    data = tmp_path / "data"
    (data / "sub1").mkdir(parents=True)
    (data / "sub2").mkdir()
    shape3, sp3 = (36, 30, 6), (1.0, 1.0, 3.0)
    labels = np.where(_disc(shape3, (18, 15, 3), 8), 2, 0).astype(np.int16)
    labels[_disc(shape3, (18, 15, 3), 4)] = 1
    rng = np.random.default_rng(0)
    save(
        data / "sub1" / "base.nii.gz",
        (labels * 100 + rng.normal(0, 5, shape3)).astype(np.float32),
        sp3,
    )
    save(
        data / "sub1" / "follow.nii.gz",
        (labels * 90 + rng.normal(0, 5, shape3)).astype(np.float32),
        sp3,
    )
    save(data / "sub1" / "base_seg.nii.gz", labels, sp3)
    save(data / "sub1" / "follow_seg.nii.gz", labels, sp3)
    save(data / "sub1" / "mask.nii.gz", _disc(shape3, (18, 15, 3), 12).astype(np.uint8), sp3)
    shape2 = (40, 40)
    save(data / "sub2" / "a.nii", rng.normal(size=shape2).astype(np.float32), (2.0, 2.0))
    save(data / "sub2" / "b.nii", rng.normal(size=shape2).astype(np.float32), (2.0, 2.0))
    return data


def write_csv(folder, text, name="pairs.csv"):
    path = folder / name
    path.write_text(text)
    return path


GOOD = (
    "moving,fixed,moving_labels,fixed_labels,mask,group,id\n"
    "sub1/base.nii.gz,sub1/follow.nii.gz,sub1/base_seg.nii.gz,sub1/follow_seg.nii.gz,"
    "sub1/mask.nii.gz,dementia,s1\n"
    "sub2/a.nii,sub2/b.nii,,,,normal,\n"
)


def test_pairs_are_read_resolved_and_preprocessed(folder, tmp_path, monkeypatch):
    csv_path = write_csv(folder, GOOD)
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the CSV's folder, not the cwd
    rows = read_pairs_csv(csv_path)
    assert [r.line for r in rows] == [2, 3]
    assert rows[0].moving == folder / "sub1" / "base.nii.gz" and rows[1].moving_labels is None
    assert [r.id for r in rows] == ["s1", "sub2_a"]
    pairs = load_pairs_csv(csv_path, size=SIZE, n_slices=3)
    assert [p.id for p in pairs] == ["s1_slice01", "s1_slice02", "s1_slice03", "sub2_a"]
    assert [p.subject for p in pairs] == ["s1"] * 3 + ["sub2_a"]
    assert [p.group for p in pairs] == ["dementia"] * 3 + ["normal"]
    for p in pairs:
        assert p.moving.shape == SIZE and p.spacing == (2.0, 2.0)
        assert 0.0 <= p.moving.min() and p.moving.max() <= 1.0
    s1 = pairs[1]
    assert s1.mask.dtype == np.uint8 and set(np.unique(s1.mask)) == {0, 1}
    assert set(np.unique(s1.moving_labels)) == {0, 1, 2}
    # 1 mm -> 2 mm: the disc of radius 8 mm has about pi * 8^2 / 4 processed pixels
    assert (s1.moving_labels > 0).sum() == pytest.approx(np.pi * 64 / 4, rel=0.15)
    assert pairs[3].moving_labels is None and pairs[3].mask is None
    assert s1.meta["csv_line"] == 2


def test_volume_mode_keeps_3d_pairs(folder):
    csv_path = write_csv(folder, "moving,fixed\nsub1/base.nii.gz,sub1/follow.nii.gz\n")
    (pair,) = load_pairs_csv(csv_path, size=(16, 16, 8), spacing=(2.0, 2.0, 2.0), n_slices=None)
    assert pair.moving.shape == (16, 16, 8) and pair.spacing == (2.0, 2.0, 2.0)


def test_duplicate_ids_are_one_subject_and_n_subjects(folder):
    csv_path = write_csv(
        folder,
        "id,moving,fixed\nA,sub2/a.nii,sub2/b.nii\nA,sub2/b.nii,sub2/a.nii\n"
        "B,sub2/a.nii,sub2/a.nii\n",
    )
    pairs = load_pairs_csv(csv_path, size=SIZE)
    assert [p.id for p in pairs] == ["A_row1", "A_row2", "B"]
    assert [p.subject for p in pairs] == ["A", "A", "B"]
    assert [p.subject for p in load_pairs_csv(csv_path, size=SIZE, n_subjects=1)] == ["A", "A"]


@pytest.mark.parametrize(
    "text, where, message",
    [
        ("moving,labels\nsub2/a.nii,sub2/b.nii\n", "line 1", "missing column"),
        ("moving,fixed\nsub2/a.nii,\n", "line 2", "empty 'fixed'"),
        (
            "moving,fixed\nsub2/a.nii,sub2/b.nii\nsub2/a.nii,sub2/nope.nii.gz\n",
            "line 3",
            "fixed file 'sub2/nope.nii.gz' not found",
        ),
        ("moving,fixed\nsub2/a.nii,sub2/b.nii,extra\n", "line 2", "3 fields"),
        ("", "", "empty file"),
    ],
)
def test_bad_csv_names_the_line(folder, text, where, message):
    csv_path = write_csv(folder, text)
    with pytest.raises(DataError, match=message) as exc:
        load_pairs_csv(csv_path, size=SIZE)
    assert_one_line_error(exc, f"{csv_path} {where}".strip())


def test_missing_csv(tmp_path):
    with pytest.raises(DataError, match="not found") as exc:
        load_pairs_csv(tmp_path / "pairs.csv")
    assert_one_line_error(exc, tmp_path / "pairs.csv")


def test_moving_and_fixed_of_different_dimensionality(folder):
    csv_path = write_csv(folder, "moving,fixed\nsub2/a.nii,sub1/follow.nii.gz\n")
    with pytest.raises(DataError, match="same dimensionality") as exc:
        load_pairs_csv(csv_path, size=SIZE)
    assert_one_line_error(
        exc, f"{csv_path} line 2", folder / "sub2" / "a.nii", folder / "sub1" / "follow.nii.gz"
    )


def test_corrupt_files_are_named(folder):
    truncate(folder / "sub1" / "follow.nii.gz")
    csv_path = write_csv(folder, GOOD)
    with pytest.raises(DataError, match="truncated or corrupt") as exc:
        load_pairs_csv(csv_path, size=SIZE)
    assert_one_line_error(exc, f"{csv_path} line 2", folder / "sub1" / "follow.nii.gz")


def test_label_values_can_be_restricted(folder):
    csv_path = write_csv(folder, GOOD)
    with pytest.raises(DataError, match=r"unexpected label values \[2\]") as exc:
        load_pairs_csv(csv_path, size=SIZE, label_values=(0, 1))
    assert_one_line_error(exc, folder / "sub1" / "base_seg.nii.gz")
