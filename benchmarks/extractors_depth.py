"""Benchmark of Video Depth Anything whole-video inference (``traction.depth.vda``): frames per second
for attention kernels (SDPA vs explicit math), compute dtypes (float32 / bfloat16 / float16 autocast)
and windows per batch, same video, same run.

    PYTHONPATH=. python benchmarks/extractors_depth.py [--model vda-s] [--weights FILE.pth]
        [--input-size 280] [--frames 46] [--device cpu|cuda] [--out benchmarks/results/extractors_depth_cpu.json]

Without ``--weights`` the network keeps its random initialisation (speed does not depend on the
values). The video is random noise of 480 x 368 (the parity clip's size) unless ``--video`` names a
file. Prints a table and writes it as JSON with the machine description.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from traction.depth import vda
from traction.depth.vda.model import parse_dtype

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_name, environment, time_call, write_result  # noqa: E402


def load_video(path: str | None, frames: int) -> np.ndarray:
    if path is None:
        return np.random.default_rng(0).integers(0, 256, (frames, 480, 368, 3), dtype=np.uint8)
    import av

    with av.open(path) as container:
        out = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), container.decode(video=0))]
    return np.stack(out)


def time_predict(model, video, input_size: int, windows_per_batch: int, reps: int) -> float:
    """Median seconds of model.predict over ``reps`` runs after one warm-up."""
    return time_call(lambda: model.predict(video, input_size=input_size, windows_per_batch=windows_per_batch),
                     reps=reps, warmup=1, sync_cuda=model.device.type == "cuda")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="vda-s", choices=sorted(vda.VARIANTS))
    ap.add_argument("--weights", default=None)
    ap.add_argument("--video", default=None)
    ap.add_argument("--frames", type=int, default=46)
    ap.add_argument("--input-size", type=int, default=280)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    if args.weights:
        model = vda.load(args.model, weights=args.weights, device=args.device)
    else:
        model = vda.build(args.model).to(args.device).eval().requires_grad_(False)
    video = load_video(args.video, args.frames)
    windows = len(vda.window_frame_indices(len(video)))
    dtypes = [None, "bfloat16"] + (["float16"] if args.device.startswith("cuda") else [])
    configs = [("sdpa", None, 1), ("math", None, 1)] + [("sdpa", d, 1) for d in dtypes[1:]] + \
              [("sdpa", dtypes[-1], windows)]
    rows = []
    for attention, dtype, wpb in configs:
        model.set_attention(attention)
        model.autocast_dtype = parse_dtype(dtype)
        sec = time_predict(model, video, args.input_size, wpb, args.reps)
        rows.append({"attention": attention, "dtype": dtype or "float32", "windows_per_batch": wpb,
                     "seconds": round(sec, 3), "frames_per_s": round(len(video) / sec, 2)})
        print(f"{attention:5s} {dtype or 'float32':9s} windows/batch={wpb}: {sec:8.2f} s  "
              f"{len(video) / sec:7.2f} frames/s")
    env = environment(args.device)
    result = {
        "benchmark": "extractors_depth",
        "date": env["date"], "device": device_name(args.device),
        "logical_cores": env["cpu_count"], "threads": env["torch_threads"],
        "load_average_1min": env["load_average_1min"], "torch": env["versions"]["torch"],
        "versions": env["versions"],
        "model": args.model, "weights": "given" if args.weights else "random init",
        "video": {"frames": len(video), "height": video.shape[1], "width": video.shape[2], "windows": windows},
        "input_size": args.input_size, "model_input": list(vda.model_input_size(*video.shape[1:3], args.input_size)),
        "results": rows,
    }
    if args.out:
        out = Path(args.out)
        print(f"wrote {write_result(out.name, result, out.parent)}")


if __name__ == "__main__":
    main()
