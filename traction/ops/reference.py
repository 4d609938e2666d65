"""NumPy twins of the compiled trajectory core (csrc/). These define the meaning; the C++ core
must agree with them (tests/test_ops.py: within 1e-5, exactly for integer and boolean outputs).

The functions here expect inputs already checked and converted by ``traction.ops`` (the public
entry points); call those unless you are testing the twins themselves.

Axis letters: B batch, N points, T frames, C channels. Arithmetic runs in float64 and rounds to
float32 once at the end, in the same operation order as the C++ code, so both round alike.

Random streams (``rng.uniform(seed, stream, a, b)``; a = sample index b_ unless noted):

    name            stream  counters (a, b)              quantity
    SUBSET             1    (b_, point i)                sort key of point i in sample_subset
    QUERY_T            2    (0, point n)                 query frame t
    QUERY_X            3    (0, point n)                 query x
    QUERY_Y            4    (0, point n)                 query y
    CROP_APPLY        10    (b_, 0)                      crop happens if u < crop_prob
    CROP_SCALE        11    (b_, 0)                      crop scale s
    CROP_X0           12    (b_, 0)                      crop box left edge
    CROP_Y0           13    (b_, 0)                      crop box top edge
    ROTATE_APPLY      20    (b_, 0)                      rotation happens if u < rotate_prob
    ROTATE_ANGLE      21    (b_, 0)                      rotation angle
    TRANSLATE_APPLY   30    (b_, 0)                      translation happens if u < translate_prob
    TRANSLATE_DX      31    (b_, 0)                      dx
    TRANSLATE_DY      32    (b_, 0)                      dy
    SHIFT_APPLY       40    (b_, 0)                      temporal shift happens if u < shift_prob
    SHIFT             41    (b_, 0)                      temporal shift s
    JITTER            50    (b_, (n*T + t)*2 + c)        normal noise of channel c in {x, y}
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

import numpy as np

from traction.ops import rng

STREAMS = {
    "SUBSET": 1,
    "QUERY_T": 2, "QUERY_X": 3, "QUERY_Y": 4,
    "CROP_APPLY": 10, "CROP_SCALE": 11, "CROP_X0": 12, "CROP_Y0": 13,
    "ROTATE_APPLY": 20, "ROTATE_ANGLE": 21,
    "TRANSLATE_APPLY": 30, "TRANSLATE_DX": 31, "TRANSLATE_DY": 32,
    "SHIFT_APPLY": 40, "SHIFT": 41,
    "JITTER": 50,
}

VISIBLE = 0.5  # an entry with v >= VISIBLE counts as visible (statistics, crop)


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """Trajectory augmentations of paper appendix B. A probability of 0 or a range of 0 turns
    one augmentation off. Extents are in normalized units (x / max(H, W))."""

    crop_prob: float = 0.5
    crop_min_scale: float = 0.7       # crop side = s * frame side, s ~ U[crop_min_scale, 1]
    rotate_prob: float = 0.5
    rotate_max_deg: float = 15.0      # angle ~ U[-max, max] degrees, in the image plane
    translate_prob: float = 0.5
    translate_max: float = 0.1        # (dx, dy) ~ U[-max, max]^2
    shift_prob: float = 0.5
    shift_max: int = 4                # integer frames ~ U{-max..max}
    jitter_std: float = 0.002         # per point, frame and coordinate


# ---------------------------------------------------------------------------------------- resample
def resample_positions(t_in: int, t_out: int) -> Tuple[np.ndarray, np.ndarray]:
    """Left neighbour i (T_out,) int64 and weight w (T_out,) float64 of p_j = j (T_in-1)/(T_out-1)."""
    j = np.arange(t_out, dtype=np.float64)
    p = j * (t_in - 1) / (t_out - 1) if t_out > 1 else np.zeros(1)
    i = np.floor(p).astype(np.int64)
    w = p - i
    last = i >= t_in - 1  # the last frame (or a single input frame) has no right neighbour
    i[last], w[last] = t_in - 1, 0.0
    return i, w


def resample(x: np.ndarray, vis: np.ndarray, num_frames: int) -> Tuple[np.ndarray, np.ndarray]:
    """(N, T_in, C), (N, T_in) -> (N, T_out, C), (N, T_out): linear in time (paper §5.3, app. E).

    An interpolated sample is only as visible as its less visible neighbour, so an occlusion is
    never interpolated away.
    """
    t_in = x.shape[1]
    i, w = resample_positions(t_in, num_frames)
    i1 = np.minimum(i + 1, t_in - 1)
    x0 = x[:, i].astype(np.float64)                                   # (N, T_out, C)
    x1 = x[:, i1].astype(np.float64)                                  # (N, T_out, C)
    out = (1.0 - w)[None, :, None] * x0 + w[None, :, None] * x1
    exact = w == 0.0
    out[:, exact] = x0[:, exact]
    vis_out = np.where(exact[None, :], vis[:, i], np.minimum(vis[:, i], vis[:, i1]))
    return out.astype(np.float32), vis_out.astype(np.float32)


# --------------------------------------------------------------------------------------- normalize
def normalize(raw: np.ndarray, hw: np.ndarray, has_depth: bool,
              valid: Optional[np.ndarray] = None) -> np.ndarray:
    """(B, N, T, 4) raw (x px, y px, d, v) -> (B, N, T, 4) model input (paper §3).

    x, y /= max(H, W); d -> (d - mean d) / std d * std(x, y), the statistics over the valid
    points' visible entries (all valid entries when none is visible); d = 0 without depth or
    when depth is constant. Invalid (padding) points come out as zeros.
    """
    bsz, n, t, _ = raw.shape
    if valid is None:
        valid = np.ones((bsz, n), bool)
    out = np.zeros(raw.shape, np.float32)
    for b in range(bsz):
        pts = raw[b][valid[b]].astype(np.float64)                     # (N_valid, T, 4)
        if pts.shape[0] == 0:
            continue
        m = max(float(hw[b, 0]), float(hw[b, 1]))
        xy = pts[..., :2] / m                                         # (N_valid, T, 2)
        sel = pts[..., 3] >= VISIBLE                                  # (N_valid, T)
        if not sel.any():
            sel = np.ones_like(sel)
        s = _pop_std(xy[sel].reshape(-1))                             # x and y pooled
        d = np.zeros(pts.shape[:2])
        if has_depth:
            dsel = pts[..., 2][sel]
            mean_d, std_d = _mean(dsel), _pop_std(dsel)
            if std_d >= 1e-8:
                d = (pts[..., 2] - mean_d) / std_d * s
        res = np.stack([xy[..., 0], xy[..., 1], d, pts[..., 3]], axis=-1)  # (N_valid, T, 4)
        out[b][valid[b]] = res.astype(np.float32)
    return out


def _mean(v: np.ndarray) -> float:
    return float(np.sum(v) / v.size)


def _pop_std(v: np.ndarray) -> float:
    """Population std (ddof=0), two-pass like the C++ code."""
    mu = _mean(v)
    return math.sqrt(float(np.sum((v - mu) ** 2) / v.size))


# ----------------------------------------------------------------------------------- sample_subset
def sample_subset(num_valid: np.ndarray, k: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """(B,) point counts -> index (B, k) int64, mask (B, k) bool: k random points per sample
    without replacement (paper §4: 512 random trajectories per clip and step), the k smallest
    keys uniform(seed, SUBSET, b, i) in increasing key order (ties by index); samples with fewer
    than k points give all of them, then index 0 with mask False."""
    bsz = num_valid.shape[0]
    index = np.zeros((bsz, k), np.int64)
    mask = np.zeros((bsz, k), bool)
    for b in range(bsz):
        nv = int(num_valid[b])
        keys = rng.uniform(seed, STREAMS["SUBSET"], b, np.arange(nv))
        order = np.argsort(keys, kind="stable")[:k]                   # stable: ties by index
        index[b, :order.size] = order
        mask[b, :order.size] = True
    return index, mask


# ----------------------------------------------------------------------------------------- augment
def _sample_draws(seed: int, b: int) -> dict:
    """Every per-sample uniform of ``augment`` (drawn whether used or not: counters, not state)."""
    return {name: float(rng.uniform(seed, STREAMS[name], b, 0))
            for name in ("CROP_APPLY", "CROP_SCALE", "CROP_X0", "CROP_Y0", "ROTATE_APPLY",
                         "ROTATE_ANGLE", "TRANSLATE_APPLY", "TRANSLATE_DX", "TRANSLATE_DY",
                         "SHIFT_APPLY", "SHIFT")}


def augment(x: np.ndarray, valid: np.ndarray, hw: np.ndarray, params: AugmentParams,
            seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """(B, N, T, 4) normalized (x, y, d, v), (B, N) valid -> augmented copies (paper appendix B).

    Per sample, in this order: spatial crop (with recentering), rotation about the frame centre,
    translation, temporal shift with edge padding (padded frames invisible), per-trajectory
    Gaussian jitter of x and y. The frame is [0, W/m] x [0, H/m], m = max(H, W). Points invalid
    on input are copied untouched; points the crop drops come out as zeros with valid False.
    """
    bsz, n, t, _ = x.shape
    out = x.copy()
    valid_out = valid.copy()
    p = params
    for b in range(bsz):
        keep = valid[b]
        if not keep.any():
            continue
        u = _sample_draws(seed, b)
        h, w = float(hw[b, 0]), float(hw[b, 1])
        m = max(h, w)
        wn, hn = w / m, h / m
        pts = x[b][keep].astype(np.float64)                           # (N_valid, T, 4)
        alive = np.ones(pts.shape[0], bool)

        # a. spatial crop, refilling the frame like RandomResizedCrop
        if u["CROP_APPLY"] < p.crop_prob:
            s = p.crop_min_scale + (1.0 - p.crop_min_scale) * u["CROP_SCALE"]
            bw, bh = s * wn, s * hn
            x0, y0 = u["CROP_X0"] * (wn - bw), u["CROP_Y0"] * (hn - bh)
            px, py = pts[..., 0], pts[..., 1]
            inside = (px >= x0) & (px <= x0 + bw) & (py >= y0) & (py <= y0 + bh)  # (N_valid, T)
            alive = (inside & (pts[..., 3] >= VISIBLE)).any(axis=1)
            pts[..., 3] = np.where(inside, pts[..., 3], 0.0)
            pts[..., 0] = (px - x0) / s
            pts[..., 1] = (py - y0) / s

        # b. rotation in the image plane about the frame centre
        if u["ROTATE_APPLY"] < p.rotate_prob:
            deg = (2.0 * u["ROTATE_ANGLE"] - 1.0) * p.rotate_max_deg
            rad = deg * math.pi / 180.0
            c, sn = math.cos(rad), math.sin(rad)
            cx, cy = 0.5 * wn, 0.5 * hn
            rx, ry = pts[..., 0] - cx, pts[..., 1] - cy
            pts[..., 0] = cx + (c * rx - sn * ry)
            pts[..., 1] = cy + (sn * rx + c * ry)

        # c. translation
        if u["TRANSLATE_APPLY"] < p.translate_prob:
            pts[..., 0] += (2.0 * u["TRANSLATE_DX"] - 1.0) * p.translate_max
            pts[..., 1] += (2.0 * u["TRANSLATE_DY"] - 1.0) * p.translate_max

        # d. temporal shift: out[t] = in[t - s]; frames from outside repeat the edge, invisible
        if u["SHIFT_APPLY"] < p.shift_prob:
            shift = _shift_amount(u["SHIFT"], p.shift_max)
            src = np.arange(t) - shift
            outside = (src < 0) | (src >= t)
            pts = pts[:, np.clip(src, 0, t - 1)]
            pts[:, outside, 3] = 0.0

        # e. per-trajectory jitter; counters over the original point index n
        if p.jitter_std > 0:
            idx = np.flatnonzero(keep).astype(np.int64)                # (N_valid,)
            cnt = (idx[:, None, None] * t + np.arange(t)[None, :, None]) * 2 + np.arange(2)  # (N_valid, T, 2)
            pts[..., :2] += p.jitter_std * rng.normal(seed, STREAMS["JITTER"], b, cnt)

        pts[~alive] = 0.0
        out[b][keep] = pts.astype(np.float32)
        valid_out[b][keep] = alive
    return out, valid_out


def _shift_amount(u: float, shift_max: int) -> int:
    """Integer uniform on {-shift_max..shift_max} from one uniform u in [0, 1)."""
    return min(int(math.floor(u * (2 * shift_max + 1))), 2 * shift_max) - shift_max


# -------------------------------------------------------------------------------------- lift_depth
def lift_depth(depth: np.ndarray, xy: np.ndarray, video_hw: Tuple[int, int]) -> np.ndarray:
    """(T, Hd, Wd) depth maps, (N, T, 2) video pixels -> (N, T) bilinear depth per point.

    Pixel centres sit at integer coordinates in both grids; points outside the frame take the
    border value (design.md "lift").
    """
    t, hd, wd = depth.shape
    h, w = float(video_hw[0]), float(video_hw[1])
    xd = np.clip((xy[..., 0].astype(np.float64) + 0.5) * wd / w - 0.5, 0.0, wd - 1.0)  # (N, T)
    yd = np.clip((xy[..., 1].astype(np.float64) + 0.5) * hd / h - 0.5, 0.0, hd - 1.0)  # (N, T)
    x0 = np.floor(xd).astype(np.int64)
    y0 = np.floor(yd).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, wd - 1), np.minimum(y0 + 1, hd - 1)
    wx, wy = xd - x0, yd - y0
    tt = np.broadcast_to(np.arange(t), xd.shape)
    d = depth  # float32 samples promote to float64 in the products below
    top = (1.0 - wx) * d[tt, y0, x0] + wx * d[tt, y0, x1]             # (N, T)
    bottom = (1.0 - wx) * d[tt, y1, x0] + wx * d[tt, y1, x1]          # (N, T)
    return ((1.0 - wy) * top + wy * bottom).astype(np.float32)


# ---------------------------------------------------------------------------------- sample_queries
def sample_queries(num_points: int, num_frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """(N, 3) float32 queries (t, x, y) uniform over time and space (paper §3), stably sorted by t."""
    n = np.arange(num_points)
    t = np.minimum(np.floor(rng.uniform(seed, STREAMS["QUERY_T"], 0, n) * num_frames), num_frames - 1)
    x = rng.uniform(seed, STREAMS["QUERY_X"], 0, n) * (width - 1)
    y = rng.uniform(seed, STREAMS["QUERY_Y"], 0, n) * (height - 1)
    q = np.stack([t, x, y], axis=1)                                   # (N, 3)
    return q[np.argsort(t, kind="stable")].astype(np.float32)
