"""Sinusoidal encodings of trajectories (paper §3 "Model architecture", appendix D).

These functions are the plain PyTorch definitions. ``traction.kernels`` holds a fused Triton
kernel for ``frequency_encode`` followed by the tokenizer's first linear layer; its tests hold
it equal to these.

Layout of the per-frame feature vector built by ``frequency_encode`` (F = number of frequencies):

    [ sin(f_0 x) .. sin(f_{F-1} x), cos(f_0 x) .. cos(f_{F-1} x),      2F values for x
      sin(f_0 y) ..                 cos(f_{F-1} y),                     2F values for y
      sin(f_0 d) ..                 cos(f_{F-1} d),                     2F values for d (if depth)
      v ]                                                               1 value (if visibility)

with f_k = pi * 2 ** (k * max_log2 / (F - 1)), k = 0..F-1 (pi .. pi * 2**max_log2). Coordinates
are normalized (x / max(H, W)), so the lowest band spans the frame once and the highest band
resolves about max(H, W) / 2**max_log2 pixels.
"""
from __future__ import annotations

import math

import torch


def frequency_bands(num_freqs: int, max_log2: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """(F,) angular frequencies pi * 2**(k * max_log2 / (F-1))."""
    if num_freqs == 1:
        return torch.full((1,), math.pi, device=device, dtype=dtype)
    k = torch.arange(num_freqs, device=device, dtype=torch.float64)
    return (math.pi * torch.pow(2.0, k * (max_log2 / (num_freqs - 1)))).to(dtype)


def frame_feature_dim(num_freqs: int, use_depth: bool, use_vis: bool, use_sine: bool) -> int:
    """Features per frame produced by ``frequency_encode``."""
    geo = 3 if use_depth else 2
    per = 2 * num_freqs if use_sine else 1
    return geo * per + (1 if use_vis else 0)


def frequency_encode(x: torch.Tensor, num_freqs: int = 16, max_log2: float = 4.0, *,
                     use_depth: bool = True, use_vis: bool = True, use_sine: bool = True) -> torch.Tensor:
    """(..., T, 4) normalized (x, y, d, v) -> (..., T, frame_feature_dim) per-frame features.

    Without ``use_sine`` the geometric channels pass through raw (the "w/o sine-enc." ablation).
    """
    geo = x[..., :3] if use_depth else x[..., :2]                         # (..., T, G)
    if use_sine:
        f = frequency_bands(num_freqs, max_log2, device=x.device, dtype=x.dtype)
        ang = geo.unsqueeze(-1) * f                                       # (..., T, G, F)
        enc = torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)         # (..., T, G, 2F)
        enc = enc.flatten(-2)                                             # (..., T, G*2F)
    else:
        enc = geo
    if use_vis:
        enc = torch.cat([enc, x[..., 3:4]], dim=-1)                       # (..., T, G*2F + 1)
    return enc


def start_position_encoding(start: torch.Tensor, dim: int, scale: float = 100.0,
                            temperature: float = 10000.0) -> torch.Tensor:
    """3D sinusoidal encoding of each trajectory's start position (x, y, d at its first frame).

    start (..., 3) -> (..., dim). Each of x, y, d gets dim // 6 frequency pairs
    omega_i = temperature ** (-i / (dim // 6)); the position is multiplied by ``scale`` first
    because normalized coordinates live in [0, 1]. Leftover dims (dim % 6) are zero.
    """
    n = dim // 6
    i = torch.arange(n, device=start.device, dtype=torch.float32)
    omega = temperature ** (-i / max(n, 1))                               # (n,)
    ang = (start.float() * scale).unsqueeze(-1) * omega                   # (..., 3, n)
    enc = torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1).flatten(-2)  # (..., 6n)
    if enc.shape[-1] < dim:
        enc = torch.nn.functional.pad(enc, (0, dim - enc.shape[-1]))
    return enc.to(start.dtype)
