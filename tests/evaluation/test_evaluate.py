"""`structreg evaluate`: the comparison table, per-pair CSV, failure isolation."""

import csv
import math

import numpy as np
import pytest
import torch

from structreg.data.spec import load_pairs
from structreg.errors import InputError
from structreg.evaluation.evaluate import format_table, holm, run_evaluation
from structreg.methods import build_methods
from structreg.methods.identity import Identity


@pytest.fixture(scope="module")
def pairs():
    return load_pairs(
        "phantom:cardiac", split="all", seed=3, size=(40, 40), spacing=(5.0, 5.0), n_subjects=7
    )


def test_demons_beats_identity_and_files_are_written(pairs, tmp_path):
    methods = build_methods("lcc-demons:levels=2,iterations=15/10,identity")
    assert methods[0].config.iterations == [15, 10]
    summary = run_evaluation(pairs, methods, tmp_path, n_figure=2, progress=False)
    for name in ("pairs.csv", "table.md", "registration.png", "dice_boxplot.png"):
        assert (tmp_path / name).is_file(), name
    rows = list(csv.DictReader((tmp_path / "pairs.csv").open()))
    assert len(rows) == 2 * len(pairs) and summary["failed"] == 0
    dice = {
        m: [float(r["dice left heart"]) for r in rows if r["method"] == m]
        for m in ("lcc-demons", "identity")
    }
    assert sum(dice["lcc-demons"]) / len(pairs) > sum(dice["identity"]) / len(pairs) + 0.02
    table = (tmp_path / "table.md").read_text()
    assert "| left heart Dice |" in table and "**" in table
    # the best Dice (demons) is the bold one
    line = next(l for l in table.splitlines() if l.startswith("| left heart Dice"))
    assert line.split("|")[2].strip().startswith("**")
    assert "Wilcoxon" not in table  # no "ours" in this comparison


def test_a_failing_pair_is_reported_and_the_others_go_on(pairs, tmp_path):
    bad_id = pairs[2].id

    class Flaky(Identity):
        name = "ours"

        def register(self, m, f, *, mask=None):
            if m.shape[0] == 1 and torch.equal(m[0, 0], torch.from_numpy(pairs[2].moving)):
                raise InputError("synthetic failure")
            if m.shape[0] > 1:
                raise InputError("batch failed")  # forces the pair-by-pair retry
            return super().register(m, f)

    summary = run_evaluation(pairs, [Flaky(batch_size=4), Identity()], tmp_path, progress=False)
    rows = list(csv.DictReader((tmp_path / "pairs.csv").open()))
    failed = [r for r in rows if r["error"]]
    assert summary["failed"] == 1 and failed[0]["id"] == bad_id
    assert "synthetic failure" in failed[0]["error"]
    assert len([r for r in rows if r["method"] == "ours" and not r["error"]]) == len(pairs) - 1
    assert "1 (pair, method) runs failed" in (tmp_path / "table.md").read_text()


def test_table_layout_with_significance():
    rows = []
    for i in range(8):
        rows.append({"id": str(i), "method": "ours", "dice LV": 0.9 + 0.001 * i, "rmse": 0.01})
        rows.append({"id": str(i), "method": "identity", "dice LV": 0.5 + 0.002 * i, "rmse": 0.05})
    table = format_table(rows, ["ours", "identity"], {"LV": (3,)})
    assert "| LV Dice | **0.904 ± 0.002** | 0.507 ± 0.005 |" in table
    assert "| pairs (n) | 8 | 8 |" in table
    # two tests in the table: Holm multiplies the smaller p by 2
    assert "Wilcoxon" in table and "| dice LV | 0.0078 (0.016) |" in table


def test_hd95_gets_a_median_row_and_counts_exclude_failed_pairs():
    rows = [
        {"id": str(i), "method": "ours", "hd95 LV": float(v)} for i, v in enumerate([1, 1, 2, 9])
    ]
    rows.append({"id": "4", "method": "ours", "error": "failed"})
    table = format_table(rows, ["ours"], {"LV": (3,)})
    assert "| pairs (n) | 4 |" in table
    assert "| LV HD95 (mm), median [IQR] | 1.50 [1.00, 3.75] |" in table


def test_holm_matches_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = [0.01, 0.04, 0.03, 0.2, 0.001, 0.5]
    expected = multitest.multipletests(p, method="holm")[1]
    assert holm(p) == pytest.approx(list(expected))
    with_nan = holm([0.01, float("nan"), 0.04])
    assert with_nan[0] == pytest.approx(0.02) and math.isnan(with_nan[1]) and with_nan[2] == 0.04


def test_a_bug_is_not_turned_into_an_error_row(pairs, tmp_path):
    class Broken(Identity):
        def register(self, m, f, *, mask=None):
            raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        run_evaluation(pairs[:2], [Broken()], tmp_path, progress=False)


def test_figure_pairs_are_not_registered_twice():
    from helpers import random_pairs
    from structreg.evaluation.evaluate import evaluate
    from structreg.methods.identity import Identity

    class Counting(Identity):
        pairs = 0

        def register(self, moving, fixed, *, mask=None):
            Counting.pairs += moving.shape[0]
            return super().register(moving, fixed, mask=mask)

    pairs = random_pairs(5, seed=3)
    rows, kept = evaluate(pairs, [Counting()], progress=False, keep=[pairs[1].id])
    assert Counting.pairs == len(pairs) == len(rows)
    assert set(kept[pairs[1].id]) == {"identity"}
    np.testing.assert_allclose(kept[pairs[1].id]["identity"]["moved"], pairs[1].moving)
