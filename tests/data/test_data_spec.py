"""The data spec shared by every command, deterministic subject-wise splits, the Dataset."""

import argparse
import sys

import numpy as np
import pytest

from data_fixtures import write_acdc
from structreg.cli.options import add_data_options, load_pairs_from_args
from structreg.data.dataset import PairDataset, pair_loader, split_by_subject, split_counts
from structreg.data.pair import Pair
from structreg.data.spec import DataSpec, load_pairs, parse_data_spec


def toy_pairs(n_subjects=50, groups=("A", "B", "C", "D", "E"), slices=2):
    z = np.zeros((4, 4), np.float32)
    return [
        Pair(
            z, z, (2.0, 2.0), id=f"s{i:03d}_{k}", subject=f"s{i:03d}", group=groups[i % len(groups)]
        )
        for i in range(n_subjects)
        for k in range(slices)
    ]


def subjects(pairs):
    return {p.subject for p in pairs}


@pytest.fixture(scope="module")
def acdc(tmp_path_factory):
    return write_acdc(tmp_path_factory.mktemp("spec") / "acdc")


def test_parse_data_spec():
    assert parse_data_spec("phantom:cardiac") == DataSpec("phantom", "cardiac")
    assert parse_data_spec(" phantom:Brain ") == DataSpec("phantom", "brain")
    assert parse_data_spec("acdc:/data/ACDC/training") == DataSpec("acdc", "/data/ACDC/training")
    spec = parse_data_spec("pairs:C:/x/pairs.csv")  # only the first colon separates
    assert spec.kind == "pairs" and str(spec) == "pairs:C:/x/pairs.csv"
    for bad, message in [
        ("cardiac", "expected"),
        ("nifti:x.nii", "expected"),
        ("acdc:", "nothing after"),
        ("phantom:lung", "unknown phantom"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_data_spec(bad)


def test_split_partitions_subjects_deterministically():
    pairs = toy_pairs()
    a = split_by_subject(pairs, seed=3, val_fraction=0.1, test_fraction=0.2)
    assert [len(subjects(a[s])) for s in ("train", "val", "test")] == [35, 5, 10]
    assert sum(len(v) for v in a.values()) == len(pairs)
    assert not (
        subjects(a["train"]) & subjects(a["test"])
        or subjects(a["val"]) & subjects(a["test"])
        or subjects(a["train"]) & subjects(a["val"])
    )
    shuffled = [pairs[i] for i in np.random.default_rng(1).permutation(len(pairs))]
    b = split_by_subject(shuffled, seed=3, val_fraction=0.1, test_fraction=0.2)
    assert all(subjects(a[s]) == subjects(b[s]) for s in a)
    c = split_by_subject(pairs, seed=4, val_fraction=0.1, test_fraction=0.2)
    assert subjects(c["test"]) != subjects(a["test"])


def test_split_is_stratified_by_group():
    split = split_by_subject(toy_pairs(), seed=0, val_fraction=0.1, test_fraction=0.2)
    for name, per_group in (("test", 2), ("val", 1)):
        groups = [p.group for p in split[name] if p.id.endswith("_0")]
        assert {g: groups.count(g) for g in "ABCDE"} == {g: per_group for g in "ABCDE"}


def test_split_counts_keep_every_split_non_empty_when_possible():
    assert split_counts(3, 0.1, 0.2) == (1, 1)
    assert split_counts(2, 0.1, 0.2) == (0, 1)
    assert split_counts(1, 0.1, 0.2) == (0, 0)
    assert split_counts(10, 0.0, 0.0) == (0, 0)
    with pytest.raises(ValueError):
        split_counts(10, 0.6, 0.5)


def test_pairs_without_subject_split_by_id():
    z = np.zeros((2, 2), np.float32)
    pairs = [Pair(z, z, (1.0, 1.0), id=f"p{i}") for i in range(10)]
    split = split_by_subject(pairs, seed=0, val_fraction=0.2, test_fraction=0.2)
    assert [len(split[s]) for s in ("train", "val", "test")] == [6, 2, 2]


def test_dataset_and_loader_batch_pairs():
    pairs = toy_pairs(4, slices=1)
    ds = PairDataset(pairs)
    assert len(ds) == 4 and ds[2] is pairs[2]
    batches = list(pair_loader(pairs, batch_size=3))
    assert batches[0]["moving"].shape == (3, 1, 4, 4) and batches[1]["id"] == ["s003_0"]
    ids = [b["id"] for b in pair_loader(pairs, batch_size=4, shuffle=True, seed=7)]
    assert ids == [b["id"] for b in pair_loader(pairs, batch_size=4, shuffle=True, seed=7)]


def test_load_pairs_acdc_splits_by_patient(acdc):
    options = dict(size=(32, 32), n_slices=3, val_fraction=0.34, test_fraction=0.34)
    every = load_pairs(f"acdc:{acdc}", split="all", **options)
    parts = {
        s: load_pairs(f"acdc:{acdc}", split=s, seed=1, **options) for s in ("train", "val", "test")
    }
    assert len(every) == 9 and all(len(v) == 3 for v in parts.values())
    assert set().union(*(subjects(v) for v in parts.values())) == subjects(every)
    assert [p.id for p in parts["test"]] == [
        p.id for p in load_pairs(f"acdc:{acdc}", split="test", seed=1, **options)
    ]
    assert load_pairs(f"acdc:{acdc}", split="all", n_subjects=1, size=(32, 32))[0].moving.shape == (
        32,
        32,
    )


def test_load_pairs_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown split"):
        load_pairs(f"acdc:{tmp_path}", split="dev")
    with pytest.raises(ValueError, match="no patientXXX"):
        load_pairs(f"acdc:{tmp_path}")
    with pytest.raises(ValueError, match="not found"):
        load_pairs(f"pairs:{tmp_path / 'pairs.csv'}")


def test_missing_phantom_module_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "structreg.data.phantoms.brain", None)
    with pytest.raises(ValueError, match="not available") as exc:
        load_pairs("phantom:brain", n_subjects=2)
    assert "\n" not in str(exc.value)


def test_cli_data_arguments(acdc):
    parser = argparse.ArgumentParser()
    add_data_options(parser)
    args = parser.parse_args([])
    assert args.split is None and args.command_split == "train"  # the command's default
    assert (
        args.data,
        args.command_split,
        args.seed,
        args.size,
        args.spacing,
        args.subjects,
        args.slices,
    ) == ("phantom:cardiac", "train", 0, (100, 100), (2.0, 2.0), None, None)
    args = parser.parse_args(
        [
            "--data",
            f"acdc:{acdc}",
            "--split",
            "all",
            "--size",
            "24x28",
            "--spacing",
            "2.5",
            "--subjects",
            "2",
            "--slices",
            "2",
        ]
    )
    assert args.size == (24, 28) and args.spacing == (2.5, 2.5)
    pairs = load_pairs_from_args(args)
    assert len(pairs) == 4 and pairs[0].moving.shape == (24, 28) and pairs[0].spacing == (2.5, 2.5)
    for bad in (["--size", "10x"], ["--spacing", "-2"], ["--split", "dev"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


# ---------------------------------------------------------------------------- built-in phantoms


@pytest.mark.parametrize("name", ["cardiac", "brain"])
def test_phantom_specs(name):
    module = pytest.importorskip(f"structreg.data.phantoms.{name}")
    groups = getattr(module, f"{name.upper()}_GROUPS")
    every = load_pairs(f"phantom:{name}", split="all", n_subjects=10, size=(32, 32), seed=2)
    assert len(every) == 10 and subjects(every) == {p.subject for p in every}
    assert len(subjects(every)) == 10 and {p.group for p in every} <= set(groups)
    assert all(p.moving.shape == (32, 32) and p.spacing == (2.0, 2.0) for p in every)
    test = load_pairs(f"phantom:{name}", split="test", n_subjects=10, size=(32, 32), seed=2)
    train = load_pairs(f"phantom:{name}", split="train", n_subjects=10, size=(32, 32), seed=2)
    assert len(subjects(test)) == 2 and len(subjects(train)) == 7
    assert not subjects(test) & subjects(train)
    again = load_pairs(f"phantom:{name}", split="test", n_subjects=10, size=(32, 32), seed=2)
    assert [p.id for p in again] == [p.id for p in test]
    np.testing.assert_array_equal(again[0].moving, test[0].moving)
    sliced = load_pairs(f"phantom:{name}", split="all", n_subjects=2, n_slices=3, size=(32, 32))
    assert len(sliced) == 6 and len(subjects(sliced)) == 2
