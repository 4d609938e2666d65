"""Temporal "motion modules" of the Video Depth Anything head: attention along the frame axis at
every spatial position of a feature map (Video Depth Anything, Sec. 3.2; the block design comes from
AnimateDiff).

One module: GroupNorm -> Linear -> [2 x (LayerNorm -> temporal self-attention + residual),
LayerNorm -> GEGLU feed-forward + residual] -> Linear, added to the input.

Attribute names follow the official state-dict keys (``head.motion_modules.<i>.temporal_transformer.*``).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from traction.errors import ConfigError

from .attention import attend

HEADS = 8
MAX_FRAMES = 32


class FramePositions(nn.Module):
    """Absolute per-frame embedding ``pe`` (1, MAX_FRAMES, C), added before attention.

    Initialised to the sin-cos table, but kept as a *persistent buffer* loaded from the checkpoint:
    the checkpoint's values are what the model was trained with, and recomputing them would silently
    diverge from any checkpoint whose table differs.
    """

    def __init__(self, dim: int, max_frames: int = MAX_FRAMES):
        super().__init__()
        pos = torch.arange(max_frames, dtype=torch.float32)[:, None]                     # (T, 1)
        inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_frames, dim)
        pe[0, :, 0::2] = torch.sin(pos * inv_freq)
        pe[0, :, 1::2] = torch.cos(pos * inv_freq)
        self.register_buffer("pe", pe, persistent=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> x + pe[:T]."""
        T = x.shape[1]
        if T > self.pe.shape[1]:
            raise ConfigError(f"frames per window={T}: the temporal embedding holds at most {self.pe.shape[1]}")
        return x + self.pe[:, :T].to(x.dtype)


class TemporalAttention(nn.Module):
    """Self-attention over T frames, independently at each of the h*w positions."""

    def __init__(self, dim: int, heads: int = HEADS, kind: str = "sdpa"):
        super().__init__()
        self.heads = heads
        self.kind = kind
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])     # a list only to keep the key "to_out.0"
        self.pos_encoder = FramePositions(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B*P, T, C) -> (B*P, T, C), P = h*w positions."""
        S, T, C = x.shape
        x = self.pos_encoder(x)
        q, k, v = (proj(x).reshape(S, T, self.heads, C // self.heads).transpose(1, 2)  # (S, heads, T, D)
                   for proj in (self.to_q, self.to_k, self.to_v))
        x = attend(q, k, v, self.kind)                                      # (S, heads, T, D)
        x = x.transpose(1, 2).reshape(S, T, C)                              # (S, T, C)
        return self.to_out[0](x)


class GEGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        # index 1 held a dropout in the original; Identity keeps the key "net.2" for the output layer
        self.net = nn.Sequential(GEGLU(dim, mult * dim), nn.Identity(), nn.Linear(mult * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TemporalBlock(nn.Module):
    def __init__(self, dim: int, kind: str = "sdpa", num_attention: int = 2):
        super().__init__()
        self.attention_blocks = nn.ModuleList([TemporalAttention(dim, kind=kind) for _ in range(num_attention)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(num_attention)])
        self.ff = FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        """x (B*T, P, C) -> (B*T, P, C), attention along T."""
        BT, P, C = x.shape
        B = BT // T
        for attn, norm in zip(self.attention_blocks, self.norms):
            y = norm(x).reshape(B, T, P, C).transpose(1, 2).reshape(B * P, T, C)   # (B*P, T, C)
            y = attn(y)
            x = x + y.reshape(B, P, T, C).transpose(1, 2).reshape(BT, P, C)        # (B*T, P, C)
        return x + self.ff(self.ff_norm(x))


class TemporalTransformer(nn.Module):
    def __init__(self, dim: int, kind: str = "sdpa"):
        super().__init__()
        self.norm = nn.GroupNorm(32, dim, eps=1e-6)
        self.proj_in = nn.Linear(dim, dim)
        self.transformer_blocks = nn.ModuleList([TemporalBlock(dim, kind)])
        self.proj_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        """x (B*T, C, h, w) -> (B*T, C, h, w)."""
        BT, C, h, w = x.shape
        y = self.norm(x)                                                   # per-frame GroupNorm
        y = y.permute(0, 2, 3, 1).reshape(BT, h * w, C)                    # (B*T, P, C)
        y = self.proj_in(y)
        for blk in self.transformer_blocks:
            y = blk(y, T)
        y = self.proj_out(y)
        y = y.reshape(BT, h, w, C).permute(0, 3, 1, 2)                     # (B*T, C, h, w)
        return x + y


class MotionModule(nn.Module):
    def __init__(self, dim: int, kind: str = "sdpa"):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(dim, kind)

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        """x (B*T, C, h, w) with frames of each clip contiguous -> same shape."""
        return self.temporal_transformer(x, T)
