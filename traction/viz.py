"""Drawing point tracks on video frames (``traction visualize``; paper Figure 1 style).

    frames = draw_tracks(video, xy, vis, color_by="time", tail=8)   # (T, H, W, 3) uint8
    save_visualization(frames, "tracks.mp4")                        # .mp4, .gif or .png strip
    visualize("clip.mp4", "tracks.png", points=400)                 # decode + LK + draw + save
    visualize("clip_00003", "tracks.gif", store="cache/")           # a stored record

Visible points are filled discs, occluded ones hollow rings; each point trails a line through its
last ``tail`` positions (segments between visible positions only). Colours come from the turbo
colour map: by query time (early blue, late red) or by depth (far blue, near red; inverse depth
as Video Depth Anything gives it, normalized per clip between its 2nd and 98th percentiles).
"""
from __future__ import annotations

import argparse
import os
from typing import Any, Optional, Sequence

import cv2
import numpy as np

from traction.errors import ConfigError, InvalidTrajectories, VideoError

COLOR_BY = ("time", "depth")
SUFFIXES = (".mp4", ".gif", ".png")
_SHIFT = 4                      # cv2 fixed-point bits: sub-pixel positions for anti-aliased drawing


def _turbo(values: np.ndarray) -> np.ndarray:
    """(...,) values in [0, 1] -> (..., 3) uint8 RGB from the turbo colour map."""
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1]  # (256, 3)
    idx = np.clip(np.rint(np.nan_to_num(values) * 255), 0, 255).astype(np.int64)
    return lut[idx]


def track_colors(xy: np.ndarray, vis: np.ndarray, color_by: str = "time", depth: Optional[np.ndarray] = None,
                 queries: Optional[np.ndarray] = None) -> np.ndarray:
    """(N, T, 3) uint8 colour of each point in each frame."""
    n, t = vis.shape
    if color_by == "time":
        if queries is not None:
            qt = np.asarray(queries, np.float64)[:, 0]
        else:                                     # first visible frame stands in for the query frame
            qt = np.where(vis.max(axis=1) > 0.5, np.argmax(vis > 0.5, axis=1), 0).astype(np.float64)
        rgb = _turbo(qt / max(t - 1, 1))                                         # (N, 3)
        return np.broadcast_to(rgb[:, None, :], (n, t, 3))
    if color_by == "depth":
        if depth is None:
            raise ConfigError("color_by='depth' needs depth (N, T): use 2.5D trajectories or a depth model")
        d = np.asarray(depth, np.float64)
        if d.shape != (n, t):
            raise InvalidTrajectories(f"depth must have shape (N, T) = {(n, t)}, got {d.shape}")
        lo, hi = np.percentile(d, [2, 98])
        return _turbo((d - lo) / (hi - lo) if hi > lo else np.full_like(d, 0.5))
    raise ConfigError(f"color_by={color_by!r} is unknown; choose one of {', '.join(COLOR_BY)}")


def draw_tracks(frames: np.ndarray, xy: np.ndarray, vis: np.ndarray, color_by: str = "time",
                depth: Optional[np.ndarray] = None, tail: int = 8, *, queries: Optional[np.ndarray] = None,
                radius: Optional[int] = None) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 with the tracks xy (N, T, 2) / vis (N, T) drawn on a copy."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VideoError(f"frames must be (T, H, W, 3) uint8, got {frames.dtype} {frames.shape}")
    xy = np.asarray(xy, np.float64)
    vis = np.asarray(vis, np.float64)
    t_total, h, w = frames.shape[:3]
    if xy.ndim != 3 or xy.shape[1:] != (t_total, 2) or vis.shape != xy.shape[:2]:
        raise InvalidTrajectories(f"xy must be (N, T={t_total}, 2) and vis (N, T), got {xy.shape} and {vis.shape}")
    colors = track_colors(xy, vis, color_by, depth, queries).astype(int)            # (N, T, 3)
    r = int(radius) if radius is not None else max(2, int(round(max(h, w) / 160)))
    line_w = max(1, r // 2)
    fixed = np.rint(np.nan_to_num(xy) * (1 << _SHIFT)).astype(np.int64)            # (N, T, 2)
    visible = vis > 0.5
    out = np.ascontiguousarray(frames.copy())
    for t in range(t_total):
        canvas = out[t]
        for k in range(max(0, t - int(tail)), t):    # tails first, so discs sit on top
            seg = np.flatnonzero(visible[:, k] & visible[:, k + 1])
            for i in seg:
                cv2.line(canvas, tuple(fixed[i, k]), tuple(fixed[i, k + 1]), tuple(colors[i, t].tolist()),
                         line_w, cv2.LINE_AA, _SHIFT)
        for i in range(xy.shape[0]):
            color = tuple(colors[i, t].tolist())
            if visible[i, t]:                         # a dark rim sets the disc off any texture
                cv2.circle(canvas, tuple(fixed[i, t]), (r + 1) << _SHIFT, (0, 0, 0), -1, cv2.LINE_AA, _SHIFT)
                cv2.circle(canvas, tuple(fixed[i, t]), r << _SHIFT, color, -1, cv2.LINE_AA, _SHIFT)
            else:                                     # occluded: a hollow ring at the estimate
                cv2.circle(canvas, tuple(fixed[i, t]), r << _SHIFT, color, 1, cv2.LINE_AA, _SHIFT)
    return out


def frame_strip(frames: np.ndarray, count: int = 6, gap: int = 4) -> np.ndarray:
    """(H, count * W + gaps, 3) image of ``count`` evenly spaced frames side by side."""
    t_total, h, w = frames.shape[:3]
    idx = np.unique(np.linspace(0, t_total - 1, min(count, t_total)).round().astype(int))
    strip = np.full((h, len(idx) * w + (len(idx) - 1) * gap, 3), 255, np.uint8)
    for j, t in enumerate(idx):
        strip[:, j * (w + gap): j * (w + gap) + w] = frames[t]
    return strip


def save_visualization(frames: np.ndarray, out_path: str, fps: float = 12.0, *, strip_frames: int = 6) -> str:
    """Write frames (T, H, W, 3) uint8 to .mp4 (PyAV h264), .gif (Pillow) or .png (a strip of
    ``strip_frames`` evenly spaced frames); returns the path."""
    out_path = os.fspath(out_path)
    suffix = os.path.splitext(out_path)[1].lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"{out_path}: unsupported visualization format; use one of {', '.join(SUFFIXES)}")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise VideoError(f"{out_path}: frames must be (T, H, W, 3) uint8 with T >= 1, got {frames.dtype} {frames.shape}")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    if suffix == ".mp4":
        from traction.video import write_video

        return write_video(out_path, frames, fps=fps, codec="h264")
    if suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(out_path, save_all=True, append_images=images[1:], loop=0,
                       duration=max(20, int(round(1000.0 / fps))), optimize=False)
        return out_path
    if not cv2.imwrite(out_path, cv2.cvtColor(frame_strip(frames, strip_frames), cv2.COLOR_RGB2BGR)):
        raise VideoError(f"{out_path}: could not write the PNG")
    return out_path


def _upscale(frames: np.ndarray, xy: np.ndarray, min_side: int):
    """Enlarge small frames (synthetic 160x120 clips) so that discs and tails stay legible."""
    h, w = frames.shape[1:3]
    factor = int(np.ceil(min_side / min(h, w))) if min(h, w) < min_side else 1
    if factor == 1:
        return frames, xy
    big = np.stack([cv2.resize(f, (w * factor, h * factor), interpolation=cv2.INTER_NEAREST) for f in frames])
    # pixel centres: x_big + 0.5 = factor * (x + 0.5)
    return big, (xy + 0.5) * factor - 0.5


def _record_frames(rec: Any, video: Optional[str]) -> np.ndarray:
    """Frames under a stored record's trajectories: its source video if readable, else grey."""
    from traction.video import decode

    traj = rec.trajectories
    source = video if video and os.path.isfile(video) else (rec.meta or {}).get("source")
    if source and os.path.isfile(str(source)):
        full = decode(str(source), max_side=max(traj.height, traj.width, 16))
        pos = np.clip(np.rint(traj.frame_indices).astype(int), 0, full.num_frames - 1)
        frames = full.frames[pos]
        if frames.shape[1:3] != (traj.height, traj.width):
            frames = np.stack([cv2.resize(f, (traj.width, traj.height), interpolation=cv2.INTER_AREA)
                               for f in frames])
        return frames
    return np.full((traj.num_frames, traj.height, traj.width, 3), 96, np.uint8)


def visualize(video_or_clip: str, out: str, *, points: int = 400, color_by: str = "time", tail: int = 8,
              store: Optional[str] = None, clip: Optional[str] = None, tracker: str = "lk",
              depth_model: str = "none", max_side: int = 480, seed: int = 0, device: str = "cpu",
              min_side: int = 360) -> str:
    """Draw tracks and save them to ``out`` (.mp4, .gif or .png); returns ``out``.

    A video path is decoded (``max_side``), ``points`` queries are sampled uniformly over
    (t, x, y) and tracked with ``tracker`` (LK by default); ``depth_model`` (e.g. "vda-s") adds
    depth for ``color_by="depth"``. With ``store``, the record ``clip`` (or ``video_or_clip`` as a
    clip id) is drawn over its source video, or over grey frames where that is not available.
    """
    from traction import tracking
    from traction.video import decode

    depth = None
    queries = None
    if store is not None:
        from traction.store import open_store

        clip_id = clip if clip is not None else video_or_clip
        rec = open_store(store).get(clip_id)
        traj = rec.trajectories
        frames = _record_frames(rec, video_or_clip if clip is not None else None)
        xy, vis, depth, queries, fps = traj.xy, traj.vis, traj.depth, None, traj.fps or 12.0
    else:
        video = decode(video_or_clip, max_side=max_side, device=device)
        frames, fps = video.frames, video.fps
        t_total, h, w = frames.shape[:3]
        queries = tracking.sample_queries(int(points), t_total, h, w, seed)
        xy, vis = tracking.load_tracker(tracker, device=device).track(frames, queries)
        if depth_model != "none":
            from traction import depth as depth_models
            from traction import ops

            model = depth_models.load_depth(depth_model, device=device)
            depth = ops.lift_depth(np.asarray(model.predict(frames), np.float32), xy, (h, w))
    if color_by == "depth" and depth is None:
        raise ConfigError(f"{video_or_clip}: color_by='depth' needs depth; pass a depth model (--depth vda-s) "
                          "or a store record with depth")
    frames, xy = _upscale(frames, np.asarray(xy, np.float64), min_side)
    drawn = draw_tracks(frames, xy, vis, color_by=color_by, depth=depth, tail=tail, queries=queries)
    return save_visualization(drawn, out, fps=fps)


# ---------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("video_or_clip", help="a video file, or a clip id with --store")
    parser.add_argument("--out", required=True, help="output .mp4, .gif or .png (a strip of 6 frames)")
    parser.add_argument("--points", type=int, default=400, help="tracks to draw for a video (default 400)")
    parser.add_argument("--color-by", default="time", choices=COLOR_BY, help="colour by query time or depth")
    parser.add_argument("--tail", type=int, default=8, help="frames of trail behind each point (default 8)")
    parser.add_argument("--store", help="trajectory store to read the clip from")
    parser.add_argument("--clip", help="clip id in --store (default: the positional argument)")
    parser.add_argument("--tracker", default="lk", help="tracker for videos (default lk)")
    parser.add_argument("--depth", default="none", help="depth model for --color-by depth on videos (e.g. vda-s)")
    parser.add_argument("--max-side", type=int, default=480, help="decode videos at most this large (default 480)")
    parser.add_argument("--seed", type=int, default=0, help="query sampling seed (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    return parser


def register_cli(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Add ``visualize`` to the ``traction`` sub-commands; sets ``func=main``."""
    parser = subparsers.add_parser(
        "visualize", help="draw point tracks of a video or a stored clip to .mp4/.gif/.png",
        description="Track a video with LK (or CoTracker3) and draw the tracks, or draw a stored clip's "
                    "trajectories over its source video.")
    add_arguments(parser)
    parser.set_defaults(func=main)
    return parser


def main(args: "argparse.Namespace | Sequence[str] | None" = None) -> int:
    """Run ``traction visualize`` from parsed args (or an argv list)."""
    if not isinstance(args, argparse.Namespace):
        args = add_arguments(argparse.ArgumentParser(prog="traction visualize")).parse_args(args)
    path = visualize(args.video_or_clip, args.out, points=args.points, color_by=args.color_by, tail=args.tail,
                     store=args.store, clip=args.clip, tracker=args.tracker, depth_model=args.depth,
                     max_side=args.max_side, seed=args.seed, device=args.device)
    print(f"wrote {path}")
    return 0
