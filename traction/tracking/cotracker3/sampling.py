"""Bilinear sampling and local correlation for CoTracker3 (plain PyTorch definitions).

Conventions (CoTracker3 paper, §3.1 "4D correlation features"):
* coordinates are pixels of the feature map with align-corners semantics: x = 0 is the centre of
  the left-most column, x = W-1 the centre of the right-most one;
* samples outside the map take the value at the nearest border (``padding_mode="border"``);
* a local window of radius r holds (2r+1)**2 samples at integer offsets. Its first axis steps
  **x** and its second axis steps **y** (the layout of the official checkpoints' ``corr_mlp``
  input, which this ordering must reproduce).

``local_correlation`` is the hot spot of the refinement loop. ``corr_triton.py`` holds a fused
Triton kernel for it; this module is its meaning and the tests hold the two equal.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def window_offsets(radius: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(2r+1, 2r+1, 2) integer offsets (dx, dy); axis 0 steps x, axis 1 steps y."""
    d = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    dx, dy = torch.meshgrid(d, d, indexing="ij")
    return torch.stack([dx, dy], dim=-1)


def _normalize(coords: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """Pixel coords (..., len(sizes)) ordered like ``sizes`` -> grid_sample's [-1, 1] range."""
    scale = coords.new_tensor([2.0 / max(s - 1, 1) for s in sizes])
    return coords * scale - 1.0


def sample_frames(fmaps: torch.Tensor, frames: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear features at pixel positions on given frames.

    fmaps (B, T, C, H, W); frames (B, N) frame index per point; xy (B, N, K, 2) pixel (x, y).
    Returns (B, N, K, C).
    """
    B, T, C, H, W = fmaps.shape
    K = xy.shape[2]
    t = frames.to(xy.dtype)[:, :, None, None].expand(-1, -1, K, 1)   # (B, N, K, 1)
    grid = _normalize(torch.cat([xy, t], dim=-1), (W, H, T))          # (B, N, K, 3) as (x, y, t)
    vol = fmaps.permute(0, 2, 1, 3, 4)                                # (B, C, T, H, W)
    out = F.grid_sample(vol, grid[:, :, :, None].to(vol.dtype), mode="bilinear",
                        padding_mode="border", align_corners=True)    # (B, C, N, K, 1)
    return out[..., 0].permute(0, 2, 3, 1)                            # (B, N, K, C)


def sample_windows(fmap: torch.Tensor, xy: torch.Tensor, radius: int) -> torch.Tensor:
    """Bilinear features in a (2r+1)^2 window around each point, one frame per batch row.

    fmap (M, C, H, W); xy (M, N, 2) pixel (x, y). Returns (M, N, 2r+1, 2r+1, C).
    """
    M, C, H, W = fmap.shape
    N = xy.shape[1]
    R = 2 * radius + 1
    pts = xy[:, :, None, None] + window_offsets(radius, xy.device, xy.dtype)   # (M, N, R, R, 2)
    grid = _normalize(pts, (W, H)).reshape(M, N * R, R, 2)                      # (M, N*R, R, 2)
    out = F.grid_sample(fmap, grid.to(fmap.dtype), mode="bilinear", padding_mode="border",
                        align_corners=True)                                     # (M, C, N*R, R)
    return out.reshape(M, C, N, R, R).permute(0, 2, 3, 4, 1)                    # (M, N, R, R, C)


def local_correlation(fmap: torch.Tensor, xy: torch.Tensor, support: torch.Tensor,
                      radius: int) -> torch.Tensor:
    """4D correlation between a window around each track position and the query's support window.

    fmap (B, T, C, H, W) one pyramid level; xy (B, T, N, 2) track positions in that level's pixels;
    support (B, N, R, R, C) features around the query point (R = 2r+1).
    Returns (B, T, N, R^4) ordered (window x, window y, support x, support y).
    """
    B, T, C, H, W = fmap.shape
    N = xy.shape[2]
    R = 2 * radius + 1
    feats = sample_windows(fmap.reshape(B * T, C, H, W), xy.reshape(B * T, N, 2), radius)
    feats = feats.reshape(B, T, N, R * R, C)                       # (B, T, N, R*R, C)
    sup = support.reshape(B, 1, N, R * R, C)                       # (B, 1, N, R*R, C)
    corr = feats @ sup.transpose(-1, -2)                           # (B, T, N, R*R, R*R)
    return corr.reshape(B, T, N, R ** 4)
