"""Figures. matplotlib is imported inside the functions and drawn on an Agg canvas
(``matplotlib.figure.Figure`` + ``FigureCanvasAgg``), so importing this module is
cheap and no global pyplot/backend state is touched. Files are written atomically.

The panel figures (:func:`pair_grid`, :func:`registration_panel`) place every axes in
its own slot, sized in inches (title band above each image, a dedicated column for
the colour bar, a band for the legend), and size the figure from the number of rows
and columns, so titles, colour bar, legend and suptitle never overlap the images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np

from ..errors import InputError
from ..io.files import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

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
    ax: Axes,
    image: np.ndarray,
    labels: np.ndarray | None,
    mask: np.ndarray | None,
    title: str,
    pixel_aspect: float = 1.0,
) -> None:
    """Draw a 2-D image (rows = first array axis) with label and mask contours; a 3-D
    volume is drawn by its axial middle slice (:func:`display_slice`).
    ``pixel_aspect``: a pixel's height / width in mm (anisotropic voxels)."""
    image, labels, mask = display_slice(image), display_slice(labels), display_slice(mask)
    ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect=pixel_aspect)
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


#: The orthogonal views of a volume in (x, y, z) voxel order (RAS, as the phantoms and
#: MNI space): the axis each view cuts at its middle.
VIEWS = (("axial", 2), ("coronal", 1), ("sagittal", 0))


def view_slice(array: np.ndarray | None, axis: int) -> np.ndarray | None:
    """The middle slice of a 3-D ``array`` across ``axis``, oriented for display
    (the slice's second axis upwards, e.g. anterior in an axial view, superior in the
    coronal and sagittal ones)."""
    if array is None:
        return None
    cut = np.take(np.asarray(array), array.shape[axis] // 2, axis=axis)
    return np.flipud(cut.T)


@overload
def display_slice(array: np.ndarray) -> np.ndarray: ...


@overload
def display_slice(array: None) -> None: ...


def display_slice(array: np.ndarray | None) -> np.ndarray | None:
    """A 2-D array as it is; a 3-D volume's axial middle slice (:func:`view_slice` across
    axis 2), for figures that show one image per panel."""
    if array is None or np.ndim(array) != 3:
        return array
    return view_slice(np.asarray(array), 2)


def orthogonal_rows(rows: Sequence[dict]) -> list[dict]:
    """Rows of :func:`registration_figure` with every 3-D row replaced by three rows:
    its axial, coronal and sagittal middle slices (:data:`VIEWS`), each with the
    ``pixel_aspect`` its row's ``spacing`` (mm per axis, optional) gives; 2-D rows
    unchanged."""
    out: list[dict] = []
    for row in rows:
        if np.ndim(row["moving"]) != 3:
            out.append(dict(row))
            continue
        spacing = [float(v) for v in row.get("spacing") or (1.0, 1.0, 1.0)]
        for view, axis in VIEWS:
            across, up = (a for a in range(3) if a != axis)  # view_slice's columns, rows
            out.append(
                {
                    **row,
                    "title": f"{row.get('title') or ''} {view}".strip(),
                    "pixel_aspect": spacing[up] / spacing[across],
                    "moving": view_slice(row["moving"], axis),
                    "fixed": view_slice(row["fixed"], axis),
                    "fixed_labels": view_slice(row.get("fixed_labels"), axis),
                    "moved": {m: view_slice(a, axis) for m, a in row["moved"].items()},
                    "jacobian": {m: view_slice(a, axis) for m, a in row["jacobian"].items()},
                }
            )
    return out


# Layout of the panel figures, in inches. Every axes gets a fixed slot (title band
# above the image) placed explicitly, so nothing can overlap whatever the number of
# rows, pairs or methods: the figure grows instead.
PANEL = 1.6  # width of one image panel
MARGIN = 0.1  # around the figure
GAP = 0.08  # between neighbouring panels
GROUP_GAP = 0.2  # between panel groups (pairs; fixed | moved | det J)
ROW_GAP = 0.12  # between rows of panels
TITLE_SIZE = 7  # points; panel titles (as in show_image)
SUPTITLE_SIZE = 10
COLORBAR_GAP = 0.15
COLORBAR_WIDTH = 0.13
COLORBAR_SPACE = 0.55  # right of the colour bar: tick labels and the "det J" label
COLORBAR_MAX = 4.5  # longest colour bar


class _Text:
    """Measures text (inches) on a scratch Agg canvas and wraps it to a width."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self._fig = Figure(dpi=72)
        self._renderer = FigureCanvasAgg(self._fig).get_renderer()
        self._sizes: dict[tuple[str, float], tuple[float, float]] = {}

    def size(self, text: str, fontsize: float) -> tuple[float, float]:
        """(width, height) of ``text`` in inches (multi-line text included)."""
        key = (text, fontsize)
        if key not in self._sizes:
            artist = self._fig.text(0.0, 0.0, text, fontsize=fontsize)
            box = artist.get_window_extent(self._renderer)
            artist.remove()
            self._sizes[key] = (box.width / 72.0, box.height / 72.0)
        return self._sizes[key]

    def wrap(self, text: str, fontsize: float, width: float) -> str:
        """``text`` with line breaks so that every line is at most ``width`` inches wide
        (at word boundaries where possible, inside over-long words otherwise)."""
        lines: list[str] = []
        for paragraph in text.split("\n"):
            line = ""
            for word in paragraph.split():
                candidate = f"{line} {word}" if line else word
                if self.size(candidate, fontsize)[0] <= width:
                    line = candidate
                    continue
                if line:
                    lines.append(line)
                line = word
                while len(line) > 1 and self.size(line, fontsize)[0] > width:
                    k = len(line) - 1
                    while k > 1 and self.size(line[:k], fontsize)[0] > width:
                        k -= 1
                    lines.append(line[:k])
                    line = line[k:]
            lines.append(line)
        return "\n".join(lines)

    def height(self, texts: Sequence[str], fontsize: float) -> float:
        """Height (inches) of the tallest of ``texts``; 0 for none."""
        return max((self.size(t, fontsize)[1] for t in texts if t), default=0.0)


def _title_band(text: _Text, titles: Sequence[str]) -> float:
    """Height (inches) above a panel taken by its title (with the axes' title pad)."""
    from matplotlib import rcParams

    tallest = text.height(titles, TITLE_SIZE)
    if tallest == 0.0:
        return 0.0
    return tallest + (float(rcParams["axes.titlepad"]) + 2.0) / 72.0


def _aspect(*arrays: np.ndarray | None, pixel_aspect: float = 1.0) -> float:
    """Height / width of the tallest 2-D array (pixels of ``pixel_aspect`` height /
    width), kept within [0.4, 2.5]."""
    ratios = [
        pixel_aspect * a.shape[0] / a.shape[1] for a in arrays if a is not None and a.ndim == 2
    ]
    return float(np.clip(max(ratios, default=1.0), 0.4, 2.5))


def _column_lefts(widths: Sequence[float], gaps: Sequence[float], left: float) -> list[float]:
    """Left edges of columns of ``widths`` separated by ``gaps`` (one fewer), from ``left``."""
    lefts = [left]
    for width, gap in zip(widths[:-1], gaps, strict=True):
        lefts.append(lefts[-1] + width + gap)
    return lefts


def _add_axes(fig: Figure, left: float, top: float, width: float, height: float) -> Axes:
    """Axes at ``left``/``top`` inches from the figure's top-left corner."""
    fig_w, fig_h = fig.get_size_inches()
    return fig.add_axes((left / fig_w, 1.0 - (top + height) / fig_h, width / fig_w, height / fig_h))


def _suptitle(fig: Figure, title: str, fontsize: float) -> None:
    """``title`` centred at the top margin of ``fig`` (already wrapped to its width)."""
    fig.suptitle(title, fontsize=fontsize, y=1.0 - MARGIN / fig.get_figheight(), va="top")


def pair_figure(pairs: Sequence, *, n: int = 8, title: str | None = None) -> Figure:
    """The figure of :func:`pair_grid` (not saved): up to ``n`` pairs, ``PAIRS_PER_ROW``
    a row, each as moving | fixed panels, a legend of the contours at the bottom."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    chosen = pick_pairs(pairs, n)
    if not chosen:
        raise InputError("nothing to draw: no pairs")
    per_row = min(PAIRS_PER_ROW, len(chosen))
    rows = [chosen[i : i + per_row] for i in range(0, len(chosen), per_row)]
    text = _Text()

    widths = [PANEL] * (2 * per_row)
    gaps = [GAP if k % 2 == 0 else GROUP_GAP for k in range(2 * per_row - 1)]
    lefts = _column_lefts(widths, gaps, MARGIN)
    width = lefts[-1] + PANEL + MARGIN

    suptitle = text.wrap(title, SUPTITLE_SIZE, width - 2 * MARGIN) if title else ""
    top = MARGIN + (text.height([suptitle], SUPTITLE_SIZE) + 0.08 if suptitle else 0.0)
    titles: list[list[tuple[str, str]]] = []
    for row in rows:
        titles.append([])
        for pair in row:
            group = f" [{pair.group}]" if pair.group is not None else ""
            name = text.wrap(f"{pair.id}{group}", TITLE_SIZE, PANEL)
            titles[-1].append((f"{name}\nmoving", f"{name}\nfixed"))
    bands = [_title_band(text, [t for both in row for t in both]) for row in titles]
    heights = [PANEL * _aspect(*(_slice2d(p.moving) for p in row)) for row in rows]
    tops = _row_tops(top, bands, heights)

    fig = Figure(figsize=(width, tops[-1] + bands[-1] + heights[-1] + MARGIN))
    legend_height = _legend(fig, chosen, width - 2 * MARGIN, FigureCanvasAgg(fig))
    if legend_height:
        fig.set_size_inches(width, fig.get_figheight() + legend_height)
    for row, row_titles, row_top, band, height in zip(
        rows, titles, tops, bands, heights, strict=True
    ):
        for k, (pair, (title_moving, title_fixed)) in enumerate(zip(row, row_titles, strict=True)):
            mask = _slice2d(pair.mask)
            show_image(
                _add_axes(fig, lefts[2 * k], row_top + band, PANEL, height),
                _slice2d(pair.moving),
                _slice2d(pair.moving_labels),
                mask,
                title_moving,
            )
            show_image(
                _add_axes(fig, lefts[2 * k + 1], row_top + band, PANEL, height),
                _slice2d(pair.fixed),
                _slice2d(pair.fixed_labels),
                None,
                title_fixed,
            )
    if suptitle:
        _suptitle(fig, suptitle, SUPTITLE_SIZE)
    return fig


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
    figure_format(out)
    return save_figure(pair_figure(pairs, n=n, title=title), out)


def _legend(fig: Figure, pairs: Sequence, width: float, canvas: FigureCanvasAgg) -> float:
    """A legend of the contour colours (label values present, named by the pairs'
    label table, and the mask) at the bottom of
    ``fig``, in as many columns as fit in ``width`` inches; returns the height (inches)
    it takes from the bottom edge (0 without a legend)."""
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
    table = next((p.label_table for p in pairs if getattr(p, "label_table", None)), None)
    names = table.names() if table is not None else {}
    handles = [
        Line2D(
            [],
            [],
            color=LABEL_COLOURS[(v - 1) % len(LABEL_COLOURS)],
            label=names.get(v, f"label {v}"),
        )
        for v in values
    ]
    if any(p.mask is not None for p in pairs):
        handles.append(Line2D([], [], color="#ffff00", linestyle="dashed", label="mask"))
    if not handles:
        return 0.0
    renderer = canvas.get_renderer()
    for ncol in range(len(handles), 0, -1):
        legend = fig.legend(
            handles=handles,
            loc="lower center",
            ncol=ncol,
            fontsize=TITLE_SIZE,
            frameon=False,
            bbox_to_anchor=(0.5, 0.0),
        )
        box = legend.get_window_extent(renderer)
        if box.width / fig.dpi <= width or ncol == 1:
            return float(box.y1) / fig.dpi
        legend.remove()
    return 0.0  # not reached


def registration_figure(
    rows: Sequence[dict], *, methods: Sequence[str] = ("ours",), title: str | None = None
) -> Figure:
    """The figure of :func:`registration_panel` (not saved); see there."""
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    methods = list(methods)
    if not rows:
        raise InputError("nothing to draw: no rows")
    rows = orthogonal_rows(rows)  # a volume: axial, coronal and sagittal rows
    if not methods:
        raise InputError("nothing to draw: no methods")
    text = _Text()
    lefts, colorbar_left, width = _registration_columns(len(methods))
    suptitle = text.wrap(title, SUPTITLE_SIZE, width - 2 * MARGIN) if title else ""
    top = MARGIN + (text.height([suptitle], SUPTITLE_SIZE) + 0.08 if suptitle else 0.0)
    slices = [_registration_row(row, methods, text) for row in rows]
    bands = [_title_band(text, s["titles"]) for s in slices]
    heights = [PANEL * _aspect(s["moving"], pixel_aspect=s["pixel_aspect"]) for s in slices]
    tops = _row_tops(top, bands, heights)
    bottom = tops[-1] + bands[-1] + heights[-1]

    fig = Figure(figsize=(width, bottom + MARGIN))
    norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=2.0)
    image = None
    for s, row_top, band, height in zip(slices, tops, bands, heights, strict=True):
        axes = [_add_axes(fig, left, row_top + band, PANEL, height) for left in lefts]
        image = _draw_registration_row(axes, s, methods, norm)
    if image is not None:
        _det_colorbar(fig, image, colorbar_left, tops[0] + bands[0], bottom)
    if suptitle:
        _suptitle(fig, suptitle, SUPTITLE_SIZE)
    return fig


def _registration_columns(n_methods: int) -> tuple[list[float], float, float]:
    """Columns of :func:`registration_figure` (moving, fixed | moved per method | det J
    per method), in inches: the left edge of each, the left edge of the colour bar and
    the figure width."""
    ncols = 2 + 2 * n_methods
    gaps = [GAP] * (ncols - 1)
    gaps[1] = GROUP_GAP
    gaps[1 + n_methods] = GROUP_GAP
    lefts = _column_lefts([PANEL] * ncols, gaps, MARGIN)
    colorbar_left = lefts[-1] + PANEL + COLORBAR_GAP
    width = colorbar_left + COLORBAR_WIDTH + COLORBAR_SPACE + MARGIN
    return lefts, colorbar_left, width


def _registration_row(row: dict, methods: Sequence[str], text: _Text) -> dict:
    """The 2-D panels of one row of :func:`registration_figure` (``moving``, ``fixed``,
    ``labels``, ``moved`` and ``det`` per method), its panel titles (wrapped to the
    panel width; the det J titles give the % of voxels with det J ≤ 0) and its
    ``pixel_aspect``."""
    from ..core.metrics import det_folding_percent

    det = {m: _slice2d(np.asarray(row["jacobian"][m], dtype=float)) for m in methods}
    name = row.get("title") or ""
    panel_titles = [f"moving {name}".strip(), "fixed"]
    panel_titles += [f"moved ({m})" for m in methods]
    panel_titles += [f"det J ({m})\n{det_folding_percent(det[m]):.2f}% ≤ 0" for m in methods]
    return {
        "moving": _slice2d(row["moving"]),
        "fixed": _slice2d(row["fixed"]),
        "labels": _slice2d(row.get("fixed_labels")),
        "moved": {m: _slice2d(row["moved"][m]) for m in methods},
        "det": det,
        "titles": [text.wrap(t, TITLE_SIZE, PANEL) for t in panel_titles],
        "pixel_aspect": float(row.get("pixel_aspect", 1.0)),
    }


def _row_tops(top: float, bands: Sequence[float], heights: Sequence[float]) -> list[float]:
    """Top edge (inches) of each row of panels, from ``top``: each row takes its title
    band and image height, then ``ROW_GAP``."""
    tops = [top]
    for band, height in zip(bands[:-1], heights[:-1], strict=True):
        tops.append(tops[-1] + band + height + ROW_GAP)
    return tops


def _draw_registration_row(
    axes: Sequence[Axes], s: dict, methods: Sequence[str], norm: Normalize
) -> AxesImage:
    """Draw one row of :func:`registration_figure` (see :func:`_registration_row`) on its
    ``axes`` (moving, fixed, moved per method, det J per method); folded voxels
    (det J ≤ 0) in black. Returns the last det J image (for the colour bar)."""
    nm = len(methods)
    titles, px = s["titles"], s["pixel_aspect"]
    show_image(axes[0], s["moving"], None, None, titles[0], px)
    show_image(axes[1], s["fixed"], s["labels"], None, titles[1], px)
    image = None
    for m, method in enumerate(methods):
        show_image(axes[2 + m], s["moved"][method], s["labels"], None, titles[2 + m], px)
        ax = axes[2 + nm + m]
        det = s["det"][method]
        image = ax.imshow(
            np.clip(det, 0.0, 2.0),
            cmap="RdBu_r",
            norm=norm,
            interpolation="nearest",
            aspect=px,
        )
        # folded voxels (det J ≤ 0) in black
        folded = np.ma.masked_where(det > 0, np.zeros_like(det))
        ax.imshow(folded, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect=px)
        ax.set_title(titles[2 + nm + m], fontsize=TITLE_SIZE)
        ax.set_axis_off()
    assert image is not None  # methods is not empty
    return image


def _det_colorbar(fig: Figure, image: AxesImage, left: float, first: float, bottom: float) -> None:
    """The det J colour bar (0-2) in a dedicated slot at ``left`` inches, along the image
    rows from ``first`` to ``bottom`` inches from the top (centred, at most
    ``COLORBAR_MAX`` long)."""
    length = min(bottom - first, COLORBAR_MAX)
    cax = _add_axes(fig, left, first + (bottom - first - length) / 2, COLORBAR_WIDTH, length)
    colorbar = fig.colorbar(image, cax=cax, ticks=[0.0, 0.5, 1.0, 1.5, 2.0])
    colorbar.ax.tick_params(labelsize=TITLE_SIZE)
    colorbar.set_label("det J", fontsize=TITLE_SIZE + 1)


def registration_panel(
    rows: Sequence[dict],
    out: str | os.PathLike,
    *,
    methods: Sequence[str] = ("ours",),
    title: str | None = None,
) -> Path:
    """Figure-2-like panel: per row, moving | fixed | moved per method | det J per method,
    one shared det J colour bar (0-2, centred at 1) right of the last column.

    Args:
        rows: dicts with ``moving``, ``fixed`` (``(H, W)`` arrays), ``moved`` and
            ``jacobian`` (dicts method -> ``(H, W)`` array), optional ``fixed_labels``
            (contours drawn on the fixed and moved images) and ``title``. A row of
            ``(D, H, W)`` volumes is drawn as three rows: its axial, coronal and
            sagittal middle slices (:func:`orthogonal_rows`), in mm proportions when
            the row gives its ``spacing``.
        methods: method names in column order.
    Folded voxels (det J ≤ 0) are drawn in black on the Jacobian maps. The figure
    grows with the number of rows and methods; titles are wrapped to the panel width.
    """
    figure_format(out)
    return save_figure(registration_figure(rows, methods=methods, title=title), out)
