"""Video Depth Anything network: DINOv2 encoder + temporal DPT head (Chen et al., 2025).

``forward`` is the raw network on a preprocessed clip; ``predict`` (see ``infer.py``) runs a whole
video through overlapping 32-frame windows and stitches them as the official ``infer_video_depth``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from traction.errors import ConfigError, VideoError

from .attention import check_attention_kind
from .dinov2 import PATCH, VIT_SIZES, DinoV2
from .dpt_temporal import DPTHeadTemporal


@dataclass(frozen=True)
class VDAConfig:
    encoder: str                     # "vits" | "vitb" | "vitl"
    features: int                    # fusion width of the DPT head
    widths: tuple[int, ...]          # per-level widths after the 1x1 projections
    metric: bool = False             # metric depth (no scale/shift alignment between windows)


ENCODER_CONFIGS = {
    "vits": dict(features=64, widths=(48, 96, 192, 384)),
    "vitb": dict(features=128, widths=(96, 192, 384, 768)),
    "vitl": dict(features=256, widths=(256, 512, 1024, 1024)),
}

_AUTOCAST_DTYPES = {None: None, "float32": None, "fp32": None, "float16": torch.float16, "fp16": torch.float16,
                    "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def parse_dtype(dtype) -> torch.dtype | None:
    """None / float32 -> None (no autocast); float16 / bfloat16 (torch dtype or name) -> that dtype."""
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).replace("torch.", "")
    if dtype not in _AUTOCAST_DTYPES:
        raise ConfigError(f"dtype={dtype!r}: expected None, 'float32', 'float16' or 'bfloat16'")
    return _AUTOCAST_DTYPES[dtype]


class VideoDepthAnything(nn.Module):
    """Video Depth Anything S/B/L (relative: affine-invariant inverse depth; metric: depth in metres).

    Args:
        encoder: "vits", "vitb" or "vitl".
        metric: the metric variant (same network; windows are stitched without scale/shift fitting).
        dtype: compute dtype for ``predict`` (None: float32; float16/bfloat16 run under autocast,
            the weights stay float32).
        attention: "sdpa" (fused kernels) or "math" (explicit softmax, the reference).
        encoder_chunk: frames per DINOv2 call in ``forward`` (0: all at once); bounds memory.
        head_chunk: frames per call of the high-resolution part of the head (0: all at once).
    """

    def __init__(self, encoder: str = "vitl", metric: bool = False, dtype=None, attention: str = "sdpa",
                 encoder_chunk: int = 32, head_chunk: int = 4):
        super().__init__()
        if encoder not in ENCODER_CONFIGS:
            raise ConfigError(f"encoder={encoder!r}: expected one of {sorted(ENCODER_CONFIGS)}")
        kind = check_attention_kind(attention)
        self.config = VDAConfig(encoder, metric=metric, **ENCODER_CONFIGS[encoder])
        size = VIT_SIZES[encoder]
        self.pretrained = DinoV2(size, kind)
        self.head = DPTHeadTemporal(size.dim, self.config.features, self.config.widths, kind)
        self.autocast_dtype = parse_dtype(dtype)
        self.encoder_chunk = int(encoder_chunk)
        self.head_chunk = int(head_chunk)

    @property
    def metric(self) -> bool:
        return self.config.metric

    @property
    def device(self) -> torch.device:
        return self.pretrained.pos_embed.device

    def set_attention(self, kind: str) -> None:
        kind = check_attention_kind(kind)
        self.pretrained.set_attention(kind)
        self.head.set_attention(kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, 3, H, W) normalised RGB, H and W multiples of 14, T <= 32 -> (B, T, H, W) depth."""
        if x.ndim != 5 or x.shape[2] != 3:
            raise VideoError(f"input of shape {tuple(x.shape)}: expected (B, T, 3, H, W)")
        B, T, _, H, W = x.shape
        if H % PATCH or W % PATCH or H == 0 or W == 0:
            raise VideoError(f"input of size {H}x{W}: height and width must be positive multiples of {PATCH}")
        frames = x.flatten(0, 1)                                            # (B*T, 3, H, W)
        step = self.encoder_chunk if self.encoder_chunk > 0 else frames.shape[0]
        # DINOv2 sees frames independently, so chunking over frames bounds memory without changing results
        parts = [self.pretrained(frames[i:i + step]) for i in range(0, frames.shape[0], step)]
        feats = [torch.cat(level) for level in zip(*parts)] if len(parts) > 1 else parts[0]
        # the head decodes at 14 x the patch grid = (H, W) and ends in a ReLU, so the reference's final
        # resize to (H, W) and ReLU are identities here
        depth = self.head(feats, H // PATCH, W // PATCH, T, chunk=self.head_chunk)  # (B*T, 1, H, W)
        return depth.reshape(B, T, H, W)

    def predict(self, video: np.ndarray, input_size: int = 518, fps: float | None = None,
                windows_per_batch: int = 1, progress: bool = False) -> np.ndarray:
        """video (T, H, W, 3) uint8 RGB -> (T, H, W) float32 depth at the input resolution.

        Relative models give affine-invariant inverse depth (disparity), metric models metres, both
        "as the model gives it". ``fps`` is accepted for interface symmetry with the official
        ``infer_video_depth`` and does not change the result.
        """
        from .infer import predict_video
        return predict_video(self, video, input_size=input_size, windows_per_batch=windows_per_batch,
                             progress=progress)

    def predict_many(self, videos, input_size: int = 518, windows_per_batch: int = 8,
                     progress: bool = False) -> list[np.ndarray]:
        """Several videos [(T_i, H_i, W_i, 3) uint8] -> [(T_i, H_i, W_i) float32], each equal to
        ``predict`` on its own; windows of different clips share network batches (short clips)."""
        from .infer import predict_videos
        return predict_videos(self, videos, input_size=input_size, windows_per_batch=windows_per_batch,
                              progress=progress)
