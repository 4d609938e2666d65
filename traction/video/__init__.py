"""Video decoding and temporal sampling, the first stage of trajectory extraction (paper §3,
appendix E; design.md "The pipeline").

    decode(source, backend=, max_side=, sampling=, device=) -> Video   whole clip or sampled frames
    iter_frames(source, chunk=)                                        bounded-memory streaming
    SamplingPolicy("all" | "stride" | "adaptive")                      appendix A/E frame choice
    write_video(path, frames, fps, codec)                              PyAV encoder (h264/mpeg4/vp9)

Backends: PyAV (CPU, default) and NVIDIA DALI (NVDEC on CUDA; VP8/VP9 on CPU).
"""
from traction.video.decode import BACKENDS, decode, iter_frames, resolve_backend
from traction.video.frames import MAX_SIDE, MIN_SIDE, Video, resized_shape
from traction.video.sampling import SamplingPolicy, adaptive_stride, centred_window, sample_indices
from traction.video.writer import write_video

__all__ = ["BACKENDS", "MAX_SIDE", "MIN_SIDE", "SamplingPolicy", "Video", "adaptive_stride",
           "centred_window", "decode", "iter_frames", "resized_shape", "resolve_backend",
           "sample_indices", "write_video"]
