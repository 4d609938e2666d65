"""Rendered synthetic videos with ground-truth tracks and depth (``traction synth videos``).

They exercise the video side (decoding, tracking, depth lifting, tracking metrics, the whole
extraction pipeline) with known answers. A clip is a textured object in front of a textured
background, filmed by a camera that may pan:

    background  a procedural texture (colour field, stripes, blobs, fine noise for corners) on a
                far plane: inverse depth 0.15..0.35, growing towards the bottom of the world
    object      a textured ellipse, box or star doing the class motion (the classes of
                ``traction.synth.trajectories``: five time-reversed pairs + shake + static);
                inverse depth 0.6 x its depth gain (move_towards/away change size and depth
                together, expand/contract only size), so bigger = nearer, like Video Depth Anything
    camera      a random linear pan in half the clips (background and object shift together)
    occluder    in some clips a textured bar passes across the frame in front of everything
    leaving     in some move_* clips the object travels far enough to leave the frame

Geometry is exact: frames are composited with cv2.warpAffine from the same affine maps that move
the ground-truth points, with pixel centres at integer coordinates. The second class of each
chiral pair is the exact time reversal of a clip rendered with the first class's motion (camera,
occluder and all), so the pair differs only in the direction of time.

Ground truth per clip (``gt/<clip>.npz``): queries (N, 3) (t, x, y) sampled on visible pixels
(about 60% on the object), xy (N, T, 2), vis (N, T) (0 outside the frame, behind the occluder, or
background behind the object), depth (N, T) (each point's own inverse depth, also while hidden),
on_object (N,), label, fps, and depth_maps (T, H, W) float16 unless disabled. Videos are mp4
(h264 or mpeg4) or webm (vp9), listed in ``list.txt`` as ``path label split`` with paths
relative to the list (as ``traction extract --list`` reads them).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from traction.errors import ConfigError
from traction.synth.trajectories import CHIRAL_PAIRS, CLASSES, DEFAULT_CLASSES, clip_rng, clip_split

_REVERSAL_OF = {b: a for a, b in CHIRAL_PAIRS}        # class -> class whose reversed clips it is
CODEC_SUFFIX = {"h264": ".mp4", "mpeg4": ".mp4", "vp9": ".webm"}
HEIGHT, WIDTH, FPS = 120, 160, 12.0
MARGIN = 40                                           # background texture border for camera pans
DEPTH_OCCLUDER = 1.5


@dataclasses.dataclass
class SynthClip:
    """One rendered clip and its ground truth (see the module docstring)."""

    frames: np.ndarray          # (T, H, W, 3) uint8 RGB
    queries: np.ndarray         # (N, 3) float32 (t, x, y)
    xy: np.ndarray              # (N, T, 2) float32
    vis: np.ndarray             # (N, T) float32
    depth: np.ndarray           # (N, T) float32 inverse depth of each point
    depth_maps: np.ndarray      # (T, H, W) float32 inverse depth of each pixel
    on_object: np.ndarray       # (N,) bool
    label: str
    fps: float


# ---------------------------------------------------------------------- textures
def _texture(rng: np.random.Generator, h: int, w: int, palette: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 texture: smooth colour field + stripes + blobs + fine noise (LK corners)."""
    grid = rng.uniform(0, 1, (h // 12 + 2, w // 12 + 2, 3))
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)               # (h, w, 3)
    img = palette[0] * (1 - field) + palette[1] * field
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    a, freq = rng.uniform(0, np.pi), rng.uniform(0.15, 0.5)
    stripes = 0.5 + 0.5 * np.sin((xx * np.cos(a) + yy * np.sin(a)) * freq)        # (h, w)
    img = img * (0.7 + 0.3 * stripes[..., None])
    for _ in range(max(2, h * w // 600)):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        colour = tuple(float(c) for c in palette[int(rng.integers(2))] * rng.uniform(0.5, 1.5))
        cv2.circle(img, centre, int(rng.integers(2, 7)), colour, -1, lineType=cv2.LINE_AA)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)), (0, 0), 0.8)
    img = img + 45 * noise[..., None] / (noise.std() + 1e-9)
    return np.clip(img, 0, 255).astype(np.float32)


def _shape_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) float32 alpha of an ellipse, box or star, centred."""
    mask = np.zeros((size, size), np.uint8)
    c = size // 2
    r = size // 2 - 2
    kind = rng.integers(3)
    if kind == 0:
        axes = (r, int(r * rng.uniform(0.6, 1.0)))
        cv2.ellipse(mask, (c, c), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA)
    elif kind == 1:
        hw = int(r * 0.75)
        hh = int(r * rng.uniform(0.5, 0.75))
        cv2.rectangle(mask, (c - hw, c - hh), (c + hw, c + hh), 255, -1)
    else:
        k = int(rng.integers(5, 8))
        ang = np.linspace(0, 2 * np.pi, 2 * k, endpoint=False) + rng.uniform(0, np.pi)
        rad = np.where(np.arange(2 * k) % 2 == 0, r, r * 0.55)
        pts = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1).round().astype(np.int32)
        cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA)
    return mask.astype(np.float32) / 255.0


# ---------------------------------------------------------------------- motion
def _class_motion(rng: np.random.Generator, label: str, t_total: int, h: int, w: int, leaving: bool
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Object shift (T, 2) px, scale (T,), angle (T,) rad (clockwise on screen), depth gain (T,)."""
    t = np.arange(t_total, dtype=np.float64)
    dur = rng.uniform(*((0.7, 1.0) if label == "shake" else (0.5, 0.9))) * (t_total - 1)
    t0 = rng.uniform(0.0, t_total - 1 - dur)
    u = np.clip((t - t0) / dur, 0.0, 1.0)
    c = u * u * (3 - 2 * u) - 0.5                           # (T,) smooth progress in [-0.5, 0.5]
    shift, scale = np.zeros((t_total, 2)), np.ones(t_total)
    angle, gain = np.zeros(t_total), np.ones(t_total)
    if label == "move_left":
        shift[:, 0] = -(rng.uniform(1.1, 1.4) if leaving else rng.uniform(0.3, 0.55)) * w * c
    elif label == "move_up":
        shift[:, 1] = -(rng.uniform(1.2, 1.5) if leaving else rng.uniform(0.3, 0.55)) * h * c
    elif label in ("move_towards", "expand"):
        scale = np.exp(rng.uniform(0.6, 1.1) * c)
        if label == "move_towards":
            gain = scale                                    # size and inverse depth both ~ 1 / distance
            # An object approaching over the ground plane also descends in the image a little; this
            # keeps move_towards apart from expand for 2D trajectories (extraction with --depth none)
            # while the size change stays the main cue (a larger descent reads as move_down).
            shift[:, 1] = rng.uniform(0.12, 0.2) * h * (scale - 1.0)
    elif label == "rotate_cw":
        # y points down, so a positive angle in the usual rotation matrix turns clockwise on screen
        angle = rng.uniform(1.0, 1.5) * np.pi * c
    elif label == "shake":
        amp, cycles, phase = rng.uniform(17, 27), rng.uniform(2.5, 3.5), rng.uniform(0, 2 * np.pi)
        d = rng.normal(0, 1, 2)
        d /= np.linalg.norm(d) + 1e-9
        shift = (amp * np.sin(2 * np.pi * cycles * u + phase) * np.sin(np.pi * u))[:, None] * d[None]
    elif label != "static":
        raise ConfigError(f"unknown synthetic class {label!r}; known: {', '.join(CLASSES)}")
    return shift, scale, angle, gain


def _object_affines(centre: np.ndarray, scale: np.ndarray, angle: np.ndarray, size: int) -> np.ndarray:
    """(T, 2, 3) maps from object-texture pixels to frame pixels."""
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)      # (T, 2, 2)
    half = (size - 1) / 2.0
    offset = centre - rot @ np.array([half, half])                                 # (T, 2)
    return np.concatenate([rot, offset[..., None]], axis=-1)


def _apply(aff: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(..., 2, 3) affines applied to (..., 2) points."""
    return (aff[..., :2] @ p[..., None])[..., 0] + aff[..., 2]


def _invert(aff: np.ndarray) -> np.ndarray:
    lin = np.linalg.inv(aff[..., :2])
    return np.concatenate([lin, -(lin @ aff[..., 2:])], axis=-1)


# ---------------------------------------------------------------------- one clip
def render_clip(rng: np.random.Generator, label: str, *, frames: int = 32, height: int = HEIGHT,
                width: int = WIDTH, points: int = 64, fps: float = FPS, depth_maps: bool = True) -> SynthClip:
    """Render one clip of class ``label`` with ground truth (module docstring)."""
    if label not in CLASSES:
        raise ConfigError(f"unknown synthetic class {label!r}; known: {', '.join(CLASSES)}")
    t_total, h, w = int(frames), int(height), int(width)
    if t_total < 2 or min(h, w) < 32 or int(points) < 1:
        raise ConfigError(f"synthetic clip needs frames >= 2, sides >= 32 px and points >= 1; "
                          f"got frames={frames}, {width}x{height}, points={points}")
    base = _REVERSAL_OF.get(label, label)

    # Scene: background plane, object texture and shape, occluder texture.
    warm, cool = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    bg = _texture(rng, h + 2 * MARGIN, w + 2 * MARGIN, np.stack([warm * 0.6, cool * 0.6]))
    size = int(rng.uniform(0.55, 0.75) * min(h, w)) | 1  # ~20-35% of the frame: enough tracked points
    obj_tex = _texture(rng, size, size, np.stack([255 - warm, rng.uniform(60, 255, 3)]))
    obj_mask = _shape_mask(rng, size)
    occ_tex = _texture(rng, h + w, h + w, np.stack([rng.uniform(0, 80, 3), rng.uniform(150, 255, 3)]))

    # Motion: class motion of the object about a random centre, camera pan, occluder sweep.
    leaving = base in ("move_left", "move_up") and rng.random() < 0.25
    shift, scale, angle, gain = _class_motion(rng, base, t_total, h, w, leaving)
    mid = np.array([rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h])
    tau = np.arange(t_total) / (t_total - 1) - 0.5
    pan = rng.uniform(-1.6, 1.6, 2) * MARGIN if rng.random() < 0.5 else np.zeros(2)
    cam = pan[None, :] * tau[:, None]                        # (T, 2) frame pixel p shows world p + cam
    obj_inv_depth = rng.uniform(0.5, 0.7)
    far, tilt = rng.uniform(0.15, 0.25), rng.uniform(0.0, 0.1)
    occluder = None
    if rng.random() < 0.35:
        bar = int(rng.uniform(0.08, 0.14) * w)
        vertical = bool(rng.random() < 0.6)                  # a vertical bar sweeps horizontally
        extent = w if vertical else h
        lo, hi = -bar, extent
        pos = lo + (hi - lo) * (tau + 0.5)
        occluder = (vertical, bar, pos if rng.random() < 0.5 else pos[::-1].copy())

    # Time reversal for the second class of a chiral pair: every per-frame quantity reversed.
    if base != label:
        shift, scale, angle, gain, cam = (a[::-1].copy() for a in (shift, scale, angle, gain, cam))
        if occluder is not None:
            occluder = (occluder[0], occluder[1], occluder[2][::-1].copy())

    to_frame = _object_affines(mid + shift - cam, scale, angle, size)              # (T, 2, 3)
    to_tex = _invert(to_frame)

    def occluded_by_bar(p: np.ndarray, t: np.ndarray) -> np.ndarray:
        """(..., 2) frame points at frames t (broadcast) -> bool, behind the occluder bar."""
        if occluder is None:
            return np.zeros(p.shape[:-1], bool)
        vertical, bar, pos = occluder
        coord = p[..., 0] if vertical else p[..., 1]
        return (coord >= pos[t] - 0.5) & (coord < pos[t] + bar - 0.5)

    def on_object(p: np.ndarray, t: np.ndarray) -> np.ndarray:
        """(..., 2) frame points at frames t -> bool, covered by the object (alpha > 0.5)."""
        uv = _apply(to_tex[t], p)
        iu, iv = np.rint(uv[..., 0]).astype(np.int64), np.rint(uv[..., 1]).astype(np.int64)
        ok = (iu >= 0) & (iu < size) & (iv >= 0) & (iv < size)
        return ok & (obj_mask[np.clip(iv, 0, size - 1), np.clip(iu, 0, size - 1)] > 0.5)

    # Render.
    video = np.empty((t_total, h, w, 3), np.uint8)
    dmaps = np.empty((t_total, h, w), np.float32)
    yy = np.arange(h, dtype=np.float32)[:, None]
    for t in range(t_total):
        m_bg = np.float32([[1, 0, MARGIN + cam[t, 0]], [0, 1, MARGIN + cam[t, 1]]])   # frame -> texture
        frame = cv2.warpAffine(bg, m_bg, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        aff = to_frame[t].astype(np.float32)
        alpha = cv2.warpAffine(obj_mask, aff, (w, h), flags=cv2.INTER_LINEAR)[..., None]
        tex = cv2.warpAffine(obj_tex, aff, (w, h), flags=cv2.INTER_LINEAR)
        frame = frame * (1 - alpha) + tex * alpha
        depth = np.broadcast_to(far + tilt * (yy + cam[t, 1] + MARGIN) / (h + 2 * MARGIN), (h, w))
        depth = np.where(alpha[..., 0] > 0.5, obj_inv_depth * gain[t], depth)
        if occluder is not None:
            vertical, bar, pos = occluder
            start = int(np.ceil(pos[t] - 0.5))
            stop = int(np.ceil(pos[t] + bar - 0.5))
            sl = (slice(None), slice(max(start, 0), max(stop, 0))) if vertical else \
                 (slice(max(start, 0), max(stop, 0)), slice(None))
            frame[sl] = occ_tex[:h, :w][sl]
            depth = depth.copy()
            depth[sl] = DEPTH_OCCLUDER
        video[t] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
        dmaps[t] = depth

    # Ground truth: queries on visible object and background pixels, moved by the exact maps.
    n = int(points)
    n_obj = int(round(n * 0.6))
    frames_idx = np.arange(t_total)
    grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).reshape(-1, 2).astype(np.float64)  # (H*W, 2)
    qt = rng.integers(0, t_total, n)
    qxy = np.zeros((n, 2))
    is_obj = np.arange(n) < n_obj
    eroded = cv2.erode(obj_mask, np.ones((3, 3), np.uint8))
    for t in np.unique(qt):
        hidden = occluded_by_bar(grid, np.full(len(grid), t))                      # (H*W,)
        covered = on_object(grid, np.full(len(grid), t))
        # Object queries stay a pixel away from the object's edge, where its alpha is fully opaque.
        interior = covered & (cv2.warpAffine(eroded, to_frame[t].astype(np.float32), (w, h)).reshape(-1) > 0.99)
        obj_cand = np.flatnonzero(interior & ~hidden)
        bg_cand = np.flatnonzero(~covered & ~hidden)
        for i in np.flatnonzero(qt == t):
            if is_obj[i] and obj_cand.size == 0:       # object out of view then: a background point
                is_obj[i] = False
            cand = obj_cand if is_obj[i] else bg_cand
            if cand.size == 0:                          # the bar hides all background: any pixel
                cand = np.arange(len(grid))
            qxy[i] = grid[rng.choice(cand)] + rng.uniform(-0.49, 0.49, 2)
    uv = _apply(to_tex[qt], qxy)                                                   # (N, 2) object coords
    xy_obj = _apply(to_frame[None, :], uv[:, None, :])                              # (N, T, 2)
    world = qxy + cam[qt]                                                          # (N, 2) background
    xy_bg = world[:, None, :] - cam[None, :, :]                                    # (N, T, 2)
    xy = np.where(is_obj[:, None, None], xy_obj, xy_bg)
    xy[np.arange(n), qt] = qxy                                                     # exact at the query
    tt = np.broadcast_to(frames_idx[None, :], (n, t_total))
    inside = (xy[..., 0] >= 0) & (xy[..., 0] <= w - 1) & (xy[..., 1] >= 0) & (xy[..., 1] <= h - 1)
    vis = inside & ~occluded_by_bar(xy, tt) & (is_obj[:, None] | ~on_object(xy, tt))
    vis[np.arange(n), qt] = True
    depth_bg = far + tilt * (world[:, 1] + MARGIN) / (h + 2 * MARGIN)             # (N,)
    depth = np.where(is_obj[:, None], obj_inv_depth * gain[None, :], depth_bg[:, None])
    return SynthClip(frames=video, queries=np.concatenate([qt[:, None], qxy], 1).astype(np.float32),
                     xy=xy.astype(np.float32), vis=vis.astype(np.float32), depth=depth.astype(np.float32),
                     depth_maps=dmaps if depth_maps else None, on_object=is_obj, label=label, fps=float(fps))


# ---------------------------------------------------------------------- datasets
def _write_clip(job: Dict) -> str:
    """Render clip ``job["index"]``, write its video and ground truth; -> its ``list.txt`` line."""
    from traction.video import write_video

    seed, i, classes = job["seed"], job["index"], job["classes"]
    rng = clip_rng(seed, i)
    label = classes[i % len(classes)]
    t_total = int(rng.integers(job["frames"][0], job["frames"][1] + 1))
    clip = render_clip(rng, label, frames=t_total, height=job["height"], width=job["width"],
                       points=job["points"], fps=job["fps"], depth_maps=job["depth_maps"])
    name = f"clip_{i:05d}"
    video_name = name + CODEC_SUFFIX[job["codec"]]
    write_video(os.path.join(job["out"], video_name), clip.frames, fps=job["fps"], codec=job["codec"])
    gt: Dict[str, np.ndarray] = dict(queries=clip.queries, xy=clip.xy, vis=clip.vis, depth=clip.depth,
                                     on_object=clip.on_object, label=np.array(label),
                                     fps=np.array(job["fps"], np.float32))
    if clip.depth_maps is not None:
        gt["depth_maps"] = clip.depth_maps.astype(np.float16)
    tmp = os.path.join(job["out"], "gt", name + ".tmp.npz")
    np.savez_compressed(tmp, **gt)
    os.replace(tmp, os.path.join(job["out"], "gt", name + ".npz"))
    return f"{video_name} {label} {clip_split(seed, i, len(classes), job['test_fraction'])}"


def synth_videos(out: "str | os.PathLike[str]", n: int, seed: int = 0, *, frames: Tuple[int, int] = (24, 32),
                 height: int = HEIGHT, width: int = WIDTH, points: int = 64, fps: float = FPS,
                 codec: str = "h264", test_fraction: float = 0.2, classes: Optional[Sequence[str]] = None,
                 depth_maps: bool = True, progress: bool = True, workers: int = 1) -> str:
    """Render ``n`` clips into ``out`` (in ``workers`` processes) and return the path of ``out/list.txt``.

    Clip i has class ``classes[i % K]`` (balanced), name ``clip_<i>``, T uniform in ``frames``
    (inclusive) and split ``traction.synth.trajectories.clip_split``; it depends only on (seed, i),
    not on n. Existing clips are rendered again (cheap) so a partial directory is completed.
    """
    from tqdm.auto import tqdm

    classes = list(DEFAULT_CLASSES if classes is None else classes)
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or not classes:
        raise ConfigError(f"unknown synthetic classes {unknown or classes}; known: {', '.join(CLASSES)}")
    if codec not in CODEC_SUFFIX:
        raise ConfigError(f"codec {codec!r} is unknown; choose one of {', '.join(CODEC_SUFFIX)}")
    if int(n) < 1:
        raise ConfigError(f"n must be >= 1 clip, got {n}")
    if isinstance(frames, int):
        frames = (frames, frames)
    lo, hi = int(frames[0]), int(frames[1])
    if not 2 <= lo <= hi:
        raise ConfigError(f"frames range {frames} must satisfy 2 <= min <= max")
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"test_fraction {test_fraction} must be in [0, 1)")
    out = os.fspath(out)
    os.makedirs(os.path.join(out, "gt"), exist_ok=True)
    jobs = [dict(out=out, seed=seed, index=i, classes=classes, frames=(lo, hi), height=height, width=width,
                 points=points, fps=fps, codec=codec, test_fraction=test_fraction, depth_maps=depth_maps)
            for i in range(int(n))]
    bar = dict(total=len(jobs), desc="synth videos", unit="clip", disable=not progress)
    if workers > 1:
        import concurrent.futures
        import multiprocessing

        # spawn: the parent may hold torch/OpenCV thread pools that a fork would copy mid-state
        with concurrent.futures.ProcessPoolExecutor(int(workers), mp_context=multiprocessing.get_context("spawn")) as ex:
            lines = list(tqdm(ex.map(_write_clip, jobs, chunksize=8), **bar))
    else:
        lines = [_write_clip(job) for job in tqdm(jobs, **bar)]
    list_path = os.path.join(out, "list.txt")
    with open(list_path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(list_path + ".tmp", list_path)
    return list_path


def load_gt(out: str, name: str) -> Dict[str, np.ndarray]:
    """The ground-truth arrays of clip ``name`` (e.g. "clip_00003") in a ``synth_videos`` directory."""
    with np.load(os.path.join(out, "gt", name + ".npz")) as z:
        return {k: z[k] for k in z.files}


# ---------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--out", required=True, help="directory to write videos, gt/ and list.txt into")
    parser.add_argument("--n", type=int, default=200, help="number of clips (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--codec", default="h264", choices=sorted(CODEC_SUFFIX),
                        help="h264 or mpeg4 (.mp4), vp9 (.webm, DALI's CPU decoder reads it)")
    parser.add_argument("--points", type=int, default=64, help="ground-truth tracks per clip (default 64)")
    parser.add_argument("--frames", type=int, nargs=2, default=(24, 32), metavar=("MIN", "MAX"),
                        help="frames per clip, uniform in [MIN, MAX] (default 24 32)")
    parser.add_argument("--size", type=int, nargs=2, default=(WIDTH, HEIGHT), metavar=("W", "H"),
                        help=f"frame size (default {WIDTH} {HEIGHT})")
    parser.add_argument("--fps", type=float, default=FPS, help=f"frame rate (default {FPS:g})")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="fraction of clips in split 'test'")
    parser.add_argument("--classes", default=None,
                        help=f"comma-separated subset of: {','.join(CLASSES)} (default: all but expand,contract)")
    parser.add_argument("--no-depth-maps", action="store_true", help="leave per-frame depth maps out of gt/")
    parser.add_argument("--workers", type=int, default=1, help="rendering processes (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def register_cli(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Add ``videos`` to a ``traction synth`` sub-command group; sets ``func=main``."""
    parser = subparsers.add_parser(
        "videos", help="render synthetic labelled videos with ground-truth tracks and depth",
        description="Render textured-object clips (10 motion classes by default incl. time-reversed pairs, camera "
                    "pans, occluders) as videos, with gt/<clip>.npz tracks + depth and list.txt.")
    add_arguments(parser)
    parser.set_defaults(func=main)
    return parser


def main(args: "argparse.Namespace | Sequence[str] | None" = None) -> int:
    """Run ``traction synth videos`` from parsed args (or an argv list)."""
    if not isinstance(args, argparse.Namespace):
        args = add_arguments(argparse.ArgumentParser(prog="traction synth videos")).parse_args(args)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    list_path = synth_videos(args.out, args.n, args.seed, frames=tuple(args.frames), width=args.size[0],
                             height=args.size[1], points=args.points, fps=args.fps, codec=args.codec,
                             test_fraction=args.test_fraction, classes=classes,
                             depth_maps=not args.no_depth_maps, progress=not args.no_progress,
                             workers=args.workers)
    print(f"{list_path}: {args.n} clips")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
