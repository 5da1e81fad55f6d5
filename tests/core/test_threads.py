"""The thread count of a command: --threads, STRUCTREG_THREADS, else half the cores."""

import pytest
import torch
from threadpoolctl import threadpool_info

import structreg
from structreg.cli import main
from structreg.core.threads import (
    ENV,
    default_threads,
    resolve_threads,
    thread_limit,
    usable_cores,
)
from structreg.errors import InputError


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info()}


def test_given_beats_the_environment_and_nothing_leaves_the_defaults():
    assert resolve_threads(3, {ENV: "2"}) == 3
    assert resolve_threads(None, {ENV: " 2 "}) == 2
    assert resolve_threads(None, {ENV: "0"}) is None  # the libraries' own defaults
    for bad, where in ((0, {}), (None, {ENV: "many"}), (None, {ENV: "-1"})):
        with pytest.raises(InputError):
            resolve_threads(bad, where)


def test_the_default_leaves_half_the_cores_to_other_work(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert [resolve_threads(None, {}, cores=c) for c in (1, 2, 3, 8, 64)] == [1, 1, 1, 4, 8]
    assert default_threads(2) == 1 and default_threads(16, processes=4) == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # torchrun: a share for each process
    assert default_threads(16) == 2 and default_threads(4) == 1
    assert resolve_threads(None, {}) == default_threads(usable_cores())


def test_a_limit_holds_in_the_block_and_is_undone_after(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    before = torch.get_num_threads()
    with structreg.thread_limit(1) as n:
        assert n == 1 and torch.get_num_threads() == 1 and _blas_threads() == {1}
    assert torch.get_num_threads() == before
    with thread_limit() as n:  # nothing given: the default
        assert n == default_threads() and torch.get_num_threads() == n
    assert torch.get_num_threads() == before
    monkeypatch.setenv(ENV, "0")
    with thread_limit() as n:  # 0: the libraries' settings are left alone
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
