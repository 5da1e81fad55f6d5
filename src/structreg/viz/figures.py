"""Figures. matplotlib is imported inside the functions and drawn on an Agg canvas
(``matplotlib.figure.Figure`` + ``FigureCanvasAgg``), so importing this module is
cheap and no global pyplot/backend state is touched. Files are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np

from ..errors import InputError
from ..io_utils import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGURE_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
# contour colour per label value (ACDC: 1 RV, 2 LV myocardium, 3 LV blood pool; brain: 1-4)
LABEL_COLOURS = ("#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#17becf", "#e377c2")
PAIRS_PER_ROW = 4


def figure_format(path: str | os.PathLike) -> str:
    """matplotlib format name for ``path``'s suffix; :class:`InputError` (a ``ValueError``)
    for unsupported ones."""
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise InputError(f"{path}: figure must end in {', '.join(FIGURE_FORMATS)}")
    return FIGURE_FORMATS[suffix]


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Atomically save a matplotlib ``Figure`` (format from the suffix)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fmt = figure_format(path)
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return Path(path)


def pick_pairs(pairs: Sequence, n: int) -> list:
    """Up to ``n`` pairs spread over subjects and groups: the middle pair of each
    subject first (groups interleaved), then the others in order."""
    by_subject: dict[str, list] = {}
    for pair in pairs:
        subject = pair.subject if pair.subject is not None else pair.id
        by_subject.setdefault(subject, []).append(pair)
    by_group: dict[str, list[str]] = {}
    for subject, members in by_subject.items():
        by_group.setdefault(str(members[0].group), []).append(subject)
    rank = {s: (i, g) for g, subjects in by_group.items() for i, s in enumerate(subjects)}
    subjects = sorted(by_subject, key=lambda s: rank[s])
    first = [by_subject[s][len(by_subject[s]) // 2] for s in subjects]
    chosen = {id(p) for p in first}
    rest = [p for p in pairs if id(p) not in chosen]
    return (first + rest)[: max(0, int(n))]


def show_image(
    ax: Axes, image: np.ndarray, labels: np.ndarray | None, mask: np.ndarray | None, title: str
) -> None:
    """Draw a 2-D image (rows = first array axis) with label and mask contours."""
    ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    if labels is not None:
        for value in np.unique(labels):
            if value == 0:
                continue
            colour = LABEL_COLOURS[(int(value) - 1) % len(LABEL_COLOURS)]
            ax.contour(
                (labels == value).astype(float), levels=[0.5], colors=[colour], linewidths=0.8
            )
    if mask is not None and mask.any() and not mask.all():
        ax.contour(
            mask.astype(float),
            levels=[0.5],
            colors=["#ffff00"],
            linewidths=0.6,
            linestyles="dashed",
        )
    ax.set_title(title, fontsize=7)
    ax.set_axis_off()


@overload
def _slice2d(array: np.ndarray) -> np.ndarray: ...


@overload
def _slice2d(array: None) -> None: ...


def _slice2d(array: np.ndarray | None) -> np.ndarray | None:
    """The middle slice along the first axis of a 3-D array (2-D arrays unchanged)."""
    if array is None or array.ndim == 2:
        return array
    return array[array.shape[0] // 2]


def pair_grid(
    pairs: Sequence, out: str | os.PathLike, *, n: int = 8, title: str | None = None
) -> Path:
    """Draw up to ``n`` pairs as moving | fixed panels with label contours and groups.

    Args:
        pairs: :class:`structreg.data.pair.Pair` records (2-D, or 3-D shown by their
            middle slice along the first axis); chosen by :func:`pick_pairs`.
        out: ``.png`` / ``.pdf`` / ``.svg`` path, written atomically.
        n: maximum number of pairs shown.
        title: figure title.
    Returns:
        ``out`` as a Path.
    """
    from matplotlib.figure import Figure

    figure_format(out)
    chosen = pick_pairs(pairs, n)
    if not chosen:
        raise InputError("nothing to draw: no pairs")
    per_row = min(PAIRS_PER_ROW, len(chosen))
    rows = -(-len(chosen) // per_row)
    fig = Figure(figsize=(2 * per_row * 1.7, rows * 2.1 + 0.3 + (0.4 if title else 0.0)))
    axes = fig.subplots(rows, 2 * per_row, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for k, pair in enumerate(chosen):
        row, col = divmod(k, per_row)
        group = f" [{pair.group}]" if pair.group is not None else ""
        mask = _slice2d(pair.mask)
        show_image(
            axes[row, 2 * col],
            _slice2d(pair.moving),
            _slice2d(pair.moving_labels),
            mask,
            f"{pair.id}{group}\nmoving",
        )
        show_image(
            axes[row, 2 * col + 1],
            _slice2d(pair.fixed),
            _slice2d(pair.fixed_labels),
            None,
            f"{pair.id}{group}\nfixed",
        )
    if title:
        fig.suptitle(title, fontsize=9)
    height = fig.get_figheight()
    bottom = (0.3 / height) if _legend(fig, chosen) else 0.0
    fig.tight_layout(rect=(0.0, bottom, 1.0, 1.0))
    return save_figure(fig, out)


def _legend(fig: Figure, pairs: Sequence) -> bool:
    """A legend of the contour colours (label values present, mask) below the panels."""
    from matplotlib.lines import Line2D

    values = sorted(
        {
            int(v)
            for p in pairs
            for lab in (p.moving_labels, p.fixed_labels)
            if lab is not None
            for v in np.unique(lab)
            if v != 0
        }
    )
    handles = [
        Line2D([], [], color=LABEL_COLOURS[(v - 1) % len(LABEL_COLOURS)], label=f"label {v}")
        for v in values
    ]
    if any(p.mask is not None for p in pairs):
        handles.append(Line2D([], [], color="#ffff00", linestyle="dashed", label="mask"))
    if handles:
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=len(handles),
            fontsize=7,
            frameon=False,
            bbox_to_anchor=(0.5, 0.0),
        )
    return bool(handles)


def registration_panel(
    rows: Sequence[dict],
    out: str | os.PathLike,
    *,
    methods: Sequence[str] = ("ours",),
    title: str | None = None,
) -> Path:
    """Figure-2-like panel: per row, moving | fixed | moved per method | det J per method.

    Args:
        rows: dicts with ``moving``, ``fixed`` (``(H, W)`` arrays), ``moved`` and
            ``jacobian`` (dicts method -> ``(H, W)`` array), optional ``fixed_labels``
            (contours drawn on the fixed and moved images) and ``title``.
        methods: method names in column order.
    Folded voxels (det J ≤ 0) are drawn in black on the Jacobian maps.
    """
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    from ..evaluation.metrics import det_folding_percent

    ncols = 2 + 2 * len(methods)
    fig = Figure(figsize=(2.1 * ncols, 2.2 * len(rows) + (0.4 if title else 0.0)))
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=2.0)
    image = None
    for r, row in enumerate(rows):
        contours = _slice2d(row.get("fixed_labels"))
        name = row.get("title", "")
        show_image(axes[r, 0], _slice2d(row["moving"]), None, None, f"moving {name}".strip())
        show_image(axes[r, 1], _slice2d(row["fixed"]), contours, None, "fixed")
        for m, method in enumerate(methods):
            show_image(
                axes[r, 2 + m], _slice2d(row["moved"][method]), contours, None, f"moved ({method})"
            )
            ax = axes[r, 2 + len(methods) + m]
            det = _slice2d(row["jacobian"][method])
            image = ax.imshow(np.clip(det, 0.0, 2.0), cmap="RdBu_r", norm=norm)
            folded = np.ma.masked_where(det > 0, np.ones_like(det))
            ax.imshow(folded, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            pct = det_folding_percent(det)
            ax.set_title(f"det J ({method}), {pct:.2f}% ≤ 0", fontsize=8)
            ax.set_axis_off()
    if image is not None:
        fig.colorbar(image, ax=list(axes[:, -1]), shrink=0.6, label="det J")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, out)
