"""Pyramidal Lucas-Kanade point tracker (OpenCV), the tracker that needs no weights.

Each query is tracked forward from its query frame to the last frame and backward to the first,
like CoTracker3's offline mode (paper §3). One sweep over the frames per direction advances all
points whose query frame has been passed in one ``cv2.calcOpticalFlowPyrLK`` call per frame pair,
on grayscale frames (OpenCV's Python binding builds the pyramids inside each call).

Visibility: a step t -> t+1 is accepted when LK converges (status flag) both ways, the
forward-backward error |LK(LK(p, t -> t+1), t+1 -> t) - p| is at most ``fb_threshold`` px, and the
point stays inside the frame. Otherwise the point is lost: it keeps its last position with
visibility 0 for the rest of that sweep. LK has no re-detection, so a point hidden by an occluder
stays lost after it reappears (a learned tracker such as CoTracker3 recovers it).
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import cv2
import numpy as np

from traction.tracking.base import check_track_inputs


@dataclasses.dataclass
class LKTracker:
    """Pyramidal LK with forward-backward checks; ``track(video, queries) -> (xy, vis)``.

    win_size:          side of the square LK window in px at each pyramid level (11: the cost
                       grows with its area; 2500 points x 32 frames at 240p take ~0.7 s on 1 core).
    levels:            pyramid levels above the full image (3 follows motions of ~8 * win/2 px).
    fb_threshold:      max forward-backward error in px before a point counts as occluded.
    max_iter, eps:     LK iteration stop criteria per level.
    min_eig_threshold: OpenCV's texture threshold; flatter windows fail (status 0).
    """

    win_size: int = 11
    levels: int = 3
    fb_threshold: float = 1.0
    max_iter: int = 10
    eps: float = 0.03
    min_eig_threshold: float = 1e-4
    name: str = "lk"

    def _flow(self, img0: np.ndarray, img1: np.ndarray, p0: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(K, 2) points in grayscale img0 -> (K, 2) points in img1 and (K,) bool convergence."""
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, self.max_iter, self.eps)
        p1, status, _ = cv2.calcOpticalFlowPyrLK(
            img0, img1, p0.reshape(-1, 1, 2), None, winSize=(self.win_size, self.win_size),
            maxLevel=self.levels, criteria=criteria, minEigThreshold=self.min_eig_threshold)
        return p1.reshape(-1, 2), status.reshape(-1).astype(bool)

    def _step(self, img0: np.ndarray, img1: np.ndarray, p0: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Advance (K, 2) points one frame; returns new positions and which steps are accepted."""
        p1, ok_fwd = self._flow(img0, img1, p0)
        # The backward check starts from scratch (no initial guess): seeded with p0 it would
        # converge to p0 in ambiguous windows and hide exactly the failures it should catch.
        p0_back, ok_bwd = self._flow(img1, img0, p1)
        fb_error = np.linalg.norm(p0_back - p0, axis=1)                   # (K,)
        h, w = img0.shape
        inside = (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
        ok = ok_fwd & ok_bwd & (fb_error <= self.fb_threshold) & inside & np.isfinite(p1).all(axis=1)
        return p1, ok

    def _sweep(self, gray: np.ndarray, queries: np.ndarray, qt: np.ndarray, xy: np.ndarray,
               vis: np.ndarray, forward: bool) -> None:
        """Fill xy/vis of the frames after (forward) or before (backward) each query frame."""
        t_total = gray.shape[0]
        n = queries.shape[0]
        frames = range(t_total) if forward else range(t_total - 1, -1, -1)
        pos = np.zeros((n, 2), np.float32)                                # (N, 2) current position
        alive = np.zeros(n, bool)                                        # tracked and visible so far
        started = np.zeros(n, bool)                                      # query frame already passed
        prev = None
        for t in frames:
            if prev is not None:
                idx = np.flatnonzero(alive)
                if idx.size:
                    p1, ok = self._step(gray[prev], gray[t], pos[idx])
                    pos[idx[ok]] = p1[ok]
                    alive[idx[~ok]] = False
                xy[started, t] = pos[started]
                vis[started, t] = alive[started]
            new = qt == t
            pos[new] = queries[new, 1:]
            alive[new] = True
            started |= new
            prev = t

    def track(self, video: np.ndarray, queries: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """video (T, H, W, 3) uint8, queries (N, 3) (t, x, y) -> xy (N, T, 2), vis (N, T) float32."""
        video, queries = check_track_inputs(video, queries)
        t_total = video.shape[0]
        n = queries.shape[0]
        gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in video])  # (T, H, W)
        qt = np.clip(np.rint(queries[:, 0]).astype(np.int64), 0, t_total - 1)  # (N,)
        xy = np.zeros((n, t_total, 2), np.float32)
        vis = np.zeros((n, t_total), np.float32)
        xy[np.arange(n), qt] = queries[:, 1:]                            # the query is given
        vis[np.arange(n), qt] = 1.0
        self._sweep(gray, queries, qt, xy, vis, forward=True)
        self._sweep(gray, queries, qt, xy, vis, forward=False)
        return xy, vis
