"""experiments/reproduce.py --docs: the tables of a reproduce run as documentation pages."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
import reproduce as rep  # noqa: E402  (experiments/ is not installed)

QUICK = ROOT / "runs" / "results_quick"


def small_run(root: Path) -> list:
    """A finished run of two stages with reports (one with a figure and a heading)."""
    (root / "eval").mkdir(parents=True)
    (root / "eval" / "table.md").write_text(
        "# evaluation\n\n| metric | ours |\n|---|---|\n| Dice | 0.9 |\n\n"
        "![registration](registration.png)\n\n```\n# a comment, not a heading\n```\n"
    )
    (root / "t.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    (root / "stage_seconds.tsv").write_text("evaluate\t12.0\nscript\t3.0\n")
    (root / "commands.tsv").write_text("evaluate\tstructreg evaluate --out eval\n")
    return [
        rep.Stage(
            "evaluate",
            ["evaluate"],
            root / "eval" / "table.md",
            report=root / "eval" / "table.md",
            title="phantom, test split",
        ),
        rep.Stage(
            "script",
            ["python", "s.py"],
            root / "t.md",
            report=root / "t.md",
            title="a script's table",
        ),
        rep.Stage("not run", ["demo"], root / "x.md", report=root / "x.md", title="missing"),
    ]


def test_pages_hold_each_table_with_its_provenance(tmp_path):
    root, docs = tmp_path / "run", tmp_path / "docs"
    stages = small_run(root)
    (docs).mkdir()
    (docs / "stale-page.md").write_text("# from an earlier run\n")
    pages = rep.docs_pages(stages, "quick", root, docs)
    assert [p.name for p in pages] == ["index.md", "phantom-test-split.md", "a-script-s-table.md"]
    assert not (docs / "stale-page.md").exists()
    page = (docs / "phantom-test-split.md").read_text()
    assert page.startswith(
        "# phantom, test split\n\nMade by `structreg evaluate --out eval` (budget quick;"
    )
    assert "CPU threads" in page  # no RESULTS.md: this machine, today
    assert "## evaluation" in page and "| Dice | 0.9 |" in page
    assert "# a comment, not a heading" in page  # code blocks are left alone
    assert "](registration.png)" not in page and "figure `run/eval/registration.png`" in page
    index = (docs / "index.md").read_text()
    assert "[a script's table](a-script-s-table.md)" in index and "missing" not in index
    assert "| evaluate | 12 |" in index and "0.2 min of stages" in index


@pytest.mark.slow  # needs a finished quick run (45 min): make results BUDGET=quick
def test_the_pages_of_the_quick_run_name_its_date_and_machine(tmp_path):
    assert (QUICK / "RESULTS.md").is_file(), (
        "no runs/results_quick: python experiments/reproduce.py --out runs/results_quick "
        "--budget quick"
    )
    pages = rep.docs_pages(rep.plan(QUICK, "quick", ROOT / "benchmarks"), "quick", QUICK, tmp_path)
    date, machine = rep.provenance(QUICK)
    assert len(pages) >= 10
    for page in pages[1:]:
        text = page.read_text()
        assert f"(budget quick; {machine}; {date})" in text.splitlines()[2]
        assert "|---|" in text


def test_pages_only_needs_a_finished_run(tmp_path, capsys):
    code = rep.main(["--out", str(tmp_path), "--pages-only", "--docs", str(tmp_path / "d")])
    assert code == 1 and "no RESULTS.md" in capsys.readouterr().err
