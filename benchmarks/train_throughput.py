"""Training throughput in clips/s: MAE pretraining and fine-tuning steps of traction_s.

Measures, in one run and on the same synthetic batch:
  - the batch builder (subset + normalize + augment in the compiled core, and its NumPy twin)
  - a full optimizer step (forward, backward, AdamW) for pretraining (mask 0.9) and fine-tuning,
    with the plain tokenizer and, on CUDA, the fused Triton tokenizer (bf16 autocast)

    python benchmarks/train_throughput.py [--device cpu|cuda] [--batch 64] [--points 512] [--steps 5]

Writes benchmarks/results/train_throughput_<device>.json (device, versions, date).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_name, environment, write_result  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, steps: int, device) -> float:
    step()  # warm-up (allocations, autotuning)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def make_step(model, opt, mode: str, batch, labels, device, amp: bool):
    """One optimizer step of ``mode`` ("pretrain": MAE loss; "finetune": cross-entropy)."""
    def step():
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(batch.x, batch.padding_mask)
            loss = out["loss"] if mode == "pretrain" else F.cross_entropy(out.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="clips per step (default 64 cpu / 512 cuda)")
    ap.add_argument("--points", type=int, default=512)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from traction.config import AugmentConfig, MAEConfig
    from traction.model.mae import TrajectoryMAE
    from traction.model.registry import model_config
    from traction.model.transformer import TrajectoryTransformer
    from traction.train.data import BatchBuilder

    device = torch.device(args.device)
    B = args.batch or (512 if device.type == "cuda" else 32)
    steps = args.steps or (20 if device.type == "cuda" else 3)
    K, T, N = args.points, 32, 2500
    rng = np.random.default_rng(0)
    env = environment(device)
    results = {"device": device_name(device), "device_type": device.type, "torch": env["versions"]["torch"],
               "numpy": env["versions"]["numpy"], "cpu_count": env["cpu_count"], "batch": B, "points": K,
               "frames": T, "date": env["date"], "environment": env, "rows": []}

    # -- batch builder on raw clips of 2500 trajectories
    items = []
    for b in range(B):
        raw = np.empty((N, T, 4), np.float32)
        raw[..., :2] = rng.uniform(0, 320, (N, T, 2))
        raw[..., 2] = rng.uniform(0.1, 1, (N, T))
        raw[..., 3] = rng.random((N, T)) > 0.2
        items.append((raw, (240, 320), True, b % 10, b, 1000 + b))
    for backend in ("cpp", "numpy"):
        os.environ["TRACTION_CORE"] = backend
        builder = BatchBuilder(K, AugmentConfig())
        dt = time_steps(lambda: builder(items), 3, torch.device("cpu"))
        results["rows"].append({"what": f"batch builder ({backend})", "s_per_step": dt, "clips_per_s": B / dt})
    os.environ["TRACTION_CORE"] = "cpp"
    batch = BatchBuilder(K, AugmentConfig())(items).to(device)
    amp = device.type == "cuda"

    variants = ["torch"] + (["triton"] if device.type == "cuda" else [])
    for fused in variants:
        cfg = model_config("traction_s", fused_tokenizer=fused)
        for mode in ("pretrain", "finetune"):
            model = (TrajectoryMAE(cfg, MAEConfig()) if mode == "pretrain"
                     else TrajectoryTransformer(cfg, num_classes=174)).to(device)
            opt = torch.optim.AdamW(model.parameters(), lr=2e-4)
            labels = torch.randint(0, 174, (B,), device=device)

            step = make_step(model, opt, mode, batch, labels, device, amp)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            dt = time_steps(step, steps, device)
            row = {"what": f"{mode} step (tokenizer {fused})", "s_per_step": dt, "clips_per_s": B / dt}
            if device.type == "cuda":
                row["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
            results["rows"].append(row)
            del model, opt, step

    ref = {r["what"]: r["clips_per_s"] for r in results["rows"]}
    for r in results["rows"]:
        base = r["what"].replace("(cpp)", "(numpy)").replace("tokenizer triton", "tokenizer torch")
        if base != r["what"] and base in ref:
            r["speedup_vs_plain"] = r["clips_per_s"] / ref[base]
    print(f"{'what':38s} {'s/step':>9s} {'clips/s':>9s} {'x plain':>8s}")
    for r in results["rows"]:
        sp = f"{r['speedup_vs_plain']:.2f}" if "speedup_vs_plain" in r else ""
        print(f"{r['what']:38s} {r['s_per_step']:9.3f} {r['clips_per_s']:9.1f} {sp:>8s}")
    out = Path(args.out or Path(__file__).parent / "results" / f"train_throughput_{device.type}.json")
    print(f"wrote {write_result(out.name, results, out.parent)}")


if __name__ == "__main__":
    main()
