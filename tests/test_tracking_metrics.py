"""TAP-Vid metrics against hand-computed cases (traction.tracking.metrics)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from traction.errors import InvalidTrajectories
from traction.tracking.metrics import average_metrics, tapvid_metrics


def _two_point_case():
    """N=2, T=3 in native pixels; see the comments for each evaluated entry."""
    gt_xy = np.zeros((2, 3, 2))
    gt_vis = np.array([[1, 1, 1], [1, 1, 0]], np.float32)
    queries = np.array([[0, 0, 0], [1, 0, 0]], np.float32)
    pred_xy = np.zeros((2, 3, 2))
    pred_xy[0, 0] = [99, 0]       # query frame of point 0: never evaluated
    pred_xy[0, 1] = [1.5, 0]      # visible, 1.5 px off
    pred_xy[0, 2] = [3, 4]        # visible, 5 px off
    pred_xy[1, 0] = [0, 0.5]      # visible, 0.5 px off
    pred_xy[1, 2] = [0, 0]        # occluded in truth, predicted visible: a false positive
    pred_vis = np.ones((2, 3), np.float32)
    return pred_xy, pred_vis, gt_xy, gt_vis, queries


def test_hand_computed_case():
    m = tapvid_metrics(*_two_point_case(), resize_to=None)
    # 4 evaluated entries; visibility wrong only at (1, 2)
    assert m["occlusion_accuracy"] == pytest.approx(3 / 4)
    # 3 visible entries with errors 1.5, 5, 0.5
    expected_within = {1: 1 / 3, 2: 2 / 3, 4: 2 / 3, 8: 1.0, 16: 1.0}
    for d, frac in expected_within.items():
        assert m[f"pts_within_{d}"] == pytest.approx(frac)
    assert m["delta_avg"] == pytest.approx(11 / 15)
    # Jaccard = TP / (visible + FP); FP = predicted visible and (occluded in truth or too far)
    expected_jaccard = {1: 1 / 6, 2: 2 / 5, 4: 2 / 5, 8: 3 / 4, 16: 3 / 4}
    for d, jac in expected_jaccard.items():
        assert m[f"jaccard_{d}"] == pytest.approx(jac)
    assert m["average_jaccard"] == pytest.approx(np.mean(list(expected_jaccard.values())))


def test_threshold_is_strict():
    gt_xy = np.zeros((1, 2, 2))
    pred_xy = gt_xy.copy()
    pred_xy[0, 1] = [2.0, 0]                                      # exactly 2 px: not within 2
    m = tapvid_metrics(pred_xy, np.ones((1, 2)), gt_xy, np.ones((1, 2)), np.zeros(1), resize_to=None)
    assert m["pts_within_2"] == 0.0 and m["pts_within_4"] == 1.0


def test_distances_measured_in_256x256_frame():
    gt_xy = np.zeros((2, 2, 2))
    pred_xy = gt_xy.copy()
    pred_xy[0, 1] = [6.0, 0.0]          # x: 1024 px wide -> 6 * 256 / 1024 = 1.5
    pred_xy[1, 1] = [0.0, 3.0]          # y: 512 px high  -> 3 * 256 / 512 = 1.5
    ones = np.ones((2, 2))
    m = tapvid_metrics(pred_xy, ones, gt_xy, ones, np.zeros(2), frame_hw=(512, 1024))
    assert m["pts_within_1"] == 0.0 and m["pts_within_2"] == 1.0
    native = tapvid_metrics(pred_xy, ones, gt_xy, ones, np.zeros(2), resize_to=None)
    assert native["pts_within_4"] == 0.5 and native["pts_within_8"] == 1.0
    with pytest.raises(InvalidTrajectories, match="frame_hw"):
        tapvid_metrics(pred_xy, ones, gt_xy, ones, np.zeros(2))


def test_perfect_and_all_occluded_predictions():
    rng = np.random.default_rng(0)
    gt_xy = rng.uniform(0, 100, (5, 6, 2))
    gt_vis = (rng.random((5, 6)) > 0.3).astype(np.float32)
    q = np.zeros(5)
    gt_vis[:, 0] = 1
    perfect = tapvid_metrics(gt_xy, gt_vis, gt_xy, gt_vis, q, frame_hw=(100, 100))
    assert perfect["delta_avg"] == 1.0 and perfect["occlusion_accuracy"] == 1.0 and perfect["average_jaccard"] == 1.0
    hidden = tapvid_metrics(gt_xy, np.zeros((5, 6)), gt_xy, gt_vis, q, frame_hw=(100, 100))
    assert hidden["average_jaccard"] == 0.0
    assert hidden["delta_avg"] == 1.0                 # positions alone are right
    occluded_frac = 1 - gt_vis[:, 1:].mean()
    assert hidden["occlusion_accuracy"] == pytest.approx(occluded_frac)


def test_average_metrics_skips_nan():
    gt_xy = np.zeros((1, 2, 2))
    no_visible = tapvid_metrics(gt_xy, np.ones((1, 2)), gt_xy, np.array([[1.0, 0.0]]), np.zeros(1),
                                resize_to=None)
    assert math.isnan(no_visible["delta_avg"])
    good = tapvid_metrics(*_two_point_case(), resize_to=None)
    avg = average_metrics([good, no_visible])
    assert avg["delta_avg"] == pytest.approx(good["delta_avg"])
    assert avg["occlusion_accuracy"] == pytest.approx((good["occlusion_accuracy"] + 0.0) / 2)
    assert avg["num_clips"] == 2


def test_shape_errors():
    pred_xy, pred_vis, gt_xy, gt_vis, q = _two_point_case()
    with pytest.raises(InvalidTrajectories, match="pred_xy"):
        tapvid_metrics(pred_xy[:, :2], pred_vis, gt_xy, gt_vis, q, resize_to=None)
    with pytest.raises(InvalidTrajectories, match="gt_vis"):
        tapvid_metrics(pred_xy, pred_vis, gt_xy, gt_vis[:, :2], q, resize_to=None)
    with pytest.raises(InvalidTrajectories, match="query frame"):
        tapvid_metrics(pred_xy, pred_vis, gt_xy, gt_vis, q[:1], resize_to=None)
