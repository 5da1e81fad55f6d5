"""``train --init`` may turn a plain CVAE into an antisymmetric one (the same weights
combined as ½ (D(z_MF, M) − D(z_FM, F))), and nothing else about the model."""

import torch

from structreg.cli import main
from structreg.training.checkpoint import find_checkpoint, read_checkpoint

TINY = ["--data", "phantom:cardiac", "--subjects", "12", "--size", "32x32", "--spacing", "6"]
QUIET = ["--set", "train.val_every=0", "--set", "train.tensorboard=false"]


def test_init_switches_on_antisymmetric(tiny_run_factory, tmp_path, capsys):
    init = tiny_run_factory([0.5, -0.5])
    out = tmp_path / "anti"
    args = ["train", *TINY, "--init", str(init), "--out", str(out), *QUIET]
    args += [
        "--set",
        "model.antisymmetric=true",
        "--set",
        "train.steps=1",
        "--set",
        "train.lr=1e-12",
    ]
    assert main(args) == 0, capsys.readouterr().err
    tuned = read_checkpoint(out / "checkpoint.pt")
    source = read_checkpoint(find_checkpoint(init))
    assert tuned["config"].model.antisymmetric and not source["config"].model.antisymmetric
    assert tuned["state_dict"].keys() == source["state_dict"].keys()
    weights = [k for k in source["state_dict"] if "running" not in k and "num_batches" not in k]
    for k in weights:  # lr ~0: the init weights
        torch.testing.assert_close(tuned["state_dict"][k], source["state_dict"][k])
    other = tmp_path / "other"
    args = ["train", *TINY, "--init", str(init), "--out", str(other), *QUIET]
    assert main(args + ["--set", "model.antisymmetric=true", "--set", "model.steps=3"]) == 1
    err = capsys.readouterr().err
    assert "model settings differ" in err and "steps" in err and "antisymmetric" not in err
