"""Batch registration of a cohort: one output folder per pair and a ``summary.csv``.

Pairs are registered one at a time, reading their files as they come, so memory
does not grow with the number of pairs. Each pair's outputs go to
``OUT/<name>/`` (a safe, unique name made from the pair's id, see
:func:`structreg.io.files.safe_name`) and replace that folder whole. A pair that
fails - a missing or corrupt file, images that cannot be registered - is
reported and skipped; the others go on.

``summary.csv`` has a row per attempt: ``name, id, status (ok/failed), error,
folding_pct, seconds``. A line is appended (and flushed) as each pair finishes,
so a killed batch keeps what it did, and memory stays flat however many pairs
there are. With ``resume`` the pairs whose last row is ``ok`` (and whose folder
is there) are skipped and the new attempts are appended; the last row of a name
is its status.

Several processes (``structreg register --data ... --nproc K``, or torchrun): rank
``r`` registers every K-th pair from ``r`` on into its own ``summary.partR.csv``;
when all are done rank 0 merges them into ``summary.csv`` (pair order) and
removes the parts. A killed multi-process batch keeps its parts, which
``resume`` reads.

The output folder is confined like a single pair's (:func:`check_batch_out`): it must be
new, empty or one a batch wrote (its summaries, pair folders holding only
registration outputs, and what killed writes left, which is removed); no symbolic link
in it is followed, and no input file may lie in it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import metrics
from ..errors import DataError, StructregError
from ..io.files import check_inputs_outside, inside, is_leftover, remove_leftovers
from .registration import OUTPUTS

__all__ = [
    "BatchJob",
    "SUMMARY",
    "SUMMARY_COLUMNS",
    "check_batch_out",
    "merge_summaries",
    "part_name",
    "read_summary",
    "register_batch",
]

SUMMARY = "summary.csv"
SUMMARY_COLUMNS = ("name", "id", "status", "error", metrics.FOLDING, "seconds")


@dataclass(frozen=True)
class BatchJob:
    """One pair of a batch: its output folder name, its id in the data, its files."""

    name: str
    id: str
    moving: str | os.PathLike
    fixed: str | os.PathLike
    moving_labels: str | os.PathLike | None = None
    frame: int | None = None


def read_summary(path: Path) -> dict[str, dict[str, str]]:
    """Rows of a ``summary.csv`` by name (a truncated last line is ignored)."""
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):  # a write the kill interrupted
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.DictReader(io.StringIO(text)))
    return {row["name"]: row for row in rows if row.get("name")}


def _line(row: dict[str, Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(["" if row.get(c) is None else row[c] for c in SUMMARY_COLUMNS])
    return buffer.getvalue()


def part_name(rank: int) -> str:
    """The summary a process of a multi-process batch writes (merged at the end)."""
    return f"summary.part{rank}.csv"


def _summaries(out: Path) -> list[Path]:
    return [out / SUMMARY, *sorted(out.glob("summary.part*.csv"))]


def _is_summary_name(name: str) -> bool:
    return name == SUMMARY or re.fullmatch(r"summary\.part\d+\.csv", name) is not None


def _is_our_summary(path: Path) -> bool:
    """True for an empty file or one whose first line is a batch summary's header."""
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        first = fh.readline()
    return not first or first.rstrip("\r\n") == ",".join(SUMMARY_COLUMNS)


def _is_pair_folder(path: Path) -> bool:
    """True for a folder holding nothing but a registration's output files."""
    try:
        return all(e.name in OUTPUTS and e.is_file() and not e.is_symlink() for e in path.iterdir())
    except FileNotFoundError:  # replaced by another process of the batch just now
        return True


def _check_summary(path: Path) -> None:
    """Refuse a summary file that is a symbolic link or that a batch did not write."""
    if path.is_symlink():
        raise DataError(
            f"{path} is a symbolic link; a batch does not follow links in its output "
            f"folder (remove it, or write the outputs to a new folder)"
        )
    if not _is_our_summary(path):
        raise DataError(
            f"{path} is not a structreg batch summary; refusing to overwrite it "
            f"(move it away, or write the outputs to a new folder)"
        )


def check_batch_out(out_dir: str | os.PathLike) -> None:
    """Refuse (:class:`DataError`) a batch output folder that is not new, empty or a
    batch's own: anything but a summary, a folder of registration outputs or what a
    killed write left is another file (a batch replaces folders whole and rewrites
    ``summary.csv``), and so is a symbolic link; a summary that is a link or that a
    batch did not write is refused too."""
    out = Path(out_dir)
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    others = []
    for entry in sorted(out.iterdir()):
        link = entry.is_symlink()
        if _is_summary_name(entry.name) and (link or entry.is_file()):
            _check_summary(entry)
        elif link:
            others.append(f"{entry.name} (a symbolic link)")
        elif not (is_leftover(entry.name) or (entry.is_dir() and _is_pair_folder(entry))):
            others.append(entry.name)
    if others:
        raise DataError(
            f"{out} holds other files ({', '.join(others[:3])}{' ...' if len(others) > 3 else ''}"
            f"); write a batch's outputs to a new or empty folder, or to one a batch wrote"
        )


def register_batch(
    register: Callable[[BatchJob, Path], dict[str, Any]],
    jobs: Iterable[BatchJob],
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    report: Callable[[str], None] = print,
    report_error: Callable[[str], None] = print,
    summary: str = SUMMARY,
) -> tuple[int, int]:
    """Register every job with ``register(job, folder) -> summary`` (as
    :func:`structreg.pipeline.files.write_registration` returns), appending to ``summary``
    (``summary.csv``; a process of a multi-process batch its :func:`part_name`).
    With ``resume``, a pair that ``summary.csv`` or a part lists as ok is skipped.

    The output folder is checked first (:func:`check_batch_out`; no input may lie in
    it), and what killed writes of this process's pairs left there is removed.

    Returns ``(registered, failed)``, skipped pairs counted as registered.
    """
    out = Path(out_dir)
    jobs = list(jobs)
    check_batch_out(out)
    check_inputs_outside(
        out, (f for job in jobs for f in (job.moving, job.fixed, job.moving_labels))
    )
    out.mkdir(parents=True, exist_ok=True)
    for name in (summary, *(job.name for job in jobs)):
        remove_leftovers(out, name)
    path = out / summary
    done = (
        {
            name
            for file in _summaries(out)
            for name, row in read_summary(file).items()
            if row.get("status") == "ok" and (out / name).is_dir()
        }
        if resume
        else set()
    )
    registered = failures = 0
    with open(path, "a" if resume else "w", encoding="utf-8", newline="") as log:
        if log.tell() == 0:
            log.write(",".join(SUMMARY_COLUMNS) + "\n")
        for job in jobs:
            if job.name in done:
                registered += 1
                continue
            row = _register_one(register, job, out, report, report_error)
            log.write(_line(row))
            log.flush()
            registered, failures = (
                (registered + 1, failures) if row["status"] == "ok" else (registered, failures + 1)
            )
    return registered, failures


def merge_summaries(out_dir: str | os.PathLike, names: Iterable[str]) -> tuple[int, int]:
    """Fold ``summary.csv`` and the processes' parts into one ``summary.csv`` (written
    atomically; the parts are then removed): for each of ``names`` (in that order)
    its last row in any of them. Returns ``(ok, failed)`` over those names."""
    from ..io.files import atomic_write_text

    out = Path(out_dir)
    files = _summaries(out)
    last: dict[str, dict[str, str]] = {}
    for file in files:
        last.update(read_summary(file))
    rows = [last[name] for name in names if name in last]
    atomic_write_text(out / SUMMARY, ",".join(SUMMARY_COLUMNS) + "\n" + "".join(map(_line, rows)))
    for file in files[1:]:
        file.unlink()
    remove_leftovers(out, SUMMARY)  # of a merge that a kill interrupted
    ok = sum(row.get("status") == "ok" for row in rows)
    return ok, len(rows) - ok


def _register_one(
    register: Callable[[BatchJob, Path], dict[str, Any]],
    job: BatchJob,
    out: Path,
    report: Callable[[str], None],
    report_error: Callable[[str], None],
) -> dict[str, Any]:
    row: dict[str, Any] = {"name": job.name, "id": job.id}
    try:
        summary = register(job, inside(out, job.name))
    except (StructregError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        report_error(f"structreg: error: {job.name}: {message}")
        return {**row, "status": "failed", "error": message}
    report(
        f"{job.name}: {summary['slices']} slice(s), {summary[metrics.FOLDING]:.3f} % "
        f"non-positive Jacobian, {summary['seconds'] * 1e3:.0f} ms -> {summary['out']}"
    )
    return {
        **row,
        "status": "ok",
        "error": "",
        metrics.FOLDING: summary[metrics.FOLDING],
        "seconds": summary["seconds"],
    }
