"""The demonstration run by ``make demo`` (``structreg demo --out runs/demo``).

Trains the CVAE on the built-in cardiac phantom with the bundled ``demo.toml``
settings (minutes on a 2-core CPU, much less on a GPU), registers the held-out
test pairs (ED -> ES) in one forward pass each, and writes ``OUT/report.md`` with
a Figure-2-like panel and a table of Dice and non-positive Jacobians before
(identity) and after registration. A finished model in ``OUT/model`` is reused
(training resumes to its step budget, which is immediate when already reached).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..io.files import atomic_write_text
from ..models.cvae import ModelConfig
from ..training.config import RunConfig

DEMO_STRUCTURES = ("LV myocardium", "LV blood pool", "left heart")
COLUMNS = {"identity": "no registration", "ours": "structreg (ours)"}


def demo_table(rows: list[dict[str, Any]]) -> list[str]:
    """The demo's table: Dice, HD95, RMSE and folding of identity and ours (3 decimals)."""
    from ..core import metrics
    from ..evaluation.evaluate import mean_std, values

    def cells(key: str) -> str:
        return " | ".join(mean_std(values(rows, m, key), "{:.3f}") for m in COLUMNS)

    lines = ["| metric | " + " | ".join(COLUMNS.values()) + " |", "|---|---|---|"]
    lines += [f"| Dice {s} | {cells(metrics.dice_key(s))} |" for s in DEMO_STRUCTURES]
    lines += [f"| HD95 {s} (mm) | {cells(metrics.hd95_key(s))} |" for s in DEMO_STRUCTURES]
    lines.append(f"| RMSE | {cells(metrics.RMSE)} |")
    folded = values(rows, "ours", metrics.FOLDING)
    lines.append(
        f"| non-positive det J (%) | 0 (identity) | {np.mean(folded):.3f} "
        f"(max {np.max(folded):.3f}) |"
    )
    return lines


def _demo_config(seed: int, steps: int | None, device: str | None) -> RunConfig:
    """The bundled ``demo.toml`` with the demo's seed, step and device overrides."""
    from ..configs import resolve_config
    from ..training.config import load_config

    overrides = [f"train.seed={seed}"]
    overrides += [f"train.steps={steps}"] if steps is not None else []
    overrides += [f"train.device={device}"] if device is not None else []
    config = load_config(resolve_config("demo"), overrides)
    assert isinstance(config.model, ModelConfig)  # demo.toml describes our CVAE
    return config


def _report_lines(
    config: RunConfig,
    model: Any,
    counts: tuple[int, int, int],
    seed: int,
    subjects: int,
    train_seconds: float,
    per_pair_ms: float,
    batch: int,
    table: list[str],
) -> list[str]:
    """The text of ``report.md``."""
    assert isinstance(config.model, ModelConfig)
    size, t = config.model.image_size, config.train
    return [
        "# structreg demo: CVAE registration on the built-in cardiac phantom",
        "",
        f"- data: `phantom:cardiac`, seed {seed}, {subjects} subjects (one mid-ventricular "
        f"slice each), split by subject: {counts[0]} train / {counts[1]} val / "
        f"{counts[2]} test pairs, {size[0]}x{size[1]} at 2 mm; moving = ED, fixed = ES",
        f"- model: {model.num_parameters():,} trainable parameters, d = {config.model.latent_dim}, "
        f"exponentiation N = {config.model.steps}",
        f"- training: {t.steps} steps at batch {t.batch_size} (λ = {t.lam:g}, KL weight "
        f"{t.kl_weight:g}, Adam lr {t.lr:g}), {train_seconds:.0f} s this run on "
        f"{model_device(model)}",
        f"- registration: one forward pass per pair (z = μ), {per_pair_ms:.1f} ms per pair "
        f"in a batch of {batch}",
        "",
        f"Test split ({counts[2]} pairs), mean ± std:",
        "",
        *table,
        "",
        "![registration](registration.png)",
        "",
        "Columns: moving (ED), fixed (ES) with its label contours, moved (ED warped onto ES) "
        "with the same contours, and the Jacobian determinant of the transform "
        "(folded voxels in black).",
        "",
    ]


def run_demo(
    out: str | os.PathLike,
    seed: int = 0,
    subjects: int = 250,
    steps: int | None = None,
    device: str | None = None,
) -> Path:
    """Train (or reuse) the demo model, evaluate it and write ``out/report.md``."""
    from ..core import metrics
    from ..data import CARDIAC_STRUCTURES
    from ..data.spec import load_pairs
    from ..evaluation.evaluate import panel_rows, values
    from ..methods.ours import CVAERegistrar
    from ..training.run import DataSettings
    from ..viz.figures import registration_panel

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = _demo_config(seed, steps, device)
    assert isinstance(config.model, ModelConfig)
    size = tuple(config.model.image_size)
    train_pairs, val_pairs, test_pairs = (
        load_pairs("phantom:cardiac", split=split, seed=seed, size=size, n_subjects=subjects)
        for split in ("train", "val", "test")
    )
    print(
        f"cardiac phantom: {len(train_pairs)} training, {len(val_pairs)} validation, "
        f"{len(test_pairs)} test pairs ({size[0]}x{size[1]} at {train_pairs[0].spacing[0]:g} mm)"
    )

    settings = DataSettings(
        size=size,
        spacing=tuple(train_pairs[0].spacing),
        data="phantom:cardiac",
        seed=seed,
        subjects=subjects,
    )
    model, rows, kept, shown, train_seconds = train_and_register(
        config, (train_pairs, val_pairs, test_pairs), out, settings, CARDIAC_STRUCTURES, 4
    )
    ours_batch = CVAERegistrar(model).batch_size
    per_pair_ms = 1e3 * float(values(rows, "ours", metrics.SECONDS).mean())
    registration_panel(
        panel_rows(shown, kept, ["ours"]),
        out / "registration.png",
        title="Cardiac phantom, held-out ED→ES pairs",
    )
    lines = _report_lines(
        config,
        model,
        (len(train_pairs), len(val_pairs), len(test_pairs)),
        seed,
        subjects,
        train_seconds,
        per_pair_ms,
        min(len(test_pairs), ours_batch),
        demo_table(rows),
    )
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines))
    print("\n".join(lines))
    return report


def train_and_register(
    config: RunConfig,
    splits: tuple[list[Any], list[Any], list[Any]],
    out: Path,
    settings: Any,
    structures: Any,
    n_shown: int,
) -> tuple[Any, list[dict[str, Any]], dict, list[Any], float]:
    """A demo's training (or resumed, finished run) in ``out/model`` and its one-pass
    registration of the test pairs next to no registration.

    Returns:
        ``(model, rows, kept, shown, train_seconds)``: the trained model, the metric rows
        of identity and ours, the kept images of the ``n_shown`` pairs picked for the
        figure, those pairs, and the training's wall time this run (s).
    """
    from ..evaluation.evaluate import evaluate
    from ..methods.identity import Identity
    from ..methods.ours import CVAERegistrar
    from ..training.checkpoint import load_model
    from ..training.engine import train
    from ..training.run import RunFolder
    from ..viz.figures import pick_pairs

    train_pairs, val_pairs, test_pairs = splits
    run = RunFolder(out / "model")
    t0 = time.perf_counter()
    train(
        config.model,
        config.train,
        train_pairs,
        val_pairs,
        run.path,
        resume=run.holds_run(),
        data_settings=settings,
    )
    train_seconds = time.perf_counter() - t0
    model, _ = load_model(run.path, config.train.device)
    shown = pick_pairs(test_pairs, n_shown)
    rows, kept = evaluate(
        test_pairs,
        [Identity(), CVAERegistrar(model)],
        dict(structures),
        progress=False,
        keep=[p.id for p in shown],
    )
    return model, rows, kept, shown, train_seconds


def model_device(model: Any) -> str:
    """Device the model's parameters are on, as text."""
    return str(next(model.parameters()).device)


# How far the demo's table may move across machines (CPU kernels differ in the last
# digits, which 300 training steps amplify). A fresh clone on another 2-core Xeon
# differed from the README by at most 0.002 Dice and 0.011 mm HD95.
ACROSS_MACHINES = {"Dice": 0.01, "HD95": 0.15, "RMSE": 0.005}


def table_means(text: str) -> dict[tuple[str, str], float]:
    """``(metric, column) -> mean`` of the markdown table(s) of ``text`` whose rows are
    ``| metric | mean ± std | ... |`` (a demo report or the README)."""
    out: dict[tuple[str, str], float] = {}
    header: list[str] = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.lstrip().startswith("|") or len(cells) < 2:
            header = []
            continue
        if cells[0] == "metric":
            header = cells
            continue
        for column, cell in zip(header[1:], cells[1:], strict=False):
            mean, sep, _ = cell.replace("*", "").partition("±")
            if sep:
                try:
                    out[cells[0], column] = float(mean)
                except ValueError:
                    continue
    return out


def table_differences(
    report: str, reference: str, tolerances: dict[str, float] | None = None
) -> list[str]:
    """The rows of the demo table in ``report`` whose means differ from ``reference``'s
    by more than the tolerance of their metric (first word: Dice, HD95, RMSE).

    Returns:
        One line per difference; empty when the tables agree (rows missing from
        either side are differences too).
    """
    tolerances = tolerances or ACROSS_MACHINES
    a, b = table_means(report), table_means(reference)
    keys = [k for k in b if k[0].split()[0] in tolerances and k[1] in COLUMNS.values()]
    if not keys:
        return ["the reference has no demo table"]
    out = []
    for key in keys:
        tol = tolerances[key[0].split()[0]]
        if key not in a:
            out.append(f"{key[0]} ({key[1]}): missing from the report")
        elif abs(a[key] - b[key]) > tol + 1e-12:
            out.append(f"{key[0]} ({key[1]}): {a[key]:g} vs {b[key]:g} (tolerance {tol:g})")
    return out
