"""Grid search of a method's settings on validation pairs."""

import pytest

from helpers import random_pairs
from structreg.cli import main
from structreg.errors import InputError
from structreg.evaluation.tuning import format_tuning, grid_specs, parse_grid, tune


def test_grid_parsing_and_specs():
    grid = parse_grid([["sigma_fluid", "0.5", "1"], ["iterations", "10/5", "20/10"]])
    assert grid == {"sigma_fluid": ["0.5", "1"], "iterations": ["10/5", "20/10"]}
    specs = grid_specs("lcc-demons:levels=2", grid)
    assert specs[0] == "lcc-demons:levels=2,sigma_fluid=0.5,iterations=10/5"
    assert len(specs) == 4 and specs[-1].endswith("sigma_fluid=1,iterations=20/10")
    with pytest.raises(InputError, match="also set"):
        grid_specs("lcc-demons:max_step=1", {"max_step": ["2"]})
    with pytest.raises(InputError, match="bad grid entry"):
        parse_grid([["sigma_fluid=1"]])


def test_tuning_picks_the_setting_that_registers_best_and_respects_the_folding_limit():
    pairs = random_pairs(6, seed=4)
    # a step limit of 0.001 voxels barely moves: it must lose to 1 voxel
    grid = {"max_step": ["0.001", "1"], "iterations": ["10/10/10"]}
    result = tune("lcc-demons", grid, pairs, progress=False)
    assert result.best == "lcc-demons:max_step=1,iterations=10/10/10"
    scores = {r["max_step"]: r["score"] for r in result.rows}
    assert scores["1"] > scores["0.001"]
    assert "Chosen: `lcc-demons:max_step=1" in format_tuning(result, len(pairs), 0.5)
    none = tune("lcc-demons", grid, pairs, progress=False, max_folding=-1.0)
    assert none.best is None and len(none.rows) == 2


def test_tune_command_writes_the_choice(tmp_path):
    out = tmp_path / "tune"
    argv = ["tune", "--data", "phantom:cardiac", "--subjects", "12", "--size", "48x48"]
    argv += ["--grid", "max_step", "0.5", "1", "--grid", "iterations", "10/5/5", "--out", str(out)]
    assert main(argv) == 0
    assert (out / "best.txt").read_text().startswith("lcc-demons:max_step=")
    assert "tuning.csv" in {p.name for p in out.iterdir()}
