"""TAP-Vid tracking metrics (Doersch et al. 2022, "TAP-Vid: A Benchmark for Tracking Any Point").

For one clip with ground truth gt_xy (N, T, 2), gt_vis (N, T) and predictions pred_xy, pred_vis,
evaluated at every frame except each point's query frame (TAP-Vid's "strided" query mode):

    occlusion_accuracy  fraction of evaluated entries whose predicted visibility equals the truth
    pts_within_d        among entries visible in the truth, the fraction predicted within d px
    delta_avg           mean of pts_within_d over d in {1, 2, 4, 8, 16}      (TAP-Vid's < delta^x_avg)
    jaccard_d           TP / (TP + FP + FN): TP = visible in truth and prediction and within d;
                        a predicted-visible entry that is occluded in truth or farther than d is FP;
                        a truth-visible entry that is predicted occluded or too far is FN
    average_jaccard     mean of jaccard_d over the thresholds (AJ)

"Within d" is strict (squared distance < d^2), as in the reference implementation (tapnet's
``compute_tapvid_metrics``). Distances are measured, as TAP-Vid does, in a frame resized to
256 x 256: x is scaled by 256 / W and y by 256 / H, so a threshold means the same fraction of the
frame at any resolution and aspect ratio. ``resize_to=None`` measures native pixels instead.
Visibilities are thresholded at ``vis_threshold`` (0.5). A metric with an empty denominator
(e.g. no visible ground truth) is NaN; ``average_metrics`` averages clips, skipping NaN, as
TAP-Vid averages over videos.
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from traction.errors import InvalidTrajectories

THRESHOLDS = (1, 2, 4, 8, 16)
TAPVID_SIZE = 256


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


def tapvid_metrics(pred_xy: np.ndarray, pred_vis: np.ndarray, gt_xy: np.ndarray, gt_vis: np.ndarray,
                   queries: np.ndarray, *, frame_hw: Optional[Tuple[int, int]] = None,
                   resize_to: Optional[int] = TAPVID_SIZE, thresholds: Sequence[float] = THRESHOLDS,
                   vis_threshold: float = 0.5) -> Dict[str, float]:
    """TAP-Vid metrics of one clip (module docstring).

    pred_xy, gt_xy: (N, T, 2) px; pred_vis, gt_vis: (N, T) in [0, 1]; queries: (N, 3) (t, x, y)
    or (N,) query frames; frame_hw: (H, W) of the frames the pixels refer to, needed unless
    ``resize_to`` is None.
    """
    pred_xy = np.asarray(pred_xy, np.float64)
    gt_xy = np.asarray(gt_xy, np.float64)
    if gt_xy.ndim != 3 or gt_xy.shape[2] != 2:
        raise InvalidTrajectories(f"gt_xy must have shape (N, T, 2), got {tuple(gt_xy.shape)}")
    n, t = gt_xy.shape[:2]
    if pred_xy.shape != gt_xy.shape:
        raise InvalidTrajectories(f"pred_xy has shape {tuple(pred_xy.shape)}, gt_xy {tuple(gt_xy.shape)}")
    pred_vis, gt_vis = np.asarray(pred_vis), np.asarray(gt_vis)
    for name, arr in (("pred_vis", pred_vis), ("gt_vis", gt_vis)):
        if arr.shape != (n, t):
            raise InvalidTrajectories(f"{name} must have shape (N, T) = {(n, t)}, got {tuple(arr.shape)}")
    queries = np.asarray(queries)
    query_t = queries[:, 0] if queries.ndim == 2 else queries
    if query_t.shape != (n,):
        raise InvalidTrajectories(f"queries must give one query frame per point (N={n}), got {tuple(queries.shape)}")
    query_t = np.rint(query_t).astype(np.int64)

    if resize_to is not None:
        if frame_hw is None:
            raise InvalidTrajectories("frame_hw=(H, W) is needed to measure in the 256x256 TAP-Vid frame; "
                                      "pass resize_to=None for native pixels")
        h, w = frame_hw
        scale = np.array([resize_to / float(w), resize_to / float(h)])        # (2,) x and y factors
        pred_xy, gt_xy = pred_xy * scale, gt_xy * scale

    evaluated = np.arange(t)[None, :] != query_t[:, None]                     # (N, T)
    visible = gt_vis > vis_threshold                                          # (N, T)
    pred_visible = pred_vis > vis_threshold
    sq_dist = np.sum((pred_xy - gt_xy) ** 2, axis=-1)                         # (N, T)

    metrics: Dict[str, float] = {
        "occlusion_accuracy": _ratio(np.sum((visible == pred_visible) & evaluated), np.sum(evaluated)),
    }
    num_visible = np.sum(visible & evaluated)
    within_all, jaccard_all = [], []
    for d in thresholds:
        within = sq_dist < d * d
        correct = within & visible & evaluated
        true_pos = np.sum(correct & pred_visible)
        false_pos = np.sum(pred_visible & (~visible | ~within) & evaluated)
        frac = _ratio(np.sum(correct), num_visible)
        jac = _ratio(true_pos, num_visible + false_pos)
        metrics[f"pts_within_{d:g}"] = frac
        metrics[f"jaccard_{d:g}"] = jac
        within_all.append(frac)
        jaccard_all.append(jac)
    metrics["delta_avg"] = float(np.mean(within_all))
    metrics["average_jaccard"] = float(np.mean(jaccard_all))
    metrics["num_points"] = float(n)
    return metrics


def average_metrics(per_clip: Iterable[Dict[str, float]]) -> Dict[str, float]:
    """Mean of each metric over clips, ignoring clips where it is NaN; adds ``num_clips``."""
    per_clip = list(per_clip)
    if not per_clip:
        return {"num_clips": 0.0}
    out: Dict[str, float] = {}
    for key in per_clip[0]:
        vals = np.array([m[key] for m in per_clip], np.float64)
        vals = vals[~np.isnan(vals)]
        out[key] = float(vals.mean()) if vals.size else float("nan")
    out["num_clips"] = float(len(per_clip))
    return out
