"""The demos: the 2-D table against the documented one (docs/results/cardiac-phantom.md,
within the across-machines tolerance),
the 3-D demo end to end at a tiny budget."""

import os
from pathlib import Path

import pytest

from structreg.cli import main
from structreg.pipeline.demo import ACROSS_MACHINES, table_differences, table_means

# the demo's documented table (the results page of the cardiac phantom)
README = (
    Path(__file__).resolve().parents[2] / "docs" / "results" / "cardiac-phantom.md"
).read_text()


def _with(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def test_the_readme_has_the_demo_table_and_agrees_with_itself():
    means = table_means(README)
    assert ("Dice LV myocardium", "structreg (ours)") in means
    assert table_differences(README, README) == []


def test_another_machines_demo_is_within_tolerance_and_a_real_change_is_not():
    ours = {k: v for k, v in table_means(README).items() if k[1] == "structreg (ours)"}
    dice = ours["Dice LV myocardium", "structreg (ours)"]
    hd = ours["HD95 LV myocardium (mm)", "structreg (ours)"]
    row = next(line for line in README.splitlines() if line.startswith("| Dice LV myocardium |"))
    close = row.replace(f"| {dice:.3f} ±", f"| {dice - 0.002:.3f} ±")
    far = row.replace(f"| {dice:.3f} ±", f"| {dice - 0.02:.3f} ±")
    assert table_differences(_with(README, row, close), README) == []
    problems = table_differences(_with(README, row, far), README)
    assert len(problems) == 1 and "Dice LV myocardium" in problems[0]
    hd_row = next(line for line in README.splitlines() if line.startswith("| HD95 LV myocardium"))
    moved = hd_row.replace(f"| {hd:.2f} ±", f"| {hd + 2 * ACROSS_MACHINES['HD95']:.2f} ±")
    assert len(table_differences(_with(README, hd_row, moved), README)) == 1


@pytest.mark.slow
def test_the_demo_reproduces_the_readme_within_tolerance(tmp_path):
    """Runs the whole demo (minutes), or checks STRUCTREG_DEMO_REPORT=runs/demo/report.md."""
    given = os.environ.get("STRUCTREG_DEMO_REPORT")
    if given:
        report = Path(given)
    else:
        from structreg.pipeline.demo import run_demo

        report = run_demo(tmp_path / "demo")
    assert table_differences(report.read_text(), README) == []


@pytest.mark.usefixtures("one_thread")
def test_the_3d_demo_writes_its_report_table_and_figure(tmp_path, capsys):
    out = tmp_path / "demo3d"
    argv = ["demo", "--dims", "3", "--subjects", "12", "--steps", "2", "--out", str(out)]
    assert main(argv) == 0
    report = (out / "report.md").read_text()
    for row in (
        "Dice CSF",
        "Dice ventricles",
        "HD95 WM (mm)",
        "endpoint error (mm)",
        "% det J ≤ 0",
    ):
        assert f"| {row} |" in report
    assert "no registration" in report and "structreg (ours)" in report
    assert (out / "registration.png").stat().st_size > 10_000
    assert (out / "model" / "best.pt").is_file()
    # a second run reuses the trained model
    assert main(argv) == 0
    assert "training" in capsys.readouterr().out
