"""Track drawing, saving and the visualize command (traction.viz)."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from traction.errors import ConfigError
from traction.trajectories import Trajectories
from traction.video import decode, write_video
from traction.viz import draw_tracks, frame_strip, main, save_visualization, visualize


def _scene(t=6, h=60, w=80):
    frames = np.full((t, h, w, 3), 100, np.uint8)
    xy = np.zeros((2, t, 2), np.float32)
    xy[0, :, 0] = 20 + 3 * np.arange(t)          # point 0 moves right, always visible
    xy[0, :, 1] = 20
    xy[1, :, 0] = 60                              # point 1 static, occluded from frame 3
    xy[1, :, 1] = 40
    vis = np.ones((2, t), np.float32)
    vis[1, 3:] = 0
    return frames, xy, vis


def test_visible_discs_filled_occluded_hollow_with_tails():
    frames, xy, vis = _scene()
    out = draw_tracks(frames, xy, vis, radius=4, tail=3)
    assert out.shape == frames.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(frames, 100)                           # input untouched
    t = 4
    centre0 = out[t, 20, int(xy[0, t, 0])]
    assert not np.array_equal(centre0, [100, 100, 100])                  # filled disc
    np.testing.assert_array_equal(out[5, 40, 60], [100, 100, 100])      # hollow ring: centre untouched
    assert not np.array_equal(out[5, 40, 64], [100, 100, 100])          # ... but the ring is drawn
    assert not np.array_equal(out[t, 20, int(xy[0, t - 3, 0])], [100, 100, 100])   # tail behind it
    no_tail = draw_tracks(frames, xy, vis, radius=4, tail=0)
    np.testing.assert_array_equal(no_tail[t, 20, int(xy[0, t - 3, 0])], [100, 100, 100])


def test_color_by_time_and_depth():
    frames, xy, vis = _scene()
    queries = np.array([[0, 20, 20], [5, 60, 40]], np.float32)
    out = draw_tracks(frames, xy, np.ones_like(vis), queries=queries, radius=4)
    early, late = out[1, 20, 23].astype(int), out[1, 40, 60].astype(int)
    assert early[2] > early[0] and late[0] > late[2]                     # turbo: early blue, late red
    depth = np.stack([np.full(6, 0.2), np.full(6, 0.9)]).astype(np.float32)   # point 1 nearer
    out = draw_tracks(frames, xy, np.ones_like(vis), color_by="depth", depth=depth, radius=4)
    far, near = out[1, 20, 23].astype(int), out[1, 40, 60].astype(int)
    assert far[2] > far[0] and near[0] > near[2]
    with pytest.raises(ConfigError, match="depth"):
        draw_tracks(frames, xy, vis, color_by="depth")
    with pytest.raises(ConfigError, match="color_by"):
        draw_tracks(frames, xy, vis, color_by="speed")


def test_save_formats(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (7, 40, 50, 3), dtype=np.uint8)
    mp4 = save_visualization(frames, str(tmp_path / "a.mp4"), fps=7)
    assert decode(mp4).num_frames == 7
    gif = save_visualization(frames, str(tmp_path / "a.gif"))
    with Image.open(gif) as im:
        assert im.n_frames == 7 and im.size == (50, 40)
    png = save_visualization(frames, str(tmp_path / "a.png"))
    with Image.open(png) as im:
        assert im.size == (6 * 50 + 5 * 4, 40)
    np.testing.assert_array_equal(frame_strip(frames, 2, gap=0), np.concatenate([frames[0], frames[6]], 1))
    with pytest.raises(ConfigError, match="unsupported"):
        save_visualization(frames, str(tmp_path / "a.avi"))


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (60, 100, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, k, axis=1) for k in range(8)])
    return write_video(str(tmp_path_factory.mktemp("viz") / "clip.mp4"), frames, fps=8)


def test_visualize_video_tracks_with_lk(small_video, tmp_path):
    out = visualize(small_video, str(tmp_path / "v.png"), points=30, min_side=120)
    with Image.open(out) as im:
        assert im.size == (6 * 200 + 5 * 4, 120)          # 2x upscaled 100x60 frames


def test_visualize_store_record_and_cli(small_video, tmp_path, capsys):
    from traction.store import StoreWriter

    rng = np.random.default_rng(1)
    traj = Trajectories(xy=rng.uniform(0, 50, (10, 8, 2)), vis=np.ones((10, 8)), depth=rng.random((10, 8)),
                        height=60, width=100, fps=8)
    with StoreWriter(str(tmp_path / "store"), tracker="lk", depth_model="none") as w:
        w.add("clip", traj, label="x", meta={"source": small_video})
        w.add("orphan", traj, label="x", meta={"source": str(tmp_path / "gone.mp4")})
    assert main([small_video, "--store", str(tmp_path / "store"), "--clip", "clip", "--color-by", "depth",
                 "--out", str(tmp_path / "s.gif")]) == 0
    assert "wrote" in capsys.readouterr().out
    with Image.open(tmp_path / "s.gif") as im:
        assert im.n_frames == 8
    out = visualize("orphan", str(tmp_path / "o.png"), store=str(tmp_path / "store"))   # grey canvas
    assert os.path.isfile(out)
