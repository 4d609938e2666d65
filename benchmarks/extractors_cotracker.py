"""Throughput of the CoTracker3 tracker (frames/s and points*frames/s) for offline and online mode.

    python benchmarks/extractors_cotracker.py --mode offline --frames 32 --points 2500 \
        --device cuda --dtype bf16 --batch 4 [--weights scaled_offline.pth]

Without --weights the network has its random initialisation: speed does not depend on the
weights. Prints one JSON line per configuration (median of --repeats; warm-up run excluded). Set
TRACTION_CORR=torch to time the PyTorch correlation instead of the Triton kernel on CUDA.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from traction.tracking import cotracker3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import time_call  # noqa: E402


def bench(mode: str, frames: int, points: int, batch: int, device: str, dtype, weights, height: int,
          width: int, repeats: int, iters: int) -> dict:
    state_dict = None if weights else cotracker3.CoTracker3(60 if mode == "offline" else 16).state_dict()
    tracker = cotracker3.load(weights=weights, state_dict=state_dict, mode=mode, device=device,
                              dtype=dtype, iters=iters)
    rng = np.random.default_rng(0)
    videos = rng.integers(0, 256, (batch, frames, height, width, 3), dtype=np.uint8)
    queries = np.concatenate([rng.integers(0, frames, (batch, points, 1)),
                              rng.random((batch, points, 2)) * [width - 1, height - 1]], -1).astype(np.float32)
    tracker.track_batch(videos[:, : min(frames, 4)], np.minimum(queries, [min(frames, 4) - 1, 1e9, 1e9]))  # warm-up
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    # median of the repeats (the warm-up above ran on a short clip, to save its time)
    dt = time_call(lambda: tracker.track_batch(videos, queries), reps=repeats, warmup=0,
                   sync_cuda=device.startswith("cuda"))
    res = {"mode": mode, "device": device, "dtype": dtype or "fp32", "batch": batch, "frames": frames,
           "points": points, "size": [height, width], "iters": iters, "seconds_per_batch": round(dt, 4),
           "frames_per_s": round(batch * frames / dt, 2), "point_frames_per_s": round(batch * frames * points / dt)}
    if device.startswith("cuda"):
        res["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["offline", "online", "both"], default="both")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--points", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default=None)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--iters", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    for mode in (["offline", "online"] if args.mode == "both" else [args.mode]):
        print(json.dumps(bench(mode, args.frames, args.points, args.batch, args.device, args.dtype,
                               args.weights, args.height, args.width, args.repeats, args.iters)), flush=True)


if __name__ == "__main__":
    main()
