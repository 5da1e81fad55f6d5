"""The paper's comparison on any data set: every method on every pair, Table-1 metrics.

``structreg evaluate --data SPEC --methods ours:RUN_DIR,lcc-demons,voxelmorph:RUN_DIR,identity
--out DIR`` writes:

| file | content |
|---|---|
| ``pairs.csv`` | one row per (pair, method): every metric, or the error that stopped it |
| ``table.md`` | Table-1 layout: mean ± std per method, best in bold, and a paired Wilcoxon signed-rank test of ours against each baseline |
| ``registration.png`` | Figure-2-like panels: moving, fixed, moved per method, det J per method |
| ``dice_boxplot.png`` | Dice per structure and method |
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..data import BRAIN_STRUCTURES, CARDIAC_STRUCTURES, Pair, collate_pairs
from ..io_utils import atomic_write_text
from ..registration import RegistrationResult
from . import metrics

METHOD_NAMES = ("ours", "lcc-demons", "voxelmorph", "identity")
# Table rows: (key in a result row, label, lower is better, scale, format)
_GENERIC_ROWS = [
    ("rmse", "RMSE", True, 1.0, "{:.4f}"),
    ("folding %", "Neg. Det. Jac. (%)", True, 1.0, "{:.2f}"),
    ("velocity magnitude (mm)", "Velo. Mag. (mm)", True, 1.0, "{:.3f}"),
    ("velocity gradient", "Velo. Grad.", True, 1.0, "{:.4f}"),
    ("std log|J|", "std log det J", True, 1.0, "{:.4f}"),
    ("epe (mm)", "Endpoint error (mm)", True, 1.0, "{:.3f}"),
    ("seconds per pair", "Time per pair (s)", True, 1.0, "{:.3f}"),
]


@dataclass
class Method:
    """A registration method: ``name`` and ``register(moving, fixed, mask) -> result``."""

    name: str
    register: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], RegistrationResult]
    batch_size: int = 32


def parse_methods(text: str) -> list[tuple[str, str | None]]:
    """``"ours:RUN,lcc-demons,voxelmorph:RUN,identity"`` -> ``[(name, arg), ...]``."""
    out = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        name, _, arg = item.partition(":")
        if name not in METHOD_NAMES:
            raise ValueError(f"unknown method {name!r} (known: {', '.join(METHOD_NAMES)})")
        if name in ("ours", "voxelmorph") and not arg:
            raise ValueError(f"method {name} needs a run folder: {name}:RUN_DIR")
        out.append((name, arg or None))
    if not out:
        raise ValueError("no methods given")
    return out


def load_methods(specs: Sequence[tuple[str, str | None]], device: str = "cpu",
                 demons_config=None) -> list[Method]:
    """Build :class:`Method` objects (loading trained models) from parsed specs."""
    methods = []
    for name, arg in specs:
        if name == "ours":
            from ..registration import register as cvae_register
            from ..training.checkpoint import load_model

            model, _ = load_model(arg, device)
            methods.append(Method("ours", lambda m, f, mask, model=model:
                                  cvae_register(model, m, f), 64))
        elif name == "voxelmorph":
            from ..baselines.voxelmorph import load_voxelmorph, register as vxm_register

            vxm = load_voxelmorph(arg, device)
            methods.append(Method("voxelmorph", lambda m, f, mask, vxm=vxm:
                                  vxm_register(vxm, m.to(device), f.to(device)), 64))
        elif name == "lcc-demons":
            from ..baselines.lcc_demons import register as demons_register

            methods.append(Method("lcc-demons", lambda m, f, mask:
                                  demons_register(m.to(device), f.to(device), demons_config,
                                                  mask=None if mask is None else mask.to(device)),
                                  16))
        else:
            from ..baselines.identity import register as identity_register

            methods.append(Method("identity", lambda m, f, mask: identity_register(m, f), 256))
    return methods


def structures_for(pairs: Sequence[Pair]) -> dict[str, tuple[int, ...]]:
    """Brain structures when the pairs carry brain labels (value 4), else cardiac."""
    for p in pairs:
        if p.fixed_labels is not None and (p.fixed_labels == 4).any():
            return dict(BRAIN_STRUCTURES)
    return dict(CARDIAC_STRUCTURES)


def _pair_metrics(pair: Pair, result: RegistrationResult, i: int, moved_labels,
                  structures) -> dict[str, Any]:
    row: dict[str, Any] = {}
    disp = result.disp[i].detach().cpu().double()
    row["rmse"] = metrics.rmse(result.moved[i, 0].cpu(), pair.fixed)
    row["folding %"] = metrics.folding_percent(disp)
    row["std log|J|"] = metrics.log_jacobian_std(disp)
    if result.velocity is not None:
        stats = metrics.velocity_stats(result.velocity[i].cpu(), pair.spacing)
        row["velocity magnitude (mm)"] = stats["velocity_magnitude"]
        row["velocity gradient"] = stats["velocity_gradient"]
    if pair.disp is not None:
        # over the pair's mask (heart region / brain) when it has one: outside the
        # organ the true motion of a phantom's background texture is not meaningful
        row["epe (mm)"] = metrics.endpoint_error(disp.numpy(), pair.disp, pair.spacing,
                                                 mask=pair.mask)
    if moved_labels is not None and pair.fixed_labels is not None:
        row.update(metrics.structure_metrics(moved_labels[i, 0].numpy(), pair.fixed_labels,
                                             structures, pair.spacing))
    return row


def _run_chunk(method: Method, chunk: Sequence[Pair], structures) -> list[dict[str, Any]]:
    batch = collate_pairs(chunk)
    t0 = time.perf_counter()
    result = method.register(batch["moving"], batch["fixed"], batch["mask"])
    seconds = (time.perf_counter() - t0) / len(chunk)
    moved_labels = None
    if batch["moving_labels"] is not None:
        moved_labels = result.warp_labels(batch["moving_labels"].to(result.disp.device)).cpu()
    rows = []
    for i, pair in enumerate(chunk):
        row = {"id": pair.id, "group": pair.group, "method": method.name, "error": ""}
        row.update(_pair_metrics(pair, result, i, moved_labels, structures))
        row["seconds per pair"] = seconds
        rows.append(row)
    return rows


def evaluate(pairs: Sequence[Pair], methods: Sequence[Method],
             structures: dict[str, tuple[int, ...]] | None = None,
             progress: bool = True, keep: Sequence[str] = ()) -> tuple[list[dict], dict]:
    """Run every method on every pair.

    A chunk that fails is retried pair by pair; a pair that still fails gets a
    row with its ``error`` and no metrics, and the others go on.

    Returns:
        ``(rows, kept)``: metric rows, and for the pair ids in ``keep`` the moved
        image and det J per method (for figures).
    """
    from tqdm import tqdm

    structures = structures or structures_for(pairs)
    rows: list[dict[str, Any]] = []
    kept: dict[str, dict[str, dict[str, np.ndarray]]] = {k: {} for k in keep}
    bar = tqdm(total=len(pairs) * len(methods), desc="evaluate", unit="pair", disable=not progress)
    for method in methods:
        for start in range(0, len(pairs), method.batch_size):
            chunk = pairs[start:start + method.batch_size]
            try:
                chunk_rows = _run_chunk(method, chunk, structures)
            except (ValueError, RuntimeError, TypeError):
                chunk_rows = []
                for pair in chunk:
                    try:
                        chunk_rows += _run_chunk(method, [pair], structures)
                    except (ValueError, RuntimeError, TypeError) as exc:
                        message = " ".join(str(exc).split()) or type(exc).__name__
                        chunk_rows.append({"id": pair.id, "group": pair.group,
                                           "method": method.name, "error": message})
            rows += chunk_rows
            bar.update(len(chunk))
        for pid in keep:
            pair = next(p for p in pairs if p.id == pid)
            batch = collate_pairs([pair])
            try:
                result = method.register(batch["moving"], batch["fixed"], batch["mask"])
            except (ValueError, RuntimeError, TypeError):
                continue
            kept[pid][method.name] = {"moved": result.moved[0, 0].cpu().numpy(),
                                      "jacobian": result.jacobian_det[0, 0].cpu().numpy()}
    bar.close()
    return rows, kept


def _values(rows, method: str, key: str) -> np.ndarray:
    return np.array([r[key] for r in rows if r["method"] == method and key in r
                     and r[key] is not None and not (isinstance(r[key], float) and math.isnan(r[key]))],
                    dtype=np.float64)


def table_rows(structures: dict) -> list[tuple]:
    """Table-1 rows: generic metrics, then Dice (higher better) and HD95 per structure."""
    rows = list(_GENERIC_ROWS[:5])
    rows += [(f"dice {s}", f"{s} Dice", False, 1.0, "{:.3f}") for s in structures]
    rows += [(f"hd95 {s}", f"{s} HD95 (mm)", True, 1.0, "{:.2f}") for s in structures]
    rows += _GENERIC_ROWS[5:]
    return rows


def significance(rows, methods: Sequence[str], key: str, ours: str = "ours") -> dict[str, float]:
    """Paired Wilcoxon signed-rank p-value of ``ours`` vs each other method on ``key``."""
    from scipy.stats import wilcoxon

    out = {}
    by_id = {}
    for r in rows:
        if key in r and r[key] == r[key]:
            by_id.setdefault(r["id"], {})[r["method"]] = r[key]
    for m in methods:
        if m == ours:
            continue
        a = np.array([v[ours] for v in by_id.values() if ours in v and m in v])
        b = np.array([v[m] for v in by_id.values() if ours in v and m in v])
        if len(a) < 5 or np.allclose(a, b):
            out[m] = float("nan")
        else:
            out[m] = float(wilcoxon(a, b).pvalue)
    return out


def format_table(rows: list[dict], methods: Sequence[str], structures: dict) -> str:
    """Markdown table laid out like the paper's Table 1 (mean ± std, best in bold)."""
    lines = ["| metric | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for key, label, lower, scale, fmt in table_rows(structures):
        stats = {m: _values(rows, m, key) * scale for m in methods}
        if all(len(v) == 0 for v in stats.values()):
            continue
        means = {m: v.mean() for m, v in stats.items() if len(v)}
        best = None
        if key not in ("seconds per pair",) and len(means) > 1:
            candidates = {m: x for m, x in means.items() if not (key == "folding %" and m == "identity")
                          and not (key.startswith("velocity") and m == "identity")}
            if candidates:
                target = (min if lower else max)(candidates.values())
                best = {m for m, x in candidates.items() if np.isclose(x, target)}
        cells = []
        for m in methods:
            v = stats[m]
            if len(v) == 0:
                cells.append("–")
                continue
            text = f"{fmt.format(v.mean())} ± {fmt.format(v.std())}"
            cells.append(f"**{text}**" if best and m in best else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if "ours" in methods and len(methods) > 1:
        others = [m for m in methods if m != "ours"]
        keys = ["rmse"] + [f"dice {s}" for s in structures] + [f"hd95 {s}" for s in structures]
        tests = []
        for key in keys:
            p = significance(rows, methods, key)
            if not all(math.isnan(x) for x in p.values()):
                tests.append(f"| {key} | " + " | ".join("–" if math.isnan(p[m]) else f"{p[m]:.2g}"
                                                       for m in others) + " |")
        if tests:
            lines += ["", "Paired Wilcoxon signed-rank test of ours against each method "
                      "(p-values over the pairs where both succeeded):", "",
                      "| metric | " + " | ".join(others) + " |",
                      "|---|" + "---|" * len(others), *tests]
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


def dice_boxplot(rows: list[dict], methods: Sequence[str], structures: dict, out: Path) -> Path:
    """Box plot of Dice per structure (groups) and method (colours)."""
    from matplotlib.figure import Figure

    from ..viz.figures import save_figure

    names = list(structures)
    fig = Figure(figsize=(1.6 + 1.4 * len(names) * max(1, len(methods)) / 2, 3.6))
    ax = fig.subplots()
    width = 0.8 / len(methods)
    colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
    for j, m in enumerate(methods):
        data = [_values(rows, m, f"dice {s}") for s in names]
        pos = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(names))]
        parts = ax.boxplot([d if len(d) else [np.nan] for d in data], positions=pos,
                           widths=width * 0.9, patch_artist=True, showfliers=False)
        for patch in parts["boxes"]:
            patch.set_facecolor(colours[j % len(colours)])
        ax.plot([], [], color=colours[j % len(colours)], lw=6, label=m)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel("Dice")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, out)


def run_evaluation(pairs: Sequence[Pair], methods: Sequence[Method], out_dir, *,
                   n_figure: int = 4, progress: bool = True) -> dict[str, Any]:
    """Evaluate, then write ``pairs.csv``, ``table.md`` and the figures into ``out_dir``."""
    from ..viz.figures import pick_pairs, registration_panel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    structures = structures_for(pairs)
    shown = pick_pairs(list(pairs), n_figure)
    rows, kept = evaluate(pairs, methods, structures, progress=progress,
                          keep=[p.id for p in shown])
    names = [m.name for m in methods]
    write_rows_csv(out / "pairs.csv", rows)
    table = format_table(rows, names, structures)
    atomic_write_text(out / "table.md", table)
    panel = []
    for pair in shown:
        entry = kept.get(pair.id, {})
        ok = [m for m in names if m in entry]
        if not ok:
            continue
        panel.append({"moving": pair.moving, "fixed": pair.fixed,
                      "fixed_labels": pair.fixed_labels, "title": f"({pair.group})",
                      "moved": {m: entry[m]["moved"] for m in ok},
                      "jacobian": {m: entry[m]["jacobian"] for m in ok}})
    # identity adds nothing to the panel: its moved image is the moving image, det J = 1
    panel_methods = [m for m in names if m != "identity" and all(m in row["moved"] for row in panel)]
    if panel and panel_methods:
        registration_panel(panel, out / "registration.png", methods=panel_methods)
    if any(k.startswith("dice ") for r in rows for k in r):
        dice_boxplot(rows, names, structures, out / "dice_boxplot.png")
    return {"rows": rows, "table": table,
            "failed": sum(1 for r in rows if r.get("error"))}
