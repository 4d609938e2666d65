"""Extraction throughput per stage (decode, track, lift, write) at 240p and 480p, LK + no depth.

    PYTHONPATH=. python benchmarks/extract_throughput.py [--video PATH] [--reps 3] [--points 2500]

For each resolution the source clip is first transcoded to that size (so "decode" decodes a file
of that resolution), then every stage runs ``--reps`` times on it and reports the median time as
clips/s (and frames/s). "lift" is depth lifting with a synthetic depth map of the frame size plus
resampling to 32 frames (the CPU part of the 2.5D path; with --depth none only the resample
remains). "write" is one committed record (safetensors shard + fsync + manifest line). "bulk" is a
real ``run_local`` over ``--bulk-clips`` copies with ``--workers`` processes: the stages overlap, so
its clips/s shows what the pipeline sustains. Where DALI and CUDA are available, DALI decode
frames/s is measured too. Results go to benchmarks/results/extract_throughput_cpu.json.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from _common import cpu_model, time_call, utc_now, versions, write_result  # noqa: E402
from traction.extract import ExtractConfig, collect_jobs, run_local  # noqa: E402

DEFAULT_VIDEO = os.path.join(os.path.dirname(REPO), "shared", "videos", "bear.mp4")
RESOLUTIONS = {"240p": 240, "480p": 480}   # name -> short side in px


def package_versions() -> dict:
    """``_common.versions()`` plus safetensors, ray and the trajectory core's backend."""
    from traction import ops

    out = versions("safetensors", "ray")
    out["traction_core"] = ops.resolve_backend() if ops.core_available() or os.environ.get("TRACTION_CORE") else "numpy"
    return out


def synthetic_source(path: str, frames: int = 64, height: int = 480, width: int = 854) -> str:
    """A panning blocky texture (trackable by LK) when no real clip is at hand."""
    from traction.video import write_video

    rng = np.random.default_rng(0)
    big = np.kron(rng.integers(0, 256, (height // 8 + 2, (width + 2 * frames) // 8 + 2, 3)),
                  np.ones((8, 8, 1))).astype(np.uint8)
    return write_video(path, (big[:height, 2 * t: 2 * t + width] for t in range(frames)), fps=30.0)


def transcode(src: str, dst: str, short_side: int) -> str:
    """``src`` resized (aspect kept, even sides) so its short side is ``short_side`` px."""
    import cv2

    from traction.video import decode, write_video

    video = decode(src)
    h, w = video.frames.shape[1:3]
    scale = short_side / min(h, w)
    size = (int(round(w * scale / 2)) * 2, int(round(h * scale / 2)) * 2)          # (W, H) for cv2
    frames = (cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in video.frames)
    return write_video(dst, frames, fps=video.fps)


def median_time(fn, reps: int) -> float:
    return time_call(fn, reps=reps, warmup=0)


def stage_entry(seconds: float, frames: int) -> dict:
    return {"seconds": round(seconds, 5), "clips_per_s": round(1.0 / seconds, 3),
            "frames_per_s": round(frames / seconds, 1)}


def bench_resolution(path: str, args, tmp: str) -> dict:
    from traction import ops, tracking
    from traction.store import StoreWriter
    from traction.trajectories import Trajectories
    from traction.video import decode

    video = decode(path)
    frames = video.frames                                                # (T, H, W, 3)
    t, h, w = frames.shape[:3]
    tracker = tracking.load_tracker("lk")
    queries = tracking.sample_queries(args.points, t, h, w, 0)          # (N, 3)
    xy, vis = tracker.track(frames, queries)                             # (N, T, 2), (N, T)
    depth_maps = np.random.default_rng(0).random((t, h, w), dtype=np.float32)  # (T, H, W)

    def lift():
        d = ops.lift_depth(depth_maps, xy, (h, w))                       # (N, T)
        Trajectories(xy=xy, vis=vis, depth=d, queries=queries, height=h, width=w, fps=video.fps,
                     frame_indices=video.frame_indices).resample(args.frames)

    traj = Trajectories(xy=xy, vis=vis, queries=queries, height=h, width=w, fps=video.fps,
                        frame_indices=video.frame_indices).resample(args.frames)
    counter = iter(range(10 ** 6))
    writer = StoreWriter(os.path.join(tmp, f"store-{h}"), shard_size=1, tracker="lk", depth_model="none")

    def write():
        writer.add(f"clip{next(counter)}", traj)                          # shard_size=1: commits now

    result = {
        "size": [h, w], "frames": t, "points": args.points,
        "decode": stage_entry(median_time(lambda: decode(path), args.reps), t),
        "track": stage_entry(median_time(lambda: tracker.track(frames, queries), args.reps), t),
        "lift": stage_entry(median_time(lift, args.reps), t),
        "write": stage_entry(median_time(write, args.reps), t),
    }
    writer.close()
    result["sequential_clips_per_s"] = round(
        1.0 / sum(result[s]["seconds"] for s in ("decode", "track", "lift", "write")), 3)

    # The real bulk runner: stages of different clips overlap across worker processes.
    clips = os.path.join(tmp, f"bulk-{h}")
    os.makedirs(clips)
    for i in range(args.bulk_clips):
        shutil.copy(path, os.path.join(clips, f"c{i}.mp4"))
    config = ExtractConfig(points=args.points, frames=args.frames)
    summary = run_local(*collect_jobs([clips]), os.path.join(tmp, f"bulk-store-{h}"), config,
                        workers=args.workers, progress=False)
    result["bulk"] = {"workers": args.workers, "clips": summary.done, "seconds": round(summary.seconds, 2),
                      "clips_per_s": round(summary.done / summary.seconds, 3)}
    return result


def bench_dali(path: str, reps: int) -> dict:
    """DALI decode frames/s where DALI and CUDA exist; the reason where they don't."""
    try:
        import torch

        if not torch.cuda.is_available():
            return {"skipped": "no CUDA device"}
        from traction.video.dali_backend import dali_available
        if not dali_available():
            return {"skipped": "NVIDIA DALI not installed"}
    except ImportError as e:
        return {"skipped": f"unavailable ({e})"}
    from traction.video import decode

    t = decode(path, backend="dali", device="cuda").frames.shape[0]
    return stage_entry(median_time(lambda: decode(path, backend="dali", device="cuda"), reps), t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--video", default=DEFAULT_VIDEO, help="source clip (default: shared/videos/bear.mp4; "
                   "a synthetic clip when absent)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--points", type=int, default=2500)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--bulk-clips", type=int, default=4)
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "extract_throughput_cpu.json"))
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="traction-bench-") as tmp:
        source = args.video if os.path.isfile(args.video) else synthetic_source(os.path.join(tmp, "synthetic.mp4"))
        report = {
            "benchmark": "extract_throughput", "tracker": "lk", "depth": "none",
            "date": utc_now(),
            "device": {"cpu": cpu_model(), "cores": os.cpu_count(), "machine": platform.machine()},
            "versions": package_versions(), "source": os.path.basename(source), "reps": args.reps,
            "load_average_at_start": list(os.getloadavg()),
            "results": {},
        }
        for name, short in RESOLUTIONS.items():
            path = transcode(source, os.path.join(tmp, f"{name}.mp4"), short)
            report["results"][name] = bench_resolution(path, args, tmp)
            report["results"][name]["dali_decode"] = bench_dali(path, args.reps)
            r = report["results"][name]
            print(f"{name} {r['size'][1]}x{r['size'][0]} T={r['frames']}: " + ", ".join(
                f"{s} {r[s]['clips_per_s']:.2f} clips/s" for s in ("decode", "track", "lift", "write"))
                + f"; bulk x{args.workers} workers {r['bulk']['clips_per_s']:.2f} clips/s")
    out = os.path.abspath(args.out)
    print(f"wrote {write_result(os.path.basename(out), report, os.path.dirname(out))}")


if __name__ == "__main__":
    main()
