"""DINOv2 ViT encoder as Video Depth Anything uses it (patch 14, 518 px pre-training grid of 37 x 37,
LayerScale, no register tokens), returning normalised patch tokens of chosen blocks.

Attribute names follow the state-dict keys of the official checkpoints (``pretrained.*``), so the
published ``.pth`` files load with ``strict=True``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import attend

PATCH = 14
PRETRAIN_GRID = 37          # 518 / 14: the grid the absolute position embedding was learned on


@dataclass(frozen=True)
class ViTSize:
    dim: int
    depth: int
    heads: int
    taps: tuple[int, ...]   # blocks whose outputs feed the DPT head


VIT_SIZES = {
    "vits": ViTSize(384, 12, 6, (2, 5, 8, 11)),
    "vitb": ViTSize(768, 12, 12, (2, 5, 8, 11)),
    "vitl": ViTSize(1024, 24, 16, (4, 11, 17, 23)),
}


class PatchEmbed(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=PATCH, stride=PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)                                        # (B, C, h, w)
        return x.flatten(2).transpose(1, 2)                     # (B, h*w, C)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, kind: str = "sdpa"):
        super().__init__()
        self.heads = heads
        self.kind = kind
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        qkv = self.qkv(x).reshape(B, L, 3, self.heads, C // self.heads)   # (B, L, 3, heads, D)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)                              # 3 x (B, heads, L, D)
        x = attend(q, k, v, self.kind)                                    # (B, heads, L, D)
        x = x.transpose(1, 2).reshape(B, L, C)                            # (B, L, C)
        return self.proj(x)


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches."""

    def __init__(self, dim: int, heads: int, kind: str = "sdpa"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, heads, kind)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoV2(nn.Module):
    """ViT-S/B/L/14. ``forward(x, taps)`` returns the LayerNorm-ed patch tokens of blocks ``taps``."""

    def __init__(self, size: ViTSize, kind: str = "sdpa"):
        super().__init__()
        self.size = size
        dim = size.dim
        # Registration order fixes the state-dict order: own tensors first, then children.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + PRETRAIN_GRID ** 2, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))     # unused at inference; in the checkpoint
        self.patch_embed = PatchEmbed(dim)
        self.blocks = nn.ModuleList([Block(dim, size.heads, kind) for _ in range(size.depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        # Set by exporters: a precomputed position embedding for one grid, so traced graphs hold a
        # constant instead of a shape-dependent resampling. Not part of the state dict.
        self.fixed_pos: torch.Tensor | None = None

    def set_attention(self, kind: str) -> None:
        for blk in self.blocks:
            blk.attn.kind = kind

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """(1, 1 + h*w, C) position embedding for an h x w patch grid.

        Bicubic resampling of the 37 x 37 grid, driven by a *scale factor* (grid + 0.1) / 37 rather
        than a target size: DINOv2's work-around for float truncation. The factor also sets the
        sampling positions, so it must be kept to reproduce the checkpoints' behaviour.
        """
        pe = self.pos_embed
        if h * w == PRETRAIN_GRID ** 2 and h == w:
            return pe                                           # the training resolution: no resampling
        cls_pe, grid_pe = pe[:, :1].float(), pe[:, 1:].float()
        C = pe.shape[-1]
        grid_pe = grid_pe.reshape(1, PRETRAIN_GRID, PRETRAIN_GRID, C).permute(0, 3, 1, 2)  # (1, C, 37, 37)
        scale = ((h + 0.1) / PRETRAIN_GRID, (w + 0.1) / PRETRAIN_GRID)
        grid_pe = F.interpolate(grid_pe, scale_factor=scale, mode="bicubic", align_corners=False)
        assert grid_pe.shape[-2:] == (h, w), grid_pe.shape
        grid_pe = grid_pe.permute(0, 2, 3, 1).reshape(1, h * w, C)         # (1, h*w, C)
        return torch.cat([cls_pe, grid_pe], dim=1).to(pe.dtype)

    def forward(self, x: torch.Tensor, taps: tuple[int, ...] | None = None) -> list[torch.Tensor]:
        """x (B, 3, H, W), H and W multiples of 14 -> [(B, h*w, C)] for each block in ``taps``."""
        taps = self.size.taps if taps is None else taps
        h, w = x.shape[-2] // PATCH, x.shape[-1] // PATCH
        tokens = self.patch_embed(x)                                       # (B, h*w, C)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        tokens = torch.cat([cls, tokens], dim=1)                           # (B, 1 + h*w, C)
        tokens = tokens + (self.position_embedding(h, w) if self.fixed_pos is None else self.fixed_pos)
        out = []
        for i, blk in enumerate(self.blocks[: max(taps) + 1]):
            tokens = blk(tokens)
            if i in taps:
                out.append(self.norm(tokens)[:, 1:])                       # drop the class token
        return out
