"""Rendered synthetic videos and their ground truth (traction.synth.videos)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from traction import ops
from traction.synth.trajectories import DEFAULT_CLASSES, clip_rng
from traction.synth.videos import DEPTH_OCCLUDER, load_gt, main, render_clip, synth_videos
from traction.tracking import LKTracker
from traction.video import decode


def _clip(label, seed=0, index=0, **kw):
    return render_clip(clip_rng(seed, index), label, **kw)


def _find(label, want_occluder, frames=24):
    """The first clip of ``label`` whose depth maps show (or lack) the occluder bar."""
    for i in range(40):
        c = _clip(label, index=i, frames=frames)
        if bool((c.depth_maps == DEPTH_OCCLUDER).any()) == want_occluder:
            return c
    raise AssertionError(f"no {label} clip with occluder={want_occluder} among 40")


def test_shapes_and_determinism():
    a = _clip("rotate_cw", frames=20, points=30)
    b = _clip("rotate_cw", frames=20, points=30)
    assert a.frames.shape == (20, 120, 160, 3) and a.frames.dtype == np.uint8
    assert a.xy.shape == (30, 20, 2) and a.vis.shape == (30, 20) and a.depth.shape == (30, 20)
    assert a.queries.shape == (30, 3) and a.depth_maps.shape == (20, 120, 160)
    for name in ("frames", "xy", "vis", "depth", "queries", "depth_maps"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = _clip("rotate_cw", index=1, frames=20, points=30)
    assert not np.array_equal(a.frames, c.frames)
    rows = np.arange(30)
    qt = a.queries[:, 0].astype(int)
    np.testing.assert_array_equal(a.vis[rows, qt], 1.0)                 # queries are visible
    np.testing.assert_allclose(a.xy[rows, qt], a.queries[:, 1:], atol=1e-4)


def test_chiral_pair_is_exact_time_reversal():
    left = _clip("move_left", index=3, frames=16)
    right = _clip("move_right", index=3, frames=16)
    np.testing.assert_array_equal(right.frames, left.frames[::-1])
    np.testing.assert_array_equal(right.depth_maps, left.depth_maps[::-1])


def test_motion_classes_move_as_named():
    def relative_motion(label):
        """Object displacement first -> last frame minus the background's (camera pans cancel)."""
        c = _clip(label, index=2, frames=20)
        disp = c.xy[:, -1] - c.xy[:, 0]                                   # (N, 2), exact even if hidden
        return disp[c.on_object].mean(0) - disp[~c.on_object].mean(0)

    np.testing.assert_allclose(relative_motion("static"), [0, 0], atol=1e-3)
    assert relative_motion("move_left")[0] < -10 and relative_motion("move_right")[0] > 10
    assert relative_motion("move_up")[1] < -10 and relative_motion("move_down")[1] > 10
    towards = _clip("move_towards", index=2, frames=20)
    obj = towards.on_object
    assert (towards.depth[obj, -1] > towards.depth[obj, 0]).all()          # nearer = bigger inverse depth
    spread = lambda c, t: np.linalg.norm(c.xy[c.on_object, t] - c.xy[c.on_object, t].mean(0), axis=1).mean()  # noqa: E731
    assert spread(towards, -1) > 1.2 * spread(towards, 0)                 # and bigger on screen
    expand = _clip("expand", index=2, frames=20)
    np.testing.assert_array_equal(expand.depth[expand.on_object, -1], expand.depth[expand.on_object, 0])
    assert spread(expand, -1) > 1.2 * spread(expand, 0)


def test_lk_on_rendered_frames_agrees_with_ground_truth():
    clip = _find("move_left", want_occluder=False)
    xy, vis = LKTracker().track(clip.frames, clip.queries)
    both = (vis > 0) & (clip.vis > 0)
    err = np.linalg.norm(xy - clip.xy, axis=-1)[both]
    assert both.sum() > 0.5 * (clip.vis > 0).sum()                        # LK keeps most visible points
    assert np.median(err) < 0.3


def test_occluder_hides_points_and_depth_maps_match_point_depth():
    clip = _find("static", want_occluder=True)
    t_total, h, w = clip.depth_maps.shape
    lifted = ops.lift_depth(clip.depth_maps, clip.xy, (h, w))             # (N, T)
    visible = clip.vis > 0
    # visible points see their own depth in the depth map (except within a pixel of an edge)
    assert np.mean(np.abs(lifted[visible] - clip.depth[visible]) < 1e-4) > 0.9
    # points under the bar (map says occluder at and around them) are not visible
    xi = np.clip(np.rint(clip.xy[..., 0]).astype(int), 0, w - 1)
    yi = np.clip(np.rint(clip.xy[..., 1]).astype(int), 0, h - 1)
    tt = np.broadcast_to(np.arange(t_total), xi.shape)
    under = np.ones_like(visible)
    for dx in (-1, 0, 1):
        under &= clip.depth_maps[tt, yi, np.clip(xi + dx, 0, w - 1)] == DEPTH_OCCLUDER
    assert under.any()
    assert not visible[under].any()


def test_synth_videos_writes_list_videos_and_gt(tmp_path):
    out = tmp_path / "synth"
    list_path = synth_videos(out, 13, seed=5, frames=(8, 10), points=16, progress=False)
    lines = open(list_path).read().split("\n")[:-1]
    assert len(lines) == 13
    for i, line in enumerate(lines):
        path, label, split = line.split()
        assert path == f"clip_{i:05d}.mp4" and label == DEFAULT_CLASSES[i % len(DEFAULT_CLASSES)]
        assert split in ("train", "test")
        assert os.path.isfile(out / path)
    gt = load_gt(str(out), "clip_00004")
    video = decode(str(out / "clip_00004.mp4"))
    t_total = video.num_frames
    assert 8 <= t_total <= 10 and video.frames.shape[1:] == (120, 160, 3) and video.fps == pytest.approx(12)
    assert gt["xy"].shape == (16, t_total, 2) and gt["depth_maps"].shape == (t_total, 120, 160)
    assert str(gt["label"]) == DEFAULT_CLASSES[4]
    # same seed, same data, also when rendered by 2 worker processes; another seed, other data
    again = synth_videos(tmp_path / "again", 13, seed=5, frames=(8, 10), points=16, progress=False, workers=2)
    assert open(again).read() == open(list_path).read()
    for k, v in load_gt(str(tmp_path / "again"), "clip_00004").items():
        np.testing.assert_array_equal(v, gt[k])
    synth_videos(tmp_path / "other", 5, seed=6, frames=(8, 10), points=16, progress=False)
    assert not np.array_equal(load_gt(str(tmp_path / "other"), "clip_00004")["queries"], gt["queries"])


def test_cli_vp9(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--n", "2", "--codec", "vp9", "--frames", "6", "6",
                 "--no-progress", "--no-depth-maps"]) == 0
    assert "2 clips" in capsys.readouterr().out
    assert os.path.isfile(tmp_path / "clip_00001.webm")
    assert "depth_maps" not in load_gt(str(tmp_path), "clip_00001")
    assert decode(str(tmp_path / "clip_00001.webm")).num_frames == 6
