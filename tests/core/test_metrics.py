"""Metrics against cases with known answers and against MONAI."""

import math

import numpy as np
import pytest
import torch

from structreg.core.metrics import (
    dice,
    endpoint_error,
    folding_percent,
    hausdorff95,
    log_jacobian_std,
    rmse,
    structure_metrics,
    velocity_stats,
)


def disc(shape, centre, radius, value=1):
    yy, xx = np.indices(shape)
    return np.where((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2, value, 0)


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("spacing", [1.0, 2.0])
def test_hd95_of_concentric_discs_is_radius_difference(k, spacing):
    a = disc((80, 80), (40, 40), 15)
    b = disc((80, 80), (40, 40), 15 + k)
    hd = hausdorff95(a, b, (1,), spacing=(spacing, spacing))
    assert hd == pytest.approx(k * spacing, abs=0.5 * spacing)


def test_hd95_matches_monai():
    monai_metrics = pytest.importorskip("monai.metrics")
    a = disc((64, 64), (30, 34), 12)
    b = disc((64, 64), (33, 30), 10) + disc((64, 64), (12, 12), 4)
    ours = hausdorff95(a, b, (1,), spacing=(2.0, 1.5))
    ta = torch.from_numpy(np.stack([a == 0, a == 1]))[None].float()
    tb = torch.from_numpy(np.stack([b == 0, b == 1]))[None].float()
    theirs = monai_metrics.compute_hausdorff_distance(ta, tb, percentile=95, spacing=[2.0, 1.5])
    assert ours == pytest.approx(float(theirs), rel=0.05, abs=0.3)


def test_dice_known_overlaps():
    a = np.zeros((10, 10), int)
    b = np.zeros((10, 10), int)
    a[:, :5] = 1
    b[:, 2:7] = 1  # overlap 30, sizes 50 + 50
    assert dice(a, b, (1,)) == pytest.approx(0.6)
    assert dice(a, a, (1,)) == 1.0
    assert math.isnan(dice(a, b, (3,)))
    labels = np.array([[2, 3], [3, 0]])
    assert dice(labels, labels * (labels != 2), (2, 3)) == pytest.approx(2 * 2 / 5)


def test_folding_percent_of_known_region():
    disp = np.zeros((2, 20, 20))
    disp[0] = np.where(np.arange(20)[:, None] >= 10, -2.0 * (np.arange(20)[:, None] - 10), 0.0)
    # rows 11..19 have ∂u0/∂x0 = -2 (central or one-sided difference), row 10 averages to -1
    pct = folding_percent(disp)
    assert pct == pytest.approx(100 * 10 / 20)
    assert folding_percent(np.zeros((2, 8, 8))) == 0.0
    top = np.zeros((20, 20))
    top[:10] = 1
    assert folding_percent(disp, mask=top) == 0.0
    assert log_jacobian_std(np.zeros((2, 8, 8))) == 0.0


def test_rmse_velocity_and_endpoint():
    assert rmse(np.zeros((4, 4)), np.full((4, 4), 0.5)) == pytest.approx(0.5)
    v = np.zeros((2, 6, 6))
    v[0], v[1] = 3.0, 4.0
    stats = velocity_stats(v, spacing=(2.0, 2.0))
    assert stats["velocity_magnitude"] == pytest.approx(10.0)
    assert stats["velocity_gradient"] == pytest.approx(0.0)
    assert endpoint_error(v, np.zeros_like(v), spacing=(2.0, 1.0)) == pytest.approx(
        math.hypot(6, 4)
    )
    with pytest.raises(ValueError, match="rmse"):
        rmse(np.zeros((3, 3)), np.zeros((4, 4)))


def test_structure_metrics_keys():
    a = disc((40, 40), (20, 20), 8, value=3)
    m = structure_metrics(a, a, {"LV blood pool": (3,), "left heart": (2, 3)}, spacing=(2, 2))
    assert m["dice LV blood pool"] == 1.0 and m["hd95 left heart"] == 0.0
