"""Choosing a method's settings on validation pairs: a grid search through the method
contract.

Each point of the grid is a method spec (``lcc-demons:sigma_fluid=1,max_step=0.5``)
evaluated on the pairs with :func:`structreg.evaluation.evaluate.evaluate`; the
point with the highest mean Dice (averaged over the structures; minus the RMSE
without labels) among those that fold at most ``max_folding`` % of pixels wins.
Tune on a validation split, never on the pairs the comparison reports.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import metrics
from ..data.pair import Pair
from ..errors import InputError
from ..methods import build_method, parse_method_spec
from .evaluate import Structures, evaluate, structures_for, values

__all__ = ["TuningResult", "grid_specs", "parse_grid", "tune", "format_tuning"]

# The grid searched for LCC-Demons by `structreg tune` and `experiments/reproduce.py`:
# the fluid and diffusion smoothing (voxels), the largest update (voxels) and the
# iterations per level (coarse to fine).
LCC_DEMONS_GRID: dict[str, list[str]] = {
    "sigma_fluid": ["0.5", "1", "2"],
    "sigma_diffusion": ["1", "1.5", "2.5"],
    "max_step": ["0.5", "1", "2"],
    "iterations": ["40/30/20", "100/60/40"],
}


@dataclass
class TuningResult:
    """A grid search's outcome.

    Attributes:
        best: the chosen spec (text), ``None`` when no point met the folding limit.
        rows: one dict per grid point: ``spec``, each option, ``score``, mean Dice
            per structure, ``folding_pct``, ``seconds_per_pair``, ``failed``.
        score: what was maximised (``"mean Dice"`` or ``"-RMSE"``).
    """

    best: str | None
    rows: list[dict[str, Any]]
    score: str


def parse_grid(items: Sequence[Sequence[str]]) -> dict[str, list[str]]:
    """``[["sigma_fluid", "0.5", "1"], ["iterations", "40/30/20", "100/60/40"]]`` ->
    ``{"sigma_fluid": ["0.5", "1"], "iterations": ["40/30/20", "100/60/40"]}``
    (an option's name, then its values as written in a spec)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        if len(item) < 2 or "=" in item[0] or not item[0].strip():
            raise InputError(
                f"bad grid entry {' '.join(item)!r}: write KEY V1 [V2 ...], e.g. max_step 0.5 1"
            )
        grid[item[0].strip()] = [v.strip() for v in item[1:]]
    return grid


def grid_specs(base: str, grid: Mapping[str, Sequence[str]]) -> list[str]:
    """Every combination of ``grid``'s values added to the ``base`` spec (in grid order)."""
    spec = parse_method_spec(base)
    keys = list(grid)
    clash = sorted(set(keys) & {k for k, _ in spec.options})
    if clash:
        raise InputError(f"tuned option(s) {', '.join(clash)} also set in {base!r}")
    out = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        options = [f"{k}={v}" for k, v in spec.options] + [
            f"{k}={v}" for k, v in zip(keys, combo, strict=True)
        ]
        head = spec.name + (f":{spec.target}" if spec.target else "")
        out.append(head + ("," if spec.target else ":") + ",".join(options) if options else head)
    return out


def _point(spec: str, pairs: Sequence[Pair], structures: Structures, device: str) -> dict[str, Any]:
    method = build_method(spec, device)
    method.name = "point"
    rows, _ = evaluate(pairs, [method], structures, progress=False)
    row: dict[str, Any] = {"spec": spec, **dict(parse_method_spec(spec).options)}
    dice = {s: values(rows, "point", metrics.dice_key(s)) for s in structures}
    for s, v in dice.items():
        row[metrics.dice_key(s)] = float(v.mean()) if len(v) else math.nan
    means = [row[metrics.dice_key(s)] for s in structures]
    rmse = values(rows, "point", metrics.RMSE)
    row["score"] = (
        float(np.nanmean(means)) if means else -(float(rmse.mean()) if len(rmse) else math.nan)
    )
    fold = values(rows, "point", metrics.FOLDING)
    row[metrics.FOLDING] = float(fold.mean()) if len(fold) else math.nan
    sec = values(rows, "point", metrics.SECONDS)
    row[metrics.SECONDS] = float(sec.mean()) if len(sec) else math.nan
    row["failed"] = sum(1 for r in rows if r.get("error"))
    return row


def tune(
    base: str,
    grid: Mapping[str, Sequence[str]],
    pairs: Sequence[Pair],
    *,
    device: str = "cpu",
    max_folding: float = 0.5,
    progress: bool = True,
) -> TuningResult:
    """Grid-search a method's options on ``pairs`` (a validation split).

    Args:
        base: the method spec the grid's options are added to (``"lcc-demons"``).
        grid: option -> values (text, as in a spec).
        max_folding: the largest mean % of pixels with det J ≤ 0 a chosen point may have.
    Returns:
        :class:`TuningResult`; a point with failed pairs is never chosen.
    """
    if not pairs:
        raise InputError("tune: no pairs")
    structures = structures_for(pairs)
    specs = grid_specs(base, grid)
    iterator: Any = specs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(specs, desc=f"tune {parse_method_spec(base).name}", unit="setting")
    rows = [_point(spec, pairs, structures, device) for spec in iterator]
    ok = [
        r
        for r in rows
        if not r["failed"] and math.isfinite(r["score"]) and r[metrics.FOLDING] <= max_folding
    ]
    best = max(ok, key=lambda r: r["score"])["spec"] if ok else None
    return TuningResult(best, rows, "mean Dice" if structures else "-RMSE")


def format_tuning(result: TuningResult, n_pairs: int, max_folding: float) -> str:
    """A markdown summary: the chosen spec and the grid's points, best first."""
    lines = [
        f"Chosen: `{result.best}` (highest {result.score} over {n_pairs} validation pairs "
        f"among settings folding ≤ {max_folding:g} % of pixels)"
        if result.best
        else f"No setting folded ≤ {max_folding:g} % of pixels without failures.",
        "",
        f"| spec | {result.score} | folding (%) | s / pair |",
        "|---|---|---|---|",
    ]
    for r in sorted(result.rows, key=lambda r: -r["score"] if math.isfinite(r["score"]) else 0):
        lines.append(
            f"| `{r['spec']}` | {r['score']:.4f} | {r[metrics.FOLDING]:.3f} | "
            f"{r[metrics.SECONDS]:.3f} |"
        )
    return "\n".join(lines) + "\n"
