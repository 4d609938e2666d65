"""Fused Triton kernel for CoTracker3's local 4D correlation (the refinement loop's hot spot).

Meaning: ``sampling.local_correlation`` (grid_sample of a 7x7 window, then a batched matmul with
the query's 7x7 support features). The PyTorch path materialises the sampled windows
(T*N*49*C values per level and iteration) and permutes them; the kernel instead samples each
window into registers and multiplies it with the support features at once: one program per
(clip, frame, point) computes the 49x49 correlation block.

``correlation`` dispatches: CUDA tensors with Triton available -> kernel, otherwise the PyTorch
definition. ``TRACTION_CORR=torch`` forces the PyTorch path.
"""
from __future__ import annotations

import functools
import os

import torch

from traction.tracking.cotracker3.sampling import local_correlation


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
        return True
    except ImportError:
        return False


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.lru_cache(maxsize=2)
def _kernel(interpret: bool):
    """Build the kernel lazily: ``triton.jit`` reads TRITON_INTERPRET when it decorates."""
    import triton
    import triton.language as tl

    @triton.jit
    def corr_kernel(fmap_ptr, xy_ptr, sup_ptr, out_ptr, T, N, H, W, C, x_max, y_max,
                    R: tl.constexpr, P: tl.constexpr, BLOCK_C: tl.constexpr, IEEE: tl.constexpr):
        # fmap (B*T, H, W, C) channels-last; xy (B*T*N, 2); sup (B*N, R*R, C); out (B*T*N, R^4)
        pid = tl.program_id(0)              # = (b*T + t)*N + n
        n = pid % N
        bt = pid // N
        b = bt // T
        x = tl.load(xy_ptr + pid * 2).to(tl.float32)
        y = tl.load(xy_ptr + pid * 2 + 1).to(tl.float32)

        p = tl.arange(0, P)                 # window sample index, padded from R*R to P
        valid = p < R * R
        px = x + (p // R - R // 2).to(tl.float32)     # axis 0 of the window steps x
        py = y + (p % R - R // 2).to(tl.float32)      # axis 1 steps y
        # border padding = clamp the coordinate, then interpolate (align_corners=True)
        px = tl.minimum(tl.maximum(px, 0.0), x_max)
        py = tl.minimum(tl.maximum(py, 0.0), y_max)
        x0f = tl.floor(px)
        y0f = tl.floor(py)
        wx = px - x0f
        wy = py - y0f
        x0 = x0f.to(tl.int32)
        y0 = y0f.to(tl.int32)
        x1 = tl.minimum(x0 + 1, W - 1)
        y1 = tl.minimum(y0 + 1, H - 1)
        base = fmap_ptr + bt.to(tl.int64) * H * W * C
        r00 = (y0 * W + x0) * C
        r01 = (y0 * W + x1) * C
        r10 = (y1 * W + x0) * C
        r11 = (y1 * W + x1) * C
        w00 = ((1 - wx) * (1 - wy))[:, None]
        w01 = (wx * (1 - wy))[:, None]
        w10 = ((1 - wx) * wy)[:, None]
        w11 = (wx * wy)[:, None]

        sup_base = sup_ptr + (b * N + n).to(tl.int64) * (R * R) * C
        acc = tl.zeros((P, P), dtype=tl.float32)
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C)
            m = valid[:, None] & (c < C)[None, :]
            f = (w00 * tl.load(base + r00[:, None] + c[None, :], mask=m, other=0.0).to(tl.float32)
                 + w01 * tl.load(base + r01[:, None] + c[None, :], mask=m, other=0.0).to(tl.float32)
                 + w10 * tl.load(base + r10[:, None] + c[None, :], mask=m, other=0.0).to(tl.float32)
                 + w11 * tl.load(base + r11[:, None] + c[None, :], mask=m, other=0.0).to(tl.float32))
            s = tl.load(sup_base + p[:, None] * C + c[None, :], mask=m, other=0.0).to(tl.float32)
            if IEEE:
                acc += tl.dot(f, tl.trans(s), input_precision="ieee")
            else:
                acc += tl.dot(f, tl.trans(s))
        q = tl.arange(0, P)
        out = out_ptr + pid.to(tl.int64) * (R * R * R * R) + p[:, None] * (R * R) + q[None, :]
        tl.store(out, acc, mask=valid[:, None] & (q < R * R)[None, :])

    return corr_kernel


def local_correlation_triton(fmap: torch.Tensor, xy: torch.Tensor, support: torch.Tensor,
                             radius: int, ieee: bool = True) -> torch.Tensor:
    """Same contract as ``sampling.local_correlation``; float32 output.

    fmap (B, T, C, H, W); xy (B, T, N, 2); support (B, N, R, R, C) -> (B, T, N, R^4).
    ``ieee=False`` lets tl.dot use TF32 on GPUs that have it (faster, ~1e-3 relative error).
    """
    B, T, C, H, W = fmap.shape
    N = xy.shape[2]
    R = 2 * radius + 1
    P = triton_next_pow2(R * R)
    fmap_cl = fmap.permute(0, 1, 3, 4, 2).contiguous()                      # (B, T, H, W, C)
    xy_f = xy.float().contiguous()                                          # (B, T, N, 2)
    sup = support.reshape(B, N, R * R, C).contiguous()                      # (B, N, R*R, C)
    out = torch.empty(B, T, N, R ** 4, device=fmap.device, dtype=torch.float32)
    if out.numel() == 0:
        return out
    block_c = 32 if C >= 32 else max(16, triton_next_pow2(C))
    _kernel(_interpreting())[(B * T * N,)](fmap_cl, xy_f, sup, out, T, N, H, W, C,
                                           float(W - 1), float(H - 1),
                                           R=R, P=P, BLOCK_C=block_c, IEEE=ieee)
    return out


def triton_next_pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def correlation(fmap: torch.Tensor, xy: torch.Tensor, support: torch.Tensor, radius: int) -> torch.Tensor:
    """Local correlation: the Triton kernel on CUDA when available, else the PyTorch definition."""
    use_kernel = (fmap.is_cuda and os.environ.get("TRACTION_CORR", "auto") != "torch"
                  and triton_available())
    if use_kernel:
        return local_correlation_triton(fmap, xy, support, radius)
    return local_correlation(fmap, xy, support, radius)
