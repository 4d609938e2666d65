"""Multi-head attention core shared by the DINOv2 encoder and the temporal motion modules.

Two interchangeable paths with the same meaning:

* ``"math"``: softmax((q * scale) @ k^T) @ v, the explicit form (the official code's fallback when
  xFormers is absent; it defines what the fused path must compute);
* ``"sdpa"``: ``F.scaled_dot_product_attention``, which picks a fused kernel (flash / memory-efficient
  on GPU, a blocked kernel on CPU) and never materialises the full score matrix.

The tests hold the two equal on random inputs, edge sizes included.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from traction.errors import ConfigError

ATTENTION_KINDS = ("sdpa", "math")


def check_attention_kind(kind: str) -> str:
    if kind not in ATTENTION_KINDS:
        raise ConfigError(f"attention={kind!r}: expected one of {ATTENTION_KINDS}")
    return kind


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kind: str = "sdpa") -> torch.Tensor:
    """(B, heads, L, D) x3 -> (B, heads, L, D); scale 1/sqrt(D), no mask, no dropout."""
    if kind == "sdpa":
        return F.scaled_dot_product_attention(q, k, v)
    scale = q.shape[-1] ** -0.5
    scores = (q * scale) @ k.transpose(-2, -1)                  # (B, heads, L, L)
    return scores.softmax(dim=-1) @ v                           # (B, heads, L, D)
