"""Decoding with NVIDIA DALI (``nvidia-dali-cuda120``), the GPU backend.

On CUDA devices DALI's "mixed" video decoder runs on NVDEC (H.264, HEVC, MPEG-4, AV1, VP8/9); on
the CPU its decoder handles VP8, VP9 and MJPEG only. The frame count, frame rate, rotation and
resolution come from a PyAV demux pass (cheap, no decoding), so both backends pick the same source
frames for a sampling policy; DALI then decodes just those frames (its ``frames`` argument).
Frames are copied to host memory and resized with the same cv2.INTER_AREA code as the PyAV path,
so the two backends agree up to the decoders' colour conversion (a few levels).
"""
from __future__ import annotations

import functools
from typing import Optional, Tuple

import numpy as np

from traction.errors import VideoError
from traction.video.frames import Video, resize_frame
from traction.video.pyav_backend import check_path, probe
from traction.video.sampling import SamplingPolicy

# Codecs DALI's CPU decoder supports (its documentation); others need NVDEC through "mixed".
CPU_CODECS = ("vp8", "vp9", "mjpeg")


def dali_available() -> bool:
    """Whether ``nvidia.dali`` imports (it is an optional, large dependency)."""
    try:
        import nvidia.dali  # noqa: F401
    except Exception:  # ImportError, or a broken CUDA runtime raising at import
        return False
    return True


def parse_device(device: str) -> Tuple[str, Optional[int]]:
    """"cpu" -> ("cpu", None); "cuda" / "cuda:1" -> ("mixed", 0 / 1)."""
    device = str(device)
    if device == "cpu":
        return "cpu", None
    if device == "cuda" or device.startswith("cuda:"):
        return "mixed", int(device.split(":", 1)[1]) if ":" in device else 0
    raise VideoError(f"device {device!r} is not understood; use 'cpu', 'cuda' or 'cuda:N'")


@functools.lru_cache(maxsize=4)
def _pipeline(decoder_device: str, device_id: Optional[int]):
    """One reusable pipeline per device: encoded bytes + frame indices in, frames out."""
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=1, num_threads=2, device_id=device_id, prefetch_queue_depth=1,
                  exec_async=False, exec_pipelined=False)
    def decode_pipeline():
        encoded = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1)
        frames = fn.external_source(name="frames", dtype=types.INT32, ndim=1)
        return fn.decoders.video(encoded, device=decoder_device, frames=frames)

    pipe = decode_pipeline()
    pipe.build()
    return pipe


def decode_dali(path: str, sampling: Optional[SamplingPolicy], max_side: Optional[int],
                device: str = "cuda") -> Video:
    """Decode the frames of ``path`` chosen by ``sampling`` with DALI on ``device``."""
    if not dali_available():
        raise VideoError(f"{path}: backend 'dali' needs NVIDIA DALI; "
                         "pip install nvidia-dali-cuda120, or use backend='pyav'")
    decoder_device, device_id = parse_device(device)
    check_path(path)
    info = probe(path)
    if decoder_device == "cpu" and info.codec not in CPU_CODECS:
        raise VideoError(f"{path}: DALI's CPU decoder cannot decode {info.codec} "
                         f"(only {', '.join(CPU_CODECS)}); use backend='pyav' or a CUDA device")
    if info.num_frames < 2:
        raise VideoError(f"{path}: has {max(info.num_frames, 0)} frame(s) with timestamps; "
                         "at least 2 are needed for motion")
    wanted = (sampling or SamplingPolicy("all")).indices(info.num_frames, info.fps)
    pipe = _pipeline(decoder_device, device_id)
    pipe.feed_input("encoded", [np.fromfile(path, dtype=np.uint8)])
    pipe.feed_input("frames", [wanted.astype(np.int32)])
    try:
        (out,) = pipe.run()
    except Exception as err:  # DALI raises RuntimeError with a multi-line C++ trace
        first = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), type(err).__name__)
        raise VideoError(f"{path}: DALI could not decode it ({first})") from None
    if decoder_device == "mixed":
        out = out.as_cpu()
    frames = np.asarray(out[0])                                        # (T, H, W, 3) uint8
    if frames.shape[0] != len(wanted):
        raise VideoError(f"{path}: DALI returned {frames.shape[0]} frames, expected {len(wanted)}")
    rgb = [resize_frame(np.ascontiguousarray(np.rot90(f, info.quarter_turns)) if info.quarter_turns else f,
                        max_side) for f in frames]
    times = np.asarray(info.pts, np.float64)[wanted] * info.time_base
    return Video(frames=np.stack(rgb), fps=info.fps, frame_indices=wanted.astype(np.int64), source=path,
                 original=info.hw, timestamps=times)
