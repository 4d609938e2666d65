"""Temporal sampling: which source frames a clip's trajectories are extracted from.

Paper appendix E (and appendix A for EK100). A policy maps a source frame count (and frame rate)
to T source frame indices; the decoder then reads only those frames.

    kind        dataset-like   rule
    "all"       SSv2, IARD     every frame; the trajectories are resampled to 32 frames afterwards
    "stride"    K400           num_frames frames `stride` apart, the window centred in the clip
    "adaptive"  EK100          the smallest stride s in 1..max_stride whose centred window misses at
                               most `max_missing_s` seconds of the clip on each side, capped at
                               max_stride (then the window is centred and misses more)

Adaptive rule, exactly (n source frames, F = num_frames, m = round(max_missing_s * fps) frames):
the window of stride s spans w(s) = (F - 1) * s + 1 frames and, centred, misses (n - w(s)) / 2 on
each side; s = min(max_stride, max(1, ceil((n - 2m - 1) / (F - 1)))) is the smallest stride with
(n - w(s)) / 2 <= m. The paper ("we choose the smallest stride such that we are not missing more
than ... each left and right of the temporally-centred crop. We use a maximal stride of 20") does not
give the margin in the copy we have; the default m = 0 makes the window cover the whole clip.

Centring: the window starts at floor((n - w) / 2). Windows longer than the clip (short clips) are
clamped at the ends, so the first and last frames repeat, which keeps T fixed.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from traction.errors import ConfigError

KINDS = ("all", "stride", "adaptive")


@dataclasses.dataclass(frozen=True)
class SamplingPolicy:
    """Which source frames to read (see the module docstring for the exact rules)."""

    kind: str = "all"
    num_frames: int = 32
    stride: int = 2
    max_stride: int = 20
    max_missing_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"sampling kind {self.kind!r} is unknown; choose one of {', '.join(KINDS)}")
        if self.kind != "all" and int(self.num_frames) < 2:
            raise ConfigError(f"sampling num_frames={self.num_frames} must be at least 2")
        if int(self.stride) < 1 or int(self.max_stride) < 1:
            raise ConfigError(f"sampling stride={self.stride} and max_stride={self.max_stride} must be >= 1")
        if not self.max_missing_s >= 0:
            raise ConfigError(f"sampling max_missing_s={self.max_missing_s} must be >= 0")

    def indices(self, num_source_frames: int, fps: float = 30.0) -> np.ndarray:
        """(T,) int64 source frame indices for a clip of ``num_source_frames`` frames."""
        return sample_indices(self, num_source_frames, fps)

    def stride_for(self, num_source_frames: int, fps: float = 30.0) -> int:
        """The stride this policy uses for a clip of that length (1 for "all")."""
        if self.kind == "all":
            return 1
        if self.kind == "stride":
            return int(self.stride)
        return adaptive_stride(num_source_frames, self.num_frames, self.max_stride,
                               int(round(self.max_missing_s * fps)))


def adaptive_stride(num_source_frames: int, num_frames: int, max_stride: int, max_missing: int = 0) -> int:
    """Smallest stride whose centred window misses <= ``max_missing`` frames per side, capped."""
    uncovered = num_source_frames - 2 * max_missing - 1       # frames the window must step over
    s = max(1, math.ceil(uncovered / (num_frames - 1)))
    return int(min(max_stride, s))


def centred_window(num_source_frames: int, num_frames: int, stride: int) -> np.ndarray:
    """``num_frames`` indices ``stride`` apart, centred in the clip, clamped to [0, n - 1]."""
    span = (num_frames - 1) * stride + 1
    start = (num_source_frames - span) // 2                    # floor, also for negative values
    idx = start + stride * np.arange(num_frames, dtype=np.int64)
    return np.clip(idx, 0, num_source_frames - 1)


def sample_indices(policy: SamplingPolicy, num_source_frames: int, fps: float = 30.0) -> np.ndarray:
    """(T,) int64 source frame indices chosen by ``policy`` (module docstring)."""
    n = int(num_source_frames)
    if n < 1:
        raise ConfigError(f"cannot sample frames from a clip of {n} frames")
    if policy.kind == "all":
        return np.arange(n, dtype=np.int64)
    return centred_window(n, int(policy.num_frames), policy.stride_for(n, fps))
