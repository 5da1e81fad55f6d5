"""experiments/reproduce.py: its plan is made of valid commands; stages run once, then skip."""

import sys
from pathlib import Path

import pytest
import torch

from structreg.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
import reproduce as rep  # noqa: E402  (experiments/ is not installed)


@pytest.mark.parametrize("budget", ["quick", "standard", "full"])
def test_every_stage_is_a_valid_command(budget, tmp_path):
    stages = rep.plan(tmp_path, budget, ROOT / "benchmarks")
    parser = build_parser()
    names = [s.name for s in stages]
    assert len(names) == len(set(names))
    assert {"3-D demo", "cardiac3d: train ours", "cardiac3d: evaluate"} <= set(names)
    for stage in stages:
        if stage.argv[0] == "python":
            assert Path(stage.argv[1]).is_file(), stage.argv[1]
        else:
            parser.parse_args(stage.argv)  # SystemExit on a bad option
    evaluate = next(s for s in stages if s.name == "cardiac: evaluate")
    text = " ".join(evaluate.argv)
    assert "ants-syn" in text and "dipy-syn" in text and "voxelmorph" in text
    if budget == "full":
        train = [s for s in stages if "train" in s.name]
        assert all("train.patience=10" in " ".join(s.argv) for s in train if "time" not in s.name)
    # on the brain phantom the validation loss picks best.pt (its Dice misses sub-voxel
    # motion); everywhere else the Dice (the default)
    trainings = [s for s in stages if s.argv[0] == "train"]
    by_loss = {s.name for s in trainings if "train.monitor=loss" in s.argv}
    assert by_loss == {s.name for s in trainings if s.name.startswith("brain:")} != set()
    assert not any("train.monitor=dice" in s.argv for s in stages)


def test_stages_run_once_and_results_name_their_provenance(tmp_path, monkeypatch):
    out = tmp_path / "results"
    script = tmp_path / "table.py"
    script.write_text("print('| a | b |\\n|---|---|\\n| 1 | 2 |')\n")
    tune = out / "tune"

    def tiny_plan(root, budget="quick", benchmarks=None):
        return [
            rep.Stage(
                "tune",
                ["tune", "--data", "phantom:cardiac", "--subjects", "12", "--size", "48x48"]
                + ["--grid", "max_step", "1", "--grid", "iterations", "5/5/5"]
                + ["--out", str(tune)],
                tune / "best.txt",
                report=tune / "tuning.md",
                title="tuned",
            ),
            rep.Stage(
                "script",
                ["python", str(script)],
                out / "t.md",
                report=out / "t.md",
                title="a script's table",
            ),
        ]

    monkeypatch.setattr(rep, "plan", tiny_plan)
    results = rep.reproduce(out, "quick", progress=False)
    text = results.read_text()
    assert "## tuned" in text and "Chosen: `lcc-demons:max_step=1" in text
    assert "## a script's table" in text and "| 1 | 2 |" in text
    assert "Made by `structreg tune --data phantom:cardiac" in text and "budget quick" in text
    assert "CPU threads" in text
    rep.reproduce(out, "quick", progress=False)  # everything done: nothing runs again
    assert len((out / "stage_seconds.tsv").read_text().splitlines()) == 2


def test_a_failing_stage_is_one_line_naming_the_log(tmp_path, monkeypatch):
    def bad_plan(root, budget="quick", benchmarks=None):
        return [
            rep.Stage("bad", ["tune", "--data", "nope:x", "--out", str(tmp_path)], tmp_path / "x")
        ]

    monkeypatch.setattr(rep, "plan", bad_plan)
    assert rep.main(["--out", str(tmp_path / "r"), "--benchmarks", "none"]) == 1


def _tiny_model():
    from structreg.models import ModelConfig

    return ModelConfig(
        image_size=(32, 32), latent_dim=8, enc_channels=(4, 8, 8, 2), dec_channels=(8, 8, 8, 8)
    )


def test_an_equal_steps_run_continues_a_first_run_stopped_by_its_time_budget(tmp_path):
    from helpers import random_pairs
    from helpers import train_config as _config
    from structreg.training import train

    tiny, pairs = _tiny_model(), random_pairs(8, seed=1)
    # the first of 4 steps and a time budget: the time budget ends it after step 1
    first = tmp_path / "first"
    train(tiny, _config(4, max_seconds=1e-6), pairs[:6], pairs[6:], first, progress=False)
    assert torch.load(first / "checkpoint.pt")["step"] == 1
    assert rep._continue_from(first, tmp_path / "short", 0)() == []
    assert not (tmp_path / "short").exists()  # longer than the target: nothing to continue
    rep._continue_from(first, tmp_path / "steps", 4)()
    resumed = train(
        tiny, _config(4), pairs[:6], pairs[6:], tmp_path / "steps", resume=True, progress=False
    )
    straight = train(tiny, _config(4), pairs[:6], pairs[6:], tmp_path / "straight", progress=False)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    # (step 1's row is read back from the log, rounded)
    assert [r["loss"] for r in resumed[1:]] == [r["loss"] for r in straight[1:]]
    # the equal-time run is the first run itself: copied, it trains no further step
    rep._continue_from(first, tmp_path / "time", seconds=lambda: 1e-6)()
    again = train(
        tiny,
        _config(10**6, max_seconds=1e-6),
        pairs[:6],
        pairs[6:],
        tmp_path / "time",
        resume=True,
        progress=False,
    )
    assert [r["step"] for r in again] == [1]


def test_an_equal_time_run_continues_a_first_run_that_reached_its_steps(tmp_path):
    from helpers import random_pairs
    from helpers import train_config as _config
    from structreg.training import train

    tiny, pairs = _tiny_model(), random_pairs(8, seed=1)
    train(tiny, _config(2), pairs[:6], pairs[6:], tmp_path / "first", progress=False)
    took = float(torch.load(tmp_path / "first" / "checkpoint.pt")["loop"]["seconds"])
    assert took > 0
    rep._continue_from(tmp_path / "first", tmp_path / "time", seconds=lambda: took)()
    assert not (tmp_path / "time").exists()  # it took the whole time: nothing to continue
    rep._continue_from(tmp_path / "first", tmp_path / "time", seconds=lambda: took + 60)()
    assert (tmp_path / "time" / "checkpoint.pt").is_file()
    # the equal-steps run is the first run itself (same step budget): copied
    rep._continue_from(tmp_path / "first", tmp_path / "steps", 2)()
    assert (tmp_path / "steps" / "checkpoint.pt").is_file()
    # in the standard plan, the first run comes before both and each prepares its folder
    # from it; the full plan trains them apart (early stopping ends the equal-steps run)
    names = [s.name for s in rep.plan(tmp_path / "plan", "standard")]
    first = names.index(
        "cardiac: train VoxelMorph-2 (the first of the step budget and ours' wall time)"
    )
    assert first < names.index("cardiac: train VoxelMorph-2")
    assert first < names.index("cardiac: train VoxelMorph-2 for ours' wall time")
    full = [s.name for s in rep.plan(tmp_path / "plan_full", "full")]
    assert not any("first of" in n for n in full)


def test_a_training_killed_before_its_first_checkpoint_starts_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text("x")
    (run / "train_log.csv").write_text("step\n")
    stage = rep.Stage("t", ["python", "-c", "pass"], tmp_path / "done", resume=run)
    argv = rep._run_stage(stage, tmp_path / "log")
    assert "--resume" not in argv and not any(run.iterdir())


def test_a_training_is_done_only_when_it_reached_its_steps(tmp_path):
    from helpers import random_pairs
    from helpers import train_config as _config
    from structreg.models import ModelConfig
    from structreg.training import train

    tiny = ModelConfig(
        image_size=(32, 32), latent_dim=8, enc_channels=(4, 8, 8, 2), dec_channels=(8, 8, 8, 8)
    )
    pairs = random_pairs(8, seed=1)
    run = tmp_path / "run"
    train(tiny, _config(2), pairs[:6], pairs[6:], run, progress=False)
    assert (run / "best.pt").is_file()

    def stage(steps):
        argv = ["train", "--out", str(run), "--set", f"train.steps={steps}"]
        return rep.Stage("t", argv, run / "best.pt", resume=run)

    assert stage(2).is_done()
    assert not stage(4).is_done()  # a longer budget: interrupted, to be resumed
    assert not rep.Stage("t", [], tmp_path / "none.pt", resume=run).is_done()


def test_the_quick_budget_runs_every_stage_of_the_standard_one_at_a_smaller_size(tmp_path):
    quick = {s.name: s for s in rep.plan(tmp_path, "quick", ROOT / "benchmarks")}
    standard = {s.name: s for s in rep.plan(tmp_path, "standard", ROOT / "benchmarks")}
    assert quick.keys() == standard.keys()
    assert "--steps 100" in quick["demo"].command and "--steps" not in standard["demo"].command
    inter = quick["brain-inter: train ours"].command
    assert "--subjects 400" in inter and "train.steps=100" in inter
    assert "--subjects 1600" in standard["brain-inter: train ours"].command
    assert "train.steps=100" in quick["cardiac3d: train ours"].command
    assert "--subjects 200" in quick["3-D brain volumes: evaluate with the peers"].command
    # the 3-D demo and its peers' evaluation see the same volumes
    assert "--subjects 200" in quick["3-D demo"].command
    grid = quick["cardiac: tune LCC-Demons (validation split)"].command
    assert grid.count("--grid") == 3 and "max_step 1 2" in grid
    # the standard budget's commands are those the README's tables name
    assert standard["3-D demo"].command.endswith("demo --dims 3 --out " + str(tmp_path / "demo3d"))
    assert "--steps" not in standard["fine-tuning the brain model (longitudinal cohort)"].command
