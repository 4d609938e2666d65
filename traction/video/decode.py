"""``decode`` and ``iter_frames``: the entry points of the first pipeline stage (design.md "The
pipeline": decode with NVIDIA DALI on GPU, PyAV on CPU)."""
from __future__ import annotations

import os
from typing import Iterator, Optional, Sequence, Union

import numpy as np

from traction.errors import VideoError
from traction.video.frames import Video, check_max_side, frames_from_array, resize_frame
from traction.video.sampling import SamplingPolicy

BACKENDS = ("pyav", "dali", "auto")

Source = Union[str, "os.PathLike[str]", np.ndarray, Sequence[np.ndarray]]


def _is_path(source) -> bool:
    return isinstance(source, (str, os.PathLike))


def resolve_backend(backend: str, device: str) -> str:
    """"auto" -> "dali" on CUDA devices where DALI imports, else "pyav"."""
    if backend not in BACKENDS:
        raise VideoError(f"video backend {backend!r} is unknown; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    from traction.video.dali_backend import dali_available

    return "dali" if str(device).startswith("cuda") and dali_available() else "pyav"


def decode(source: Source, *, backend: str = "pyav", max_side: Optional[int] = None,
           sampling: Optional[SamplingPolicy] = None, device: str = "cpu",
           fps: Optional[float] = None) -> Video:
    """Decode a video file, or check in-memory frames, into a ``Video``.

    source:   a path, a (T, H, W, 3) uint8 RGB array, or a list of (H, W, 3) uint8 frames.
    backend:  "pyav" (CPU), "dali" (NVDEC on CUDA devices; VP8/VP9 only on CPU), or "auto".
    max_side: shrink (cv2.INTER_AREA) so that max(H, W) <= max_side, aspect ratio kept.
    sampling: which source frames to keep (``SamplingPolicy``); default every frame.
    device:   "cpu" or "cuda[:N]": where DALI decodes. Frames are always returned in host memory.
    fps:      frame rate of in-memory frames (default 30); ignored for files, which carry theirs.

    Raises ``VideoError`` naming the source and the reason for anything that is not a usable
    video: missing or empty files, truncated or corrupt data, fewer than 2 frames, sides outside
    16..8192 px.
    """
    check_max_side(max_side)
    chosen = resolve_backend(backend, device)
    sampling = sampling or SamplingPolicy("all")
    if not _is_path(source):
        frames = frames_from_array(source)
        fps = 30.0 if fps is None else float(fps)
        if not fps > 0:
            raise VideoError(f"<array>: fps={fps} must be positive")
        wanted = sampling.indices(frames.shape[0], fps)
        out = np.stack([resize_frame(frames[i], max_side) for i in wanted.tolist()])  # (T, H', W', 3)
        return Video(frames=out, fps=fps, frame_indices=wanted, source="<array>",
                     original=(int(frames.shape[1]), int(frames.shape[2])), timestamps=wanted / fps)
    path = os.fspath(source)
    if chosen == "dali":
        from traction.video.dali_backend import decode_dali

        return decode_dali(path, sampling, max_side, device=device)
    from traction.video.pyav_backend import decode_pyav

    return decode_pyav(path, sampling, max_side)


def iter_frames(source: Source, *, chunk: int = 32, max_side: Optional[int] = None,
                fps: Optional[float] = None) -> Iterator[Video]:
    """Yield consecutive chunks of at most ``chunk`` frames as ``Video`` objects (frame_indices
    count from the start of the source), holding one chunk in memory at a time. Files are
    decoded sequentially with PyAV; in-memory frames are sliced."""
    if int(chunk) < 1:
        raise VideoError(f"chunk={chunk} must be at least 1 frame")
    check_max_side(max_side)
    if not _is_path(source):
        frames = frames_from_array(source)
        rate = 30.0 if fps is None else float(fps)
        hw = (int(frames.shape[1]), int(frames.shape[2]))
        for start in range(0, frames.shape[0], chunk):
            part = frames[start:start + chunk]                             # (t, H, W, 3)
            idx = np.arange(start, start + part.shape[0], dtype=np.int64)
            yield Video(np.stack([resize_frame(f, max_side) for f in part]), rate, idx, "<array>", hw, idx / rate)
        return
    from traction.video.pyav_backend import iter_pyav

    yield from iter_pyav(os.fspath(source), int(chunk), max_side)
