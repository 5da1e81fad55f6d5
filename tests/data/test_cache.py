"""The preprocessed-pair cache: what it writes, what it refuses, and that a streamed
training is the in-memory training (bit for bit, also resumed)."""

import json

import numpy as np
import pytest
import torch

from structreg.cli import main
from structreg.data.cache import open_cache, write_cache
from structreg.data.spec import load_pairs
from structreg.errors import DataError, InputError

GRID = ["--size", "32x32"]
TINY = [
    "--set", "train.val_every=3", "--set", "train.checkpoint_every=3",
    "--set", "train.num_threads=1", "--set", "model.latent_dim=8",
    "--set", "model.enc_channels=[4,4,4,2]", "--set", "model.dec_channels=[4,4,4,4]",
    "--set", "train.tensorboard=false", "--set", "train.batch_size=4",
]  # fmt: skip


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "cardiac"
    assert main(["data", "cache", "--data", "phantom:cardiac", "--subjects", "12", *GRID,
                 "--out", str(out)]) == 0  # fmt: skip
    return out


def test_cache_holds_the_pairs_and_their_split(cache):
    pairs = load_pairs("phantom:cardiac", split="all", n_subjects=12, size=(32, 32))
    c = open_cache(cache)
    assert c.n == 12 and c.shape == (32, 32) and c.spacing == pairs[0].spacing
    assert set(c.arrays) == {"moving", "fixed", "moving_labels", "fixed_labels", "mask", "disp"}
    cached = c.pairs()
    assert [p.id for p in cached] == [p.id for p in pairs]
    for a, b in zip(cached, pairs, strict=True):
        for name in ("moving", "fixed", "moving_labels", "fixed_labels", "mask", "disp"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert (a.subject, a.group) == (b.subject, b.group)
    assert a.label_table == b.label_table
    # the split is train's subject-wise split of the same seed
    train = load_pairs("phantom:cardiac", split="train", n_subjects=12, size=(32, 32))
    assert [c.ids[i] for i in c.indices("train")] == [p.id for p in train]
    # cache:DIR works wherever a data spec does, with its own split
    assert [p.id for p in load_pairs(f"cache:{cache}", split="train")] == [p.id for p in train]


def test_cache_refuses_a_used_folder_and_leaves_nothing_half_written(cache, tmp_path):
    pairs = open_cache(cache).pairs()
    with pytest.raises(InputError, match="not empty"):
        write_cache(pairs, cache, splits=["train"] * len(pairs))
    pairs[3].moving = np.zeros((16, 16), np.float32)  # breaks the pair's shape check late
    pairs[3].fixed = pairs[3].moving
    pairs[3].moving_labels = pairs[3].fixed_labels = pairs[3].mask = pairs[3].disp = None
    with pytest.raises(DataError, match="has shape"):
        write_cache(pairs, tmp_path / "bad", splits=["train"] * len(pairs))
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_cache_and_another_grid_are_refused(cache, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(cache, broken)
    (broken / "mask.npy").unlink()
    with pytest.raises(DataError, match="mask.npy is missing"):
        open_cache(broken)
    index = json.loads((cache / "pairs.json").read_text())
    index["version"] = 99
    (broken / "pairs.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match="version 99"):
        open_cache(broken)
    with pytest.raises(DataError, match="holds 32x32 voxels"):
        load_pairs(f"cache:{cache}", size=(48, 48))
    with pytest.raises(FileNotFoundError, match="not a structreg data cache"):
        open_cache(tmp_path)


def _weights(run):
    return torch.load(run / "checkpoint.pt", weights_only=True)["state_dict"]


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_streamed_training_is_the_in_memory_training(cache, tmp_path):
    steps = ["--set", "train.steps=6"]
    memory = tmp_path / "memory"
    assert main(["train", "--data", "phantom:cardiac", "--subjects", "12", *GRID,
                 "--out", str(memory), *TINY, *steps]) == 0  # fmt: skip
    for workers in (0, 2, "in-memory"):
        out = tmp_path / f"stream{workers}"
        how = ["--in-memory"] if workers == "in-memory" else ["--set", f"train.workers={workers}"]
        assert main(["train", "--data", f"cache:{cache}", "--out", str(out), *TINY, *steps,
                     *how]) == 0  # fmt: skip
        assert _same(_weights(out), _weights(memory))
        assert (out / "train_log.csv").read_text().splitlines()[-1].split(",")[:6] == (
            (memory / "train_log.csv").read_text().splitlines()[-1].split(",")[:6]
        )
    # killed after step 3 (mid-epoch: 9 pairs, 2 batches of 4 per epoch) and resumed
    out = tmp_path / "resumed"
    args = ["train", "--data", f"cache:{cache}", "--out", str(out), *TINY]
    assert main([*args, "--set", "train.steps=3"]) == 0
    assert main([*args, "--set", "train.steps=6", "--resume"]) == 0
    assert _same(_weights(out), _weights(memory))
    data = json.loads((out / "data.json").read_text())
    assert data["data"] == f"cache:{cache}" and tuple(data["size"]) == (32, 32)


def test_train_refuses_another_grid_than_the_caches(cache, tmp_path, capsys):
    code = main(["train", "--data", f"cache:{cache}", "--size", "48x48",
                 "--out", str(tmp_path / "x"), *TINY])  # fmt: skip
    assert code == 1
    assert "--size/--spacing must match" in capsys.readouterr().err


def test_the_cache_is_written_one_pair_at_a_time_with_the_same_content(cache, tmp_path):
    import copy
    import gc
    import hashlib
    import weakref

    source = open_cache(cache)
    given: list = []

    def one_at_a_time():
        for pair in source.pairs():
            gc.collect()
            held = sum(ref() is not None for ref in given)
            assert held == 0  # the writer kept no pair it was given
            fresh = copy.deepcopy(pair)
            given.append(weakref.ref(fresh))
            yield fresh
            del fresh

    splits = [source.index["pairs"][i]["split"] for i in range(source.n)]
    again = write_cache(one_at_a_time(), tmp_path / "again", splits=lambda infos: splits)
    fields = ("id", "subject", "group", "split", "spacing")
    assert [[r[k] for k in fields] for r in again.index["pairs"]] == [
        [r[k] for k in fields] for r in source.index["pairs"]
    ]
    assert again.arrays == source.arrays
    # the digest: SHA-256 over each array's name and its bytes, in order
    digest = hashlib.sha256()
    for name in again.arrays:
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(np.load(tmp_path / "again" / f"{name}.npy")).tobytes())
    assert again.digest == digest.hexdigest() == source.digest


def test_acdc_is_read_patient_by_patient_into_a_cache(tmp_path, monkeypatch):
    import structreg.data.acdc as acdc
    from data_fixtures import write_acdc
    from structreg.data.spec import iter_pairs

    root = write_acdc(tmp_path / "acdc")
    loaded = []
    real = acdc.load_acdc_patient
    monkeypatch.setattr(
        acdc, "load_acdc_patient", lambda path, **kw: loaded.append(path) or real(path, **kw)
    )
    stream = iter_pairs(f"acdc:{root}", size=(32, 32), n_slices=2)
    next(stream)
    assert len(loaded) == 1  # the other patients are not read yet
    out = tmp_path / "cache"
    assert main(["data", "cache", "--data", f"acdc:{root}", *GRID, "--slices", "2",
                 "--out", str(out)]) == 0  # fmt: skip
    whole = load_pairs(f"acdc:{root}", split="all", size=(32, 32), n_slices=2)
    cached = open_cache(out).pairs()
    assert [p.id for p in cached] == [p.id for p in whole]
    for a, b in zip(cached, whole, strict=True):
        np.testing.assert_array_equal(a.moving, b.moving)
        np.testing.assert_array_equal(a.fixed_labels, b.fixed_labels)
