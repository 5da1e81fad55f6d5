"""Run folders: a training killed before its first checkpoint is discarded, nothing else."""

import os
import socket

import pytest

from structreg.errors import RunExistsError
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
