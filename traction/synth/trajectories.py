"""Procedural 2.5D trajectory clips with known action labels (``traction synth trajectories``).

They exercise the whole trajectory side (store, training, evaluation protocols) without videos,
trackers or depth models. Each clip is what a tracker plus a video depth model would return for
a scene of two layers (paper §3, "Trajectory extraction"):

    background  points on a far plane (small inverse depth, growing towards the image bottom)
    object      a random point cloud (blob, box, ring or two parts) nearer the camera, doing the
                class motion with random amplitude, start time and duration
    camera      a random global pan + zoom applied to ALL points: a distractor, so the action is
                the object's motion relative to the background, not the raw displacement
    depth       "inverse depth"-like like Video Depth Anything: bigger = nearer, known only up
                to a random per-clip scale and shift, with multiplicative noise
    visibility  0 outside the frame, behind the object (background points it passes over) and
                for random occlusion stretches; trajectories keep (noisier) positions when hidden
    queries     each point's query frame is uniform over the frames where it is visible, as with
                the uniform (t, x, y) query sampling of the real pipeline (design.md "Extraction")
    noise       tracking jitter plus a random-walk drift that is zero at the query frame

Chirality (paper §5, "chirality" protocol): the second class of each pair in ``CHIRAL_PAIRS`` is
generated as the exact time reversal of a clip of the first class's motion model, so the two
classes differ only in the direction of time. Every nuisance factor (camera, drift, occlusions,
query times, noise) is drawn from a time-symmetric distribution, so time direction is the only
cue that separates a pair.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from traction.errors import ConfigError
from traction.trajectories import Trajectories

CHIRAL_PAIRS: List[Tuple[str, str]] = [
    ("move_left", "move_right"),
    ("move_up", "move_down"),
    ("move_towards", "move_away"),   # depth and size change together
    ("rotate_cw", "rotate_ccw"),     # in the image plane, as seen on screen (y down)
    ("expand", "contract"),          # size change without depth change
]
SYMMETRIC_CLASSES: List[str] = ["shake", "static"]
CLASSES: List[str] = [name for pair in CHIRAL_PAIRS for name in pair] + SYMMETRIC_CLASSES
# The default set leaves out expand/contract: a size change without a depth change is told apart
# from the camera's zoom only by relating many trajectories, which a model learns far more slowly
# than the other motions; they stay available with ``classes=`` / ``--classes``.
DEFAULT_CLASSES: List[str] = [c for c in CLASSES if c not in ("expand", "contract")]
_REVERSAL_OF = {b: a for a, b in CHIRAL_PAIRS}   # class -> class whose reversed clips it is

HEIGHT, WIDTH, FPS = 240, 320, 12.0
GENERATOR_VERSION = 4  # bump when clips for a given seed change


# ---------------------------------------------------------------------- scene pieces
def _object_offsets(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    """(n, 2) point offsets of a random object shape around its centre, about ``radius`` in size."""
    kind = rng.integers(4)
    if kind == 0:    # blob
        p = rng.normal(0.0, radius / 2, (n, 2))
    elif kind == 1:  # box
        p = rng.uniform(-radius, radius, (n, 2))
    elif kind == 2:  # ring
        a = rng.uniform(0, 2 * np.pi, n)
        rr = radius * rng.uniform(0.7, 1.0, n)
        p = np.stack([rr * np.cos(a), rr * np.sin(a)], axis=1)
    else:            # body and a smaller part
        part = rng.random(n) < 0.3
        p = rng.normal(0.0, radius / 2.5, (n, 2))
        off = rng.normal(0.0, 1.0, 2)
        p[part] = p[part] * 0.5 + off / (np.linalg.norm(off) + 1e-6) * radius
    # anisotropic stretch and a random orientation, so shapes (and rotations) vary
    p = p * rng.uniform(0.6, 1.4, 2)
    a = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return p @ rot.T


def _class_motion(rng: np.random.Generator, label: str, s: np.ndarray, u: np.ndarray,
                  height: int, width: int):
    """Object motion over the clip from its progress ``s`` (T,) in [0, 1].

    Returns shift (T, 2) px, scale (T,), angle (T,) rad, depth_gain (T,). Motions are centred
    on s = 0.5 so the object's mid-motion position is the sampled centre (time-symmetric)."""
    T = s.shape[0]
    shift, scale = np.zeros((T, 2)), np.ones(T)
    angle, depth_gain = np.zeros(T), np.ones(T)
    c = s - 0.5
    if label == "move_left":
        shift[:, 0] = -rng.uniform(0.25, 0.45) * width * c
    elif label == "move_up":
        shift[:, 1] = -rng.uniform(0.3, 0.5) * height * c
    elif label in ("move_towards", "expand"):
        scale = np.exp(rng.uniform(0.8, 1.4) * c)
        if label == "move_towards":
            depth_gain = scale  # image size and inverse depth both scale as 1 / distance
    elif label == "rotate_cw":
        # With y pointing down, a positive angle in the usual rotation matrix turns clockwise on screen.
        angle = rng.uniform(1.0, 1.5) * np.pi * c
    elif label == "shake":
        # Several full cycles, well above the tracking jitter: a shake is told from "static" by the
        # coherent oscillation of the object's points, not by any single noisy trajectory.
        amp, cycles, phase = rng.uniform(35, 55), rng.uniform(2.5, 3.5), rng.uniform(0, 2 * np.pi)
        d = rng.normal(0, 1, 2)
        d /= np.linalg.norm(d) + 1e-9
        wave = amp * np.sin(2 * np.pi * cycles * u + phase) * np.sin(np.pi * u)  # zero outside the window
        shift = wave[:, None] * d[None, :]
    elif label != "static":
        raise ConfigError(f"unknown synthetic class {label!r}; known: {', '.join(CLASSES)}")
    return shift, scale, angle, depth_gain


def _simulate(rng: np.random.Generator, label: str, points: int, frames: int,
              height: int, width: int, fps: float) -> Trajectories:
    N, T, H, W = points, frames, height, width
    t = np.arange(T, dtype=np.float64)
    tau = t / (T - 1) - 0.5                                   # (T,) clip time in [-0.5, 0.5]
    centre = np.array([(W - 1) / 2, (H - 1) / 2])

    # Camera distractor, applied to every point: pan and zoom about the image centre.
    moving_camera = rng.random() < 0.7
    pan = rng.normal(0.0, 0.12 * W, 2) if moving_camera else np.zeros(2)
    zoom = rng.uniform(-0.1, 0.1) if moving_camera else 0.0
    cam_scale = np.exp(zoom * tau)                            # (T,)
    cam_shift = pan[None, :] * tau[:, None]                   # (T, 2)

    def camera(world: np.ndarray) -> np.ndarray:              # (n, T, 2) -> (n, T, 2) image px
        return (world - centre) * cam_scale[None, :, None] + centre + cam_shift[None]

    # Object: shape, mid-motion centre, class motion in a random window [t0, t0 + dur].
    n_obj = int(np.clip(round(N * rng.uniform(0.4, 0.6)), 1, max(N - 1, 1)))
    radius = rng.uniform(0.15, 0.25) * min(H, W)
    offsets = _object_offsets(rng, n_obj, radius)             # (n_obj, 2)
    mid = np.array([rng.uniform(0.3, 0.7) * W, rng.uniform(0.3, 0.7) * H])
    dur_range = (0.7, 1.0) if label == "shake" else (0.4, 0.85)   # a shake lasts most of the clip
    dur = rng.uniform(*dur_range) * (T - 1)
    t0 = rng.uniform(0.0, T - 1 - dur)
    u = np.clip((t - t0) / dur, 0.0, 1.0)                     # (T,) linear progress
    s = u * u * (3 - 2 * u)                                   # smooth start and stop
    shift, scale, angle, depth_gain = _class_motion(rng, label, s, u, H, W)
    drift = rng.normal(0.0, 4.0, 2)[None, :] * tau[:, None]   # (T, 2) small, class-independent
    cos, sin = np.cos(angle), np.sin(angle)
    rotated = np.stack([cos[None] * offsets[:, :1] - sin[None] * offsets[:, 1:],
                        sin[None] * offsets[:, :1] + cos[None] * offsets[:, 1:]], axis=-1)  # (n_obj, T, 2)
    obj_world = mid + shift[None] + drift[None] + scale[None, :, None] * rotated
    obj_xy = camera(obj_world)                                # (n_obj, T, 2)
    obj_inv_depth = rng.uniform(0.5, 1.0) + rng.normal(0.0, 0.03, n_obj)          # (n_obj,)
    obj_depth = obj_inv_depth[:, None] * depth_gain[None, :]  # (n_obj, T)

    # A point never inside the frame could not have been a query: it becomes a background point.
    inside = lambda xy: ((xy[..., 0] >= 0) & (xy[..., 0] <= W - 1)   # noqa: E731
                         & (xy[..., 1] >= 0) & (xy[..., 1] <= H - 1))
    keep = inside(obj_xy).any(axis=1)
    obj_xy, obj_depth = obj_xy[keep], obj_depth[keep]
    n_obj = int(keep.sum())
    n_bg = N - n_obj

    # Background: query frame uniform in time, position uniform in that frame, pulled back to
    # the world through the camera so the sampling is the same forwards and backwards in time.
    bg_tq = rng.integers(0, T, n_bg)
    bg_img = rng.uniform([0, 0], [W - 1, H - 1], (n_bg, 2))
    bg_world = (bg_img - cam_shift[bg_tq] - centre) / cam_scale[bg_tq, None] + centre  # (n_bg, 2)
    bg_xy = camera(np.broadcast_to(bg_world[:, None, :], (n_bg, T, 2)))            # (n_bg, T, 2)
    far, tilt = rng.uniform(0.05, 0.2), rng.uniform(0.0, 0.2)
    bg_inv_depth = far + tilt * np.clip(bg_world[:, 1] / H, 0, 1) + rng.normal(0.0, 0.01, n_bg)
    bg_depth = np.broadcast_to(bg_inv_depth[:, None], (n_bg, T))

    # Visibility: in the frame, not behind the object, not in a random occlusion stretch.
    bg_vis = inside(bg_xy)
    if n_obj and n_bg:
        spacing = radius * math.sqrt(np.pi / n_obj)           # mean distance between object points
        for k in range(T):  # per frame, and only near the object, to keep it small
            reach = 0.8 * spacing * scale[k] * cam_scale[k]
            b = obj_xy[:, k]                                                   # (n_obj, 2)
            near = np.flatnonzero(bg_vis[:, k] & (bg_xy[:, k] >= b.min(0) - reach).all(1)
                                  & (bg_xy[:, k] <= b.max(0) + reach).all(1))
            a = bg_xy[near, k]                                                 # (n_near, 2)
            d2 = (a[:, None, 0] - b[None, :, 0]) ** 2 + (a[:, None, 1] - b[None, :, 1]) ** 2  # (n_near, n_obj)
            bg_vis[near, k] = d2.min(axis=1, initial=np.inf) > reach ** 2
    xy = np.concatenate([obj_xy, bg_xy], axis=0)              # (N, T, 2)
    depth = np.concatenate([obj_depth, bg_depth], axis=0)     # (N, T)
    vis = np.concatenate([inside(obj_xy), bg_vis], axis=0)    # (N, T) bool
    occluded = rng.random(N) < rng.uniform(0.1, 0.4)
    length = rng.integers(2, max(T // 3, 2) + 1, N)
    start = (rng.random(N) * (T - length + 1)).astype(int)
    stretch = (t[None, :] >= start[:, None]) & (t[None, :] < (start + length)[:, None])
    vis &= ~(stretch & occluded[:, None])

    # Query frame: uniform over visible frames (background: its sampled frame if still visible).
    # A point hidden everywhere is made visible at one in-frame frame, as a tracker sees its query.
    in_frame = inside(xy)                                     # (N, T)
    cand = np.where(vis.any(axis=1, keepdims=True), vis, in_frame)
    tq = np.argmax(np.where(cand, rng.random((N, T)), -1.0), axis=1)  # uniform over candidates
    bg_keep = vis[np.arange(n_obj, N), bg_tq]
    tq[n_obj:][bg_keep] = bg_tq[bg_keep]
    vis[np.arange(N), tq] = True

    # Tracking noise: jitter plus a drift anchored at the query frame; more when hidden.
    jitter = rng.uniform(0.2, 1.0) * rng.normal(0.0, 1.0, (N, T, 2)) * (1.0 + 2.0 * ~vis)[..., None]
    walk = np.cumsum(rng.normal(0.0, rng.uniform(0.05, 0.3), (N, T, 2)), axis=1)
    rows = np.arange(N)
    noise = jitter + walk - walk[rows, tq][:, None, :]
    noise[rows, tq] = 0.0
    xy = xy + noise

    # Depth as a relative-depth network gives it: unknown scale and shift, multiplicative noise.
    depth = depth * rng.uniform(0.5, 2.0) + rng.uniform(0.0, 0.3)
    depth = depth * (1.0 + rng.uniform(0.005, 0.03) * rng.normal(0.0, 1.0, (N, T)))
    depth = np.maximum(depth, 1e-3)

    queries = np.concatenate([tq[:, None].astype(np.float64), xy[rows, tq]], axis=1)  # (N, 3)
    perm = rng.permutation(N)  # object and background points interleaved, as a tracker returns them
    return Trajectories(xy=xy[perm], vis=vis[perm].astype(np.float32), depth=depth[perm],
                        queries=queries[perm], height=H, width=W, fps=fps,
                        frame_indices=np.arange(T, dtype=np.float32))


def make_clip(rng: np.random.Generator, label: str, points: int = 256, frames: int = 32, *,
              height: int = HEIGHT, width: int = WIDTH, fps: float = FPS) -> Trajectories:
    """One synthetic clip of class ``label`` drawn with ``rng``.

    For the second class of a chiral pair the clip is the exact time reversal of the first
    class's clip drawn with the same rng state (the frame indices still count forwards: the
    reversed clip is an ordinary video of the opposite action)."""
    if label not in CLASSES:
        raise ConfigError(f"unknown synthetic class {label!r}; known: {', '.join(CLASSES)}")
    if int(points) < 2:
        raise ConfigError(f"points must be >= 2 (an object and a background point), got {points}")
    if int(frames) < 2:
        raise ConfigError(f"frames must be >= 2 for motion, got {frames}")
    base = _REVERSAL_OF.get(label, label)
    clip = _simulate(rng, base, int(points), int(frames), int(height), int(width), float(fps))
    if base != label:
        clip = dataclasses.replace(clip.time_reversed(), frame_indices=np.arange(int(frames), dtype=np.float32))
    return clip


# ---------------------------------------------------------------------- datasets
def clip_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of clip ``index``: the index-th child of ``seed``, the same for any ``n``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(int(index),))))


def clip_split(seed: int, index: int, num_classes: int, test_fraction: float, val_fraction: float = 0.0) -> str:
    """Split of clip ``index``: a low-discrepancy sequence over each class's clips, so every class
    gets close to ``test_fraction`` test clips for any ``n`` and the split of a clip never changes."""
    offset = np.random.SeedSequence(int(seed)).generate_state(1)[0] / 2.0 ** 32
    f = ((index // num_classes) * 0.6180339887498949 + offset) % 1.0
    if f < test_fraction:
        return "test"
    if f < test_fraction + val_fraction:
        return "val"
    return "train"


def synth_trajectories(out: "str | os.PathLike[str]", n: int, seed: int = 0, points: int = 256,
                       frames: int = 32, test_fraction: float = 0.2,
                       classes: Optional[Sequence[str]] = None, progress: bool = True, *,
                       val_fraction: float = 0.0, shard_size: int = 256):
    """Write ``n`` synthetic clips to the store at ``out`` and return it opened.

    Clip i has label ``classes[i % len(classes)]`` (balanced), id ``synth-<seed>-<i>`` and a
    split from ``clip_split``. Clips already in the store are skipped, so an interrupted run
    resumes (the store must have been made with the same points/frames for that)."""
    from tqdm.auto import tqdm

    from traction.store import StoreWriter, open_store

    classes = list(DEFAULT_CLASSES if classes is None else classes)
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or not classes:
        raise ConfigError(f"unknown synthetic classes {unknown or classes}; known: {', '.join(CLASSES)}")
    if int(n) < 1:
        raise ConfigError(f"n must be >= 1 clip, got {n}")
    if not (0.0 <= test_fraction < 1.0 and 0.0 <= val_fraction < 1.0 and test_fraction + val_fraction < 1.0):
        raise ConfigError(f"test_fraction {test_fraction} and val_fraction {val_fraction} must be in "
                          "[0, 1) and leave some training clips")
    with StoreWriter(out, shard_size=shard_size, tracker="synthetic",
                     depth_model="synthetic-inverse-depth") as writer:
        for i in tqdm(range(int(n)), desc="synth trajectories", unit="clip", disable=not progress):
            clip_id = f"synth-{seed}-{i:06d}"
            if writer.has(clip_id):
                continue
            label = classes[i % len(classes)]
            clip = make_clip(clip_rng(seed, i), label, points, frames)
            writer.add(clip_id, clip, label=label,
                       split=clip_split(seed, i, len(classes), test_fraction, val_fraction),
                       meta={"source": f"synth:trajectories?seed={seed}&index={i}", "seed": int(seed),
                             "index": i, "generator_version": GENERATOR_VERSION})
    return open_store(out)


# ---------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--out", required=True, help="store directory to write (created, or appended to)")
    parser.add_argument("--n", type=int, default=1200, help="number of clips (default 1200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--points", type=int, default=256, help="trajectories per clip (default 256)")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip (default 32)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="fraction of clips in split 'test'")
    parser.add_argument("--val-fraction", type=float, default=0.0, help="fraction of clips in split 'val'")
    parser.add_argument("--classes", default=None,
                        help=f"comma-separated subset of: {','.join(CLASSES)} (default: all but expand,contract)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def register_cli(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Add ``trajectories`` to a ``traction synth`` sub-command group; sets ``func=main``."""
    parser = subparsers.add_parser(
        "trajectories", help="write synthetic labelled 2.5D trajectory clips to a store",
        description="Write procedural 2.5D trajectory clips (10 motion classes by default, incl. 4 chiral pairs) "
                    "to a trajectory store.")
    add_arguments(parser)
    parser.set_defaults(func=main)
    return parser


def main(args: "argparse.Namespace | Sequence[str] | None" = None) -> int:
    """Run ``traction synth trajectories`` from parsed args (or an argv list)."""
    from traction.store import format_stats, stats

    if not isinstance(args, argparse.Namespace):
        args = add_arguments(argparse.ArgumentParser(prog="traction synth trajectories")).parse_args(args)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    store = synth_trajectories(args.out, args.n, args.seed, points=args.points, frames=args.frames,
                               test_fraction=args.test_fraction, classes=classes,
                               progress=not args.no_progress, val_fraction=args.val_fraction)
    print(f"{store.root}: {len(store)} clips")
    print(format_stats(stats(store)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
