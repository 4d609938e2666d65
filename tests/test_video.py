"""Decoding (PyAV, DALI), temporal sampling, resizing and bad-input errors (traction.video)."""
from __future__ import annotations

import os
import re

import av
import numpy as np
import pytest

from traction.errors import ConfigError, VideoError
from traction.video import SamplingPolicy, decode, iter_frames, resolve_backend, sample_indices, write_video
from traction.video.dali_backend import dali_available

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "videos")
SHARED = os.environ.get("TRACTION_SHARED_VIDEOS", SHARED if os.path.isdir(SHARED) else "/work/shared/videos")


def _sources_table():
    """file -> (frames, (H, W), fps, codec) from SOURCES.md beside the shared videos."""
    rows = {}
    with open(os.path.join(SHARED, "SOURCES.md"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\|\s*(\S+\.mp4)\s*\|\s*(\d+)\s*\|\s*(\d+)x(\d+)\s*\|\s*([\d.]+)\s*\|\s*(\w+)", line)
            if m:
                rows[m.group(1)] = (int(m.group(2)), (int(m.group(4)), int(m.group(3))), float(m.group(5)), m.group(6))
    return rows


def _index_frames(t: int, h: int = 48, w: int = 64) -> np.ndarray:
    """(t, h, w, 3) frames whose brightness encodes their index (10 levels apart, survives h264)."""
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i] = 20 + 10 * i
    frames[:, :8, :8] = 255                     # a corner marker to check orientation
    return frames


def _frame_ids(frames: np.ndarray) -> np.ndarray:
    return np.rint((frames[:, 16:, 16:].mean(axis=(1, 2, 3)) - 20) / 10).astype(int)


@pytest.fixture(scope="module")
def indexed_mp4(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("vid") / "indexed.mp4")
    return write_video(path, _index_frames(20), fps=10)


# ------------------------------------------------------------------------------ shared real videos
@pytest.mark.parametrize("name", ["apple.mp4", "backpack.mp4", "davis_rollercoaster.mp4", "teddy.mp4", "camel.mp4"])
def test_decode_shared_videos_matches_sources(name):
    if not os.path.isfile(os.path.join(SHARED, "SOURCES.md")):
        pytest.skip(f"shared test videos not found at {SHARED}")
    frames, hw, fps, codec = _sources_table()[name]
    path = os.path.join(SHARED, name)
    video = decode(path, max_side=160)
    assert video.num_frames == frames and len(video.frame_indices) == frames
    assert video.original == hw
    assert max(video.height, video.width) == 160
    assert video.fps == pytest.approx(fps, abs=0.05)
    assert video.frames.dtype == np.uint8 and video.frames.shape[-1] == 3
    np.testing.assert_array_equal(video.frame_indices, np.arange(frames))
    assert np.all(np.diff(video.timestamps) > 0)
    with av.open(path) as c:
        assert c.streams.video[0].codec_context.name == codec


def test_decode_sampled_frames_equal_full_decode_of_shared_video():
    path = os.path.join(SHARED, "camel.mp4")
    if not os.path.isfile(path):
        pytest.skip(f"shared test videos not found at {SHARED}")
    policy = SamplingPolicy("stride", num_frames=8, stride=5)
    sampled = decode(path, sampling=policy, max_side=96)        # seeks into the middle
    full = decode(path, max_side=96)
    np.testing.assert_array_equal(sampled.frame_indices, policy.indices(372, full.fps))
    np.testing.assert_array_equal(sampled.frames, full.frames[sampled.frame_indices])


# ------------------------------------------------------------------------------ sampling policies
def test_sampling_all_and_stride():
    np.testing.assert_array_equal(sample_indices(SamplingPolicy("all"), 7), np.arange(7))
    idx = SamplingPolicy("stride", num_frames=32, stride=2).indices(100)
    np.testing.assert_array_equal(idx, 18 + 2 * np.arange(32))          # centred: (100 - 63) // 2 = 18
    short = SamplingPolicy("stride", num_frames=8, stride=2).indices(6)   # window 15 > 6 frames
    np.testing.assert_array_equal(short, [0, 0, 0, 1, 3, 5, 5, 5])        # clamped at both ends


def test_sampling_adaptive_rule():
    pol = SamplingPolicy("adaptive", num_frames=32, max_stride=20)
    assert pol.stride_for(173) == 6            # ceil(172 / 31): 31 * 6 + 1 = 187 >= 173 > 31 * 5 + 1
    assert pol.stride_for(20) == 1
    assert pol.stride_for(5000) == 20          # capped
    np.testing.assert_array_equal(pol.indices(5000), (5000 - 621) // 2 + 20 * np.arange(32))
    for n in range(2, 800, 7):                 # smallest stride whose centred window covers the clip
        s = pol.stride_for(n)
        assert 31 * s + 1 >= n or s == 20
        assert s == 1 or 31 * (s - 1) + 1 < n
        idx = pol.indices(n)
        assert idx.shape == (32,) and idx.min() >= 0 and idx.max() <= n - 1
        assert np.all(np.diff(idx) >= 0)
    margin = SamplingPolicy("adaptive", num_frames=32, max_missing_s=1.0)
    assert margin.stride_for(100, fps=10) == 3          # may miss 10 frames per side: 94-frame window
    assert SamplingPolicy("adaptive", num_frames=32).stride_for(100, fps=10) == 4


def test_sampling_bad_config():
    with pytest.raises(ConfigError, match="uniform"):
        SamplingPolicy("uniform")
    with pytest.raises(ConfigError, match="num_frames"):
        SamplingPolicy("stride", num_frames=1)


def test_decode_file_with_sampling_reads_the_right_frames(indexed_mp4):
    video = decode(indexed_mp4, sampling=SamplingPolicy("stride", num_frames=4, stride=3))
    np.testing.assert_array_equal(video.frame_indices, [5, 8, 11, 14])  # (20 - 10) // 2 = 5
    np.testing.assert_array_equal(_frame_ids(video.frames), video.frame_indices)
    assert video.fps == pytest.approx(10)
    np.testing.assert_allclose(video.timestamps, video.frame_indices / 10.0, atol=1e-6)


def test_iter_frames_streams_the_same_frames(indexed_mp4):
    full = decode(indexed_mp4)
    chunks = list(iter_frames(indexed_mp4, chunk=6))
    assert [c.num_frames for c in chunks] == [6, 6, 6, 2]
    np.testing.assert_array_equal(np.concatenate([c.frames for c in chunks]), full.frames)
    np.testing.assert_array_equal(np.concatenate([c.frame_indices for c in chunks]), np.arange(20))
    arr_chunks = list(iter_frames(full.frames, chunk=8, fps=10))
    assert [c.num_frames for c in arr_chunks] == [8, 8, 4]


# ------------------------------------------------------------------------------ resizing, arrays
def test_max_side_keeps_aspect_ratio_for_portrait_arrays():
    frames = np.random.default_rng(0).integers(0, 255, (3, 480, 368, 3), dtype=np.uint8)
    video = decode(frames, max_side=100, fps=20)
    assert video.frames.shape == (3, 100, 77, 3)          # 368 * 100 / 480 = 76.7
    assert video.original == (480, 368) and video.fps == 20 and video.source == "<array>"
    same = decode(list(frames), max_side=1000)             # never enlarges; lists work too
    np.testing.assert_array_equal(same.frames, frames)
    assert same.fps == 30.0


def test_display_rotation_is_applied(tmp_path):
    path = str(tmp_path / "rotated.mp4")
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(-90)                     # "rotate 90 degrees clockwise to display"
        for f in _index_frames(3):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    video = decode(path)
    assert video.frames.shape == (3, 64, 48, 3) and video.original == (64, 48)
    # clockwise: the top-left marker moves to the top-right corner
    assert video.frames[0, :6, -6:].mean() > 200 and video.frames[0, :6, :6].mean() < 100


# ------------------------------------------------------------------------------ bad inputs
def _write_1_frame(path):
    write_video(path, _index_frames(1), fps=10)


def _write_faststart(path, frames):
    """An mp4 with its index before the data, so a cut-off copy still opens."""
    with av.open(path, "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.mark.parametrize("case, reason", [
    ("missing", "no such file"),
    ("empty", "empty"),
    ("text", "not a readable video"),
    ("truncated", "truncated|corrupt|not a readable video"),
    ("truncated_faststart", "truncated: the container lists 30 frames"),
    ("one_frame", "1 decodable frame"),
    ("tiny", "absurd"),
    ("directory", "directory"),
])
def test_bad_files_raise_video_error(tmp_path, indexed_mp4, case, reason):
    path = str(tmp_path / f"{case}.mp4")
    if case == "empty":
        open(path, "wb").close()
    elif case == "text":
        with open(path, "w") as f:
            f.write("this is not a video\n" * 20)
    elif case == "truncated":
        data = open(indexed_mp4, "rb").read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
    elif case == "truncated_faststart":
        noise = np.random.default_rng(0).integers(0, 255, (30, 48, 64, 3), dtype=np.uint8)
        _write_faststart(path + ".full.mp4", noise)
        data = open(path + ".full.mp4", "rb").read()
        with open(path, "wb") as f:
            f.write(data[: int(len(data) * 0.6)])
    elif case == "one_frame":
        _write_1_frame(path)
    elif case == "tiny":
        write_video(path, np.zeros((3, 8, 32, 3), np.uint8), codec="mpeg4")
    elif case == "directory":
        os.makedirs(path)
    with pytest.raises(VideoError, match=reason) as err:
        decode(path)
    msg = str(err.value)
    assert path in msg and "\n" not in msg


def test_bad_arrays_raise_video_error():
    with pytest.raises(VideoError, match="at least 2"):
        decode(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(VideoError, match="absurd"):
        decode(np.zeros((4, 10, 10, 3), np.uint8))
    with pytest.raises(VideoError, match="absurd"):
        decode(np.zeros((2, 16, 8193, 3), np.uint8))
    with pytest.raises(VideoError, match="uint8"):
        decode(np.zeros((4, 32, 32, 3), np.float32))
    with pytest.raises(VideoError, match="backend"):
        decode(np.zeros((4, 32, 32, 3), np.uint8), backend="ffmpeg")


def test_auto_backend_is_pyav_on_cpu():
    assert resolve_backend("auto", "cpu") == "pyav"


# ------------------------------------------------------------------------------ DALI
@pytest.fixture(scope="module")
def vp9_webm(tmp_path_factory):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:128]
    frames = np.stack([np.stack([(xx * 2 + 3 * t) % 200, yy * 2, (xx + yy + 5 * t) % 200], -1)
                       for t in range(12)]).astype(np.uint8)
    frames = (frames + rng.integers(0, 20, frames.shape)).astype(np.uint8)
    return write_video(str(tmp_path_factory.mktemp("dali") / "clip.webm"), frames, fps=12, codec="vp9")


@pytest.mark.skipif(not dali_available(), reason="NVIDIA DALI is not importable (pip install nvidia-dali-cuda120)")
@pytest.mark.parametrize("sampling", [None, SamplingPolicy("stride", num_frames=5, stride=2)])
def test_dali_vp9_decode_equals_pyav(vp9_webm, sampling):
    ref = decode(vp9_webm, backend="pyav", sampling=sampling, max_side=64)
    got = decode(vp9_webm, backend="dali", device="cpu", sampling=sampling, max_side=64)
    assert got.frames.shape == ref.frames.shape
    np.testing.assert_array_equal(got.frame_indices, ref.frame_indices)
    diff = np.abs(got.frames.astype(int) - ref.frames.astype(int))
    assert diff.mean() < 3.0                     # the decoders' YUV -> RGB conversions differ slightly
    assert got.fps == ref.fps and got.original == ref.original


@pytest.mark.skipif(not dali_available(), reason="NVIDIA DALI is not importable (pip install nvidia-dali-cuda120)")
def test_dali_cpu_rejects_h264_clearly(indexed_mp4):
    with pytest.raises(VideoError, match="CPU decoder cannot decode h264"):
        decode(indexed_mp4, backend="dali", device="cpu")
