"""The training engine: every method through one loop, hooks, the run folder, divergence."""

import json

import pytest
import torch

from helpers import random_pairs
from helpers import train_config as _config
from structreg.errors import (
    CheckpointError,
    ConfigError,
    RunExistsError,
    StructregWarning,
    TrainingError,
)
from structreg.models import ModelConfig
from structreg.models.voxelmorph import VoxelMorph2, VoxelMorphConfig
from structreg.training import DataSettings, Engine, Hook, RunConfig, RunFolder, load_model, train
from structreg.training.engine import log_columns
from structreg.training.hooks import default_hooks, validation_score
from structreg.training.tasks import VoxelMorphTask

TINY = ModelConfig(
    image_size=(32, 32), latent_dim=16, enc_channels=(4, 8, 8, 2), dec_channels=(8, 8, 8, 8)
)
VXM = VoxelMorphConfig(nb_features=(4, 8, 8))


def test_voxelmorph_trains_through_the_engine_and_resumes_exactly(tmp_path):
    pytest.importorskip("voxelmorph")
    pairs = random_pairs(12, seed=3)
    straight = train(
        VXM, _config(6), pairs[:10], pairs[10:], tmp_path / "a", progress=False, method="voxelmorph"
    )
    train(
        VXM, _config(3), pairs[:10], pairs[10:], tmp_path / "b", progress=False, method="voxelmorph"
    )
    resumed = train(
        VXM,
        _config(6),
        pairs[:10],
        pairs[10:],
        tmp_path / "b",
        resume=True,
        progress=False,
        method="voxelmorph",
    )
    assert [r["step"] for r in resumed] == list(range(1, 7))
    # steps 1-3 come back from the log (6 significant digits), 4-6 are recomputed
    assert [r["loss"] for r in resumed[:3]] == pytest.approx(
        [r["loss"] for r in straight[:3]], rel=1e-5
    )
    assert [r["loss"] for r in resumed[3:]] == [r["loss"] for r in straight[3:]]
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert a["config"]["method"] == "voxelmorph" and a["step"] == 6
    for name, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][name]), name
    header = (tmp_path / "a" / "train_log.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == log_columns(VoxelMorphTask())
    assert "val_ncc" in header and straight[-1]["val_dice"] > 0
    model, config = load_model(tmp_path / "a", "cpu", method="voxelmorph")
    assert isinstance(model, VoxelMorph2) and config.method == "voxelmorph"
    with pytest.raises(CheckpointError, match="a voxelmorph run, not a ours one"):
        load_model(tmp_path / "a", "cpu", method="ours")
    with pytest.raises(CheckpointError, match="trains voxelmorph, not ours"):
        train(TINY, _config(9), pairs[:10], pairs[10:], tmp_path / "a", resume=True, progress=False)


def test_hooks_are_called_in_order_around_every_step(tmp_path):
    calls = []

    class Spy(Hook):
        def on_start(self, engine):
            calls.append(("start", engine.state.step))

        def after_step(self, engine, row):
            calls.append(("step", row["step"], "step_time_s" in row))

        def on_end(self, engine):
            calls.append(("end", engine.state.step))

        def close(self, engine):
            calls.append(("close",))

    pairs = random_pairs(6, seed=1)
    config = RunConfig(model=TINY, train=_config(3))
    engine = Engine(
        config, pairs[:4], pairs[4:], RunFolder(tmp_path), [*default_hooks(progress=False), Spy()]
    )
    engine.init()
    rows = engine.run()
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert calls == [
        ("start", 0),
        ("step", 1, True),
        ("step", 2, True),
        ("step", 3, True),
        ("end", 3),
        ("close",),
    ]
    assert RunFolder(tmp_path).best.is_file() and RunFolder(tmp_path).checkpoint.is_file()


def test_divergence_is_reported_by_the_loop_with_the_step(tmp_path):
    pairs = random_pairs(6, seed=1)
    with pytest.raises(TrainingError, match=r"training diverged at step \d+ .*train\.lr"):
        train(TINY, _config(20, lr=1e6, val_every=0), pairs, None, tmp_path, progress=False)


def test_progress_is_one_line_every_n_steps_off_a_terminal(tmp_path, capsys):
    pairs = random_pairs(6, seed=1)
    train(TINY, _config(4, val_every=0), pairs, None, tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.count("train: step") == 1 and "step 4/4" in err


def test_run_folder_data_settings_and_model_file(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert run.read_data_settings() == DataSettings()  # defaults without data.json
    settings = DataSettings(size=(48, 40), spacing=(1.5, 2.0), data="phantom:brain", seed=3)
    run.write_data_settings(settings)
    assert json.loads(run.data_file.read_text())["spacing"] == [1.5, 2.0]
    assert RunFolder(tmp_path / "run").read_data_settings() == settings
    assert RunFolder.of_model(run.checkpoint).path == run.path
    with pytest.raises(FileNotFoundError, match="no best.pt or checkpoint.pt"):
        run.model_file()
    run.data_file.write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable run data settings"):
        run.read_data_settings()


def test_resume_on_other_data_is_refused_before_anything_is_written(tmp_path):
    pairs = random_pairs(6, seed=1)
    train(TINY, _config(2), pairs[:4], pairs[4:], tmp_path, progress=False)
    run = RunFolder(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in ("data.json", "config.toml")}
    other = random_pairs(6, seed=2)  # same number of pairs, other contents
    with pytest.raises(CheckpointError, match="training data differ"):
        train(TINY, _config(4), other[:4], other[4:], tmp_path, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="training data differ"):
        train(TINY, _config(4, seed=8), pairs[:4], pairs[4:], tmp_path, resume=True, progress=False)
    for name, data in before.items():
        assert (tmp_path / name).read_bytes() == data, name
    assert run.read_data_settings().fingerprint
    rows = train(TINY, _config(4), pairs[:4], pairs[4:], tmp_path, resume=True, progress=False)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]


def test_a_second_training_in_the_same_folder_is_refused_naming_the_holder(tmp_path):
    import os
    import socket

    pairs = random_pairs(6, seed=1)
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    # a live process of this host (the parent of this test process) holds the lock
    (run.path / RunFolder.LOCK).write_text(f"{os.getppid()} {socket.gethostname()}\n")
    with pytest.raises(Exception, match=rf"in use: another training \(PID {os.getppid()}"):
        train(TINY, _config(2), pairs[:4], pairs[4:], run.path, resume=False, progress=False)


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    pairs = random_pairs(6, seed=1)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    train(TINY, _config(2), pairs[:4], pairs[4:], tmp_path, progress=False)
    (tmp_path / RunFolder.LOCK).write_text(f"{dead} {socket.gethostname()}\n")  # killed run
    with pytest.warns(StructregWarning, match=f"taking over the stale lock .*PID {dead}"):
        rows = train(TINY, _config(3), pairs[:4], pairs[4:], tmp_path, resume=True, progress=False)
    assert rows[-1]["step"] == 3 and not (tmp_path / RunFolder.LOCK).exists()


def test_a_non_empty_folder_is_refused_without_resume(tmp_path):
    pairs = random_pairs(6, seed=1)
    for name in ("best.pt", "train_log.csv"):
        (tmp_path / name).write_text("from an earlier run")
    with pytest.raises(RunExistsError, match="not empty"):
        train(TINY, _config(2), pairs[:4], pairs[4:], tmp_path, progress=False)
    assert (tmp_path / "best.pt").read_text() == "from an earlier run"


def test_a_full_disk_during_a_checkpoint_is_one_line_naming_the_file(tmp_path, monkeypatch):
    import structreg.training.checkpoint as checkpoint

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    pairs = random_pairs(6, seed=1)
    monkeypatch.setattr(checkpoint.torch, "save", full)
    with pytest.raises(OSError, match=r"(best|checkpoint)\.pt: could not be written \(disk full"):
        train(TINY, _config(2), pairs[:4], pairs[4:], tmp_path, progress=False)
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_temporary_files_of_a_killed_write_are_cleaned_at_the_next_start(tmp_path):
    pairs = random_pairs(6, seed=1)
    train(TINY, _config(2), pairs[:4], pairs[4:], tmp_path, progress=False)
    stale = [tmp_path / ".checkpoint.pt.k3j2_x.tmp.pt", tmp_path / ".best.pt.a1b2.tmp.pt"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    mine = tmp_path / "notes.tmp.pt"  # not our temp-name pattern: kept
    mine.write_text("the user's")
    train(TINY, _config(3), pairs[:4], pairs[4:], tmp_path, resume=True, progress=False)
    assert not any(p.exists() for p in stale) and mine.read_text() == "the user's"


def _replayed_stop(rows: list[dict], key: str, patience: int, steps: int) -> int:
    """The step early stopping (min_delta 0) ends at, replayed on the logged ``key``
    (``val_loss``: lower is better)."""
    since, best = 0, None
    for row in rows:
        score = -row[key] if key == "val_loss" else row[key]
        since = 0 if best is None or score > best else since + 1
        best = score if best is None else max(best, score)
        if since >= patience:
            return row["step"]
    return steps


def test_early_stopping_ends_after_patience_validations_without_improvement(tmp_path, capsys):
    pairs = random_pairs(10, seed=2)
    # min_delta 1: no Dice change counts as an improvement, so the 3rd validation stops
    config = _config(40, val_every=1, patience=2, min_delta=1.0)
    rows = train(TINY, config, pairs[:8], pairs[8:], tmp_path / "a", progress=True)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert "stopped at step 3/40: no validation improvement" in capsys.readouterr().err
    ckpt = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3 and ckpt["loop"]["since_best"] == 2
    assert ckpt["loop"]["stopped"].startswith("no validation improvement")
    # a larger patience resumes the stopped run where it ended
    more = train(
        TINY,
        _config(40, val_every=1, patience=4, min_delta=1.0),
        pairs[:8],
        pairs[8:],
        tmp_path / "a",
        resume=True,
        progress=False,
    )
    assert [r["step"] for r in more] == [1, 2, 3, 4, 5]
    # patience 0 (default) trains the whole budget
    full = train(TINY, _config(4, val_every=1, min_delta=1.0), pairs[:8], pairs[8:], tmp_path / "b")
    assert len(full) == 4


def test_improvements_below_min_delta_update_best_but_count_towards_patience(tmp_path):
    pairs = random_pairs(10, seed=2)
    rows = train(
        TINY,
        _config(30, val_every=1, patience=3, min_delta=0.0),
        pairs[:8],
        pairs[8:],
        tmp_path,
        progress=False,
    )
    assert len(rows) == _replayed_stop(rows, "val_dice", patience=3, steps=30)


def test_monitor_loss_trains_on_while_the_loss_improves_under_a_flat_dice(tmp_path):
    # sub-voxel motion: VoxelMorph-2's early fields leave the nearest-neighbour-warped
    # labels (and so the Dice) unchanged while its validation loss falls
    pytest.importorskip("voxelmorph")
    pairs = random_pairs(10, seed=2)

    def run(monitor: str, out: str) -> list[dict]:
        config = _config(12, val_every=1, patience=2, monitor=monitor)
        return train(
            VXM, config, pairs[:8], pairs[8:], tmp_path / out, progress=False, method="voxelmorph"
        )

    by_dice, by_loss = run("dice", "dice"), run("loss", "loss")
    assert len({r["val_dice"] for r in by_dice + by_loss}) == 1  # the Dice never moves
    assert len(by_dice) == 3  # the first validation stays best: stopped after 2 more
    assert len(by_loss) == _replayed_stop(by_loss, "val_loss", patience=2, steps=12) > 3
    ckpt = torch.load(tmp_path / "loss" / "checkpoint.pt", weights_only=True)
    assert ckpt["loop"]["best"] == pytest.approx(-min(r["val_loss"] for r in by_loss))
    # the score is part of what a resume must keep
    with pytest.raises(CheckpointError, match="monitor: 'loss' -> 'dice'"):
        train(
            VXM,
            _config(20, val_every=1),
            pairs[:8],
            pairs[8:],
            tmp_path / "loss",
            resume=True,
            method="voxelmorph",
        )


def test_validation_score_follows_the_monitor():
    labelled = {"val_dice": 0.8, "val_loss": 0.3}
    unlabelled = {"val_dice": float("nan"), "val_loss": 0.3}
    assert validation_score(labelled) == 0.8
    assert validation_score(labelled, "loss") == -0.3
    assert validation_score(unlabelled, "dice") == -0.3
    with pytest.raises(ConfigError, match="train.monitor must be one of dice, loss"):
        _config(2, monitor="val_dice")


def test_a_time_budget_stops_training_and_validates_the_last_step(tmp_path):
    pairs = random_pairs(10, seed=2)
    rows = train(
        TINY,
        _config(50, val_every=100, max_seconds=1e-6),
        pairs[:8],
        pairs[8:],
        tmp_path,
        progress=False,
    )
    assert len(rows) == 1 and rows[0]["val_dice"] == rows[0]["val_dice"]  # validated (not NaN)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["loop"]["stopped"].startswith("time budget") and ckpt["loop"]["seconds"] > 0


def test_a_resumed_run_whose_time_budget_is_spent_trains_no_further_step(tmp_path):
    pairs = random_pairs(10, seed=2)
    train(TINY, _config(50, val_every=100, max_seconds=1e-6), pairs[:8], pairs[8:], tmp_path)
    again = train(
        TINY,
        _config(50, val_every=100, max_seconds=1e-6),
        pairs[:8],
        pairs[8:],
        tmp_path,
        resume=True,
        progress=False,
    )
    assert [r["step"] for r in again] == [1]
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 1
    # the same run, its time budget lifted, goes on to a step budget
    more = train(
        TINY, _config(3, val_every=100), pairs[:8], pairs[8:], tmp_path, resume=True, progress=False
    )
    assert [r["step"] for r in more] == [1, 2, 3]
