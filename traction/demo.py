"""``traction demo``: the whole video path on the embedded defaults, no downloaded weights.

    synth videos -> extract (Lucas-Kanade, 2D) -> fine-tune -> evaluate -> visualize

Each step is a plain ``traction`` command, printed before it runs, so the demo doubles as a
walk-through of the command line.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import List


def _run(argv: List[str]) -> int:
    from traction.cli import main

    print(f"\n$ traction {' '.join(shlex.quote(a) for a in argv)}", file=sys.stderr, flush=True)
    return main(argv)


def run_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    videos, cache, run = out / "videos", out / "cache", out / "run"
    t0 = time.time()
    steps = [
        ["synth", "videos", "--out", str(videos), "--n", str(args.n), "--seed", str(args.seed), "--workers",
         str(args.workers), "--no-depth-maps"],
        ["extract", "--list", str(videos / "list.txt"), "--out", str(cache), "--tracker", "lk", "--depth", "none",
         "--points", str(args.points), "--workers", str(args.workers)],
        ["finetune", "--data", str(cache), "--out", str(run), "--epochs", str(args.epochs), "--points",
         str(min(args.points, 128)), "--batch-size", "16", "--device", "cpu", "--model", "traction_ti",
         "model.use_depth=false"],
        # the last checkpoint: the test split only scores the model, it never picks one
        ["evaluate", "--data", str(cache), "--checkpoint", str(run / "last"), "--json", "--out", str(run)],
    ]
    for argv in steps:
        code = _run(argv)
        if code != 0:
            print(f"traction demo: step `traction {argv[0]}` failed with exit code {code}", file=sys.stderr)
            return code
    first = sorted(videos.glob("*.mp4"))[0]
    code = _run(["visualize", str(first), "--out", str(out / "tracks.png"), "--points", "300"])
    metrics = json.loads((run / "last.json").read_text()).get("metrics", {})
    print(f"\ntraction demo: done in {time.time() - t0:.0f} s; test top-1 {metrics.get('top1', float('nan')):.3f}. "
          f"Look at {run}/accuracy.png, {run}/confusion.png and {out}/tracks.png", file=sys.stderr)
    return code


def register_cli(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo", help="run the whole pipeline on synthetic videos (no weights needed)",
        description="Synthesize labelled videos, extract trajectories with Lucas-Kanade, fine-tune a classifier, "
                    "evaluate it and draw the tracks of one clip. A few minutes on 2 CPU cores.")
    p.add_argument("--out", default="demo", help="output directory (default ./demo)")
    p.add_argument("--n", type=int, default=1000, help="synthetic videos (default 1000)")
    p.add_argument("--points", type=int, default=256, help="trajectories per clip (default 256)")
    p.add_argument("--epochs", type=int, default=30, help="fine-tuning epochs (default 30)")
    p.add_argument("--workers", type=int, default=2, help="rendering and extraction processes (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_demo)
    return p
