"""Multi-process training through torchrun: DDP on CPU (gloo) against one process at the
same global batch, exact resume under DDP, two single-process "nodes" joined by the c10d
rendezvous, elastic-restart resumption and the launcher's refusals."""

import os
import socket
import subprocess
import sys

import pytest
import torch

from structreg.cli import main
from structreg.training.distributed import SINGLE, Dist, from_env, shard, torchrun_command

# a tiny run: 9 training pairs of 32x32; one-process batch 4 == two processes x 2
TINY = [
    "--data", "phantom:cardiac", "--subjects", "12", "--size", "32x32",
    "--set", "train.val_every=3", "--set", "train.checkpoint_every=3",
    "--set", "train.num_threads=1", "--set", "model.latent_dim=8",
    "--set", "model.enc_channels=[4,4,4,2]", "--set", "model.dec_channels=[4,4,4,4]",
    "--set", "train.tensorboard=false",
]  # fmt: skip
NO_BN = ["--set", "model.batch_norm=false"]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    env.pop("RANK", None)
    return env


def _train(out, *extra):
    assert main(["train", "--out", str(out), *TINY, *extra]) == 0


def _train_ddp(out, *extra, nproc=2):
    cmd = [sys.executable, "-m", "structreg", "train", "--nproc", str(nproc), "--out", str(out)]
    done = subprocess.run(
        [*cmd, *TINY, *extra], env=_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _weights(run):
    return torch.load(run / "checkpoint.pt", weights_only=True)["state_dict"]


def _max_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def _log(run):
    import csv

    with open(run / "train_log.csv") as f:
        return [{k: v for k, v in row.items()} for row in csv.DictReader(f)]


def test_shard_takes_every_kth_index_of_the_global_batch():
    idx = torch.arange(10, 18)
    parts = [shard(idx, Dist(rank=r, world_size=3)) for r in range(3)]
    assert [p.tolist() for p in parts] == [[10, 13, 16], [11, 14, 17], [12, 15]]
    assert sorted(torch.cat(parts).tolist()) == idx.tolist()
    assert shard(idx, SINGLE) is idx


def test_from_env_reads_torchrun_variables(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert from_env() == SINGLE
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    d = from_env()
    assert (d.rank, d.world_size, d.local_rank, d.enabled, d.is_main) == (2, 4, 0, True, False)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(Exception, match="RANK 4 of WORLD_SIZE 4"):
        from_env()


def test_torchrun_command_is_the_standalone_launcher():
    cmd = torchrun_command(3, ["train", "--out", "x"])
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=3"]
    assert cmd[-3:] == ["train", "--out", "x"]


class _Group:
    """Stands in for torch.distributed's process-group calls; records their order."""

    def __init__(self, monkeypatch):
        import torch.distributed as tdist

        self.calls: list[str] = []
        self.holder_alive_at_destroy: bool | None = None
        self.holder = lambda: None  # a weak reference to what must be gone by then
        monkeypatch.setattr(tdist, "is_initialized", lambda: True)
        monkeypatch.setattr(tdist, "barrier", lambda: self.calls.append("barrier"))
        monkeypatch.setattr(tdist, "destroy_process_group", self._destroy)

    def _destroy(self):
        self.calls.append("destroy")
        self.holder_alive_at_destroy = self.holder() is not None


def test_run_waits_for_every_rank_then_collects_what_holds_the_group(monkeypatch):
    import gc
    import weakref

    group = _Group(monkeypatch)

    def work():
        # what the training engine leaves: an object in a reference cycle (as the
        # DistributedDataParallel wrapper is) that only the cycle collector frees
        box = type("Box", (), {})()
        box.me = box
        group.holder = weakref.ref(box)
        return 7

    gc.disable()
    try:
        assert Dist(rank=1, world_size=2).run(work) == 7
    finally:
        gc.enable()
    assert group.calls == ["barrier", "destroy"]
    assert group.holder_alive_at_destroy is False


def test_run_after_a_failure_leaves_the_group_without_waiting_for_the_others(monkeypatch):
    group = _Group(monkeypatch)

    def work():
        raise RuntimeError("rank 1 failed")

    with pytest.raises(RuntimeError, match="rank 1 failed"):
        Dist(rank=1, world_size=2).run(work)
    assert group.calls == ["destroy"]  # a barrier would wait for ranks that may never come
    SINGLE.run(lambda: None)  # one process: no group to leave
    assert group.calls == ["destroy"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One-process batch 4 and two-process batch 2 (without batch norm, and with)."""
    root = tmp_path_factory.mktemp("ddp")
    _train(root / "one", "--set", "train.steps=6", "--set", "train.batch_size=4", *NO_BN)
    _train_ddp(root / "two", "--set", "train.steps=6", "--set", "train.batch_size=2", *NO_BN)
    _train(root / "one_bn", "--set", "train.steps=6", "--set", "train.batch_size=4")
    _train_ddp(root / "two_bn", "--set", "train.steps=6", "--set", "train.batch_size=2")
    return root


def test_two_processes_follow_one_process_at_the_same_global_batch(runs):
    # no batch norm: the same pairs, noise and averaged gradients, up to rounding
    assert _max_diff(_weights(runs / "one"), _weights(runs / "two")) < 1e-6
    one, two = _log(runs / "one"), _log(runs / "two")
    assert len(one) == len(two) == 6
    for a, b in zip(one, two, strict=True):
        # logged to 6 significant digits; the per-process batch changes the summation
        # order of the LCC's matrix products (rounding), so one unit in the last digit
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=3e-6)
    assert float(one[-1]["val_dice"]) == pytest.approx(float(two[-1]["val_dice"]), abs=1e-6)
    # batch norm per process: each normalises by its own 2 pairs, the curves stay close
    for a, b in zip(_log(runs / "one_bn"), _log(runs / "two_bn"), strict=True):
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=2e-3)
    # only rank 0 wrote the run folder
    names = sorted(p.name for p in (runs / "two").iterdir())
    assert names == ["best.pt", "checkpoint.pt", "config.toml", "data.json", "train_log.csv"]


def test_an_antisymmetric_model_trains_under_ddp_as_in_one_process(tmp_path):
    # the encoder and decoder run twice per forward (both orders of the pair)
    anti = ["--set", "model.antisymmetric=true", "--set", "train.steps=3", *NO_BN]
    _train(tmp_path / "one", "--set", "train.batch_size=4", *anti)
    _train_ddp(tmp_path / "two", "--set", "train.batch_size=2", *anti)
    assert _max_diff(_weights(tmp_path / "one"), _weights(tmp_path / "two")) < 1e-6


INJECT_NON_FINITE = """
import os, sys
import structreg.training.tasks as tasks
from structreg.cli import main
from structreg.errors import NonFiniteError

real, calls = tasks.registration_loss, []

def refused_on_rank_1_at_step_2(*args, **kwargs):
    calls.append(1)
    if os.environ["RANK"] == "1" and len(calls) == 2:
        raise NonFiniteError("symmetric_lcc: velocity contains NaN or Inf values")
    return real(*args, **kwargs)

tasks.registration_loss = refused_on_rank_1_at_step_2
sys.exit(main(sys.argv[1:]))
"""


def test_a_non_finite_loss_on_one_rank_stops_every_rank(tmp_path):
    # the refusing rank still joins the gradient all-reduce: no rank waits for it
    script = tmp_path / "inject.py"
    script.write_text(INJECT_NON_FINITE)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    argv = ["train", "--out", str(out), *TINY, "--set", "train.steps=6"]
    done = subprocess.run(
        [*cmd, str(script), *argv, "--set", "train.batch_size=2"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode != 0
    assert done.stderr.count("training diverged at step 2") == 2, done.stderr[-3000:]


def test_ddp_resume_equals_an_uninterrupted_ddp_run(runs, tmp_path):
    out = tmp_path / "resumed"
    bn = ["--set", "train.batch_size=2"]
    _train_ddp(out, "--set", "train.steps=3", *bn)  # "killed" after its step-3 checkpoint
    _train_ddp(out, "--set", "train.steps=6", "--resume", *bn)
    assert _max_diff(_weights(out), _weights(runs / "two_bn")) == 0.0
    assert [r["loss"] for r in _log(out)] == [r["loss"] for r in _log(runs / "two_bn")]


def test_resume_with_another_process_count_is_refused(runs, tmp_path, capsys):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(runs / "two", out)
    code = main(["train", "--out", str(out), *TINY, *NO_BN, "--resume",
                 "--set", "train.steps=9", "--set", "train.batch_size=2"])  # fmt: skip
    assert code == 1
    assert "trained by 2 process(es), now 1" in capsys.readouterr().err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_through_the_c10d_rendezvous_train_as_one_two_process_run(runs, tmp_path):
    out = tmp_path / "nodes"
    endpoint = f"127.0.0.1:{_free_port()}"
    node = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
            "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", "--rdzv-id=test",
            "-m", "structreg", "train", "--out", str(out), *TINY, *NO_BN,
            "--set", "train.steps=6", "--set", "train.batch_size=2"]  # fmt: skip
    procs = [
        subprocess.Popen(node, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    logs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    assert _max_diff(_weights(out), _weights(runs / "two")) < 1e-6


def test_an_elastic_restart_resumes_from_the_last_checkpoint(runs, tmp_path, monkeypatch):
    import shutil

    out = tmp_path / "restarted"
    shutil.copytree(runs / "one", out)
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    # no --resume: a restarted worker runs the same command line again
    _train(out, "--set", "train.steps=9", "--set", "train.batch_size=4", *NO_BN)
    assert [int(r["step"]) for r in _log(out)] == list(range(1, 10))


def test_an_elastic_restart_before_the_first_checkpoint_starts_over(
    runs, tmp_path, monkeypatch, capsys
):
    import shutil

    out = tmp_path / "restarted"
    shutil.copytree(runs / "one", out)
    (out / "checkpoint.pt").unlink()  # killed before its first checkpoint
    (out / "best.pt").unlink()
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    _train(out, "--set", "train.steps=6", "--set", "train.batch_size=4", *NO_BN)
    assert _max_diff(_weights(out), _weights(runs / "one")) == 0
    assert "before the first checkpoint: starting" in capsys.readouterr().out
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT")
    (out / "checkpoint.pt").unlink()  # without a restart such a folder is started over too
    (out / "best.pt").unlink()
    argv = ["--set", "train.steps=6", "--set", "train.batch_size=4", *NO_BN]
    assert main(["train", "--out", str(out), *TINY, *argv]) == 0
    assert "stopped before its first checkpoint; starting it over" in capsys.readouterr().err
    assert _max_diff(_weights(out), _weights(runs / "one")) == 0


def test_more_processes_than_gpus_is_refused(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has GPUs")
    code = main(["train", "--nproc", "2", "--device", "cuda", "--out", str(tmp_path / "x"), *TINY])
    assert code == 2
    assert "--nproc 2 is more than the 0 GPU(s)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
