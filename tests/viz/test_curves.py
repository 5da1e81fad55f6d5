"""Learning curves read from a run's train_log.csv and drawn in one figure."""

import math

import numpy as np
import pytest

from structreg.training.logger import read_log
from structreg.training.run import RunFolder
from structreg.viz.curves import learning_curve, learning_curves_figure


@pytest.fixture(scope="module")
def run(tiny_run_factory):
    return tiny_run_factory([0.0, 0.0])


def test_learning_curve_holds_the_validation_rows(run):
    rows = read_log(RunFolder(run).log_file, 10**12)
    validated = [r for r in rows if isinstance(r.get("val_loss"), float)]
    c = learning_curve(run)
    assert list(c.step) == [r["step"] for r in validated]
    assert np.allclose(c.dice, [r["val_dice"] for r in validated])
    assert math.isclose(c.seconds[-1], sum(r["step_time_s"] for r in rows), rel_tol=1e-9)
    assert c.relative_loss[0] == 0.0


def test_learning_curves_figure_with_reference_lines(run, tmp_path):
    out = learning_curves_figure(
        {"tiny": {"a": run, "b": run}},
        tmp_path / "curves.png",
        references={"tiny": {"no registration": 0.5, "before fine-tuning": 0.6}},
    )
    assert out.is_file() and out.stat().st_size > 10_000
    with pytest.raises(FileNotFoundError):
        learning_curves_figure({"tiny": {"a": tmp_path / "nothing"}}, tmp_path / "x.png")
