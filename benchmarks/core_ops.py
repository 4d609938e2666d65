"""Benchmark of the trajectory core: the C++ extension against its NumPy twin, same inputs, same run.

    PYTHONPATH=. python benchmarks/core_ops.py [--out benchmarks/results/core_ops_cpu.json]

Prints a table (median ms per call, speed-up) and writes it as JSON with the machine description.
Sizes are those of training and extraction: batches of B=64 clips, N=2500 (extraction, evaluation)
or 512 (training subset) trajectories, T=32 frames. Set TRACTION_NUM_THREADS to pin the threads.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from traction import ops

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, time_call, write_result  # noqa: E402


def median_ms(fn, budget_s: float, max_reps: int = 50) -> float:
    """Median wall time of fn() in ms, after one warm-up, at least 3 calls and more within about budget_s."""
    return 1e3 * time_call(fn, reps=3, warmup=1, budget_s=budget_s, max_reps=max_reps)


def cases(r: np.random.Generator):
    """(function, sizes, kwargs) with realistic inputs."""
    b, n_all, n_sub, t = 64, 2500, 512, 32
    h, w = 480, 640

    raw = np.empty((b, n_all, t, 4), np.float32)                  # (B, N, T, 4) pixels
    raw[..., 0] = r.uniform(0, w, (b, n_all, t))
    raw[..., 1] = r.uniform(0, h, (b, n_all, t))
    raw[..., 2] = r.uniform(0.5, 20, (b, n_all, t))
    raw[..., 3] = r.uniform(size=(b, n_all, t)) < 0.8
    hw = np.tile(np.array([[h, w]], np.float32), (b, 1))          # (B, 2)
    valid = np.ones((b, n_all), bool)
    normalized = ops.normalize(raw[:, :n_sub], hw, True, valid[:, :n_sub], backend="cpp")  # (B, 512, T, 4)

    t_src = 150                                                   # a 5 s clip at 30 fps
    chans = r.uniform(0, w, (n_all, t_src, 3)).astype(np.float32)  # (N, T_in, C)
    vis = (r.uniform(size=(n_all, t_src)) < 0.8).astype(np.float32)
    depth = r.uniform(0.1, 10, (t, h, w)).astype(np.float32)       # (T, H, W) depth maps

    yield "resample", dict(N=n_all, T_in=t_src, T_out=t, C=3), dict(x=chans, vis=vis, num_frames=t)
    yield "normalize", dict(B=b, N=n_all, T=t), dict(raw=raw, hw=hw, has_depth=True, valid=valid)
    yield "sample_subset", dict(B=b, N=n_all, k=n_sub), dict(num_valid=np.full(b, n_all), k=n_sub, seed=1)
    yield "augment", dict(B=b, N=n_sub, T=t), dict(x=normalized, valid=valid[:, :n_sub], hw=hw, seed=1)
    yield "lift_depth", dict(N=n_all, T=t, H=h, W=w), dict(depth=depth, xy=raw[0, :, :, :2], video_hw=(h, w))
    yield "sample_queries", dict(N=n_all, T=t, H=h, W=w), dict(num_points=n_all, num_frames=t, height=h,
                                                              width=w, seed=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "core_ops_cpu.json"))
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timing per function and backend")
    args = parser.parse_args()
    if not ops.core_available():
        raise SystemExit("traction._core is not built: run tools/build_core.sh first")
    from traction import _core

    rows = []
    print(f"{'function':<16}{'sizes':<38}{'C++ ms':>10}{'NumPy ms':>11}{'speed-up':>10}")
    for name, sizes, kwargs in cases(np.random.default_rng(0)):
        fn = getattr(ops, name)
        out_cpp, out_np = fn(**kwargs, backend="cpp"), fn(**kwargs, backend="numpy")
        for a, b in zip(out_cpp if isinstance(out_cpp, tuple) else (out_cpp,),
                        out_np if isinstance(out_np, tuple) else (out_np,)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)   # timing the same computation
        cpp_ms = median_ms(lambda: fn(**kwargs, backend="cpp"), args.budget)
        np_ms = median_ms(lambda: fn(**kwargs, backend="numpy"), args.budget, max_reps=10)
        rows.append(dict(function=name, sizes=sizes, cpp_ms=round(cpp_ms, 4), numpy_ms=round(np_ms, 4),
                         ratio=round(np_ms / cpp_ms, 2)))
        size_txt = ", ".join(f"{k}={v}" for k, v in sizes.items())
        print(f"{name:<16}{size_txt:<38}{cpp_ms:>10.3f}{np_ms:>11.3f}{np_ms / cpp_ms:>9.1f}x")

    env = environment("cpu")
    result = dict(
        benchmark="core_ops", date=env["date"], cpu=env["cpu"], logical_cores=env["cpu_count"],
        threads=int(_core.num_threads()),
        load_average_1min=env["load_average_1min"],  # wall times inflate on a busy machine
        python=env["versions"]["python"], numpy=env["versions"]["numpy"], torch=env["versions"]["torch"],
        versions=env["versions"], results=rows)
    out = Path(args.out)
    print(f"wrote {write_result(out.name, result, out.parent)}")


if __name__ == "__main__":
    main()
