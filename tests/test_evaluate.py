"""`structreg evaluate`: the comparison table, per-pair CSV, failure isolation."""

import csv

import pytest
import torch

from structreg.baselines.lcc_demons import LCCDemonsConfig
from structreg.data.spec import load_pairs
from structreg.evaluation.evaluate import (Method, format_table, load_methods, parse_methods,
                                           run_evaluation)


@pytest.fixture(scope="module")
def pairs():
    return load_pairs("phantom:cardiac", split="all", seed=3, size=(40, 40), spacing=(5.0, 5.0),
                      n_subjects=7)


def test_parse_methods():
    assert parse_methods("ours:runs/a, lcc-demons,identity") == [
        ("ours", "runs/a"), ("lcc-demons", None), ("identity", None)]
    with pytest.raises(ValueError, match="unknown method"):
        parse_methods("elastix")
    with pytest.raises(ValueError, match="needs a run folder"):
        parse_methods("voxelmorph")


def test_demons_beats_identity_and_files_are_written(pairs, tmp_path):
    fast = LCCDemonsConfig(levels=2, iterations=[15, 10])
    methods = load_methods([("lcc-demons", None), ("identity", None)], demons_config=fast)
    summary = run_evaluation(pairs, methods, tmp_path, n_figure=2, progress=False)
    for name in ("pairs.csv", "table.md", "registration.png", "dice_boxplot.png"):
        assert (tmp_path / name).is_file(), name
    rows = list(csv.DictReader((tmp_path / "pairs.csv").open()))
    assert len(rows) == 2 * len(pairs) and summary["failed"] == 0
    dice = {m: [float(r["dice left heart"]) for r in rows if r["method"] == m]
            for m in ("lcc-demons", "identity")}
    assert sum(dice["lcc-demons"]) / len(pairs) > sum(dice["identity"]) / len(pairs) + 0.02
    table = (tmp_path / "table.md").read_text()
    assert "| left heart Dice |" in table and "**" in table
    # the best Dice (demons) is the bold one
    line = next(l for l in table.splitlines() if l.startswith("| left heart Dice"))
    assert line.split("|")[2].strip().startswith("**")
    assert "Wilcoxon" not in table  # no "ours" in this comparison


def test_a_failing_pair_is_reported_and_the_others_go_on(pairs, tmp_path):
    from structreg.baselines.identity import register as identity

    bad_id = pairs[2].id

    def flaky(m, f, mask):
        if m.shape[0] == 1 and torch.equal(m[0, 0], torch.from_numpy(pairs[2].moving)):
            raise ValueError("synthetic failure")
        if m.shape[0] > 1:
            raise RuntimeError("batch failed")  # forces the pair-by-pair retry
        return identity(m, f)

    summary = run_evaluation(pairs, [Method("ours", flaky, 4), Method("identity",
                             lambda m, f, mask: identity(m, f))], tmp_path, progress=False)
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
    assert "Wilcoxon" in table and "| dice LV | 0.0078 |" in table
