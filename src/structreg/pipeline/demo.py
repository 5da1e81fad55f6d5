"""The demonstrations: ``structreg demo`` (``make demo``), 2-D and 3-D.

- 2-D (``structreg demo --out runs/demo``): trains the CVAE on the built-in cardiac
  phantom with the bundled ``demo.toml`` settings (minutes on a 2-core CPU, much less on
  a GPU), registers the held-out test pairs (ED -> ES) in one forward pass each.
- 3-D (``structreg demo --dims 3 --out runs/demo3d``): trains a small 3-D CVAE (the
  bundled ``brain3d.toml``) on whole-brain volumes of the built-in inter-subject brain
  phantom (``phantom:brain-inter`` volumes: MNI152 seen through each subject's random
  diffeomorphism and scanner, exact ground truth; 24x28x24 voxels at 6 mm) and registers
  the held-out test volumes.

Both write ``OUT/report.md`` with a table of Dice, HD95 and folding before (identity)
and after registration and a figure of registered test pairs (the 3-D one: axial,
coronal and sagittal views with det J). A finished model in ``OUT/model`` is reused
(training resumes to its step budget, which is immediate when already reached).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.labels import BRAIN_STRUCTURES, CARDIAC_STRUCTURES
from ..io.files import atomic_write_text
from ..models.cvae import ModelConfig
from ..training.config import RunConfig

DEMO_STRUCTURES = ("LV myocardium", "LV blood pool", "left heart")
COLUMNS = {"identity": "no registration", "ours": "structreg (ours)"}
DEMO_SUBJECTS = {2: 250, 3: 400}
"""Phantom subjects of each demo (split 70/10/20 by subject)."""


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


def demo3d_table(rows: list[dict[str, Any]]) -> list[str]:
    """Dice and HD95 per brain structure, endpoint error, RMSE and folding of identity
    and ours on the test volumes (mean ± std)."""
    from ..core import metrics
    from ..evaluation.evaluate import mean_std, values

    def cells(key: str, fmt: str = "{:.3f}") -> str:
        return " | ".join(mean_std(values(rows, m, key), fmt) for m in COLUMNS)

    lines = ["| metric | " + " | ".join(COLUMNS.values()) + " |", "|---|---|---|"]
    lines += [f"| Dice {s} | {cells(metrics.dice_key(s))} |" for s in BRAIN_STRUCTURES]
    lines += [
        f"| HD95 {s} (mm) | {cells(metrics.hd95_key(s), '{:.2f}')} |" for s in BRAIN_STRUCTURES
    ]
    lines.append(f"| endpoint error (mm) | {cells(metrics.EPE)} |")
    lines.append(f"| RMSE | {cells(metrics.RMSE, '{:.4f}')} |")
    lines.append(f"| % det J ≤ 0 | {cells(metrics.FOLDING)} |")
    lines.append(f"| seconds per volume | {cells(metrics.SECONDS)} |")
    return lines


def _config(name: str, seed: int, steps: int | None, device: str | None) -> RunConfig:
    """A bundled config (``demo`` or ``brain3d``) with the demo's seed, step and device
    overrides."""
    from ..configs import resolve_config
    from ..training.config import load_config

    overrides = [f"train.seed={seed}"]
    overrides += [f"train.steps={steps}"] if steps is not None else []
    overrides += [f"train.device={device}"] if device is not None else []
    config = load_config(resolve_config(name), overrides)
    assert isinstance(config.model, ModelConfig)  # the demo configs describe our CVAE
    return config


@dataclass(frozen=True)
class _Data:
    """A demo's pairs by split, what its run records, and how long they took to make."""

    splits: tuple[list[Any], list[Any], list[Any]]
    settings: Any
    seconds: float


def _cardiac_slices(size: tuple[int, ...], seed: int, subjects: int) -> _Data:
    """The 2-D demo's data: one mid-ventricular phantom slice per subject, ED -> ES."""
    from ..data.spec import load_pairs
    from ..training.run import DataSettings

    t0 = time.perf_counter()
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
    return _Data((train_pairs, val_pairs, test_pairs), settings, time.perf_counter() - t0)


def _brain_volumes(size: tuple[int, ...], seed: int, subjects: int) -> _Data:
    """The 3-D demo's data: inter-subject brain phantom volumes at 6 mm, split by cohort."""
    from ..data.dataset import split_by_subject
    from ..data.spec import load_pairs
    from ..training.run import DataSettings

    spacing = (6.0, 6.0, 6.0)
    t0 = time.perf_counter()
    every = load_pairs(
        "phantom:brain-inter",
        split="all",
        seed=seed,
        size=size,
        spacing=spacing,
        n_subjects=subjects,
    )
    parts = split_by_subject(every, seed=seed)
    seconds = time.perf_counter() - t0
    print(
        f"3-D brain phantom: {len(parts['train'])} training, {len(parts['val'])} validation, "
        f"{len(parts['test'])} test volumes ({'x'.join(map(str, size))} at {spacing[0]:g} mm, "
        f"{seconds:.0f} s)"
    )
    settings = DataSettings(
        size=size, spacing=spacing, data="phantom:brain-inter", seed=seed, subjects=subjects
    )
    return _Data((parts["train"], parts["val"], parts["test"]), settings, seconds)


@dataclass(frozen=True)
class _Demo:
    """What differs between the 2-D and the 3-D demo."""

    config: str
    load: Callable[[tuple[int, ...], int, int], _Data]
    structures: Any
    shown: int
    title: str
    report: Callable[..., list[str]]


def run_demo(
    out: str | os.PathLike,
    seed: int = 0,
    subjects: int | None = None,
    steps: int | None = None,
    device: str | None = None,
    dims: int = 2,
) -> Path:
    """Train (or reuse) a demo model, evaluate it and write ``out/report.md``.

    Args:
        out: the demo's folder (``model/`` the run, ``report.md``, ``registration.png``).
        seed: phantom and training seed.
        subjects: phantom subjects (None: :data:`DEMO_SUBJECTS`).
        steps: training steps (None: the bundled config's).
        device: where to train (None: the config's).
        dims: 2 (cardiac slices) or 3 (brain volumes).
    """
    from ..evaluation.evaluate import panel_rows
    from ..viz.figures import registration_panel

    demo = _DEMOS[dims]
    subjects = subjects or DEMO_SUBJECTS[dims]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = _config(demo.config, seed, steps, device)
    assert isinstance(config.model, ModelConfig)
    data = demo.load(tuple(config.model.image_size), seed, subjects)
    model, rows, kept, shown, train_seconds = train_and_register(
        config, data.splits, out, data.settings, demo.structures, demo.shown
    )
    registration_panel(
        panel_rows(shown, kept, ["ours"]), out / "registration.png", title=demo.title
    )
    lines = demo.report(config, model, data, seed, subjects, train_seconds, rows)
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines))
    print("\n".join(lines))
    return report


def _cardiac_report(
    config: RunConfig,
    model: Any,
    data: _Data,
    seed: int,
    subjects: int,
    train_seconds: float,
    rows: list[dict[str, Any]],
) -> list[str]:
    """The text of the 2-D demo's ``report.md``."""
    from ..core import metrics
    from ..evaluation.evaluate import values
    from ..methods.ours import CVAERegistrar

    assert isinstance(config.model, ModelConfig)
    size, t = config.model.image_size, config.train
    counts = [len(part) for part in data.splits]
    batch = min(counts[2], CVAERegistrar(model).batch_size)
    per_pair_ms = 1e3 * float(values(rows, "ours", metrics.SECONDS).mean())
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
        *demo_table(rows),
        "",
        "![registration](registration.png)",
        "",
        "Columns: moving (ED), fixed (ES) with its label contours, moved (ED warped onto ES) "
        "with the same contours, and the Jacobian determinant of the transform "
        "(folded voxels in black).",
        "",
    ]


def _volume_report(
    config: RunConfig,
    model: Any,
    data: _Data,
    seed: int,
    subjects: int,
    train_seconds: float,
    rows: list[dict[str, Any]],
) -> list[str]:
    """The text of the 3-D demo's ``report.md``."""
    from ..core import metrics
    from ..evaluation.evaluate import values

    assert isinstance(config.model, ModelConfig)
    counts = [len(part) for part in data.splits]
    grid, spacing = "x".join(map(str, config.model.image_size)), data.settings.spacing
    per_volume = float(values(rows, "ours", metrics.SECONDS).mean())
    t = config.train
    antisymmetric = ", antisymmetric velocity ½ (D(z_MF, M) − D(z_FM, F)) (a code of 2 d per pair)"
    return [
        "# structreg 3-D demo: CVAE registration of brain volumes",
        "",
        f"- data: `phantom:brain-inter` volumes, seed {seed}, {subjects} subjects in "
        f"cohorts of 4, split by cohort: {counts[0]} train / {counts[1]} val / "
        f"{counts[2]} test pairs, {grid} at {spacing[0]:g} mm (MNI x, y, z); "
        f"moving = one subject, fixed = another; generated in {data.seconds:.0f} s",
        f"- model: 3-D, {model.num_parameters():,} trainable parameters, "
        f"d = {config.model.latent_dim}, exponentiation N = {config.model.steps}"
        + (antisymmetric if config.model.antisymmetric else ""),
        f"- training: {t.steps} steps at batch {t.batch_size} "
        f"({'symmetric' if t.lcc_symmetric else 'one-sided'} LCC, λ = {t.lam:g}, KL weight "
        f"{t.kl_weight:g}, mask weight {t.mask_weight:g}, Adam lr {t.lr:g}), "
        f"{train_seconds:.0f} s this run on {model_device(model)}",
        f"- registration: one forward pass per volume (z = μ), {per_volume:.3f} s per volume",
        "",
        f"Test split ({counts[2]} volumes), mean ± std:",
        "",
        *demo3d_table(rows),
        "",
        "![registration](registration.png)",
        "",
        "Rows: the axial, coronal and sagittal middle slices of each shown volume. Columns: "
        "moving, fixed with its label contours, moved with the same contours, and the "
        "Jacobian determinant of the 3-D transform (folded voxels black).",
        "",
    ]


_DEMOS = {
    2: _Demo(
        "demo",
        _cardiac_slices,
        CARDIAC_STRUCTURES,
        4,
        "Cardiac phantom, held-out ED→ES pairs",
        _cardiac_report,
    ),
    3: _Demo(
        "brain3d",
        _brain_volumes,
        BRAIN_STRUCTURES,
        2,
        "3-D inter-subject brain phantom, held-out volume pairs",
        _volume_report,
    ),
}


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


def table_means(text: str, *, first: bool = False) -> dict[tuple[str, str], float]:
    """``(metric, column) -> mean`` of the markdown table(s) of ``text`` whose rows are
    ``| metric | mean ± std | ... |`` (a demo report or the README); a key seen twice
    keeps its first value. ``first``: only the first such table (the 2-D demo's)."""
    out: dict[tuple[str, str], float] = {}
    header: list[str] = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.lstrip().startswith("|") or len(cells) < 2:
            if first and header and out:
                break
            header = []
            continue
        if cells[0] == "metric":
            header = cells
            continue
        for column, cell in zip(header[1:], cells[1:], strict=False):
            mean, sep, _ = cell.replace("*", "").partition("±")
            if sep:
                try:
                    out.setdefault((cells[0], column), float(mean))
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
    a, b = table_means(report, first=True), table_means(reference, first=True)
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
