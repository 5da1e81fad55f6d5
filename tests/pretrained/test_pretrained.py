"""The models bundled with the package: files, digests, documented scores, the
``builtin:NAME`` spec, ``structreg models``, and fine-tuning with ``train --init``."""

import json
import shutil

import numpy as np
import pytest
import torch

from structreg import pretrained
from structreg.cli import main
from structreg.errors import CheckpointError, UsageError
from structreg.evaluation.model_check import measure_check
from structreg.training.checkpoint import find_checkpoint, load_model, read_checkpoint
from structreg.training.export import read_safetensors
from structreg.training.run import model_data_settings

NAMES = [m.name for m in pretrained.bundled_models()]
#: A bundled file must stay small enough for the wheel.
MAX_BYTES = 8_000_000

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_package_bundles_a_cardiac_and_a_brain_model():
    assert {"cardiac", "brain"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_bundled_file_matches_its_digests_and_loads(name):
    entry = pretrained.bundled_model(f"builtin:{name}")
    assert entry.path.is_file() and 0 < entry.size_bytes() <= MAX_BYTES
    assert pretrained.file_sha256(entry.path) == entry.sha256
    model, config = load_model(f"builtin:{name}", "cpu")  # checks the weights digest
    assert config.method == "ours"
    settings = model_data_settings(f"builtin:{name}")
    assert tuple(settings.size) == tuple(config.model.image_size)
    assert entry.description and entry.trained_on and entry.command
    assert entry.check["structures"] and entry.scores
    n = sum(p.numel() for p in model.parameters())
    assert n > 100_000


@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_reproduces_its_documented_check_dice(name):
    entry = pretrained.bundled_model(name)
    measured = measure_check(entry.spec, entry.check)
    assert measured["pairs"] == entry.check["pairs"]
    for structure, documented in entry.check["dice"].items():
        got = measured["dice"][structure]
        assert abs(got - documented) <= entry.check["tolerance"], (structure, got, documented)
    # the check is a registration that works: far above no registration
    assert measured["dice"]["mean"] > 0.6


def test_unknown_and_damaged_bundled_models_are_one_line_errors(tmp_path, monkeypatch, capsys):
    with pytest.raises(UsageError, match="unknown bundled model 'builtin:nope'.*builtin:brain"):
        find_checkpoint("builtin:nope")
    code = main(
        ["register", "--model", "builtin:nope", "--moving", "a", "--fixed", "b"]
        + ["--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "unknown bundled model" in err
    # a damaged copy of the package folder
    folder = tmp_path / "pkg"
    shutil.copytree(pretrained.FOLDER, folder, ignore=shutil.ignore_patterns("*.py", "__py*"))
    entry = pretrained.bundled_model("cardiac")
    data = bytearray((folder / entry.file).read_bytes())
    data[-10] ^= 0xFF
    (folder / entry.file).write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "FOLDER", folder)
    pretrained._verified.cache_clear()
    with pytest.raises(CheckpointError, match="does not match its SHA-256"):
        find_checkpoint("builtin:cardiac")
    (folder / entry.file).unlink()
    with pytest.raises(CheckpointError, match="missing from this installation"):
        find_checkpoint("builtin:cardiac")


def test_models_command_lists_the_bundled_models(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert f"builtin:{name}" in out
    assert "check: mean Dice" in out and "MB" in out
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == [f"builtin:{n}" for n in NAMES]
    assert all(r["size_bytes"] > 0 for r in rows)


# ------------------------------------------------------------------------- fine-tuning

TINY = ["--data", "phantom:cardiac", "--subjects", "12", "--size", "32x32", "--spacing", "6"]
QUIET = ["--set", "train.val_every=0", "--set", "train.tensorboard=false"]


def _weights(run):
    return read_checkpoint(run / "checkpoint.pt")["state_dict"]


def test_train_init_starts_from_the_given_weights(tiny_run_factory, tmp_path):
    init = tiny_run_factory([0.5, -0.5])
    out = tmp_path / "tuned"
    argv = ["train", *TINY, "--init", str(init), "--out", str(out), *QUIET]
    assert main(argv + ["--set", "train.steps=1", "--set", "train.lr=1e-12"]) == 0
    start = read_checkpoint(find_checkpoint(init))["state_dict"]
    tuned = _weights(out)
    convs = [k for k in start if k.endswith("weight") and start[k].ndim >= 2]
    assert convs
    for k in convs:  # one step at a vanishing learning rate: the init's weights
        torch.testing.assert_close(tuned[k], start[k], atol=1e-8, rtol=0)
    assert "init = " in (out / "config.toml").read_text()
    # the model settings came from the init run (its latent size, not the default)
    init_config = read_checkpoint(find_checkpoint(init))["config"]
    assert read_checkpoint(out / "checkpoint.pt")["config"].model == init_config.model


def test_train_init_resumes_exactly(tiny_run_factory, tmp_path):
    init = tiny_run_factory([0.5, -0.5])
    common = ["train", *TINY, "--init", str(init), *QUIET]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(common + ["--out", str(whole), "--set", "train.steps=3"]) == 0
    assert main(common + ["--out", str(parts), "--set", "train.steps=2"]) == 0
    assert main(common + ["--out", str(parts), "--set", "train.steps=3", "--resume"]) == 0
    a, b = _weights(whole), _weights(parts)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)


def test_train_init_refuses_other_model_settings_before_writing(tiny_run_factory, tmp_path, capsys):
    init = tiny_run_factory([0.5, -0.5])
    out = tmp_path / "tuned"
    code = main(
        ["train", *TINY, "--init", str(init), "--out", str(out), *QUIET]
        + ["--set", "model.latent_dim=16"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0
    assert "model settings differ" in err and "latent_dim" in err
    assert not out.exists()
    code = main(["train", "--method", "voxelmorph", *TINY, "--init", str(init), "--out", str(out)])
    assert code == 2 and not out.exists()


def test_train_init_builtin_takes_the_model_grid(tmp_path):
    """``--init builtin:brain`` without --size/--spacing trains on the model's grid
    with its settings."""
    out = tmp_path / "tuned"
    argv = ["train", "--data", "phantom:brain-inter", "--subjects", "8", "--init"]
    argv += ["builtin:brain", "--out", str(out), *QUIET, "--set", "train.steps=1"]
    assert main(argv) == 0
    saved = read_checkpoint(out / "checkpoint.pt")["config"]
    bundled = read_safetensors(find_checkpoint("builtin:brain"))["config"]
    assert saved.model == bundled.model and saved.train.lam == bundled.train.lam
    assert saved.train.init == "builtin:brain"
    settings = json.loads((out / "data.json").read_text())
    assert settings["size"] == list(bundled.model.image_size)
    assert np.allclose(settings["spacing"], model_data_settings("builtin:brain").spacing)


def test_a_bundled_model_exports_to_an_identical_model_file(tmp_path):
    out = tmp_path / "copy.safetensors"
    assert main(["export", "--model", "builtin:cardiac", "--out", str(out)]) == 0
    a = read_safetensors(find_checkpoint("builtin:cardiac"))
    b = read_safetensors(out)
    assert a["digest"] == b["digest"] and a["config"] == b["config"]
    assert model_data_settings(out) == model_data_settings("builtin:cardiac")
