"""The README stays a front page: short, its links resolve, its numbers are the results'."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RESULTS = ROOT / "docs" / "results" / "index.md"


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    """The rows (cells stripped) of the markdown table whose header starts ``first_cell``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_cell} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_readme_is_at_most_200_lines():
    assert len(README.read_text().splitlines()) <= 200


def test_every_readme_link_resolves():
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text()):
        if not re.match(r"[a-z]+://", target):
            assert (ROOT / target).exists(), target


def test_the_summary_table_is_the_results_page_s():
    ours = table_rows(README.read_text(), "data (test pairs)")
    theirs = {row[0]: row for row in table_rows(RESULTS.read_text(), "data (test pairs)")}
    assert len(ours) >= 4
    for row in ours:
        assert row[0] in theirs, row[0]
        assert row[1:7] == theirs[row[0]][1:7], row[0]  # the numbers
        assert theirs[row[0]][7].startswith(row[7]), row[0]  # the date
