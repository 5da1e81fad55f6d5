"""Layout of the panel figures: no axes, title, colour bar, legend or suptitle overlaps
another or leaves the figure, at any number of methods, rows and pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from structreg.data import Pair
from structreg.viz.figures import pair_figure, pair_grid, registration_figure, registration_panel

METHODS = ["ours", "voxelmorph", "lcc-demons", "a-rather-long-method-label", "syn", "m6"]
EPS = 0.5  # pixels


def _rows(n_rows: int, methods: list[str], size: int = 32) -> list[dict]:
    rng = np.random.default_rng(n_rows * 10 + len(methods))
    rows = []
    for r in range(n_rows):
        labels = np.zeros((size, size), np.int16)
        labels[8:20, 8:20] = 1
        labels[12:16, 12:16] = 2
        rows.append(
            {
                "moving": rng.random((size, size)),
                "fixed": rng.random((size, size)),
                "fixed_labels": labels,
                "title": f"(group{r})",
                "moved": {m: rng.random((size, size)) for m in methods},
                "jacobian": {m: rng.normal(1.0, 0.6, (size, size)) for m in methods},
            }
        )
    return rows


def _pairs(n: int, size: int = 32) -> list[Pair]:
    rng = np.random.default_rng(n)
    pairs = []
    for k in range(n):
        labels = np.zeros((size, size), np.int16)
        labels[4:14, 4:14] = 1
        labels[16:28, 10:20] = 2
        labels[20:24, 22:30] = 3
        mask = np.zeros((size, size), np.uint8)
        mask[2:30, 2:30] = 1
        pairs.append(
            Pair(
                moving=rng.random((size, size)).astype(np.float32),
                fixed=rng.random((size, size)).astype(np.float32),
                spacing=(2.0, 2.0),
                id=f"patient{k:03d}_slice05",
                subject=f"patient{k:03d}",
                group=("NOR", "DCM", "HCM")[k % 3],
                moving_labels=labels,
                fixed_labels=labels,
                mask=mask if k % 2 == 0 else None,
            )
        )
    return pairs


def _overlap(a: Bbox, b: Bbox) -> bool:
    return a.x0 < b.x1 - EPS and b.x0 < a.x1 - EPS and a.y0 < b.y1 - EPS and b.y0 < a.y1 - EPS


def _inside(box: Bbox, fig_box: Bbox) -> bool:
    return (
        box.x0 >= fig_box.x0 - EPS
        and box.y0 >= fig_box.y0 - EPS
        and box.x1 <= fig_box.x1 + EPS
        and box.y1 <= fig_box.y1 + EPS
    )


def check_layout(fig: Figure, max_margin: float = 0.35) -> dict[str, Bbox]:
    """Asserts that no two axes (with titles, tick labels) nor the legends and the
    suptitle overlap, that all lie inside the figure and leave no wide empty margin
    (``max_margin`` inches); returns the named boxes."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()
    fig_box = fig.bbox
    boxes: dict[str, Bbox] = {}
    for k, ax in enumerate(fig.axes):
        boxes[f"axes {k} ({ax.get_title()!r}, {ax.get_label()!r})"] = ax.get_tightbbox(renderer)
        if ax.get_title():
            title_box = ax.title.get_window_extent(renderer)
            assert _inside(title_box, fig_box), f"title {ax.get_title()!r} leaves the figure"
    for k, legend in enumerate(fig.legends):
        boxes[f"legend {k}"] = legend.get_window_extent(renderer)
    if fig._suptitle is not None and fig._suptitle.get_text():
        boxes["suptitle"] = fig._suptitle.get_window_extent(renderer)
    for name, box in boxes.items():
        assert _inside(box, fig_box), f"{name} {box} leaves the figure {fig_box}"
    for (name_a, a), (name_b, b) in itertools.combinations(boxes.items(), 2):
        assert not _overlap(a, b), f"{name_a} {a} overlaps {name_b} {b}"
    union = Bbox.union(list(boxes.values()))
    margin = max_margin * fig.dpi
    assert union.x0 - fig_box.x0 < margin and fig_box.x1 - union.x1 < margin
    assert union.y0 - fig_box.y0 < margin and fig_box.y1 - union.y1 < margin
    return boxes


@pytest.mark.parametrize("n_rows", [1, 3])
@pytest.mark.parametrize("n_methods", range(1, 7))
def test_registration_figure_layout(n_methods: int, n_rows: int) -> None:
    methods = METHODS[:n_methods]
    fig = registration_figure(_rows(n_rows, methods), methods=methods, title="A suptitle")
    ncols = 2 + 2 * n_methods
    assert len(fig.axes) == n_rows * ncols + 1  # + the colour bar
    colorbar = fig.axes[-1]
    assert colorbar.get_ylabel() == "det J"
    titles = [ax.get_title() for ax in fig.axes[:ncols]]
    assert titles[0].startswith("moving") and titles[1] == "fixed"
    assert all(t.startswith("moved") for t in titles[2 : 2 + n_methods])
    assert all(t.startswith("det J") and "≤ 0" in t for t in titles[2 + n_methods :])
    check_layout(fig)
    # the panels of one row share a size and a baseline, the colour bar is right of all
    boxes = [ax.get_position() for ax in fig.axes[:ncols]]
    assert len({round(b.width, 6) for b in boxes}) == 1
    assert len({round(b.y0, 6) for b in boxes}) == 1
    assert colorbar.get_position().x0 > max(b.x1 for b in boxes)


def test_registration_folded_black_and_norm() -> None:
    rows = _rows(1, ["ours"])
    rows[0]["jacobian"]["ours"][:4, :4] = -1.0
    fig = registration_figure(rows, methods=["ours"])
    det_ax = fig.axes[3]
    base, folded = det_ax.get_images()
    assert base.norm.vmin == 0.0 and base.norm.vmax == 2.0 and base.norm.vcenter == 1.0
    rgba = folded.to_rgba(folded.get_array())
    assert np.allclose(rgba[:4, :4, :3], 0.0)  # black
    det = rows[0]["jacobian"]["ours"]
    assert np.array_equal(folded.get_array().mask, det > 0)


def test_registration_long_titles_wrap() -> None:
    methods = ["an-extremely-long-method-label-without-spaces-at-all", "b c d e f g h i j k l"]
    rows = _rows(2, methods)
    rows[0]["title"] = "(a group name that is far too long for one panel)"
    fig = registration_figure(rows, methods=methods, title="x " * 80)
    check_layout(fig)


def test_registration_non_square_and_3d() -> None:
    rng = np.random.default_rng(0)
    shape = (5, 20, 40)
    row = {
        "moving": rng.random(shape),
        "fixed": rng.random(shape),
        "moved": {"ours": rng.random(shape)},
        "jacobian": {"ours": rng.normal(1.0, 0.5, shape)},
    }
    fig = registration_figure([row], methods=["ours"])
    check_layout(fig)
    # a volume: three rows (axial, coronal, sagittal) of 4 panels, and the colour bar
    assert len(fig.axes) == 3 * 4 + 1
    titles = [ax.get_title() for ax in fig.axes]
    assert any("axial" in t for t in titles) and any("sagittal" in t for t in titles)


def test_orthogonal_views_cut_the_middle_of_each_axis() -> None:
    from structreg.viz.figures import VIEWS, orthogonal_rows, view_slice

    vol = np.zeros((5, 6, 7))
    vol[2, :, :] += 1  # the sagittal middle plane (axis 0)
    vol[:, 3, :] += 2  # coronal (axis 1)
    vol[:, :, 3] += 4  # axial (axis 2)
    for view, axis in VIEWS:
        cut = view_slice(vol, axis)
        assert cut.shape == tuple(n for a, n in enumerate(vol.shape) if a != axis)[::-1]
        assert cut.min() >= {"sagittal": 1, "coronal": 2, "axial": 4}[view]
    row = {"moving": vol, "fixed": vol, "moved": {"a": vol}, "jacobian": {"a": vol}}
    rows = orthogonal_rows([row, {**row, "moving": vol[0], "fixed": vol[0]}])
    assert [r.get("title") for r in rows] == ["axial", "coronal", "sagittal", None]
    assert rows[0]["moved"]["a"].shape == (6, 5)


def test_orthogonal_views_of_anisotropic_voxels_keep_their_mm_proportions() -> None:
    from structreg.viz.figures import orthogonal_rows, registration_figure

    vol = np.random.default_rng(0).random((48, 48, 12))  # 3 x 3 x 8 mm (slice axis last)
    row = {"moving": vol, "fixed": vol, "moved": {"a": vol}, "jacobian": {"a": vol + 1}}
    rows = orthogonal_rows([{**row, "spacing": (3.0, 3.0, 8.0)}])
    # axial: rows along y, columns along x; coronal / sagittal: rows along the slices
    assert [r["pixel_aspect"] for r in rows] == [1.0, 8.0 / 3.0, 8.0 / 3.0]
    fig = registration_figure([{**row, "spacing": (3.0, 3.0, 8.0)}], methods=["a"])
    check_layout(fig)
    sizes = [ax.get_window_extent() for ax in fig.axes[:-1]]
    axial, coronal = sizes[0], sizes[4]  # 4 panels per view row
    assert axial.height / axial.width == pytest.approx(1.0, rel=0.02)
    assert coronal.height / coronal.width == pytest.approx(12 * 8 / (48 * 3), rel=0.02)
    plain = registration_figure([row], methods=["a"]).axes[4].get_window_extent()
    assert plain.height / plain.width == pytest.approx(0.4, rel=0.02)  # 12 / 48, clipped


def test_registration_panel_writes(tmp_path) -> None:
    methods = METHODS[:2]
    out = registration_panel(_rows(2, methods), tmp_path / "reg.png", methods=methods)
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError):
        registration_panel(_rows(1, methods), tmp_path / "reg.gif", methods=methods)


@pytest.mark.parametrize("n", [1, 3, 8, 12])
@pytest.mark.parametrize("title", [None, "phantom:cardiac (test split)"])
def test_pair_figure_layout(n: int, title: str | None) -> None:
    fig = pair_figure(_pairs(n), n=n, title=title)
    assert len(fig.axes) == 2 * n
    assert len(fig.legends) == 1
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["label 1", "label 2", "label 3", "mask"]
    check_layout(fig)


def test_pair_figure_many_labels_narrow() -> None:
    pairs = _pairs(1)
    labels = np.arange(32 * 32, dtype=np.int16).reshape(32, 32) % 8
    pairs[0].moving_labels = labels
    fig = pair_figure(pairs, n=1, title="a long title " * 6)
    assert fig.legends[0]._ncols < 8  # wrapped onto more rows to fit
    check_layout(fig)


def test_pair_figure_no_legend(tmp_path) -> None:
    pairs = [Pair(moving=np.zeros((16, 16)), fixed=np.ones((16, 16)), spacing=(1.0, 1.0), id="p")]
    fig = pair_figure(pairs, n=4)
    assert not fig.legends
    check_layout(fig)
    assert pair_grid(pairs, tmp_path / "g.svg").stat().st_size > 0
