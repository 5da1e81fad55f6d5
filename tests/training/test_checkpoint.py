"""Checkpoints: round trip, and refusal of anything that is not a valid checkpoint."""

import os
import pickle

import pytest
import torch

from structreg.models import CVAERegistration, ModelConfig
from structreg.training import CheckpointError, RunConfig, TrainConfig, load_model, save_checkpoint
from structreg.training.checkpoint import read_checkpoint


def tiny_run_config(**model_kw) -> RunConfig:
    model = dict(
        image_size=(32, 32),
        latent_dim=16,
        enc_channels=(4, 8, 8, 2),
        dec_channels=(8, 8, 8, 8),
        velocity_init_std=0.1,
    )
    model.update(model_kw)
    return RunConfig(model=ModelConfig(**model), train=TrainConfig(steps=10, batch_size=4))


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    config = tiny_run_config()
    model = CVAERegistration(config.model)
    # non-trivial batch-norm running statistics
    model(torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32), sample=True)
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, config, step=7)
    return path, model.eval(), config


class Arbitrary:
    """Some object a foreign pickle might carry."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_round_trip_gives_identical_outputs(saved, tmp_path):
    path, model, config = saved
    loaded, loaded_config = load_model(path, "cpu")
    assert loaded_config == config
    assert not loaded.training
    moving, fixed = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    a, b = model.predict(moving, fixed), loaded.predict(moving, fixed)
    for name in ("mu", "velocity", "disp", "moved"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    # a run folder loads best.pt when present
    assert load_model(tmp_path, "cpu")[1] == config
    raw = torch.load(path, weights_only=True)
    assert set(raw) >= {"format_version", "config", "state_dict", "optimizer", "step", "rng"}
    assert raw["step"] == 7 and isinstance(raw["config"]["model"], dict)


def _refused(path, match):
    with pytest.raises(CheckpointError, match=match) as info:
        load_model(path, "cpu")
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(os.urandom(4096))
    _refused(path, "not a structreg checkpoint: not a PyTorch file")


def test_pickle_of_arbitrary_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with path.open("wb") as fh:
        pickle.dump({"format_version": 1, "payload": Arbitrary()}, fh)
    _refused(path, "refused for safety")
    path2 = tmp_path / "evil2.pt"
    torch.save({"format_version": 1, "payload": Arbitrary()}, path2)
    _refused(path2, "refused for safety")


def test_foreign_torch_file_is_refused(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    _refused(path, "expected a dict")
    path2 = tmp_path / "weights.pt"
    torch.save(CVAERegistration(tiny_run_config().model).state_dict(), path2)
    _refused(path2, "missing key")


def test_modified_format_version_is_refused(saved, tmp_path):
    path, *_ = saved
    data = torch.load(path, weights_only=True)
    data["format_version"] = 99
    bad = tmp_path / "v99.pt"
    torch.save(data, bad)
    _refused(bad, "format_version 99")


def test_state_dict_key_removed_is_refused(saved, tmp_path):
    path, *_ = saved
    data = torch.load(path, weights_only=True)
    del data["state_dict"]["decoder.velocity.weight"]
    bad = tmp_path / "missing.pt"
    torch.save(data, bad)
    _refused(bad, "decoder.velocity.weight")


def test_state_dict_not_matching_config_is_refused(saved, tmp_path):
    path, *_ = saved
    data = torch.load(path, weights_only=True)
    data["config"]["model"]["latent_dim"] = 17
    bad = tmp_path / "mismatch.pt"
    torch.save(data, bad)
    _refused(bad, "needs")


def test_missing_key_and_bad_config_are_refused(saved, tmp_path):
    path, *_ = saved
    data = torch.load(path, weights_only=True)
    del data["rng"]
    bad = tmp_path / "norng.pt"
    torch.save(data, bad)
    _refused(bad, "missing key")
    data = torch.load(path, weights_only=True)
    data["config"]["train"]["bogus"] = 1
    bad2 = tmp_path / "badconfig.pt"
    torch.save(data, bad2)
    _refused(bad2, "invalid config")


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="best.pt or checkpoint.pt"):
        load_model(tmp_path)


def test_save_is_atomic_and_keeps_old_file_on_failure(saved, monkeypatch):
    path, model, config = saved
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    # reported as an OSError naming the file (torch's own message is cryptic)
    with pytest.raises(OSError, match=r"checkpoint\.pt: could not be written .*disk full"):
        save_checkpoint(path, model, config, step=8)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert read_checkpoint(path)["step"] == 7


@pytest.mark.parametrize("size", [[3000, 3000], [100000, 100000]])
def test_a_crafted_huge_config_is_refused_before_anything_is_allocated(saved, tmp_path, size):
    path, _, _ = saved
    data = torch.load(path, weights_only=True)
    data["config"]["model"]["image_size"] = size
    crafted = tmp_path / "crafted.pt"
    torch.save(data, crafted)
    # the config is validated when the checkpoint is read, before a network is built
    with pytest.raises(CheckpointError, match="beyond the supported bounds") as exc:
        read_checkpoint(crafted)
    assert str(crafted) in str(exc.value)


def test_flipped_bytes_in_the_weights_are_refused(saved, tmp_path):
    path, _, _ = saved
    data = torch.load(path, weights_only=True)
    assert len(data["digest"]) == 64
    data["state_dict"]["decoder.velocity.bias"][0] += 1e-3  # corruption that still loads
    corrupt = tmp_path / "corrupt.pt"
    torch.save(data, corrupt)
    with pytest.raises(CheckpointError, match="do not match the checkpoint's digest") as exc:
        load_model(corrupt)
    assert str(corrupt) in str(exc.value)
    raw = bytearray(path.read_bytes())  # bytes flipped in the file itself
    weights = torch.load(path, weights_only=True)["state_dict"]["decoder.fc.weight"]
    needle = weights.reshape(-1)[:16].numpy().tobytes()
    at = bytes(raw).find(needle)
    assert at > 0
    raw[at + 3] ^= 0xFF
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError):
        load_model(flipped)


@pytest.fixture
def with_state(tmp_path):
    """A checkpoint with an optimiser, RNG states and a data-order position."""
    from structreg.training.rng import capture_rng

    torch.manual_seed(0)
    config = tiny_run_config()
    model = CVAERegistration(config.model)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32), sample=True).velocity.sum().backward()
    optimizer.step()
    rng = capture_rng(torch.Generator(), torch.Generator())
    loop = {"epoch": 1, "position": 2, "perm": torch.arange(5), "best": 0.5, "seconds": 1.5}
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, config, optimizer=optimizer, step=3, rng=rng, loop=loop)
    return path


def _first_tensor(entry):
    return next(v for v in entry.values() if isinstance(v, torch.Tensor))


EDITS = {
    "optimiser moment": lambda d: _first_tensor(d["optimizer"]["state"][0]).add_(1e-3),
    "learning rate": lambda d: d["optimizer"]["param_groups"][0].update(lr=1.0),
    "RNG state": lambda d: d["rng"]["shuffle"].add_(1),
    "data order": lambda d: d["loop"].update(perm=d["loop"]["perm"].flip(0)),
    "position": lambda d: d["loop"].update(position=0),
    "step": lambda d: d.update(step=2),
    "config": lambda d: d["config"]["train"].update(lam=1.0),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_the_digest_covers_the_training_state_and_config(with_state, tmp_path, edit):
    from structreg.training.checkpoint import build_model, verify_digest

    data = torch.load(with_state, weights_only=True)
    verify_digest(read_checkpoint(with_state), with_state)  # intact: accepted
    EDITS[edit](data)
    edited = tmp_path / "edited.pt"
    torch.save(data, edited)
    with pytest.raises(CheckpointError, match="does not match the checkpoint's digest"):
        build_model(read_checkpoint(edited), edited)
