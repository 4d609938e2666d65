"""Tracking quality of the LK tracker on rendered synthetic videos (TAP-Vid metrics).

    python benchmarks/tracking_quality.py [--n 60] [--seed 0] [--out benchmarks/results/tracking_quality_lk.json]

Renders ``--n`` clips with ``traction synth videos`` (h264 mp4 + exact ground truth), decodes
them with PyAV, tracks the ground-truth queries with ``load_tracker("lk")`` and reports TAP-Vid
delta_avg, occlusion accuracy and Average Jaccard (pixels measured in a 256x256 frame), overall
and per class, plus the tracking speed. Writes one JSON file with versions and date.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import utc_now, versions, write_result  # noqa: E402

from traction.synth.videos import load_gt, synth_videos  # noqa: E402
from traction.tracking import load_tracker  # noqa: E402
from traction.tracking.metrics import average_metrics, tapvid_metrics  # noqa: E402
from traction.video import decode  # noqa: E402

HEADLINE = ("delta_avg", "occlusion_accuracy", "average_jaccard")


def run(n: int, seed: int, workdir: str, tracker_name: str = "lk") -> dict:
    list_path = synth_videos(workdir, n, seed, progress=False)
    tracker = load_tracker(tracker_name)
    per_clip, per_class = [], {}
    track_s, frames_total = 0.0, 0
    with open(list_path, encoding="utf-8") as f:
        entries = [line.split() for line in f if line.strip()]
    for rel, label, _split in entries:
        name = os.path.splitext(rel)[0]
        gt = load_gt(workdir, name)
        video = decode(os.path.join(workdir, rel))
        t0 = time.perf_counter()
        xy, vis = tracker.track(video.frames, gt["queries"])
        track_s += time.perf_counter() - t0
        frames_total += video.num_frames
        m = tapvid_metrics(xy, vis, gt["xy"], gt["vis"], gt["queries"], frame_hw=(video.height, video.width))
        per_clip.append(m)
        per_class.setdefault(label, []).append(m)
    overall = average_metrics(per_clip)
    return {
        "tracker": tracker_name,
        "clips": n,
        "seed": seed,
        "metrics": overall,
        "per_class": {k: {h: average_metrics(v)[h] for h in HEADLINE} for k, v in sorted(per_class.items())},
        "speed": {"frames": frames_total, "track_seconds": round(track_s, 3),
                  "frames_per_second": round(frames_total / max(track_s, 1e-9), 1),
                  "points_per_clip": int(per_clip[0]["num_points"]) if per_clip else 0},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="synthetic clips (default 60: 5 per class)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "tracking_quality_lk.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="traction_tq_") as workdir:
        result = run(args.n, args.seed, workdir)
    result["date"] = utc_now()
    result["versions"] = {**versions(), "platform": platform.platform()}
    result["metric_notes"] = ("TAP-Vid strided mode: every frame except the query frame; pixels in a 256x256 "
                              "resized frame; thresholds 1,2,4,8,16 px; visibility threshold 0.5")
    out = os.path.abspath(args.out)
    write_result(os.path.basename(out), result, os.path.dirname(out))
    m = result["metrics"]
    print(f"LK on {args.n} synthetic clips: delta_avg {m['delta_avg']:.3f}  OA {m['occlusion_accuracy']:.3f}  "
          f"AJ {m['average_jaccard']:.3f}  ({result['speed']['frames_per_second']} frames/s)")
    for label, pc in result["per_class"].items():
        print(f"  {label:13s} delta_avg {pc['delta_avg']:.3f}  OA {pc['occlusion_accuracy']:.3f}  "
              f"AJ {pc['average_jaccard']:.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
