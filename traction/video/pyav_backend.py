"""Decoding with PyAV (FFmpeg), the CPU backend.

Reading a clip's sampled frames costs one demux pass and one partial decode:

1. Demux (no decoding) to list the presentation timestamps of all frames. Their sorted order gives
   each frame's source index, also for variable frame rates and B-frames; packets the container
   marks as discarded (edit lists) are not frames. This pass also gives the frame count that the
   sampling policy needs.
2. Seek to the key frame before the first wanted frame, decode up to the last wanted one, and
   convert (RGB, resize) only the wanted frames.

Files whose timestamps do not identify frames (missing pts, decoder output that does not match the
demuxed timestamps, packets that decode to nothing) fall back to counting decodable frames in a
sequential pass, then decoding the wanted ones sequentially. Frames are rotated upright from the
stream's display matrix (phone videos store portrait footage as rotated landscape).
"""
from __future__ import annotations

import os
import warnings
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

import av
import numpy as np

from traction.errors import VideoError
from traction.video.frames import Video, check_resolution, resize_frame
from traction.video.sampling import SamplingPolicy


def _reason(err: BaseException) -> str:
    """FFmpeg's message without the repeated file name, on one line."""
    msg = getattr(err, "strerror", None) or str(err)
    return " ".join(str(msg).split())


def check_path(path: str) -> None:
    """Raise ``VideoError`` for paths that cannot hold a video at all."""
    if not os.path.exists(path):
        raise VideoError(f"{path}: no such file")
    if os.path.isdir(path):
        raise VideoError(f"{path}: is a directory, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoError(f"{path}: file is empty (0 bytes)")


def open_video(path: str) -> "av.container.InputContainer":
    """Open ``path`` with a video stream, or raise ``VideoError`` naming the reason."""
    check_path(path)
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as err:
        raise VideoError(f"{path}: not a readable video (truncated, corrupt or not a video: "
                         f"{_reason(err)})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: contains no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None or stream.codec_context.name is None:
        container.close()
        raise VideoError(f"{path}: video stream has no decodable codec")
    return container


def stream_fps(stream, path: str) -> float:
    """Frames per second: the container's average rate, else FFmpeg's guess, else 30 (warned)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    warnings.warn(f"{path}: frame rate unknown; assuming 30 fps", stacklevel=3)
    return 30.0


def _frame_rgb(frame: "av.VideoFrame", max_side: Optional[int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB of one decoded frame, upright and resized."""
    rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = int(round((getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
    if quarter_turns:
        # frame.rotation is the counter-clockwise angle to apply for display; np.rot90 turns
        # counter-clockwise too.
        rgb = np.ascontiguousarray(np.rot90(rgb, quarter_turns))
    return resize_frame(rgb, max_side)


def _upright_hw(container, path: str) -> Tuple[int, int]:
    """(H, W) of the displayed frames (rotation applied) from the stream header."""
    cc = container.streams.video[0].codec_context
    h, w = int(cc.height or 0), int(cc.width or 0)
    if h == 0 or w == 0:
        raise VideoError(f"{path}: video stream reports no frame size (corrupt header)")
    return h, w


def _demux_pts(container, path: str) -> Optional[List[int]]:
    """Sorted presentation timestamps of all frames, or None where packets lack them."""
    stream = container.streams.video[0]
    listed = int(stream.frames or 0)                 # sample count from the container index, 0 if none
    pts: List[int] = []
    packets = 0
    missing_pts = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0:                     # flush packet
                continue
            packets += 1
            if packet.is_discard:                    # trimmed by an edit list: not a frame
                continue
            if packet.pts is None:
                missing_pts = True
            else:
                pts.append(int(packet.pts))
    except av.FFmpegError as err:
        raise VideoError(f"{path}: truncated or corrupt ({_reason(err)})") from None
    if listed and packets < listed:
        # An index written up front (mp4 "faststart") outlives a cut-off file: frames would go
        # missing silently.
        raise VideoError(f"{path}: truncated: the container lists {listed} frames but only {packets} are present")
    if missing_pts:
        return None
    if len(set(pts)) != len(pts):
        return None
    return sorted(pts)


def _decode_frames(container, path: str) -> Iterator["av.VideoFrame"]:
    """Decoded frames of the first video stream, errors turned into ``VideoError``."""
    stream = container.streams.video[0]
    try:
        for frame in container.decode(stream):
            yield frame
    except av.FFmpegError as err:
        raise VideoError(f"{path}: truncated or corrupt, decoding failed ({_reason(err)})") from None


def _positions(wanted: np.ndarray) -> Dict[int, List[int]]:
    """source index -> output positions (a sampled index may repeat for clamped windows)."""
    pos: Dict[int, List[int]] = {}
    for i, idx in enumerate(wanted.tolist()):
        pos.setdefault(idx, []).append(i)
    return pos


def _gather(indexed: Iterator[Tuple[Optional[int], "av.VideoFrame"]], wanted: np.ndarray,
            max_side: Optional[int], time_base: float
            ) -> Optional[Tuple[List[Optional[np.ndarray]], np.ndarray]]:
    """Convert the wanted frames of an in-order decode given as (source index, frame) pairs.

    Returns (frames, times) in sampled order, None where a wanted frame never came; None when a
    frame's source index is unknown (None). Stops after the last wanted frame."""
    positions = _positions(wanted)
    last = int(wanted.max())
    out: List[Optional[np.ndarray]] = [None] * len(wanted)
    times = np.zeros(len(wanted), np.float64)
    for idx, frame in indexed:
        if idx is None:
            return None
        if idx in positions:
            rgb = _frame_rgb(frame, max_side)
            for p in positions[idx]:
                out[p] = rgb
                times[p] = (frame.pts or 0) * time_base
        if idx >= last:
            break
    return out, times


def _time_base(stream) -> float:
    """Seconds per pts unit (0 where the stream has none)."""
    return float(stream.time_base) if stream.time_base else 0.0


def _read_by_pts(path: str, pts: List[int], wanted: np.ndarray, max_side: Optional[int]
                 ) -> Optional[Tuple[List[np.ndarray], np.ndarray]]:
    """Seek and decode the wanted frames; None if the decoder's frames do not match ``pts``."""
    index_of = {p: i for i, p in enumerate(pts)}
    first = int(wanted.min())
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if first > 0:
            try:
                container.seek(pts[first], stream=stream, backward=True, any_frame=False)
            except av.FFmpegError:
                container.seek(0)                         # unseekable: read from the start
        indexed = ((index_of.get(f.pts) if f.pts is not None else None, f)
                   for f in _decode_frames(container, path))
        got = _gather(indexed, wanted, max_side, _time_base(stream))
    if got is None or any(f is None for f in got[0]):
        return None
    return got  # type: ignore[return-value]


def _count_decodable(path: str) -> int:
    with open_video(path) as container:
        container.streams.video[0].thread_type = "AUTO"
        return sum(1 for _ in _decode_frames(container, path))


def _read_sequential(path: str, wanted: np.ndarray, max_side: Optional[int]
                     ) -> Tuple[List[np.ndarray], np.ndarray]:
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        got = _gather(enumerate(_decode_frames(container, path)), wanted, max_side, _time_base(stream))
    assert got is not None                                # enumerate always knows the index
    out, times = got
    missing = sum(f is None for f in out)
    if missing:
        raise VideoError(f"{path}: {missing} sampled frame(s) could not be decoded (truncated or corrupt)")
    return out, times  # type: ignore[return-value]


class Probe(NamedTuple):
    """What one demux pass tells about a file."""

    num_frames: int                 # frames listed by the demuxer (-1 where pts are missing)
    fps: float
    hw: Tuple[int, int]             # (H, W) of upright frames
    codec: str
    pts: Optional[List[int]]        # sorted presentation timestamps, or None
    quarter_turns: int              # counter-clockwise quarter turns that make frames upright
    time_base: float                # seconds per pts unit


def probe(path: str) -> Probe:
    """Demux ``path`` once (no decoding beyond the first frame) and check its resolution."""
    with open_video(path) as container:
        stream = container.streams.video[0]
        fps = stream_fps(stream, path)
        h, w = _upright_hw(container, path)
        codec = stream.codec_context.name
        time_base = _time_base(stream)
        pts = _demux_pts(container, path)
    # The display-matrix rotation lives in frame side data in PyAV; read it from the first frame.
    turns = 0
    with open_video(path) as container:
        for frame in _decode_frames(container, path):
            turns = int(round((getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
            break
    if turns % 2:
        h, w = w, h
    check_resolution(h, w, path)
    return Probe(len(pts) if pts is not None else -1, fps, (h, w), codec, pts, turns, time_base)


def decode_pyav(path: str, sampling: Optional[SamplingPolicy], max_side: Optional[int]) -> Video:
    """Decode the frames of ``path`` chosen by ``sampling`` (all frames when None)."""
    sampling = sampling or SamplingPolicy("all")
    info = probe(path)
    count, fps, hw, pts = info.num_frames, info.fps, info.hw, info.pts
    result = None
    if pts is not None and count >= 2:
        wanted = sampling.indices(count, fps)
        result = _read_by_pts(path, pts, wanted, max_side)
    if result is None:
        count = _count_decodable(path)
        if count < 2:
            raise VideoError(f"{path}: has {count} decodable frame(s); at least 2 are needed for motion")
        wanted = sampling.indices(count, fps)
        result = _read_sequential(path, wanted, max_side)
    frames, times = result
    return Video(frames=np.stack(frames), fps=fps, frame_indices=wanted.astype(np.int64), source=path,
                 original=hw, timestamps=times)


def iter_pyav(path: str, chunk: int, max_side: Optional[int]) -> Iterator[Video]:
    """Sequential decode in chunks of ``chunk`` frames; memory stays bounded by one chunk."""
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = stream_fps(stream, path)
        tb = _time_base(stream)
        hw = _upright_hw(container, path)
        buf: List[np.ndarray] = []
        times: List[float] = []
        start = 0
        checked = False
        for idx, frame in enumerate(_decode_frames(container, path)):
            if not checked:                            # the first frame's upright size is the truth
                rot = int(round((getattr(frame, "rotation", 0) or 0) / 90.0)) % 2
                hw = (hw[1], hw[0]) if rot else hw
                check_resolution(hw[0], hw[1], path)
                checked = True
            buf.append(_frame_rgb(frame, max_side))
            times.append((frame.pts or 0) * tb)
            if len(buf) == chunk:
                yield Video(np.stack(buf), fps, np.arange(start, start + len(buf), dtype=np.int64),
                            path, hw, np.asarray(times))
                start += len(buf)
                buf, times = [], []
        if start + len(buf) < 2:
            raise VideoError(f"{path}: has {start + len(buf)} decodable frame(s); at least 2 are needed for motion")
        if buf:
            yield Video(np.stack(buf), fps, np.arange(start, start + len(buf), dtype=np.int64),
                        path, hw, np.asarray(times))

