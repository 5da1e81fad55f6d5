"""Shared fixtures: 2-D and 3-D through one parametrised fixture, the devices to run the
core tests on (CPU, and CUDA when available), and one tiny trained run for the CLI tests."""

import shutil

import pytest
import torch

from helpers import TINY_TRAIN

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=[2, 3], ids=["2d", "3d"])
def ndim(request):
    return request.param


@pytest.fixture(params=DEVICES)
def device(request):
    """Each device the core ops are tested on."""
    return torch.device(request.param)


@pytest.fixture(scope="session")
def tiny_run_factory(tmp_path_factory):
    """``make(bias)``: a copy of one tiny trained run (trained once per session) whose
    decoder outputs the constant velocity ``bias`` (model voxels) plus its smooth part,
    so that its transforms are visibly non-trivial."""
    from structreg.cli import main
    from structreg.training.checkpoint import weights_digest

    base = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["train", "--data", "phantom:cardiac", "--out", str(base), *TINY_TRAIN]) == 0

    def make(bias):
        out = tmp_path_factory.mktemp("run") / "run"
        shutil.copytree(base, out)
        for name in ("best.pt", "checkpoint.pt"):
            ckpt = torch.load(out / name, weights_only=True)
            ckpt["state_dict"]["decoder.velocity.bias"] = torch.tensor(bias)
            ckpt["digest"] = weights_digest(ckpt["state_dict"])  # a deliberate edit
            torch.save(ckpt, out / name)
        return out

    return make


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny-tensor tests (faster, and steady on a
    shared machine); use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
