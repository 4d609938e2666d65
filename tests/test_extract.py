"""traction extract: inputs -> jobs, one-clip extraction, the local bulk runner, bad inputs, the CLI.

Videos are tiny synthetic clips written with PyAV in tmp_path (a textured pattern that moves, so
Lucas-Kanade has something to follow); the real-footage test uses 2 clips of ../shared/videos.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
import pytest

from traction.errors import ConfigError
from traction.extract import ExtractConfig, Extractor, Job, collect_jobs, extract_clip, run_local
from traction.extract.cli import main, register_cli
from traction.extract.pipeline import clip_seed
from traction.store import open_store, read_errors

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_VIDEOS = os.path.join(os.path.dirname(REPO), "shared", "videos")
if not os.path.isdir(SHARED_VIDEOS):
    SHARED_VIDEOS = "/work/shared/videos"

POINTS = 64


def moving_texture(seed: int, frames: int = 12, height: int = 48, width: int = 64) -> np.ndarray:
    """(T, H, W, 3) uint8: a blocky random texture panning by (seed-dependent) whole px per frame."""
    rng = np.random.default_rng(seed)
    dx, dy = 1 + seed % 2, (seed // 2) % 2
    bh, bw = (height + dy * frames) // 4 + 2, (width + dx * frames) // 4 + 2
    big = np.kron(rng.integers(0, 256, (bh, bw, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # LK-trackable
    return np.stack([big[t * dy: t * dy + height, t * dx: t * dx + width] for t in range(frames)])


def write_clip(path: str, seed: int, **kw) -> str:
    from traction.video import write_video

    return write_video(str(path), moving_texture(seed, **kw), fps=10.0)


def store_arrays(path: str) -> dict:
    """clip id -> (label, split, xy, vis, queries, frame_indices), checksum-verified."""
    store = open_store(path)
    assert store.verify() == []
    out = {}
    for rec in store:
        t = rec.trajectories
        out[rec.clip_id] = (rec.label, rec.split, t.xy, t.vis, t.queries, t.frame_indices)
    return out


def assert_same_store(a: str, b: str) -> None:
    ra, rb = store_arrays(a), store_arrays(b)
    assert sorted(ra) == sorted(rb)
    for cid in ra:
        assert ra[cid][:2] == rb[cid][:2], cid
        for x, y in zip(ra[cid][2:], rb[cid][2:]):
            np.testing.assert_array_equal(x, y, err_msg=cid)


# ---------------------------------------------------------------------------------------- inputs
def test_inputs_directories_globs_files_and_ids(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for rel in ("d/a.mp4", "d/sub/b.mp4", "d/sub/c.webm", "d/notes.txt", "e.mp4"):
        (tmp_path / rel).write_bytes(b"x")
    jobs, problems = collect_jobs([str(tmp_path / "d"), str(tmp_path / "e.mp4"), str(tmp_path / "nope"),
                                   str(tmp_path / "d" / "*.avi")], label="jump", split="val")
    assert [j.clip_id for j in jobs] == ["a", "sub/b", "sub/c", "e"]
    assert all(j.label == "jump" and j.split == "val" for j in jobs)
    assert [(os.path.basename(p.path), p.reason) for p in problems] == [
        ("nope", "no such directory"), ("*.avi", "glob matches no video files")]
    # globs: ids relative to the fixed prefix; the same file twice is one job
    jobs, _ = collect_jobs([str(tmp_path / "d" / "**" / "*.mp4"), str(tmp_path / "d" / "a.mp4")])
    assert sorted(j.clip_id for j in jobs) == ["a", "sub/b"]
    # two different files with one id cannot both be in a store
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "e.mp4").write_bytes(b"y")
    with pytest.raises(ConfigError, match="clip id 'e' names two videos"):
        collect_jobs([str(tmp_path / "e.mp4"), str(tmp_path / "f" / "e.mp4")])
    with pytest.raises(ConfigError, match="no inputs"):
        collect_jobs([], None)


def test_list_file(tmp_path):
    (tmp_path / "v").mkdir()
    for name in ("a.mp4", "b c.mp4"):
        (tmp_path / "v" / name).write_bytes(b"x")
    lst = tmp_path / "train.txt"
    lst.write_text("# path label [split]\nv/a.mp4 3\n\n'v/b c.mp4' \"Pushing something\" val\nv/gone.mp4 1\n")
    jobs, problems = collect_jobs([], str(lst), split="test")
    assert [(j.clip_id, j.label, j.split) for j in jobs] == [("v/a", "3", "test"), ("v/b c", "Pushing something", "val")]
    assert jobs[0].path == os.path.join(str(tmp_path), "v/a.mp4")
    assert len(problems) == 1 and "gone.mp4" in problems[0].path and "train.txt:5" in problems[0].reason
    lst.write_text("v/a.mp4\n")
    with pytest.raises(ConfigError, match=r"train.txt:1: expected 'path label \[split\]'"):
        collect_jobs([], str(lst))


# ---------------------------------------------------------------------------------- one clip
def test_extract_clip_shapes_seed_and_meta(tmp_path):
    from traction.tracking import load_tracker
    from traction.video import SamplingPolicy

    path = write_clip(tmp_path / "clip.mp4", seed=1, frames=20)
    tracker = load_tracker("lk")
    meta: dict = {}
    traj = extract_clip(path, tracker=tracker, depth_model=None, points=POINTS, frames=32, seed=7,
                        clip_id="clip", meta=meta)
    assert (traj.num_points, traj.num_frames, traj.height, traj.width) == (POINTS, 32, 48, 64)
    assert traj.depth is None and traj.fps == 10.0
    traj.validate()
    # queries are spread over all 20 decoded frames, then the time axis is resampled to 32
    assert traj.queries[:, 0].min() >= 0 and traj.queries[:, 0].max() <= 19 and len(set(traj.queries[:, 0])) > 5
    np.testing.assert_allclose(traj.frame_indices[[0, -1]], [0, 19])
    assert traj.vis.mean() > 0.5                   # the texture is trackable
    assert meta["decoded_frames"] == 20 and meta["clip_seed"] == clip_seed(7, "clip")
    assert {"decode_s", "track_s", "lift_s"} <= set(meta["timing"])
    # deterministic per (seed, clip id); another id or seed gives other queries
    again = extract_clip(path, tracker=tracker, depth_model=None, points=POINTS, seed=7, clip_id="clip")
    np.testing.assert_array_equal(again.xy, traj.xy)
    other = extract_clip(path, tracker=tracker, depth_model=None, points=POINTS, seed=7, clip_id="other")
    assert not np.array_equal(other.queries, traj.queries)
    # stride sampling decodes exactly `frames` frames; frames in memory work like a file
    strided = extract_clip(path, tracker=tracker, depth_model=None, points=POINTS, frames=8,
                           sampling=SamplingPolicy("stride", num_frames=8, stride=2), seed=7, clip_id="clip")
    np.testing.assert_array_equal(strided.frame_indices, [2, 4, 6, 8, 10, 12, 14, 16])
    arr = extract_clip(moving_texture(1, frames=20), tracker=tracker, depth_model=None, points=POINTS,
                       seed=7, clip_id="clip", fps=25.0)
    assert arr.fps == 25.0 and arr.xy.shape == (POINTS, 32, 2)


def test_extract_clip_lifts_depth(tmp_path):
    """With a depth model, each point gets the bilinear depth at its position (lift stage)."""
    from traction.tracking import load_tracker

    class RampDepth:  # depth = x coordinate of the depth map: the lifted value recovers x
        name = "ramp"

        def predict(self, video, input_size=518):
            t, h, w = video.shape[:3]
            return np.broadcast_to(np.arange(w, dtype=np.float32), (t, h, w)).copy()

    traj = extract_clip(write_clip(tmp_path / "c.mp4", seed=2), tracker=load_tracker("lk"),
                        depth_model=RampDepth(), points=POINTS, frames=16, clip_id="c")
    assert traj.depth.shape == (POINTS, 16)
    np.testing.assert_allclose(traj.depth, np.clip(traj.xy[..., 0], 0, 63), atol=1e-3)


# ---------------------------------------------------------------------------------- bulk runs
def _run(argv) -> int:
    return main([str(a) for a in argv] + ["--no-progress"])


def test_bulk_parallel_equals_serial_and_rerun_skips(tmp_path, capsys):
    vids = tmp_path / "vids"
    for i in range(5):
        write_clip(vids / f"c{i}.mp4", seed=i)
    common = [vids, "--points", POINTS, "--label", "wave", "--shard-size", 2]
    assert _run(common + ["--out", tmp_path / "serial", "--workers", 0]) == 0
    assert _run(common + ["--out", tmp_path / "par", "--workers", 2]) == 0
    assert "extracted 5 clips (0 already in the store)" in capsys.readouterr().out
    # results do not depend on worker scheduling
    assert_same_store(str(tmp_path / "serial"), str(tmp_path / "par"))
    store = open_store(tmp_path / "par")
    assert len(store) == 5 and store.labels == ["wave"] and store.splits() == ["train"]
    assert store.meta["tracker"] == "lk" and store.meta["points"] == POINTS
    rec = store.get("c3")
    assert rec.trajectories.xy.shape == (POINTS, 32, 2) and rec.meta["source"] == str(vids / "c3.mp4")
    # a rerun skips every finished clip and writes nothing
    shards = sorted(os.listdir(tmp_path / "par" / "shards"))
    assert _run(common + ["--out", tmp_path / "par", "--workers", 2]) == 0
    assert "extracted 0 clips (5 already in the store)" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "par" / "shards")) == shards
    # ... and adding a clip extracts only that one
    write_clip(vids / "c5.mp4", seed=5)
    assert _run(common + ["--out", tmp_path / "par", "--workers", 0]) == 0
    assert "extracted 1 clips (5 already in the store)" in capsys.readouterr().out
    assert len(open_store(tmp_path / "par")) == 6
    # a store made with other settings is not silently appended to
    assert _run([vids, "--points", 32, "--out", tmp_path / "par", "--workers", 0]) == 2
    assert "store was extracted with points=64" in capsys.readouterr().err


def _bad_input(kind: str, d) -> str:
    """A path of the given bad kind inside directory ``d``."""
    from traction.video import write_video

    if kind == "empty":
        p = d / "empty.mp4"
        p.write_bytes(b"")
    elif kind == "truncated":
        full = write_clip(d / "full.mp4", seed=3, frames=30)
        data = open(full, "rb").read()
        os.remove(full)
        p = d / "truncated.mp4"
        p.write_bytes(data[: len(data) // 3])
    elif kind == "text":
        p = d / "notes.mp4"
        p.write_text("this is not a video\n" * 50)
    elif kind == "one_frame":
        p = d / "still.mp4"
        write_video(str(p), moving_texture(4, frames=1), fps=10.0)
    elif kind == "missing_dir":
        p = d / "no_such_dir"
    elif kind == "tiny":
        p = d / "tiny.mp4"
        write_video(str(p), np.zeros((4, 8, 8, 3), np.uint8), fps=10.0)
    elif kind == "huge":
        p = d / "huge.mp4"
        write_video(str(p), np.zeros((2, 16, 8200, 3), np.uint8), fps=10.0)
    else:
        raise ValueError(kind)
    return str(p)


BAD = {  # kind -> (stage, words the reason must contain)
    "empty": ("decode", "empty (0 bytes)"),
    "truncated": ("decode", "truncated"),
    "text": ("decode", "not a readable video"),
    "one_frame": ("decode", "at least 2 are needed"),
    "missing_dir": ("input", "no such directory"),
    "tiny": ("decode", "8x8 is absurd"),
    "huge": ("decode", "8200x16 is absurd"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_input_is_logged_and_good_clips_complete(tmp_path, capsys, kind):
    good = tmp_path / "good"
    write_clip(good / "ok1.mp4", seed=1)
    write_clip(good / "ok2.mp4", seed=2)
    bad = _bad_input(kind, tmp_path)
    out = tmp_path / "cache"
    code = _run([good / "ok1.mp4", bad, good / "ok2.mp4", "--out", out, "--points", POINTS, "--workers", 0])
    assert code == 1
    assert capsys.readouterr().err.strip().endswith(f"1 of 3 clips failed; see {out}/errors.jsonl")
    assert sorted(open_store(out).clip_ids) == ["ok1", "ok2"]
    (err,) = read_errors(str(out))
    stage, words = BAD[kind]
    assert err["path"] == bad and err["stage"] == stage and words in err["reason"], err
    assert "\n" not in err["reason"] and len(err["reason"]) < 300
    if kind != "missing_dir":
        assert err["clip_id"] == os.path.splitext(os.path.basename(bad))[0]


def test_all_bad_inputs_together_with_workers(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    bad = [_bad_input(kind, d) for kind in sorted(BAD)]
    write_clip(d / "good.mp4", seed=1)
    out = tmp_path / "cache"
    assert _run([*bad, d / "good.mp4", "--out", out, "--points", POINTS, "--workers", 2]) == 1
    assert f"7 of 8 clips failed; see {out}/errors.jsonl" in capsys.readouterr().err
    assert open_store(out).clip_ids == {"good"}
    assert sorted(e["path"] for e in read_errors(str(out))) == sorted(bad)
    # the failed clips are retried by a rerun (and fail again); the good one is skipped
    assert _run([*bad, d / "good.mp4", "--out", out, "--points", POINTS, "--workers", 0]) == 1
    assert len(read_errors(str(out))) == 14 and len(open_store(out)) == 1


def test_extractor_never_raises_for_bad_clips(tmp_path):
    ex = Extractor(ExtractConfig(points=POINTS))
    res = ex(Job(path=str(tmp_path / "gone.mp4"), clip_id="gone"))
    assert not res.ok and res.stage == "decode" and "no such file" in res.reason
    res = ex(Job(path=write_clip(tmp_path / "ok.mp4", seed=0), clip_id="ok", label="x", split="val"))
    assert res.ok and res.meta["tracker"] == "lk" and res.meta["depth_model"] == "none"


def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys):
    clip = write_clip(tmp_path / "c.mp4", seed=0)
    assert _run([clip, "--out", tmp_path / "o", "--weights-dir", tmp_path / "nowhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--weights-dir" in err and "no such directory" in err
    assert _run(["--out", tmp_path / "o"]) == 2
    assert "no inputs" in capsys.readouterr().err
    assert _run(["--list", tmp_path / "missing.txt", "--out", tmp_path / "o"]) == 2
    assert "list file not found" in capsys.readouterr().err


def test_missing_weights_stop_the_run_with_one_line(tmp_path, capsys, monkeypatch):
    """A worker that cannot load its model fails the run once, clearly (not every clip)."""
    monkeypatch.setenv("TRACTION_OFFLINE", "1")          # no download attempt; workers inherit it
    (tmp_path / "w").mkdir()
    clips = [write_clip(tmp_path / f"c{i}.mp4", seed=i) for i in range(3)]
    assert _run([*clips, "--out", tmp_path / "o", "--tracker", "cotracker3", "--weights-dir", tmp_path / "w",
                 "--workers", 1]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "scaled_offline.pth" in err, err
    assert read_errors(str(tmp_path / "o")) == []         # not logged as 3 bad videos


def test_cli_help_and_registration():
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "traction.extract", "--help"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0
    for flag in ("--list", "--out", "--tracker", "--depth", "--workers", "--ray", "--max-side", "--shard-size",
                 "errors.jsonl"):
        assert flag in proc.stdout
    parser = argparse.ArgumentParser(prog="traction")
    sub = parser.add_subparsers(dest="command")
    register_cli(sub)
    args = parser.parse_args(["extract", "a.mp4", "--out", "c", "--workers", "3", "--ray", "local"])
    assert args.func.__name__ == "run" and args.workers == 3 and args.ray == "local" and args.points == 2500


# ---------------------------------------------------------------------------------- real footage
@pytest.mark.skipif(not os.path.isdir(SHARED_VIDEOS), reason=f"real test videos not found at {SHARED_VIDEOS}")
def test_real_videos_lk_none(tmp_path):
    clips = [os.path.join(SHARED_VIDEOS, n) for n in ("cat.mp4", "paragliding.mp4")]
    summary = run_local(*collect_jobs(clips), str(tmp_path / "cache"),
                        ExtractConfig(points=500, frames=32, max_side=256), workers=2, progress=False)
    assert (summary.done, summary.failed) == (2, 0)
    store = open_store(tmp_path / "cache")
    assert store.verify() == []
    for rec in store:
        t = rec.trajectories
        assert t.xy.shape == (500, 32, 2) and t.vis.shape == (500, 32) and not t.has_depth
        assert max(t.height, t.width) == 256
        assert 0.2 < t.vis.mean() <= 1.0                 # real footage: most points tracked
        inside = (t.xy[..., 0] >= -0.5) & (t.xy[..., 0] <= t.width) & (t.xy[..., 1] <= t.height)
        assert inside[t.vis > 0].all()
        assert rec.meta["decoded_frames"] in (70, 87)    # "all" sampling: every source frame
