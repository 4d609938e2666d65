"""The data model: one clip's 2.5D point trajectories (paper §3, "Trajectory extraction").

Axis letters: N points, T frames. Coordinates are pixels of the decoded video, x to the right,
y down, (0, 0) the centre of the top-left pixel.

Conversion to the model input (paper §3, "Model architecture"; design.md "Data model"):

    x, y  <- x / max(H, W), y / max(H, W)          aspect ratio kept, values in [0, W/max] x [0, H/max]
    d     <- (d - mean(d)) / std(d) * std(x, y)     per clip; zero when depth is absent or constant
    v     <- visibility in [0, 1] unchanged
    input  = stack(x, y, d, v)                      (N, T, 4) float32

The means and standard deviations are taken over visible entries (all entries where no point is
visible). ``traction.ops.normalize`` holds the compiled implementation and its NumPy twin.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from traction.errors import InvalidTrajectories


@dataclasses.dataclass
class Trajectories:
    """One clip's trajectories.

    xy:            (N, T, 2) float32, pixels.
    vis:           (N, T) float32 in [0, 1] (1 = visible).
    depth:         (N, T) float32 as the depth model gives it (inverse depth for VDA), or None (2D).
    queries:       (N, 3) float32, (t, x, y): the query frame index and pixel of each trajectory.
    height, width: decoded frame size in pixels.
    fps:           frames per second of the T samples' source video.
    frame_indices: (T,) float32, the source-video frame position of each of the T samples
                   (fractional after temporal interpolation).
    """

    xy: np.ndarray
    vis: np.ndarray
    depth: Optional[np.ndarray] = None
    queries: Optional[np.ndarray] = None
    height: int = 0
    width: int = 0
    fps: float = 0.0
    frame_indices: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.xy = np.ascontiguousarray(self.xy, dtype=np.float32)
        self.vis = np.ascontiguousarray(self.vis, dtype=np.float32)
        if self.depth is not None:
            self.depth = np.ascontiguousarray(self.depth, dtype=np.float32)
        n, t = self.num_points, self.num_frames
        if self.queries is None:
            self.queries = np.concatenate([np.zeros((n, 1), np.float32), self.xy[:, 0]], axis=1)
        self.queries = np.ascontiguousarray(self.queries, dtype=np.float32)
        if self.frame_indices is None:
            self.frame_indices = np.arange(t, dtype=np.float32)
        self.frame_indices = np.ascontiguousarray(self.frame_indices, dtype=np.float32)
        self.height, self.width, self.fps = int(self.height), int(self.width), float(self.fps)
        self.validate()

    # ------------------------------------------------------------------ properties
    @property
    def num_points(self) -> int:
        return int(self.xy.shape[0]) if self.xy.ndim == 3 else -1

    @property
    def num_frames(self) -> int:
        return int(self.xy.shape[1]) if self.xy.ndim == 3 else -1

    @property
    def has_depth(self) -> bool:
        return self.depth is not None

    def validate(self) -> "Trajectories":
        """Raise ``InvalidTrajectories`` with one clear line for anything the model cannot use."""
        if self.xy.ndim != 3 or self.xy.shape[2] != 2:
            raise InvalidTrajectories(f"xy must have shape (N, T, 2), got {tuple(self.xy.shape)}")
        n, t = self.xy.shape[:2]
        if n == 0:
            raise InvalidTrajectories("trajectories have N=0 points; at least one is needed")
        if t < 2:
            raise InvalidTrajectories(f"trajectories have T={t} frame; at least 2 are needed for motion")
        if self.vis.shape != (n, t):
            raise InvalidTrajectories(f"vis must have shape (N, T) = {(n, t)}, got {tuple(self.vis.shape)}")
        if self.depth is not None and self.depth.shape != (n, t):
            raise InvalidTrajectories(f"depth must have shape (N, T) = {(n, t)}, got {tuple(self.depth.shape)}")
        if self.queries.shape != (n, 3):
            raise InvalidTrajectories(f"queries must have shape (N, 3) = {(n, 3)}, got {tuple(self.queries.shape)}")
        if self.frame_indices.shape != (t,):
            raise InvalidTrajectories(f"frame_indices must have shape (T,) = {(t,)}, got {tuple(self.frame_indices.shape)}")
        for name in ("xy", "vis", "depth", "queries"):
            arr = getattr(self, name)
            if arr is not None and not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr)).sum())
                raise InvalidTrajectories(f"{name} contains {bad} NaN or inf value(s)")
        if self.vis.size and (self.vis.min() < 0 or self.vis.max() > 1):
            raise InvalidTrajectories("vis must lie in [0, 1]")
        if self.height <= 0 or self.width <= 0:
            raise InvalidTrajectories(f"height and width must be positive, got {self.height}x{self.width}")
        return self

    # ------------------------------------------------------------------ conversions
    def to_model_input(self, *, use_depth: bool = True, backend: Optional[str] = None) -> np.ndarray:
        """(N, T, 4) float32 = normalized (x, y, d, v); see the module docstring."""
        from traction import ops

        raw = np.zeros((1, self.num_points, self.num_frames, 4), np.float32)  # (B=1, N, T, 4)
        raw[0, :, :, :2] = self.xy
        if use_depth and self.depth is not None:
            raw[0, :, :, 2] = self.depth
        raw[0, :, :, 3] = self.vis
        hw = np.array([[self.height, self.width]], np.float32)  # (B=1, 2)
        return ops.normalize(raw, hw, has_depth=use_depth and self.has_depth, backend=backend)[0]

    def resample(self, num_frames: int, *, backend: Optional[str] = None) -> "Trajectories":
        """Linear resampling in time to ``num_frames`` samples (see ``traction.ops.resample``)."""
        from traction import ops

        chans = self.xy if self.depth is None else np.concatenate([self.xy, self.depth[..., None]], axis=2)
        out, vis = ops.resample(chans, self.vis, num_frames, backend=backend)  # (N, T', C), (N, T')
        t_in = self.num_frames
        pos = np.linspace(0.0, t_in - 1, num_frames, dtype=np.float64) if num_frames > 1 else np.zeros(1)
        frame_idx = np.interp(pos, np.arange(t_in), self.frame_indices.astype(np.float64)).astype(np.float32)
        return dataclasses.replace(
            self, xy=out[..., :2], vis=vis, depth=None if self.depth is None else out[..., 2],
            frame_indices=frame_idx)

    def subset(self, index: np.ndarray) -> "Trajectories":
        """The trajectories at ``index`` (an integer array over N)."""
        index = np.asarray(index, dtype=np.int64)
        return dataclasses.replace(
            self, xy=self.xy[index], vis=self.vis[index],
            depth=None if self.depth is None else self.depth[index], queries=self.queries[index])

    def time_reversed(self) -> "Trajectories":
        """The same clip played backwards (used for the chirality protocol)."""
        q = self.queries.copy()
        q[:, 0] = (self.num_frames - 1) - q[:, 0]
        return dataclasses.replace(
            self, xy=self.xy[:, ::-1].copy(), vis=self.vis[:, ::-1].copy(),
            depth=None if self.depth is None else self.depth[:, ::-1].copy(), queries=q,
            frame_indices=self.frame_indices[::-1].copy())

    def __repr__(self) -> str:
        d = "2.5D" if self.has_depth else "2D"
        return (f"Trajectories(N={self.num_points}, T={self.num_frames}, {d}, "
                f"{self.width}x{self.height} px, fps={self.fps:g}, visible={float(self.vis.mean()):.2f})")
