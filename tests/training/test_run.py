"""Run folders: a training killed before its first checkpoint is discarded, nothing else."""

import os
import socket

import pytest

from structreg.errors import RunExistsError, StructregWarning
from structreg.training.run import RunFolder


def _started(path):
    path.mkdir()
    for name in (RunFolder.CONFIG, RunFolder.DATA, RunFolder.LOG):
        (path / name).write_text("x")
    (path / RunFolder.TENSORBOARD).mkdir()
    (path / RunFolder.TENSORBOARD / "events").write_text("x")
    return RunFolder(path)


def test_an_unstarted_training_is_discarded(tmp_path):
    run = _started(tmp_path / "run")
    (run.path / RunFolder.LOCK).write_text(f"999999999 {socket.gethostname()}\n")  # dead
    with pytest.warns(StructregWarning, match="taking over the stale lock"):
        removed = run.discard_unstarted()
    assert len(removed) == 4 and run.is_empty()  # the stale lock went first


@pytest.mark.parametrize("extra", [RunFolder.CHECKPOINT, RunFolder.BEST, "notes.txt"])
def test_a_folder_with_a_checkpoint_or_other_files_is_kept(tmp_path, extra):
    run = _started(tmp_path / "run")
    (run.path / extra).write_text("keep")
    assert run.discard_unstarted() == []
    assert (run.path / extra).read_text() == "keep" and run.config_file.is_file()


def test_a_live_training_is_refused(tmp_path):
    run = _started(tmp_path / "run")
    (run.path / RunFolder.LOCK).write_text(f"{os.getpid()} {socket.gethostname()}\n")
    with pytest.raises(RunExistsError, match="in use"):
        run.discard_unstarted()
    assert run.config_file.is_file()


def test_a_missing_folder_is_nothing_to_do(tmp_path):
    assert RunFolder(tmp_path / "none").discard_unstarted() == []


def _lock_file(run, text, age_s):
    import time

    run.path.mkdir(exist_ok=True)
    lock = run.path / RunFolder.LOCK
    lock.write_text(text)
    then = time.time() - age_s
    os.utime(lock, (then, then))
    return lock


@pytest.mark.parametrize(
    "text, age_s",
    [("4242 elsewhere.example\n", 60), ("", 1)],  # refreshed a minute ago; being written
    ids=["another host, recent", "being written"],
)
def test_a_lock_that_may_be_live_is_refused(tmp_path, text, age_s):
    run = RunFolder(tmp_path / "run")
    lock = _lock_file(run, text, age_s)
    with pytest.raises(RunExistsError, match="in use"):
        run.clear_stale_lock()
    assert lock.read_text() == text


@pytest.mark.parametrize(
    "text, why",
    [("4242 elsewhere.example\n", "has not refreshed it"), ("garbage", "names no holder")],
)
def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, text, why):
    run = RunFolder(tmp_path / "run")
    _lock_file(run, text, 3600)
    with pytest.warns(StructregWarning, match=f"taking over the stale lock .*{why}"):
        with run.lock():
            assert (run.path / RunFolder.LOCK).read_text().startswith(f"{os.getpid()} ")
    assert not (run.path / RunFolder.LOCK).exists()


def test_a_held_lock_is_refreshed(tmp_path, monkeypatch):
    import time

    from structreg.training import run as run_module

    monkeypatch.setattr(run_module, "LOCK_REFRESH_S", 0.05)
    run = RunFolder(tmp_path / "run")
    with run.lock():
        lock = run.path / RunFolder.LOCK
        os.utime(lock, (0, 0))
        deadline = time.time() + 10
        while lock.stat().st_mtime == 0 and time.time() < deadline:
            time.sleep(0.02)
        assert time.time() - lock.stat().st_mtime < 60
