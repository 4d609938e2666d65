"""Triton kernels behind ``fused_frequency_linear`` (forward, grad wrt weight, grad wrt x).

The tokenizer's first layer is ``Linear(T*Df -> Hd)`` applied to the sinusoidal frequency encoding
of a trajectory (paper §3 eq. 1). Written as a matmul Y = A W^T + b with A (M, K = T*Df), every
entry of A is a cheap function of one coordinate of x (M, T, 4):

    column k -> frame t = k // Df, feature j = k % Df, which reads channel c(j) of x[m, t]
    A[m, k] = sin(f x) | cos(f x) | x (raw geometric channel without sine encoding, or visibility)

so these kernels compute A tiles on the fly from x instead of reading a materialized (M, K)
matrix: at pretraining sizes that matrix is 100M values per step (fp32: 400 MB written and read
twice). Angles are always computed in fp32 (bf16 cannot even represent f*x for the top band).

This module imports triton at import time; ``frequency_linear.py`` loads it only when the Triton
path is chosen. Under ``TRITON_INTERPRET=1`` the same kernels run on CPU through Triton's
interpreter; ``triton.jit`` picks the mode when a kernel is defined, so ``INTERPRETED`` records it
and ``frequency_linear.py`` reloads this module when the environment has changed since.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .dispatch import interpreting

INTERPRETED = interpreting()


@triton.jit
def _feature_tile(x_ptr, f_ptr, offs_m, mask_m, j, t, mask_k,
                  T: tl.constexpr, F: tl.constexpr, PER: tl.constexpr, NGEO: tl.constexpr,
                  USE_SINE: tl.constexpr):
    """A[m, (t, j)] for rows offs_m (BM,) and columns given as frame t and feature j (BK,) -> (BM, BK) fp32."""
    chan = tl.where(j < NGEO, j // PER, 3)                                   # (BK,) channel of x read
    mask = mask_m[:, None] & mask_k[None, :]
    xv = tl.load(x_ptr + offs_m[:, None] * (T * 4) + (t * 4 + chan)[None, :],
                 mask=mask, other=0.0).to(tl.float32)                        # (BM, BK)
    if USE_SINE:
        r = j % PER                                                          # index within sin|cos block
        f = tl.load(f_ptr + r % F, mask=mask_k, other=0.0)                   # (BK,) angular frequency
        ang = xv * f[None, :]
        enc = tl.where((r >= F)[None, :], tl.cos(ang), tl.sin(ang))
        a = tl.where((j < NGEO)[None, :], enc, xv)                           # visibility column: raw v
    else:
        a = xv
    return tl.where(mask, a, 0.0)


@triton.jit
def _dot(a, b, acc, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """acc + a @ b with fp32 accumulation. UPCAST: multiply bf16 operands as fp32, which is exact
    (a bf16 product fits in fp32) and works around Triton's CPU interpreter, whose dot multiplies
    bf16 operands as their raw uint16 bits."""
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    return tl.dot(a, b, acc, input_precision=PRECISION)


@triton.jit
def _forward_kernel(x_ptr, w_ptr, b_ptr, f_ptr, y_ptr, M, HD,
                    T: tl.constexpr, DF: tl.constexpr, K: tl.constexpr, F: tl.constexpr,
                    PER: tl.constexpr, NGEO: tl.constexpr, USE_SINE: tl.constexpr,
                    HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """Y[m, h] = sum_k A[m, k] W[h, k] + b[h]; one (BLOCK_M, BLOCK_H) tile of Y per program."""
    offs_m = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    mask_m = offs_m < M
    mask_h = offs_h < HD
    acc = tl.zeros((BLOCK_M, BLOCK_H), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K
        a = _feature_tile(x_ptr, f_ptr, offs_m, mask_m, offs_k % DF, offs_k // DF, mask_k,
                          T, F, PER, NGEO, USE_SINE)                         # (BM, BK)
        w = tl.load(w_ptr + offs_h[None, :] * K + offs_k[:, None],
                    mask=mask_k[:, None] & mask_h[None, :], other=0.0)       # (BK, BH) tile of W^T
        acc = _dot(a.to(w.dtype), w, acc, PRECISION, UPCAST)
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_h, mask=mask_h, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + offs_m[:, None] * HD + offs_h[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=mask_m[:, None] & mask_h[None, :])


@triton.jit
def _grad_weight_kernel(x_ptr, f_ptr, dy_ptr, dw_ptr, M, HD,
                        T: tl.constexpr, DF: tl.constexpr, K: tl.constexpr, F: tl.constexpr,
                        PER: tl.constexpr, NGEO: tl.constexpr, USE_SINE: tl.constexpr,
                        PRECISION: tl.constexpr, UPCAST: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """dW[h, k] = sum_m dY[m, h] A[m, k]; one (BLOCK_H, BLOCK_K) tile of dW per program, A recomputed."""
    offs_h = tl.program_id(0) * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_h = offs_h < HD
    mask_k = offs_k < K
    j = offs_k % DF
    t = offs_k // DF
    acc = tl.zeros((BLOCK_H, BLOCK_K), dtype=tl.float32)
    for m0 in range(0, M, BLOCK_M):
        offs_m = (m0 + tl.arange(0, BLOCK_M)).to(tl.int64)
        mask_m = offs_m < M
        a = _feature_tile(x_ptr, f_ptr, offs_m, mask_m, j, t, mask_k,
                          T, F, PER, NGEO, USE_SINE)                         # (BM, BK)
        g = tl.load(dy_ptr + offs_m[:, None] * HD + offs_h[None, :],
                    mask=mask_m[:, None] & mask_h[None, :], other=0.0)       # (BM, BH)
        acc = _dot(tl.trans(g), a.to(g.dtype), acc, PRECISION, UPCAST)
    tl.store(dw_ptr + offs_h[:, None] * K + offs_k[None, :], acc.to(dw_ptr.dtype.element_ty),
             mask=mask_h[:, None] & mask_k[None, :])


@triton.jit
def _grad_input_kernel(x_ptr, w_ptr, f_ptr, dy_ptr, dx_ptr, M, HD,
                       T: tl.constexpr, DF: tl.constexpr, K: tl.constexpr, F: tl.constexpr,
                       PER: tl.constexpr, NGEO: tl.constexpr, USE_SINE: tl.constexpr,
                       PRECISION: tl.constexpr, UPCAST: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_J: tl.constexpr):
    """dx[m, t, c] = sum_j dA[m, t, j] dA[m, t, j]/dx[m, t, c] with dA = dY W, for one frame t.

    Each program owns BLOCK_M rows and one frame: it forms that frame's slice of dA (BM, Df) in
    fp32 from dY and W, multiplies by the feature derivatives (f cos(f x), -f sin(f x), 1 for raw
    columns) and sums the columns of each channel.
    """
    offs_m = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    t = tl.program_id(1)
    mask_m = offs_m < M
    j = tl.arange(0, BLOCK_J)
    mask_j = j < DF
    acc = tl.zeros((BLOCK_M, BLOCK_J), dtype=tl.float32)
    for h0 in range(0, HD, BLOCK_H):
        offs_h = h0 + tl.arange(0, BLOCK_H)
        mask_h = offs_h < HD
        g = tl.load(dy_ptr + offs_m[:, None] * HD + offs_h[None, :],
                    mask=mask_m[:, None] & mask_h[None, :], other=0.0)       # (BM, BH)
        w = tl.load(w_ptr + offs_h[:, None] * K + (t * DF + j)[None, :],
                    mask=mask_h[:, None] & mask_j[None, :], other=0.0)       # (BH, BJ)
        acc = _dot(g, w.to(g.dtype), acc, PRECISION, UPCAST)
    chan = tl.where(j < NGEO, j // PER, 3)                                   # (BJ,)
    if USE_SINE:
        xv = tl.load(x_ptr + offs_m[:, None] * (T * 4) + (t * 4 + chan)[None, :],
                     mask=mask_m[:, None] & mask_j[None, :], other=0.0).to(tl.float32)  # (BM, BJ)
        r = j % PER
        f = tl.load(f_ptr + r % F, mask=mask_j, other=0.0)[None, :]          # (1, BJ)
        ang = xv * f
        deriv = tl.where((r >= F)[None, :], -f * tl.sin(ang), f * tl.cos(ang))
        acc = tl.where((j < NGEO)[None, :], acc * deriv, acc)                # raw columns: derivative 1
    acc = tl.where(mask_j[None, :], acc, 0.0)
    for c in tl.static_range(4):
        dxc = tl.sum(tl.where((chan == c)[None, :], acc, 0.0), axis=1)      # (BM,)
        tl.store(dx_ptr + offs_m * (T * 4) + t * 4 + c, dxc.to(dx_ptr.dtype.element_ty), mask=mask_m)


# Tile sizes. On GPU: 128-wide hidden tiles cover Hd=288 in 3 column blocks, so each A tile is
# computed 3 times (sin/cos are cheap next to reading a materialized A); not yet tuned on hardware,
# see benchmarks/tokenizer_kernel.py.
# The interpreter runs each program as NumPy code, so there fewer, bigger programs are faster;
# 32 still leaves the test sizes (M <= 40, Hd <= 48) with partial blocks.
_GPU_BLOCKS = {"forward": dict(BLOCK_M=64, BLOCK_H=128, BLOCK_K=32, num_warps=8),
               "grad_weight": dict(BLOCK_M=32, BLOCK_H=128, BLOCK_K=64, num_warps=8),
               "grad_input": dict(BLOCK_M=64, BLOCK_H=64, num_warps=8)}
_INTERPRETER_BLOCKS = {"forward": dict(BLOCK_M=32, BLOCK_H=32, BLOCK_K=64),
                       "grad_weight": dict(BLOCK_M=32, BLOCK_H=32, BLOCK_K=64),
                       "grad_input": dict(BLOCK_M=32, BLOCK_H=32)}


def _blocks(kind: str) -> dict:
    return dict((_INTERPRETER_BLOCKS if INTERPRETED else _GPU_BLOCKS)[kind])


def _dot_args(dtype: torch.dtype) -> dict:
    # fp32 matmuls follow torch's own TF32 switch, so the twin and the kernel round alike.
    tf32 = dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32
    return dict(PRECISION="tf32" if tf32 else "ieee", UPCAST=dtype == torch.bfloat16 and INTERPRETED)


def _layout_args(T: int, layout) -> dict:
    """Compile-time constants describing the per-frame feature layout (see encoding.py)."""
    F, G, use_sine, use_vis = layout
    per = 2 * F if use_sine else 1                                          # columns per geometric channel
    df = G * per + int(use_vis)
    return dict(T=T, DF=df, K=T * df, F=F, PER=per, NGEO=G * per, USE_SINE=use_sine)


def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, freqs: torch.Tensor,
            layout) -> torch.Tensor:
    """x (M, T, 4) contiguous, weight (Hd, K) contiguous, bias (Hd,) | None -> (M, Hd) in weight.dtype."""
    M, T, _ = x.shape
    HD = weight.shape[0]
    y = torch.empty((M, HD), device=x.device, dtype=weight.dtype)
    blocks = _blocks("forward")
    grid = (triton.cdiv(M, blocks["BLOCK_M"]), triton.cdiv(HD, blocks["BLOCK_H"]))
    _forward_kernel[grid](x, weight, bias if bias is not None else weight, freqs, y, M, HD,
                          **_layout_args(T, layout), HAS_BIAS=bias is not None,
                          **_dot_args(weight.dtype), **blocks)
    return y


def grad_weight(x: torch.Tensor, dy: torch.Tensor, freqs: torch.Tensor, layout,
                dtype: torch.dtype) -> torch.Tensor:
    """dY (M, Hd) contiguous -> dW (Hd, K) = dY^T A in ``dtype``, A recomputed from x (M, T, 4)."""
    M, T, _ = x.shape
    HD = dy.shape[1]
    args = _layout_args(T, layout)
    dw = torch.empty((HD, args["K"]), device=x.device, dtype=dtype)
    blocks = _blocks("grad_weight")
    grid = (triton.cdiv(HD, blocks["BLOCK_H"]), triton.cdiv(args["K"], blocks["BLOCK_K"]))
    _grad_weight_kernel[grid](x, freqs, dy, dw, M, HD, **args, **_dot_args(dy.dtype), **blocks)
    return dw


def grad_input(x: torch.Tensor, weight: torch.Tensor, dy: torch.Tensor, freqs: torch.Tensor,
               layout) -> torch.Tensor:
    """dY (M, Hd) contiguous -> dx (M, T, 4) in x.dtype (zero for channels the layout leaves out)."""
    M, T, _ = x.shape
    HD = weight.shape[0]
    args = _layout_args(T, layout)
    dx = torch.empty_like(x)
    blocks = _blocks("grad_input")
    block_j = max(16, triton.next_power_of_2(args["DF"]))                   # tl.dot needs >= 16
    grid = (triton.cdiv(M, blocks["BLOCK_M"]), T)
    _grad_input_kernel[grid](x, weight, freqs, dy, dx, M, HD, **args, **_dot_args(dy.dtype),
                             BLOCK_J=block_j, **blocks)
    return dx
