"""Fused sinusoidal frequency encoding + linear layer: the tokenizer's hot path (paper §3 eq. 1).

    fused_frequency_linear(x, W, b) == F.linear(frequency_encode(x).flatten(-2), W, b)

x (..., T, 4) normalized (x, y, d, v) -> (..., Hd). The Triton path never materializes the
(..., T*Df) encoding (3104 values per trajectory with the paper's settings, 800M floats for a
pretraining batch); ``frequency_linear_reference`` is the PyTorch twin that defines the meaning.

Dtypes, identical on both paths: the encoding is computed in fp32 whatever x's dtype (so the
angle f*x keeps its precision in bf16 training), then cast to the compute dtype for the matmul.
The compute dtype is the autocast dtype when autocast is on for x's device, else weight.dtype
(as F.linear under autocast). The result has the compute dtype; the grad wrt x has x's dtype.
"""
from __future__ import annotations

import functools
import importlib

import torch
import torch.nn.functional as F

from traction.errors import ConfigError, InvalidTrajectories
from traction.model.encoding import frame_feature_dim, frequency_bands, frequency_encode

from .dispatch import interpreting, resolve_impl


def frequency_linear_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                               num_freqs: int = 16, max_log2: float = 4.0, use_depth: bool = True,
                               use_vis: bool = True, use_sine: bool = True) -> torch.Tensor:
    """PyTorch twin of ``fused_frequency_linear`` (materializes the encoding; autograd does the rest)."""
    dtype = _compute_dtype(x, weight)
    enc = frequency_encode(x.float(), num_freqs, max_log2, use_depth=use_depth, use_vis=use_vis,
                           use_sine=use_sine)                                # (..., T, Df) fp32
    a = enc.flatten(-2).to(dtype)                                           # (..., T*Df)
    return F.linear(a, weight.to(dtype), None if bias is None else bias.to(dtype))


def fused_frequency_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                           num_freqs: int = 16, max_log2: float = 4.0, use_depth: bool = True,
                           use_vis: bool = True, use_sine: bool = True, impl: str | None = None) -> torch.Tensor:
    """Frequency-encode x (..., T, 4) and apply Linear(T*Df -> Hd) without materializing the encoding.

    weight (Hd, T*Df) and bias (Hd,) are the first tokenizer layer's parameters, with
    Df = frame_feature_dim(num_freqs, use_depth, use_vis, use_sine) features per frame in the
    layout of ``traction.model.encoding.frequency_encode``. Differentiable wrt x, weight and bias.

    impl: "triton" | "torch" | None (None reads TRACTION_KERNELS: "triton" | "torch" | "auto",
    default "auto" = Triton on CUDA tensors or under TRITON_INTERPRET=1, else the PyTorch twin).
    """
    _check_inputs(x, weight, bias, num_freqs, use_depth, use_vis, use_sine)
    impl = resolve_impl(impl, x.device, "fused_frequency_linear")
    if impl == "torch" or x.numel() == 0 or weight.shape[0] == 0:
        # Empty inputs have nothing to fuse; the twin returns the right empty/bias-only result.
        return frequency_linear_reference(x, weight, bias, num_freqs=num_freqs, max_log2=max_log2,
                                          use_depth=use_depth, use_vis=use_vis, use_sine=use_sine)
    dtype = _compute_dtype(x, weight)
    lead, (T, C) = x.shape[:-2], x.shape[-2:]
    x2 = x.reshape(-1, T, C).contiguous()                                   # (M, T, 4)
    freqs = _bands(num_freqs, float(max_log2), x.device)                    # (F,) fp32
    layout = (num_freqs, 3 if use_depth else 2, use_sine, use_vis)
    y = _FusedFrequencyLinear.apply(x2, weight.to(dtype), None if bias is None else bias.to(dtype),
                                    freqs, layout)                          # (M, Hd)
    return y.reshape(*lead, weight.shape[0])                                # (..., Hd)


class _FusedFrequencyLinear(torch.autograd.Function):
    """Triton forward and backward; x (M, T, 4), weight (Hd, K) and bias in the compute dtype."""

    @staticmethod
    def forward(ctx, x, weight, bias, freqs, layout):
        tri = _triton_kernels()
        weight = weight.contiguous()
        y = tri.forward(x, weight, bias, freqs, layout)
        ctx.save_for_backward(x, weight, freqs)
        ctx.layout = layout
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, dy):
        tri = _triton_kernels()
        x, weight, freqs = ctx.saved_tensors
        dy = dy.to(weight.dtype).contiguous()                               # (M, Hd)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx = tri.grad_input(x, weight, dy, freqs, ctx.layout) if need_x else None
        dw = tri.grad_weight(x, dy, freqs, ctx.layout, weight.dtype) if need_w else None
        db = dy.sum(0, dtype=torch.float32).to(weight.dtype) if ctx.has_bias and need_b else None
        return dx, dw, db, None, None


def _triton_kernels():
    """The Triton kernel module (imports triton: only on this path), defined for the current mode."""
    from . import frequency_linear_triton as tri

    if tri.INTERPRETED != interpreting():
        tri = importlib.reload(tri)  # switch between compiled and interpreted kernels
    return tri


def _compute_dtype(x: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The autocast dtype when autocast is on for x's device, else weight.dtype (as F.linear)."""
    kind = x.device.type
    if hasattr(torch, "get_autocast_dtype"):                                # torch >= 2.4
        if torch.is_autocast_enabled(kind):
            return torch.get_autocast_dtype(kind)
    elif kind == "cuda" and torch.is_autocast_enabled():
        return torch.get_autocast_gpu_dtype()
    elif kind == "cpu" and torch.is_autocast_cpu_enabled():
        return torch.get_autocast_cpu_dtype()
    return weight.dtype


@functools.lru_cache(maxsize=16)
def _bands(num_freqs: int, max_log2: float, device: torch.device) -> torch.Tensor:
    # The same fp32 values as the twin's frequency_bands (computed in float64, then rounded).
    return frequency_bands(num_freqs, max_log2, device=device, dtype=torch.float32)


def _check_inputs(x, weight, bias, num_freqs, use_depth, use_vis, use_sine) -> None:
    if x.dim() < 2 or x.shape[-1] != 4:
        raise InvalidTrajectories(f"x: expected shape (..., T, 4) of normalized (x, y, d, v), "
                                  f"got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InvalidTrajectories(f"x: expected a floating-point tensor, got {x.dtype}")
    if num_freqs < 1:
        raise ConfigError(f"num_freqs={num_freqs}: need at least one frequency band")
    T = x.shape[-2]
    df = frame_feature_dim(num_freqs, use_depth, use_vis, use_sine)
    if weight.dim() != 2 or weight.shape[1] != T * df:
        raise ConfigError(f"weight: expected shape (Hd, T*Df) = (Hd, {T}*{df}) for T={T} frames and "
                          f"{df} features per frame, got {tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ConfigError(f"bias: expected shape ({weight.shape[0]},) to match weight, got {tuple(bias.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ConfigError(f"{name}: on {t.device}, but x is on {x.device}")
