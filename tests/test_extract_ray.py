"""``traction extract --ray``: the bulk extraction as a Ray Data pipeline, on a private local Ray
instance bound to loopback (2 actors with fractional CPUs on a 2-core machine).

Deselect with ``-m "not ray"``; it runs in CI (about 30 s, most of it Ray start-up).
"""
from __future__ import annotations


import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray[data]')")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'ray[data]')")

from traction.extract import ExtractConfig, collect_jobs, run_local  # noqa: E402
from traction.extract.cli import main  # noqa: E402
from traction.extract.pipeline import ClipResult  # noqa: E402
from traction.extract.ray_runner import decode_result, encode_result  # noqa: E402
from traction.store import open_store, read_errors  # noqa: E402
from traction.trajectories import Trajectories  # noqa: E402

pytestmark = pytest.mark.ray

POINTS = 64


def moving_texture(seed: int, frames: int = 12, height: int = 48, width: int = 64) -> np.ndarray:
    """(T, H, W, 3) uint8: a blocky random texture panning by (seed-dependent) whole px per frame."""
    rng = np.random.default_rng(seed)
    dx, dy = 1 + seed % 2, (seed // 2) % 2
    bh, bw = (height + dy * frames) // 4 + 2, (width + dx * frames) // 4 + 2
    big = np.kron(rng.integers(0, 256, (bh, bw, 3)), np.ones((4, 4, 1))).astype(np.uint8)
    return np.stack([big[t * dy: t * dy + height, t * dx: t * dx + width] for t in range(frames)])


def test_result_rows_round_trip_without_pickles():
    rng = np.random.default_rng(0)
    traj = Trajectories(xy=rng.random((5, 4, 2)) * 10, vis=np.ones((5, 4)), depth=rng.random((5, 4)),
                        height=20, width=30, fps=12.5)
    res = ClipResult("a/b", "/x/b.mp4", "jump", "val", traj, meta={"timing": {"track_s": 0.5}})
    back = decode_result(encode_result(res))
    assert (back.clip_id, back.path, back.label, back.split, back.meta) == ("a/b", "/x/b.mp4", "jump", "val", res.meta)
    for name in ("xy", "vis", "depth", "queries", "frame_indices"):
        np.testing.assert_array_equal(getattr(back.trajectories, name), getattr(traj, name))
    assert (back.trajectories.height, back.trajectories.width, back.trajectories.fps) == (20, 30, 12.5)
    failed = decode_result(encode_result(ClipResult("c", "/c.mp4", None, "train", stage="decode", reason="bad")))
    assert not failed.ok and (failed.stage, failed.reason, failed.label) == ("decode", "bad", None)


def test_ray_local_cluster_matches_local_runner(tmp_path, capsys):
    from traction.video import write_video

    videos = tmp_path / "videos"
    for i in range(3):
        write_video(str(videos / f"c{i}.mp4"), moving_texture(i), fps=10.0)
    (videos / "broken.mp4").write_bytes(b"\x00" * 100)
    cache = tmp_path / "cache"
    args = [str(videos), "--out", str(cache), "--points", str(POINTS), "--workers", "2", "--no-progress"]

    assert main(args + ["--ray", "local"]) == 1
    assert f"1 of 4 clips failed; see {cache}/errors.jsonl" in capsys.readouterr().err
    assert not ray.is_initialized()                    # the private cluster was shut down
    (err,) = read_errors(str(cache))
    assert err["clip_id"] == "broken" and err["stage"] == "decode" and "broken.mp4" in err["reason"]

    # The same records, bit for bit, as the local multi-process runner writes.
    local = tmp_path / "local"
    run_local(*collect_jobs([str(videos)]), str(local), ExtractConfig(points=POINTS), workers=0, progress=False)
    ray_store, local_store = open_store(cache), open_store(local)
    assert ray_store.verify() == [] and ray_store.clip_ids == local_store.clip_ids == {"c0", "c1", "c2"}
    for rec in local_store:
        got = ray_store.get(rec.clip_id)
        assert got.meta["tracker"] == "lk" and got.meta["decoded_frames"] == 12
        for name in ("xy", "vis", "queries", "frame_indices"):
            np.testing.assert_array_equal(getattr(got.trajectories, name), getattr(rec.trajectories, name))

    # Resumable: a rerun extracts only what is not in the store yet.
    (videos / "broken.mp4").unlink()
    write_video(str(videos / "c3.mp4"), moving_texture(3), fps=10.0)
    assert main(args + ["--ray", "local"]) == 0
    assert "extracted 1 clips (3 already in the store)" in capsys.readouterr().out
    assert sorted(open_store(cache).clip_ids) == ["c0", "c1", "c2", "c3"]
    with open(cache / "manifest.jsonl") as f:
        assert len(f.readlines()) == 4                  # one manifest line per clip: nothing twice
