"""CoTracker3 predictors: what runs around the network (offline and online).

Behaviour reproduced from the reference predictors (``CoTrackerPredictor`` and
``CoTrackerOnlinePredictor`` with ``online_demo.py``'s chunking):
* frames are resized to 384x512 (bilinear, align-corners) and queries scaled to that grid;
* offline: a 6x6 support grid of extra queries on frame 0 is appended (tracking a few extra
  points gives the space attention context, paper §3.2) and dropped afterwards; optional
  backward tracking re-runs the time-reversed clip for the frames before each query; a point is
  visible where P(vis) > 0.9, and the query frame itself is always the query point, visible;
* online: windows of 16 frames moving by 8; a point is visible where P(vis) * P(conf) > 0.6.

traction's axis order is (N, T, ...); the network's is (B, T, N, ...). ``track`` transposes at
the boundary, ``predict`` keeps the network's order.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from traction.errors import ConfigError, InvalidTrajectories, VideoError
from traction.tracking.base import check_track_inputs
from traction.tracking.cotracker3.model import MODEL_HW, CoTracker3, OnlineState

_DTYPES = {None: None, "fp32": None, "float32": None, torch.float32: None,
           "bf16": torch.bfloat16, "bfloat16": torch.bfloat16, torch.bfloat16: torch.bfloat16,
           "fp16": torch.float16, "float16": torch.float16, torch.float16: torch.float16}


def support_grid_points(size: int, hw: tuple[int, int] = MODEL_HW) -> torch.Tensor:
    """(size*size, 2) (x, y) points on a regular grid over an (H, W) frame, row-major, with a
    margin of W/64 to the border (the reference predictor's support grid)."""
    H, W = hw
    if size == 1:
        return torch.tensor([[W / 2, H / 2]])
    m = W / 64
    ys = torch.linspace(m, H - m, size)
    xs = torch.linspace(m, W - m, size)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1).reshape(-1, 2)


class CoTracker3Tracker:
    """Point tracker around a ``CoTracker3`` network. Build it with
    ``traction.tracking.cotracker3.load``; call ``track(video, queries)``."""

    name = "cotracker3"

    def __init__(self, model: CoTracker3, mode: str = "offline", device="cpu", iters: int = 6,
                 support_grid: int | None = None, backward_tracking: bool = False,
                 vis_threshold: float | None = None, dtype=None):
        if mode not in ("offline", "online"):
            raise ConfigError(f"cotracker3 mode={mode!r}: expected 'offline' or 'online'")
        if dtype not in _DTYPES:
            raise ConfigError(f"cotracker3 dtype={dtype!r}: expected one of fp32, bf16, fp16")
        if iters < 1:
            raise ConfigError(f"cotracker3 iters={iters}: must be >= 1")
        self.mode = mode
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.iters = int(iters)
        # Defaults follow the reference predictors: support grid offline only.
        self.support_grid = (6 if mode == "offline" else 0) if support_grid is None else int(support_grid)
        self.backward_tracking = bool(backward_tracking)
        self.vis_threshold = (0.9 if mode == "offline" else 0.6) if vis_threshold is None else float(vis_threshold)
        self.autocast_dtype = _DTYPES[dtype]

    # --- helpers --------------------------------------------------------------------------

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _resize(self, video: torch.Tensor, frame_chunk: int = 16) -> torch.Tensor:
        """(B, T, 3, H, W) 0..255, any dtype and device -> (B, T, 3, 384, 512) float32 on the
        tracker's device; bilinear with align-corners like the reference. A few frames at a time,
        so a long uint8 video is never held in float at full resolution."""
        B, T, C, H, W = video.shape
        out = []
        for t0 in range(0, T, frame_chunk):
            x = video[:, t0:t0 + frame_chunk].to(self.device, torch.float32)  # (B, t, 3, H, W)
            x = F.interpolate(x.reshape(-1, C, H, W), MODEL_HW, mode="bilinear",
                              align_corners=True)                                 # (B*t, 3, 384, 512)
            out.append(x.reshape(B, -1, C, *MODEL_HW))
        return torch.cat(out, dim=1)

    @staticmethod
    def _px_scale(H: int, W: int, like: torch.Tensor) -> torch.Tensor:
        """(2,) factors from original px to model px (align-corners: ends map onto ends)."""
        return like.new_tensor([(MODEL_HW[1] - 1) / (W - 1), (MODEL_HW[0] - 1) / (H - 1)])

    @staticmethod
    def _px_unscale(H: int, W: int, like: torch.Tensor) -> torch.Tensor:
        """(2,) factors from model px back to original px."""
        return like.new_tensor([(W - 1) / (MODEL_HW[1] - 1), (H - 1) / (MODEL_HW[0] - 1)])

    # --- tensor-level API -----------------------------------------------------------------

    @torch.no_grad()
    def predict(self, video: torch.Tensor, queries: torch.Tensor, backward_tracking: bool | None = None,
                keep_steps: bool = False) -> dict:
        """Run the reference predictor on a batch of clips.

        video (B, T, 3, H, W) 0..255 (uint8 or float, any device); queries (B, N, 3) (t, x, y)
        original px.
        Returns a dict (network axis order): ``tracks`` (B, T, N, 2) original px, ``visibility``
        (B, T, N) bool, ``vis_prob`` (B, T, N) the probability that was thresholded, and the
        network's raw outputs (``model_queries``, ``raw_tracks`` model px, ``raw_vis``,
        ``raw_conf``; offline with backward tracking also ``bwd_*`` in reversed time; online
        also ``vis_logits``, ``conf_logits`` and, with ``keep_steps``, ``steps`` per window).
        """
        queries = queries.to(self.device, torch.float32)
        B, T, _, H, W = video.shape
        model_queries = queries.clone()
        model_queries[..., 1:] *= self._px_scale(H, W, queries)
        with self._autocast():
            if self.mode == "offline":
                bwd = self.backward_tracking if backward_tracking is None else backward_tracking
                out = self._predict_offline(video, model_queries, bwd)
            else:
                out = self._predict_online(video, model_queries, keep_steps)
                to_orig = self._px_unscale(H, W, queries)
                out["tracks"] = out["tracks"] * to_orig
                for step in out.get("steps", []):
                    step["tracks"] = step["raw_tracks"] * to_orig
        return out

    def _predict_offline(self, video, queries, backward: bool) -> dict:
        B, T, _, H, W = video.shape
        video = self._resize(video)
        queries_all = self._with_support_grid(queries)
        levels = self.model.pyramid(self.model.encode_frames(video))
        tracks, vis, conf = self.model.track_levels(levels, queries_all, iters=self.iters)
        out = {"model_queries": queries_all, "raw_tracks": tracks, "raw_vis": vis, "raw_conf": conf}
        bwd = None
        if backward:
            # Track the time-reversed clip; its features are ours reversed (no second encoding).
            inv_queries = queries_all.clone()
            inv_queries[..., 0] = T - 1 - inv_queries[..., 0]
            bwd = self.model.track_levels([f.flip(1) for f in levels], inv_queries, iters=self.iters)
            out.update(bwd_model_queries=inv_queries, bwd_raw_tracks=bwd[0],
                       bwd_raw_vis=bwd[1], bwd_raw_conf=bwd[2])
        out.update(self.finish_offline(queries_all, queries.shape[1], (tracks, vis), bwd, (H, W)))
        return out

    def finish_offline(self, queries_all: torch.Tensor, n_queries: int, fwd, bwd, hw) -> dict:
        """The offline predictor's post-processing of raw network outputs (model px).

        queries_all (B, N+G, 3) the network's queries (user queries first, then the support
        grid); fwd = (tracks (B, T, N+G, 2), vis probabilities (B, T, N+G)) of the forward call;
        bwd = the same from the call on the time-reversed clip (reversed time order), or None;
        hw = (H, W) of the original video. Returns ``tracks`` (B, T, N, 2) original px, ``visibility`` (B, T, N) bool and ``vis_prob``.
        Exposed so raw outputs from elsewhere (an exported network) get identical treatment.
        """
        tracks, vis = fwd[0].clone(), fwd[1].clone()
        B, T = tracks.shape[:2]
        N = n_queries
        if bwd is not None:
            # Frames before a query frame come from tracking the reversed clip from that query.
            before = torch.arange(T, device=tracks.device)[None, :, None] < queries_all[:, None, :, 0]
            tracks = torch.where(before[..., None], bwd[0].flip(1), tracks)
            vis = torch.where(before, bwd[1].flip(1), vis)
        tracks, vis = tracks[:, :, :N], vis[:, :, :N]
        visible = vis > self.vis_threshold
        # The query frame is the query point itself and visible (reference issue #28).
        t_q = queries_all[:, :N, 0].long()                                      # (B, N)
        b_idx = torch.arange(B, device=tracks.device)[:, None].expand(B, N)
        n_idx = torch.arange(N, device=tracks.device)[None].expand(B, N)
        tracks[b_idx, t_q, n_idx] = queries_all[:, :N, 1:].to(tracks.dtype)
        visible[b_idx, t_q, n_idx] = True
        tracks = tracks * self._px_unscale(*hw, tracks)
        return {"tracks": tracks, "visibility": visible, "vis_prob": vis}

    def _with_support_grid(self, queries: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) -> (B, N+G, 3): the support grid's G = size^2 points appended, on frame 0."""
        if self.support_grid <= 0:
            return queries
        grid = support_grid_points(self.support_grid).to(queries)              # (G, 2)
        grid = torch.cat([grid.new_zeros(len(grid), 1), grid], dim=1)          # (G, 3)
        return torch.cat([queries, grid.expand(len(queries), -1, -1)], dim=1)  # (B, N+G, 3)

    def _predict_online(self, video, queries, keep_steps: bool) -> dict:
        """Slide the online window over the clip: chunks [0, S), [s, s+S), [2s, 2s+S), ... with
        step s = S/2, cut at the clip end, as ``online_demo.py`` feeds the model."""
        B, T = video.shape[:2]
        S = self.model.window_len
        step = S // 2
        N = queries.shape[1]
        queries_all = self._with_support_grid(queries)
        state = OnlineState.new()
        steps = []
        start = 0
        while True:
            chunk = self._resize(video[:, start:start + S])    # resize per chunk: bounded memory
            tracks, vis, conf = self.model.online_step(state, chunk, queries_all, iters=self.iters)
            tracks, vis, conf = tracks[:, :, :N], vis[:, :, :N], conf[:, :, :N]   # drop the grid
            if keep_steps:
                steps.append({"raw_tracks": tracks, "raw_vis": vis, "raw_conf": conf,
                              "visibility": vis * conf > self.vis_threshold})
            if start + S >= T:
                break
            start += step
        prob = vis * conf
        out = {"model_queries": queries, "raw_tracks": tracks, "raw_vis": vis, "raw_conf": conf,
               "vis_logits": state.vis[:, :, :N], "conf_logits": state.conf[:, :, :N],
               "tracks": tracks.clone(), "visibility": prob > self.vis_threshold, "vis_prob": prob}
        if keep_steps:
            out["steps"] = steps
        return out

    # --- numpy API (traction's axis order) ------------------------------------------------

    def track(self, video: np.ndarray, queries: np.ndarray, return_probs: bool = False):
        """Track query points through a clip.

        video (T, H, W, 3) uint8 RGB; queries (N, 3) float (t, x, y), original px.
        Returns xy (N, T, 2) float32 original px and vis (N, T) float32 in {0, 1}; with
        ``return_probs`` also the visibility probability (N, T) that was thresholded.
        """
        video, queries = check_track_inputs(video, queries)
        xy, vis, prob = self.track_batch(video[None], queries[None])
        if return_probs:
            return xy[0], vis[0], prob[0]
        return xy[0], vis[0]

    def track_batch(self, videos: np.ndarray, queries: np.ndarray):
        """Several clips of one size at once: videos (B, T, H, W, 3) uint8, queries (B, N, 3).
        Returns xy (B, N, T, 2), vis (B, N, T) in {0, 1} and the probabilities (B, N, T)."""
        videos = np.asarray(videos)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if videos.ndim != 5 or videos.shape[-1] != 3:
            raise VideoError(f"cotracker3 videos: expected (B, T, H, W, 3) RGB, got shape {videos.shape}")
        B, T, H, W, _ = videos.shape
        if H < 2 or W < 2:
            raise VideoError(f"cotracker3 video: unusable frame size {H}x{W}")
        if queries.ndim != 3 or queries.shape[0] != B:
            raise InvalidTrajectories(f"cotracker3 queries: expected ({B}, N, 3) (t, x, y), got shape {queries.shape}")
        for b in range(B):
            check_track_inputs(videos[b], queries[b])
        queries = queries.copy()
        queries[..., 0] = np.round(queries[..., 0])     # frame indices (the network truncates)
        video_t = torch.from_numpy(np.ascontiguousarray(videos)).permute(0, 1, 4, 2, 3)  # (B, T, 3, H, W) uint8 view
        out = self.predict(video_t, torch.from_numpy(queries))
        xy = out["tracks"].float().permute(0, 2, 1, 3).cpu().numpy()                  # (B, N, T, 2)
        vis = out["visibility"].permute(0, 2, 1).cpu().numpy().astype(np.float32)     # (B, N, T)
        prob = out["vis_prob"].float().permute(0, 2, 1).cpu().numpy()                 # (B, N, T)
        return np.ascontiguousarray(xy, dtype=np.float32), np.ascontiguousarray(vis), np.ascontiguousarray(prob)
