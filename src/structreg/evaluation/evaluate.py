"""The paper's comparison on any data set: every method on every pair, Table-1 metrics.

``structreg evaluate --data SPEC --methods ours:RUN_DIR,lcc-demons,voxelmorph:RUN_DIR,identity
--out DIR`` writes:

| file | content |
|---|---|
| ``pairs.csv`` | a row per (pair, method): every metric (:mod:`.metrics` keys), or the error |
| ``table.md`` | Table 1: mean ± std per method, best in bold; Wilcoxon tests of ours vs each |
| ``registration.png`` | Figure-2-like panels: moving, fixed, moved per method, det J per method |
| ``dice_boxplot.png`` | Dice per structure and method |

Methods are :class:`~structreg.methods.Registrar` s; nothing here depends on which.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import metrics
from ..data import Pair, collate_pairs
from ..data.labels import LabelTable
from ..errors import StructregError
from ..io.files import atomic_write_text
from ..methods.base import Registrar, RegistrationResult

Structures = dict[str, tuple[int, ...]]


def structures_for(pairs: Sequence[Pair]) -> Structures:
    """The structures to report: the pairs' label table, else ``label 1..K`` for the
    label values their maps hold (no composite)."""
    for p in pairs:
        if p.label_table is not None:
            return dict(p.label_table.structures)
    values: set[int] = set()
    for p in pairs:
        for labels in (p.moving_labels, p.fixed_labels):
            if labels is not None:
                values.update(int(v) for v in np.unique(labels))
    return dict(LabelTable.numbered(values).structures)


def pair_metrics(
    pair: Pair,
    result: RegistrationResult,
    i: int,
    moved_labels: torch.Tensor | None,
    structures: Structures,
) -> dict[str, Any]:
    """Every metric of entry ``i`` of ``result`` (the registration of ``pair``)."""
    row: dict[str, Any] = {}
    disp = result.disp[i].detach().cpu().double()
    row[metrics.RMSE] = metrics.rmse(result.moved[i, 0].cpu(), pair.fixed)
    row[metrics.FOLDING] = metrics.folding_percent(disp)
    row[metrics.LOG_JACOBIAN_STD] = metrics.log_jacobian_std(disp)
    if result.velocity is not None:
        stats = metrics.velocity_stats(result.velocity[i].cpu(), pair.spacing)
        row[metrics.VELOCITY_MAGNITUDE] = stats["velocity_magnitude"]
        row[metrics.VELOCITY_GRADIENT] = stats["velocity_gradient"]
    if pair.disp is not None:
        # over the pair's mask (heart region / brain) when it has one: outside the
        # organ the true motion of a phantom's background texture is not meaningful
        row[metrics.EPE] = metrics.endpoint_error(
            disp.numpy(), pair.disp, pair.spacing, mask=pair.mask
        )
    if moved_labels is not None and pair.fixed_labels is not None:
        row.update(
            metrics.structure_metrics(
                moved_labels[i, 0].numpy(), pair.fixed_labels, structures, pair.spacing
            )
        )
    return row


def _run_chunk(
    method: Registrar,
    chunk: Sequence[Pair],
    structures: Structures,
    kept: dict[str, dict[str, np.ndarray]] | None = None,
) -> list[dict[str, Any]]:
    batch = collate_pairs(chunk)
    t0 = time.perf_counter()
    result = method.register(batch["moving"], batch["fixed"], mask=batch["mask"])
    seconds = (time.perf_counter() - t0) / len(chunk)
    moved_labels = None
    if batch["moving_labels"] is not None:
        moved_labels = result.warp_labels(batch["moving_labels"].to(result.disp.device)).cpu()
    rows = []
    for i, pair in enumerate(chunk):
        row: dict[str, Any] = {
            "id": pair.id,
            "group": pair.group,
            "method": method.name,
            "error": "",
        }
        row.update(pair_metrics(pair, result, i, moved_labels, structures))
        row[metrics.SECONDS] = seconds
        if result.iterations is not None:
            row[metrics.ITERATIONS] = int(result.iterations[i])
        rows.append(row)
        if kept is not None and pair.id in kept:
            kept[pair.id] = {
                "moved": result.moved[i, 0].detach().cpu().numpy(),
                "jacobian": result.jacobian_det[i, 0].detach().cpu().numpy(),
            }
    return rows


def _error_row(pair: Pair, method: Registrar, exc: Exception) -> dict[str, Any]:
    message = " ".join(str(exc).split()) or type(exc).__name__
    return {"id": pair.id, "group": pair.group, "method": method.name, "error": message}


def _run_method(
    method: Registrar,
    pairs: Sequence[Pair],
    structures: Structures,
    bar: Any,
    keep: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], dict[str, dict[str, np.ndarray]]]:
    """Rows of one method on every pair, chunk by chunk, and the moved image and det J
    of the pairs in ``keep`` (taken from the same registrations). A chunk that fails
    with an expected error is retried pair by pair; a pair that still fails gets an
    error row. Any other exception is a bug and propagates."""
    rows: list[dict[str, Any]] = []
    kept: dict[str, dict[str, np.ndarray]] = {pid: {} for pid in keep}
    adapt_seconds = _prepare(method, pairs)
    for start in range(0, len(pairs), method.batch_size):
        chunk = pairs[start : start + method.batch_size]
        try:
            rows += _run_chunk(method, chunk, structures, kept)
        except StructregError:
            for pair in chunk:
                try:
                    rows += _run_chunk(method, [pair], structures, kept)
                except StructregError as exc:
                    rows.append(_error_row(pair, method, exc))
        bar.update(len(chunk))
    if adapt_seconds is not None:
        for row in rows:
            row[metrics.ADAPT_SECONDS] = adapt_seconds
    return rows, {pid: images for pid, images in kept.items() if images}


def _prepare(method: Registrar, pairs: Sequence[Pair]) -> float | None:
    """Let a method that learns from the cohort first (``prepare``, e.g. adaptation)
    see every pair once; its wall time (s), or None for methods without it."""
    prepare = getattr(method, "prepare", None)
    if prepare is None:
        return None
    t0 = time.perf_counter()
    done = prepare(pairs)
    return None if done is False else time.perf_counter() - t0


def evaluate(
    pairs: Sequence[Pair],
    methods: Sequence[Registrar],
    structures: Structures | None = None,
    progress: bool = True,
    keep: Sequence[str] = (),
) -> tuple[list[dict], dict]:
    """Run every method on every pair.

    A chunk that fails (an expected error) is retried pair by pair; a pair that
    still fails gets a row with its ``error`` and no metrics, and the others go on.

    Returns:
        ``(rows, kept)``: metric rows, and for the pair ids in ``keep`` the moved
        image and det J per method (for figures).
    """
    from tqdm import tqdm

    structures = structures or structures_for(pairs)
    rows: list[dict[str, Any]] = []
    kept: dict[str, dict[str, dict[str, np.ndarray]]] = {k: {} for k in keep}
    # a bar on a terminal only: a batch job's log gets no carriage-return updates
    bar = tqdm(
        total=len(pairs) * len(methods),
        desc="evaluate",
        unit="pair",
        disable=not (progress and sys.stderr.isatty()),
    )
    for method in methods:
        method_rows, images = _run_method(method, pairs, structures, bar, keep)
        rows += method_rows
        for pid, moved in images.items():  # from the same registrations: none twice
            kept[pid][method.name] = moved
    bar.close()
    return rows, kept


def values(rows: Sequence[dict], method: str, key: str) -> np.ndarray:
    """The finite values of ``key`` in ``method``'s rows (float64)."""
    return np.array(
        [
            r[key]
            for r in rows
            if r["method"] == method
            and key in r
            and r[key] is not None
            and not (isinstance(r[key], float) and math.isnan(r[key]))
        ],
        dtype=np.float64,
    )


def mean_std(v: np.ndarray, fmt: str) -> str:
    """``"mean ± std"`` of an array in ``fmt`` (``"n/a"`` when empty)."""
    if len(v) == 0:
        return "n/a"
    return f"{fmt.format(v.mean())} ± {fmt.format(v.std())}"


def table_keys(structures: Structures) -> list[str]:
    """Table-1 rows: generic metrics, then Dice (higher better) and HD95 per structure."""
    head = [
        metrics.RMSE,
        metrics.FOLDING,
        metrics.VELOCITY_MAGNITUDE,
        metrics.VELOCITY_GRADIENT,
        metrics.LOG_JACOBIAN_STD,
    ]
    return (
        head
        + [metrics.dice_key(s) for s in structures]
        + [metrics.hd95_key(s) for s in structures]
        + [metrics.EPE, metrics.SECONDS, metrics.ADAPT_SECONDS, metrics.ITERATIONS]
    )


def significance(
    rows: Sequence[dict], methods: Sequence[str], key: str, primary: str = "ours"
) -> dict[str, float]:
    """Paired Wilcoxon signed-rank p-value of ``primary`` vs each other method on ``key``."""
    from scipy.stats import wilcoxon

    out = {}
    by_id: dict[Any, dict[str, float]] = {}
    for r in rows:
        if key in r and r[key] == r[key]:
            by_id.setdefault(r["id"], {})[r["method"]] = r[key]
    for m in methods:
        if m == primary:
            continue
        a = np.array([v[primary] for v in by_id.values() if primary in v and m in v])
        b = np.array([v[m] for v in by_id.values() if primary in v and m in v])
        if len(a) < 5 or np.allclose(a, b):
            out[m] = float("nan")
        else:
            out[m] = float(wilcoxon(a, b).pvalue)
    return out


def _best(key: str, means: dict[str, float], references: Collection[str]) -> set[str]:
    """Methods whose mean is best for ``key`` (a reference method, which does not
    register, competes on neither folding nor velocity)."""
    if key == metrics.SECONDS or len(means) < 2:
        return set()
    candidates = {
        m: x
        for m, x in means.items()
        if not (m in references and (key == metrics.FOLDING or key.startswith("velocity")))
    }
    if not candidates:
        return set()
    lower = metrics.structure_info(key).lower_is_better
    target = (min if lower else max)(candidates.values())
    return {m for m, x in candidates.items() if np.isclose(x, target)}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down; NaN entries are left out of the
    family and stay NaN). Reject at level α where the adjusted value is ≤ α."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return [float(x) for x in out]


def _p_text(p: float, adjusted: float) -> str:
    return "–" if math.isnan(p) else f"{p:.2g} ({adjusted:.2g})"


def _significance_lines(
    rows: Sequence[dict], methods: Sequence[str], structures: Structures, primary: str
) -> list[str]:
    if primary not in methods or len(methods) < 2:
        return []
    others = [m for m in methods if m != primary]
    keys = (
        [metrics.RMSE]
        + [metrics.dice_key(s) for s in structures]
        + [metrics.hd95_key(s) for s in structures]
    )
    tested = {key: significance(rows, methods, key, primary) for key in keys}
    tested = {k: p for k, p in tested.items() if not all(math.isnan(x) for x in p.values())}
    if not tested:
        return []
    flat = [(k, m) for k in tested for m in others]
    adjusted = dict(zip(flat, holm([tested[k][m] for k, m in flat]), strict=True))
    lines = [
        f"| {key} | " + " | ".join(_p_text(p[m], adjusted[key, m]) for m in others) + " |"
        for key, p in tested.items()
    ]
    return [
        "",
        f"Paired Wilcoxon signed-rank test of {primary} against each method over the "
        f"pairs where both succeeded: p-value (Holm-adjusted over the {len(flat)} tests "
        "of this table; – : fewer than 5 pairs or identical values):",
        "",
        "| metric | " + " | ".join(others) + " |",
        "|---|" + "---|" * len(others),
        *lines,
    ]


def _median_row(key: str, stats: dict[str, np.ndarray], methods: Sequence[str]) -> str:
    """``median [q1, q3]`` per method (HD95: a skewed distance)."""
    info = metrics.structure_info(key)
    cells = []
    for m in methods:
        v = stats[m]
        if len(v) == 0:
            cells.append("–")
            continue
        q1, q2, q3 = (info.fmt.format(x) for x in np.percentile(v, [25, 50, 75]))
        cells.append(f"{q2} [{q1}, {q3}]")
    return f"| {info.label}, median [IQR] | " + " | ".join(cells) + " |"


def format_table(
    rows: list[dict],
    methods: Sequence[str],
    structures: Structures,
    *,
    references: Collection[str] = ("identity",),
    primary: str = "ours",
) -> str:
    """Markdown table laid out like the paper's Table 1 (mean ± std, best in bold; the
    number of pairs each method registered; HD95 also as median [IQR]), with paired
    Wilcoxon tests of ``primary`` against each other method, Holm-adjusted across the
    table's tests.

    Args:
        references: methods that do not register (no folding or velocity to win on).
    """
    lines = ["| metric | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    counts = {
        m: len({r["id"] for r in rows if r["method"] == m and not r.get("error")}) for m in methods
    }
    lines.append("| pairs (n) | " + " | ".join(str(counts[m]) for m in methods) + " |")
    for key in table_keys(structures):
        info = metrics.structure_info(key)
        stats = {m: values(rows, m, key) for m in methods}
        if all(len(v) == 0 for v in stats.values()):
            continue
        best = _best(key, {m: float(v.mean()) for m, v in stats.items() if len(v)}, references)
        cells = []
        for m in methods:
            if len(stats[m]) == 0:
                cells.append("–")
                continue
            text = mean_std(stats[m], info.fmt)
            cells.append(f"**{text}**" if m in best else text)
        lines.append(f"| {info.label} | " + " | ".join(cells) + " |")
        if key.startswith("hd95 "):
            lines.append(_median_row(key, stats, methods))
    lines += _significance_lines(rows, methods, structures, primary)
    failed = [r for r in rows if r.get("error")]
    if failed:
        lines += ["", f"{len(failed)} (pair, method) runs failed; see pairs.csv."]
    return "\n".join(lines) + "\n"


def write_rows_csv(path: Path, rows: list[dict]) -> None:
    """Per-pair CSV (all keys, stable column order), written atomically."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    atomic_write_text(path, buffer.getvalue())


def dice_boxplot(
    rows: list[dict], methods: Sequence[str], structures: Structures, out: Path
) -> Path:
    """Box plot of Dice per structure (groups) and method (colours)."""
    from matplotlib.figure import Figure

    from ..viz.figures import save_figure

    names = list(structures)
    fig = Figure(figsize=(1.6 + 1.4 * len(names) * max(1, len(methods)) / 2, 3.6))
    ax = fig.subplots()
    width = 0.8 / len(methods)
    # ten distinct colours (matplotlib's tab10), so up to ten methods never share one
    colours = [
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
        "#17becf",
    ]
    for j, m in enumerate(methods):
        data = [values(rows, m, metrics.dice_key(s)) for s in names]
        pos = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(names))]
        parts = ax.boxplot(
            [d if len(d) else [np.nan] for d in data],
            positions=pos,
            widths=width * 0.9,
            patch_artist=True,
            showfliers=False,
            medianprops={"color": "black"},
        )
        for patch in parts["boxes"]:
            patch.set_facecolor(colours[j % len(colours)])
        ax.plot([], [], color=colours[j % len(colours)], lw=6, label=m)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel("Dice")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, out)


def panel_rows(shown: Sequence[Pair], kept: dict, names: Sequence[str]) -> list[dict]:
    """Rows of :func:`structreg.viz.figures.registration_panel` for the kept pairs."""
    panel = []
    for pair in shown:
        entry = kept.get(pair.id, {})
        ok = [m for m in names if m in entry]
        if not ok:
            continue
        panel.append(
            {
                "moving": pair.moving,
                "fixed": pair.fixed,
                "fixed_labels": pair.fixed_labels,
                "title": f"({pair.group})",
                "spacing": pair.spacing,
                "moved": {m: entry[m]["moved"] for m in ok},
                "jacobian": {m: entry[m]["jacobian"] for m in ok},
            }
        )
    return panel


def run_evaluation(
    pairs: Sequence[Pair],
    methods: Sequence[Registrar],
    out_dir: str | Path,
    *,
    n_figure: int = 4,
    progress: bool = True,
    primary: str = "ours",
) -> dict[str, Any]:
    """Evaluate, then write ``pairs.csv``, ``table.md`` and the figures into ``out_dir``.

    ``primary`` is the method the significance tests compare with each other one.
    Reference methods (``reference = True``: identity) stay out of the panel.
    """
    from ..viz.figures import pick_pairs, registration_panel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    structures = structures_for(pairs)
    shown = pick_pairs(list(pairs), n_figure)
    rows, kept = evaluate(pairs, methods, structures, progress=progress, keep=[p.id for p in shown])
    names = [m.name for m in methods]
    write_rows_csv(out / "pairs.csv", rows)
    references = {m.name for m in methods if getattr(m, "reference", False)}
    table = format_table(rows, names, structures, references=references, primary=primary)
    atomic_write_text(out / "table.md", table)
    panel = panel_rows(shown, kept, names)
    # a reference adds nothing to the panel: its moved image is the moving image, det J = 1
    panel_methods = [
        m for m in names if m not in references and all(m in row["moved"] for row in panel)
    ]
    if panel and panel_methods:
        registration_panel(panel, out / "registration.png", methods=panel_methods)
    if any(k.startswith("dice ") for r in rows for k in r):
        dice_boxplot(rows, names, structures, out / "dice_boxplot.png")
    return {"rows": rows, "table": table, "failed": sum(1 for r in rows if r.get("error"))}
