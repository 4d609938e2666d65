"""Writing frames to a video file with PyAV: synthetic clips, visualizations and test fixtures."""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Iterable, Optional

import av
import numpy as np

from traction.errors import VideoError

# codec name -> (FFmpeg encoder, container suffixes it belongs in, encoder options)
CODECS = {
    "h264": ("libx264", (".mp4", ".mkv", ".mov"), {"crf": "17", "preset": "veryfast"}),
    "mpeg4": ("mpeg4", (".mp4", ".mkv", ".avi", ".mov"), {"qscale": "2"}),
    "vp9": ("libvpx-vp9", (".webm", ".mkv"), {"crf": "20", "b": "0", "deadline": "realtime", "cpu-used": "8"}),
}


def frame_rate_fraction(fps: float) -> Fraction:
    """A rational frame rate for the muxer (29.97 -> 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


def write_video(path: str, frames: Iterable[np.ndarray], fps: float = 30.0, codec: str = "h264",
                crf: Optional[int] = None) -> str:
    """Encode (H, W, 3) uint8 RGB frames to ``path``; returns the path.

    yuv420p, which every player and decoder reads, needs even sides: odd frames get one edge
    row/column repeated (not resized, so pixel coordinates stay the same).
    """
    if codec not in CODECS:
        raise VideoError(f"{path}: codec {codec!r} is unknown; choose one of {', '.join(CODECS)}")
    encoder, suffixes, options = CODECS[codec]
    if not path.lower().endswith(suffixes):
        raise VideoError(f"{path}: codec {codec} needs a file ending in {' or '.join(suffixes)}")
    options = dict(options)
    if crf is not None and "crf" in options:
        options["crf"] = str(int(crf))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    container = av.open(path, mode="w")
    ok = False
    try:
        stream = None
        for frame in frames:
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise VideoError(f"{path}: frames must be (H, W, 3) uint8, got {frame.dtype} {frame.shape}")
            h, w = frame.shape[:2]
            pad_h, pad_w = h % 2, w % 2
            if pad_h or pad_w:
                frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            if stream is None:
                stream = container.add_stream(encoder, rate=frame_rate_fraction(fps))
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = options
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise VideoError(f"{path}: no frames to write")
        for packet in stream.encode():
            container.mux(packet)
        ok = True
    finally:
        container.close()
        if not ok and os.path.exists(path):      # no half-written files left behind
            os.remove(path)
    return path
