"""A bulk extraction SIGKILLed at random moments and resumed ends with the store an uninterrupted
run writes: same records, none lost, none twice, none corrupt (design.md "Data model", "Errors")."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from traction.extract import ExtractConfig, collect_jobs, run_local
from traction.store import open_store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLIPS, POINTS = 12, 200


def moving_texture(seed: int, frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """(T, H, W, 3) uint8: a blocky random texture panning by (seed-dependent) whole px per frame."""
    rng = np.random.default_rng(seed)
    dx, dy = 1 + seed % 2, (seed // 2) % 2
    bh, bw = (height + dy * frames) // 4 + 2, (width + dx * frames) // 4 + 2
    big = np.kron(rng.integers(0, 256, (bh, bw, 3)), np.ones((4, 4, 1))).astype(np.uint8)
    return np.stack([big[t * dy: t * dy + height, t * dx: t * dx + width] for t in range(frames)])


def manifest_lines(cache: str) -> list:
    path = os.path.join(cache, "manifest.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines() if line.strip()]


def start_extraction(videos: str, cache: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "traction.extract", videos, "--out", cache, "--points", str(POINTS),
           "--workers", "2", "--shard-size", "1", "--no-progress"]
    # Own session: the kill takes the parent and its spawned workers together, like a lost machine.
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=60)


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted_run(tmp_path):
    from traction.video import write_video

    videos = tmp_path / "videos"
    for i in range(NUM_CLIPS):
        # 96x72 px, 48..70 frames: about 0.1 s of tracking each, so kills land mid-run.
        write_video(str(videos / f"clip{i:02d}.mp4"), moving_texture(i, frames=48 + 2 * i, height=72, width=96),
                    fps=10.0)
    reference = str(tmp_path / "reference")
    summary = run_local(*collect_jobs([str(videos)]), reference, ExtractConfig(points=POINTS), workers=0,
                        progress=False)
    assert summary.done == NUM_CLIPS

    cache = str(tmp_path / "cache")
    rng = np.random.default_rng(0)
    counts = []
    kills = 0
    for round_ in range(6):
        before = len(manifest_lines(cache))
        proc = start_extraction(str(videos), cache)
        if round_ == 0:
            time.sleep(rng.uniform(0.1, 0.8))          # most likely during start-up
        else:
            # Let it commit at least one new clip, then kill at a random moment of the work
            # (decoding, tracking, or in the middle of a commit).
            deadline = time.monotonic() + 120
            while len(manifest_lines(cache)) <= before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.1))
        finished = proc.poll() is not None
        kill_group(proc)
        kills += not finished
        # Whatever the moment, the store is readable and every committed record intact.
        if os.path.exists(os.path.join(cache, "store.json")):
            store = open_store(cache)
            assert store.verify() == []
            counts.append(len(store))
        if kills >= 4 or finished or (counts and counts[-1] >= NUM_CLIPS - 2):
            break
    assert kills >= 3, f"the extraction finished before it could be killed 3 times (records {counts})"
    assert counts == sorted(counts) and 0 < counts[-1] < NUM_CLIPS, counts   # progress, and work left

    proc = start_extraction(str(videos), cache)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert b"already in the store" in out

    # Same records as the uninterrupted run: none lost, none twice, none corrupt, arrays equal.
    lines = manifest_lines(cache)
    assert sorted(e["clip_id"] for e in lines) == [f"clip{i:02d}" for i in range(NUM_CLIPS)]
    ref, got = open_store(reference), open_store(cache)
    assert got.verify() == [] and len(got) == NUM_CLIPS
    for rec in ref:
        other = got.get(rec.clip_id)
        a, b = rec.trajectories, other.trajectories
        for name in ("xy", "vis", "queries", "frame_indices"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=f"{rec.clip_id} {name}")
        assert (a.height, a.width, a.fps) == (b.height, b.width, b.fps)
    leftovers = [n for n in os.listdir(os.path.join(cache, "shards")) if not n.endswith(".safetensors")]
    assert leftovers == []
