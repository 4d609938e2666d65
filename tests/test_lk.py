"""The Lucas-Kanade tracker and the tracker registry (traction.tracking)."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from traction.errors import ConfigError, InvalidTrajectories
from traction.tracking import LKTracker, Tracker, load_tracker, sample_queries

H, W, T = 96, 128, 16


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(h, w, 3) float32 blurred noise: corners everywhere, as LK needs."""
    rng = np.random.default_rng(seed)
    g = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.5)
    g = np.clip((g - g.mean()) / g.std() * 50 + 128, 0, 255)
    return np.stack([g, np.roll(g, 5, 0), np.roll(g, 7, 1)], -1).astype(np.float32)


def translating_video(velocity, t=T, h=H, w=W, margin=60) -> np.ndarray:
    """(t, h, w, 3) uint8: a large texture seen through a window moving by -velocity px/frame,
    so scene points move by +velocity px/frame."""
    tex = _texture(h + 2 * margin, w + 2 * margin)
    frames = []
    for k in range(t):
        m = np.float32([[1, 0, margin - velocity[0] * k], [0, 1, margin - velocity[1] * k]])  # frame -> texture
        frames.append(cv2.warpAffine(tex, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
    return np.clip(np.stack(frames) + 0.5, 0, 255).astype(np.uint8)


def expected_xy(queries, velocity, t=T):
    """(N, T, 2) true positions of queries (t, x, y) under constant velocity."""
    dt = np.arange(t)[None, :, None] - queries[:, None, :1]
    return queries[:, None, 1:] + dt * np.asarray(velocity, np.float64)


def test_translation_recovered_within_half_a_pixel():
    v = (1.3, -0.7)
    video = translating_video(v)
    rng = np.random.default_rng(1)
    n = 60
    queries = np.stack([rng.integers(0, T, n), rng.uniform(30, W - 30, n), rng.uniform(25, H - 25, n)], 1)
    xy, vis = LKTracker().track(video, queries.astype(np.float32))
    assert xy.shape == (n, T, 2) and vis.shape == (n, T)
    assert xy.dtype == np.float32 and vis.dtype == np.float32
    err = np.linalg.norm(xy - expected_xy(queries, v), axis=-1)
    inside = (expected_xy(queries, v)[..., 0] > 6) & (expected_xy(queries, v)[..., 0] < W - 7)
    assert vis[inside].mean() > 0.95
    assert np.median(err[vis > 0]) < 0.1
    assert np.percentile(err[vis > 0], 99) < 0.5


def test_query_in_the_middle_tracks_both_ways():
    v = (0.8, 0.5)
    video = translating_video(v)
    queries = np.array([[T // 2, 64.0, 48.0], [T // 2, 50.3, 40.7], [T - 1, 70.0, 50.0]], np.float32)
    xy, vis = LKTracker().track(video, queries)
    np.testing.assert_array_equal(vis, 1.0)
    np.testing.assert_allclose(xy, expected_xy(queries, v), atol=0.5)
    np.testing.assert_array_equal(xy[np.arange(3), queries[:, 0].astype(int)], queries[:, 1:])


def test_single_point():
    video = translating_video((1.0, 0.0))
    xy, vis = load_tracker("lk").track(video, np.array([[0, 40.0, 40.0]], np.float32))
    assert xy.shape == (1, T, 2) and vis.shape == (1, T)
    np.testing.assert_allclose(xy[0, :, 0], 40.0 + np.arange(T), atol=0.5)


def test_occluded_points_lose_visibility_and_keep_last_position():
    video = translating_video((0.0, 0.0)).copy()
    video[6:, :, : W // 2] = 128                        # a flat occluder over the left half from frame 6
    left = np.array([[0, 20.0, 30.0], [0, 40.0, 60.0], [2, 30.0, 50.0]], np.float32)
    right = np.array([[0, 100.0, 30.0], [0, 90.0, 70.0]], np.float32)
    xy, vis = LKTracker().track(video, np.concatenate([left, right]))
    np.testing.assert_array_equal(vis[:3, 6:], 0.0)
    np.testing.assert_array_equal(vis[:3, :6][:, 2:], 1.0)
    np.testing.assert_array_equal(vis[3:], 1.0)
    np.testing.assert_array_equal(xy[:3, 6:], np.repeat(xy[:3, 5:6], T - 6, axis=1))   # frozen once lost


def test_points_leaving_the_frame_become_invisible():
    v = (3.0, 0.0)
    video = translating_video(v)
    queries = np.array([[0, W - 20.0, 40.0], [0, 20.0, 50.0]], np.float32)
    xy, vis = LKTracker().track(video, queries)
    gone = expected_xy(queries, v)[0, :, 0] > W - 1    # the first point crosses the right edge
    assert gone.any()
    np.testing.assert_array_equal(vis[0, gone], 0.0)
    assert vis[0, :3].all()
    assert np.all(xy[0, :, 0] <= W - 1)                 # a lost point stays where it was last seen
    np.testing.assert_array_equal(vis[1], 1.0)


def test_default_speed_2500_points_32_frames_240p():
    video = translating_video((1.0, 0.5), t=32, h=240, w=320)
    queries = sample_queries(2500, 32, 240, 320, 0)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        start = time.process_time()
        xy, vis = LKTracker().track(video, queries)
        cpu = time.process_time() - start
    finally:
        cv2.setNumThreads(threads)
    assert xy.shape == (2500, 32, 2)
    assert cpu < 3.0, f"LK took {cpu:.2f} s of CPU for 2500 points x 32 frames at 240p"


def test_bad_queries_are_rejected():
    video = translating_video((0.0, 0.0), t=4)
    tracker = LKTracker()
    with pytest.raises(InvalidTrajectories, match=r"\(N, 3\)"):
        tracker.track(video, np.zeros((5, 2), np.float32))
    with pytest.raises(InvalidTrajectories, match="query frames"):
        tracker.track(video, np.array([[4, 10.0, 10.0]], np.float32))
    with pytest.raises(InvalidTrajectories, match="inside the"):
        tracker.track(video, np.array([[0, W + 3.0, 10.0]], np.float32))
    with pytest.raises(InvalidTrajectories, match="N=0"):
        tracker.track(video, np.zeros((0, 3), np.float32))


def test_registry():
    tracker = load_tracker("lk", win_size=15, fb_threshold=0.5)
    assert isinstance(tracker, Tracker) and tracker.name == "lk"
    assert tracker.win_size == 15 and tracker.fb_threshold == 0.5
    with pytest.raises(ConfigError, match="lk, cotracker3"):
        load_tracker("raft")
    with pytest.raises(ConfigError, match="no weights"):
        load_tracker("lk", weights="model.pth")
    with pytest.raises(ConfigError, match="unknown option"):
        load_tracker("lk", window=3)


def test_sample_queries_is_the_core_function():
    from traction import ops

    q = sample_queries(100, 8, 60, 80, seed=3)
    np.testing.assert_array_equal(q, ops.sample_queries(100, 8, 60, 80, 3))
    assert q.shape == (100, 3) and q[:, 0].max() <= 7 and q[:, 1].max() <= 79 and q[:, 2].max() <= 59
