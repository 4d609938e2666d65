"""``Video``: decoded RGB frames with their source metadata, and the checks and resizing that all
decoding backends share (design.md "The pipeline": decode)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from traction.errors import VideoError

# Frame sides outside this range are not videos we can track (thumbnails, corrupt headers, 16K).
MIN_SIDE = 16
MAX_SIDE = 8192


@dataclasses.dataclass
class Video:
    """Decoded frames.

    frames:        (T, H, W, 3) uint8 RGB, after optional resizing to ``max_side``.
    fps:           source frame rate (average rate for variable-frame-rate files).
    frame_indices: (T,) int64 source frame numbers (presentation order, 0-based) of the frames.
    source:        the path, or "<array>" for in-memory frames.
    original:      (H, W) of the source before resizing.
    timestamps:    (T,) float64 presentation times in seconds, where the source has them.
    """

    frames: np.ndarray
    fps: float
    frame_indices: np.ndarray
    source: str
    original: Tuple[int, int]
    timestamps: Optional[np.ndarray] = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (f"Video({self.source!r}, T={self.num_frames}, {self.width}x{self.height} px "
                f"(source {self.original[1]}x{self.original[0]}), fps={self.fps:g})")


def check_resolution(height: int, width: int, source: str) -> None:
    """Raise ``VideoError`` for frame sizes no tracker can use."""
    if min(height, width) < MIN_SIDE or max(height, width) > MAX_SIDE:
        raise VideoError(f"{source}: resolution {width}x{height} is absurd "
                         f"(each side must be within {MIN_SIDE}..{MAX_SIDE} px)")


def resized_shape(height: int, width: int, max_side: Optional[int]) -> Tuple[int, int]:
    """(H, W) after shrinking so that max(H, W) <= max_side, aspect ratio kept; never enlarges."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def resize_frame(frame: np.ndarray, max_side: Optional[int]) -> np.ndarray:
    """One (H, W, 3) frame shrunk to ``max_side`` with cv2.INTER_AREA (the anti-aliased downscale)."""
    h, w = frame.shape[:2]
    new_h, new_w = resized_shape(h, w, max_side)
    if (new_h, new_w) == (h, w):
        return frame
    return cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)


def check_max_side(max_side: Optional[int]) -> None:
    if max_side is not None and int(max_side) < MIN_SIDE:
        raise VideoError(f"max_side={max_side} is too small (at least {MIN_SIDE} px)")


def frames_from_array(frames: Union[np.ndarray, Sequence[np.ndarray]], source: str = "<array>") -> np.ndarray:
    """An in-memory (T, H, W, 3) uint8 array or list of (H, W, 3) uint8 frames, checked."""
    if isinstance(frames, np.ndarray):
        arr = frames
    else:
        frames = list(frames)
        if not frames:
            raise VideoError(f"{source}: no frames given")
        shapes = {np.shape(f) for f in frames}
        if len(shapes) != 1:
            raise VideoError(f"{source}: frames have different shapes {sorted(shapes)}")
        arr = np.stack([np.asarray(f) for f in frames])                   # (T, H, W, 3)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise VideoError(f"{source}: frames must have shape (T, H, W, 3), got {tuple(arr.shape)}")
    if arr.dtype != np.uint8:
        raise VideoError(f"{source}: frames must be uint8 RGB, got dtype {arr.dtype}")
    if arr.shape[0] < 2:
        raise VideoError(f"{source}: has {arr.shape[0]} frame(s); at least 2 are needed for motion")
    check_resolution(arr.shape[1], arr.shape[2], source)
    return arr
