"""The 3-D demo (``structreg demo --dims 3``) end to end at a tiny budget."""

import pytest

from structreg.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


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
