"""The tracker interface (paper §3, "Trajectory extraction"; design.md "Interfaces").

A tracker follows query points through a video:

    xy, vis = tracker.track(video, queries)
    video:   (T, H, W, 3) uint8 RGB
    queries: (N, 3) float32 (t, x, y): the frame index and pixel where each point is given
    xy:      (N, T, 2) float32 pixel positions in every frame (x right, y down)
    vis:     (N, T) float32 in [0, 1], 1 = visible

traction keeps points before frames, (N, T, ...), everywhere; CoTracker's own tensors are
(B, T, N, ...) and its wrapper transposes.
"""
from __future__ import annotations

from typing import Protocol, Tuple, runtime_checkable

import numpy as np

from traction.errors import InvalidTrajectories, VideoError


@runtime_checkable
class Tracker(Protocol):
    """Anything with a ``name`` and a ``track`` method of the signature above."""

    name: str

    def track(self, video: np.ndarray, queries: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        ...


def check_track_inputs(video: np.ndarray, queries: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Validate ``track`` arguments; returns the video and (N, 3) float32 queries."""
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise VideoError(f"video must be a (T, H, W, 3) uint8 array, got {video.dtype} {tuple(video.shape)}")
    t, h, w = video.shape[:3]
    if t < 1:
        raise VideoError("video has no frames")
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != 3:
        raise InvalidTrajectories(f"queries must have shape (N, 3) = (t, x, y), got {tuple(queries.shape)}")
    if queries.shape[0] == 0:
        raise InvalidTrajectories("queries has N=0 points; at least one is needed")
    if not np.isfinite(queries).all():
        raise InvalidTrajectories("queries contain NaN or inf values")
    qt = queries[:, 0]
    if qt.min() < -0.5 or qt.max() > t - 0.5:
        raise InvalidTrajectories(f"query frames must lie in [0, {t - 1}] for a {t}-frame video, "
                                  f"got [{qt.min():g}, {qt.max():g}]")
    x, y = queries[:, 1], queries[:, 2]
    if x.min() < -0.5 or x.max() > w - 0.5 or y.min() < -0.5 or y.max() > h - 0.5:
        raise InvalidTrajectories(f"query pixels must lie inside the {w}x{h} frame, got x in "
                                  f"[{x.min():g}, {x.max():g}], y in [{y.min():g}, {y.max():g}]")
    return video, queries
