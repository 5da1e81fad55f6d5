"""The thread count of a command: --threads, STRUCTREG_THREADS, else left alone."""

import pytest
import torch
from threadpoolctl import threadpool_info

import structreg
from structreg.cli import main
from structreg.core.threads import ENV, resolve_threads, thread_limit
from structreg.errors import InputError


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info()}


def test_given_beats_the_environment_and_nothing_leaves_the_defaults():
    assert resolve_threads(3, {ENV: "2"}) == 3
    assert resolve_threads(None, {ENV: " 2 "}) == 2
    assert resolve_threads(None, {}) is None
    for bad, where in ((0, {}), (None, {ENV: "many"}), (None, {ENV: "0"})):
        with pytest.raises(InputError):
            resolve_threads(bad, where)


def test_a_limit_holds_in_the_block_and_is_undone_after(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    before = torch.get_num_threads()
    with structreg.thread_limit(1) as n:
        assert n == 1 and torch.get_num_threads() == 1 and _blas_threads() == {1}
    assert torch.get_num_threads() == before
    with thread_limit() as n:  # nothing given: nothing changes
        assert n is None and torch.get_num_threads() == before


def test_every_command_takes_threads(monkeypatch, tmp_path, capsys):
    seen = []
    monkeypatch.setattr(
        "structreg.cli.models.run", lambda args: seen.append(torch.get_num_threads())
    )
    assert main(["models", "--threads", "1"]) == 0
    monkeypatch.setenv(ENV, "1")
    assert main(["models"]) == 0
    assert seen == [1, 1]
    with pytest.raises(SystemExit):
        main(["models", "--threads", "0"])
    monkeypatch.setenv(ENV, "x")
    assert main(["models"]) == 1
    assert ENV in capsys.readouterr().err
