"""The depth-model interface (paper §3, "Trajectory extraction": 2D -> 2.5D; design.md "Interfaces").

    depth = model.predict(video, input_size=518)
    video: (T, H, W, 3) uint8 RGB
    depth: (T, H, W) float32 at the video's resolution, as the model gives it: inverse (relative)
           depth, bigger = nearer, for the relative Video Depth Anything models; metres for metric ones

Trajectories are lifted to 2.5D by sampling frame t's map at each point's (x, y)
(``traction.ops.lift_depth``, bilinear).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class DepthModel(Protocol):
    """Anything with a ``name`` and a ``predict`` method of the signature above."""

    name: str

    def predict(self, video: np.ndarray, input_size: int = 518) -> np.ndarray:
        ...
