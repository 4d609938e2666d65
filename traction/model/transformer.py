"""The trajectory transformer (paper §3 "Model architecture", appendix D; design.md "The model").

One token per trajectory:

    x (B, N, T, 4) normalized (x, y, d, v)
      -> frequency encoding per frame, flattened over T      (B, N, T*Df)      paper eq. 1
      -> Linear -> GELU -> Dropout -> Linear                 (B, N, D)
      -> + 3D sinusoidal encoding of the start position      (B, N, D)
      -> [CLS] + 4 registers prepended                       (B, 1+R+N, D)
      -> 6 pre-norm encoder layers (width 288, 4 heads)
      -> final LayerNorm; the [CLS] token is the clip embedding (``forward_features``)
      -> Linear to the classes (``forward_head``)

Padding: clips with fewer points are padded; ``padding_mask`` (B, N) bool is True at padding
(PyTorch's key_padding_mask convention). Padded tokens are never attended to.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from traction.config import ModelConfig
from traction.errors import InvalidTrajectories
from traction.model.encoding import frame_feature_dim, frequency_encode, start_position_encoding


# ----------------------------------------------------------------------------- building blocks

class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = torch.empty(x.shape[0], *([1] * (x.ndim - 1)), device=x.device, dtype=x.dtype).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, attn_drop: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                return_attn: bool = False):
        B, L, D = x.shape
        qkv = self.qkv(x).reshape(B, L, 3, self.num_heads, D // self.num_heads)  # (B, L, 3, H, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)                                      # 3 x (B, H, L, Dh)
        if return_attn:  # the plain path, for attention maps (paper Fig. 4)
            att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])              # (B, H, L, L)
            if attn_mask is not None:
                att = att.masked_fill(~attn_mask, float("-inf"))
            att = att.softmax(dim=-1)
            out = att @ v
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, dropout_p=self.attn_drop if self.training else 0.0)
            att = None
        out = out.transpose(1, 2).reshape(B, L, D)                                # (B, L, D)
        return self.proj(out), att


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer encoder layer."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, attn_drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                return_attn: bool = False):
        a, att = self.attn(self.norm1(x), attn_mask, return_attn)
        x = x + self.drop_path(a)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return (x, att) if return_attn else x


def key_padding_to_attn_mask(padding_mask: Optional[torch.Tensor], num_prefix: int) -> Optional[torch.Tensor]:
    """(B, N) True-at-padding -> (B, 1, 1, P+N) True-where-attending, with P always-on prefix tokens."""
    if padding_mask is None:
        return None
    B = padding_mask.shape[0]
    keep = torch.cat([torch.ones(B, num_prefix, dtype=torch.bool, device=padding_mask.device),
                      ~padding_mask.bool()], dim=1)                               # (B, P+N)
    return keep[:, None, None, :]                                                 # (B, 1, 1, P+N)


# ----------------------------------------------------------------------------- tokenizer

class TrajectoryTokenizer(nn.Module):
    """Paper eq. 1: per-trajectory sinusoidal encoding flattened over time -> 2-layer MLP.

    With ``fused`` set to "triton" (or "auto" on CUDA) the encoding and the first linear layer
    run as one Triton kernel (``traction.kernels.fused_frequency_linear``) that never builds the
    (B, N, T*Df) intermediate; the plain path below defines what it computes.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        df = frame_feature_dim(cfg.num_freqs, cfg.use_depth, cfg.use_vis, cfg.use_sine)
        self.fc1 = nn.Linear(cfg.num_frames * df, cfg.tokenizer_hidden)
        self.drop = nn.Dropout(cfg.tokenizer_dropout)
        self.fc2 = nn.Linear(cfg.tokenizer_hidden, cfg.embed_dim)

    def _use_fused(self, x: torch.Tensor) -> bool:
        mode = self.cfg.fused_tokenizer
        if mode == "torch":
            return False
        if mode == "triton":
            return True
        return x.is_cuda  # "auto"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, T, _ = x.shape
        c = self.cfg
        if self._use_fused(x):
            from traction.kernels import fused_frequency_linear
            h = fused_frequency_linear(x.reshape(B * N, T, 4), self.fc1.weight, self.fc1.bias,
                                       num_freqs=c.num_freqs, max_log2=c.max_log2, use_depth=c.use_depth,
                                       use_vis=c.use_vis, use_sine=c.use_sine, impl="triton")  # (B*N, hidden)
            h = h.reshape(B, N, -1)                                               # (B, N, hidden)
        else:
            f = frequency_encode(x, c.num_freqs, c.max_log2, use_depth=c.use_depth, use_vis=c.use_vis,
                                 use_sine=c.use_sine)                             # (B, N, T, Df)
            h = self.fc1(f.reshape(B, N, -1))                                     # (B, N, hidden)
        return self.fc2(self.drop(F.gelu(h)))                                     # (B, N, D)


# ----------------------------------------------------------------------------- the model

class TrajectoryTransformer(nn.Module):
    """TrAction classifier. ``forward(x, padding_mask) -> logits (B, num_classes)``."""

    def __init__(self, cfg: ModelConfig, num_classes: int = 0):
        super().__init__()
        self.cfg = cfg
        self.num_classes = num_classes
        D = cfg.embed_dim
        self.tokenizer = TrajectoryTokenizer(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.reg_tokens = nn.Parameter(torch.zeros(1, cfg.num_registers, D))
        dpr = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList([Block(D, cfg.num_heads, cfg.mlp_ratio, cfg.attn_dropout, dpr[i])
                                     for i in range(cfg.depth)])
        self.norm = nn.LayerNorm(D)
        self.head_drop = nn.Dropout(cfg.head_dropout)
        self.head = nn.Linear(D, num_classes) if num_classes > 0 else nn.Identity()
        self.init_weights()

    @property
    def num_prefix_tokens(self) -> int:
        return 1 + self.cfg.num_registers

    def init_weights(self) -> None:
        """MAE's initialization: Xavier-uniform linear layers, small normal tokens. It keeps the
        tokenizer's output on the scale of the sinusoidal position encoding (unit amplitude); with
        std-0.02 weights the encoding would drown the motion features at the start of training."""
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.reg_tokens, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.cfg.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

    # -- pieces shared with the MAE (traction/model/mae.py)
    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the input ablations: relative coordinates (paper §5.3 "rel. coords")."""
        if self.cfg.relative_coords:
            x = torch.cat([x[..., :3] - x[..., :1, :3], x[..., 3:]], dim=-1)     # (B, N, T, 4)
        return x

    def position_encoding(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        """3D sinusoidal encoding of each trajectory's start (x, y, d at frame 0): (B, N, dim)."""
        start = x[:, :, 0, :3]                                                    # (B, N, 3)
        if not self.cfg.use_depth:
            start = torch.cat([start[..., :2], torch.zeros_like(start[..., 2:])], dim=-1)
        return start_position_encoding(start, dim, scale=self.cfg.pos_enc_scale)

    def check_input(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> None:
        """One clear line for inputs the model cannot take (shapes only: no device sync)."""
        T = self.cfg.num_frames
        if x.ndim != 4 or x.shape[-1] != 4 or x.shape[2] != T:
            raise InvalidTrajectories(f"model input must have shape (B, N, T={T}, 4) = normalized (x, y, d, v), "
                                      f"got {tuple(x.shape)}")
        if x.shape[1] == 0:
            raise InvalidTrajectories("model input has N=0 trajectories")
        if padding_mask is not None and tuple(padding_mask.shape) != tuple(x.shape[:2]):
            raise InvalidTrajectories(f"padding_mask must have shape (B, N) = {tuple(x.shape[:2])}, "
                                      f"got {tuple(padding_mask.shape)}")

    def embed_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, T, 4) -> (B, N, D) trajectory tokens with positional encoding."""
        tokens = self.tokenizer(self.prepare_input(x))                            # (B, N, D)
        if self.cfg.use_pos_enc:
            tokens = tokens + self.position_encoding(x, self.cfg.embed_dim).to(tokens.dtype)
        return tokens

    def run_blocks(self, tokens: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Prepend [CLS] + registers and run the encoder: (B, N, D) -> (B, P+N, D), normalized."""
        B = tokens.shape[0]
        prefix = torch.cat([self.cls_token, self.reg_tokens], dim=1).expand(B, -1, -1)  # (B, P, D)
        h = torch.cat([prefix.to(tokens.dtype), tokens], dim=1)                   # (B, P+N, D)
        attn_mask = key_padding_to_attn_mask(padding_mask, self.num_prefix_tokens)
        for blk in self.blocks:
            h = blk(h, attn_mask)
        return self.norm(h)

    # -- timm-style split
    def encode(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, N, T, 4) -> (B, P+N, D): every output token ([CLS], registers, trajectories)."""
        self.check_input(x, padding_mask)
        return self.run_blocks(self.embed_tokens(x), padding_mask)

    def pool(self, h: torch.Tensor, padding_mask: Optional[torch.Tensor] = None, pool: str = "cls") -> torch.Tensor:
        """(B, P+N, D) -> (B, D): the [CLS] token, or the mean of the real trajectory tokens."""
        if pool == "cls":
            return h[:, 0]
        if pool != "mean":
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        tokens = h[:, self.num_prefix_tokens:]                                    # (B, N, D)
        if padding_mask is None:
            return tokens.mean(1)
        w = (~padding_mask).to(tokens.dtype)[..., None]                           # (B, N, 1)
        return (tokens * w).sum(1) / w.sum(1).clamp_min(1.0)

    def forward_features(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None,
                         pool: str = "cls") -> torch.Tensor:
        """(B, N, T, 4) -> (B, D): the [CLS] embedding (``pool="cls"``, used by the classifier, linear
        probes and fusion) or the mean of the trajectory tokens (``pool="mean"``, the kNN protocol
        of paper appendix C)."""
        return self.pool(self.encode(x, padding_mask), padding_mask, pool)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(features))

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, padding_mask))

    @torch.no_grad()
    def cls_attention(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Last-layer attention of [CLS] over the trajectories, per head: (B, heads, N) (paper Fig. 4)."""
        h = self.embed_tokens(x)
        B = h.shape[0]
        prefix = torch.cat([self.cls_token, self.reg_tokens], dim=1).expand(B, -1, -1)
        h = torch.cat([prefix, h], dim=1)
        attn_mask = key_padding_to_attn_mask(padding_mask, self.num_prefix_tokens)
        for blk in self.blocks[:-1]:
            h = blk(h, attn_mask)
        _, att = self.blocks[-1](h, attn_mask, return_attn=True)                  # (B, H, L, L)
        return att[:, :, 0, self.num_prefix_tokens:]                              # (B, H, N)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
