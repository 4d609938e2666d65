"""Benchmark: fused frequency-encoding + linear (Triton) vs its PyTorch twin (paper §3 eq. 1).

    PYTHONPATH=. python benchmarks/tokenizer_kernel.py            # training sizes on a CUDA GPU
    PYTHONPATH=. python benchmarks/tokenizer_kernel.py --M 2048   # smaller

With a CUDA GPU: times forward and forward+backward of both implementations in the same run at
pretraining sizes (M = 64 clips * 512 trajectories, T = 32, Hd = 288), records peak GPU memory,
and first checks that both give the same result. Without one: the Triton path needs a GPU (its
CPU interpreter is for tests only), so only the PyTorch twin is timed, at a small size.
Writes benchmarks/results/tokenizer_kernel_<device>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from traction.kernels import frequency_linear_reference, fused_frequency_linear
from traction.model.encoding import frame_feature_dim

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_tag, time_call, utc_now, versions, write_result  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def make_inputs(M, T, Hd, dtype, device, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    K = T * frame_feature_dim(16, True, True, True)
    x = torch.rand(M, T, 4, generator=g)                                    # normalized (x, y, d, v)
    w = torch.randn(Hd, K, generator=g) / K ** 0.5
    b = torch.randn(Hd, generator=g)
    dy = torch.randn(M, Hd, generator=g)
    x, dy = x.to(device), dy.to(device, dtype)
    w, b = w.to(device, dtype).requires_grad_(), b.to(device, dtype).requires_grad_()
    return x, w, b, dy


def run_once(impl, x, w, b, dy, backward):
    w.grad = b.grad = None
    if impl == "torch":
        y = frequency_linear_reference(x, w, b)
    else:
        y = fused_frequency_linear(x, w, b, impl="triton")
    if backward:
        y.backward(dy)
    return y


def time_ms(fn, device, warmup, repeats):
    """Median wall time of fn() in milliseconds (CUDA-synchronized on GPU)."""
    return 1e3 * time_call(fn, reps=repeats, warmup=warmup, sync_cuda=device.type == "cuda")


def peak_mib(fn, device):
    """Peak GPU memory above what is allocated before fn() runs, in MiB (None on CPU)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2 ** 20


def max_rel_err(a, b):
    return ((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12)).item()


def check_equal(x, w, b, dy):
    """Largest relative differences (y, dW, db) between the two implementations at this size."""
    out = {}
    for impl in ("triton", "torch"):
        y = run_once(impl, x, w, b, dy, backward=True)
        out[impl] = (y.detach(), w.grad.clone(), b.grad.clone())
    return {name: max_rel_err(t, r) for name, t, r in zip(("y", "dW", "db"), out["triton"], out["torch"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--M", type=int, default=None, help="trajectories per step (default 64*512 on GPU, 1024 on CPU)")
    ap.add_argument("--T", type=int, default=32)
    ap.add_argument("--Hd", type=int, default=288)
    ap.add_argument("--dtypes", default="fp32,bf16", help="comma list of fp32, bf16, fp16")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = ap.parse_args()

    on_gpu = torch.cuda.is_available()
    device = torch.device("cuda" if on_gpu else "cpu")
    M = args.M or (64 * 512 if on_gpu else 1024)
    impls = ["triton", "torch"] if on_gpu else ["torch"]
    if not on_gpu:
        print("no CUDA GPU: the Triton path needs one (TRITON_INTERPRET is for tests); timing only the "
              f"PyTorch twin at M={M}")
    K = args.T * frame_feature_dim(16, True, True, True)
    print(f"device={device_tag(device)} M={M} T={args.T} K={K} Hd={args.Hd} "
          f"(the encoding the twin materializes: {M * K * 4 / 2 ** 20:.0f} MiB in fp32)")

    results = []
    for name in args.dtypes.split(","):
        x, w, b, dy = make_inputs(M, args.T, args.Hd, DTYPES[name], device)
        row = {"dtype": name}
        if on_gpu:
            row["max_rel_err_triton_vs_torch"] = check_equal(x, w, b, dy)
        for impl in impls:
            for backward in (False, True):
                fn = lambda: run_once(impl, x, w, b, dy, backward)  # noqa: E731
                key = f"{impl}_{'fwd_bwd' if backward else 'fwd'}"
                with torch.set_grad_enabled(backward):
                    row[f"{key}_ms"] = time_ms(fn, device, warmup=3, repeats=args.repeats)
                    row[f"{key}_peak_mib"] = peak_mib(fn, device)
        print(json.dumps(row))
        results.append(row)

    report = {"benchmark": "tokenizer_kernel", "device": device_tag(device), "date": utc_now(),
              "versions": {**versions(), "cuda": torch.version.cuda},
              "sizes": {"M": M, "T": args.T, "K": K, "Hd": args.Hd},
              "note": None if on_gpu else "no CUDA GPU: Triton path not timed",
              "results": results}
    path = write_result(f"tokenizer_kernel_{report['device']}.json", report, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
