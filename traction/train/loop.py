"""Pretraining (MAE) and fine-tuning loops (paper §3, §4, appendices C and D).

A run directory holds:
    config.json       the resolved TrainConfig (+ mode, data path, init)
    metrics.jsonl     one JSON object per log step ("train") and per evaluation ("eval")
    last.*, best.*    checkpoints (safetensors + JSON); best by eval top-1 (fine-tuning) or loss (MAE)
    train_state.pt    optimizer / scheduler / epoch for --resume (tensors only, weights_only load)
    loss.png, accuracy.png, confusion.png

Multi-GPU / multi-process: launch with ``torchrun --nproc-per-node K traction finetune ...``; the
loop uses DDP (NCCL on CUDA, gloo on CPU) and only rank 0 writes.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Dict, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F

from traction.config import TrainConfig, to_dict, validate
from traction.errors import CheckpointError, ConfigError, StoreError
from traction.model.checkpoint import encoder_weights_from, load_state, save_checkpoint
from traction.train import evaluation as E
from traction.train.data import make_loader, resolve_eval_split, split_indices


# --------------------------------------------------------------------------- small helpers

def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return dev


def cosine_lr(step: int, total: int, base: float, warmup_ratio: float) -> float:
    """Linear warmup over ``warmup_ratio`` of the steps, then cosine decay to 0 (appendix D)."""
    warm = max(1, int(round(total * warmup_ratio)))
    if step < warm:
        return base * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def param_groups(model: torch.nn.Module, weight_decay: float):
    """No weight decay on biases, norms, and the learned tokens (timm convention)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith("_token") or name.endswith("_tokens"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class DistContext:
    """torchrun environment -> rank / world size; a no-op for a single process."""

    def __init__(self, device: torch.device):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world_size > 1
        if self.enabled and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_gather_cat(self, t: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return t
        objs = [None] * self.world_size
        dist.all_gather_object(objs, t.cpu())
        return torch.cat(objs)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


class RunLog:
    """Appends JSON lines to metrics.jsonl (rank 0 only)."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def write(self, row: Dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()


# --------------------------------------------------------------------------- the run

def run(mode: str, cfg: TrainConfig, data: str, out: str, *, init: Optional[str] = None, resume: bool = False,
        progress: bool = True, model_name: str = "traction_s") -> Dict:
    """Train (``mode`` = "pretrain" | "finetune") and return the final metrics dict."""
    from tqdm import tqdm

    from traction.model.mae import TrajectoryMAE
    from traction.model.transformer import TrajectoryTransformer
    from traction.store import open_store

    if mode not in ("pretrain", "finetune"):
        raise ConfigError(f"unknown mode {mode!r}")
    validate(cfg)
    device = resolve_device(cfg.device)
    ctx = DistContext(device)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    torch.manual_seed(cfg.seed + ctx.rank)
    out_dir = Path(out)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(data)
    labels = list(store.labels)
    if mode == "finetune" and len(labels) < 2:
        raise StoreError(f"{data}: fine-tuning needs at least 2 labels, the store has {len(labels)}")

    train_idx = split_indices(store, cfg.data.train_split, cfg.data.label_fraction, cfg.seed)
    eval_split = resolve_eval_split(store, cfg.data)
    eval_idx = split_indices(store, eval_split)
    train_loader, train_sampler = make_loader(store, train_idx, labels, cfg, train=True,
                                              rank=ctx.rank, world_size=ctx.world_size)
    eval_loader, _ = make_loader(store, eval_idx, labels, cfg, train=False,
                                 rank=ctx.rank, world_size=ctx.world_size)

    # model
    if mode == "pretrain":
        model = TrajectoryMAE(cfg.model, cfg.mae)
    else:
        model = TrajectoryTransformer(cfg.model, num_classes=len(labels))
        if init:
            state, _ = encoder_weights_from(init)
            try:
                load_state(_Encoder(model), state, init)
            except CheckpointError as e:
                raise CheckpointError(f"{init}: cannot initialise the encoder: {e}") from None
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    if ctx.is_main and progress:
        print(f"[traction {mode}] {model_name}: {n_params / 1e6:.2f}M parameters; "
              f"{len(train_idx)} train clips, {len(eval_idx)} {eval_split} clips, {len(labels)} labels; "
              f"device {device}", file=sys.stderr)
    ddp_model = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None) if ctx.enabled else model

    opt = torch.optim.AdamW(param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                            betas=tuple(cfg.optim.betas))
    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * cfg.optim.epochs
    start_epoch, step, best = 0, 0, None

    state_path = out_dir / "train_state.pt"
    if resume:
        if not state_path.is_file() or not (out_dir / "last.json").is_file():
            raise CheckpointError(f"{out_dir}: nothing to resume (no train_state.pt / last checkpoint)")
        from traction.model.checkpoint import read_checkpoint
        weights, _ = read_checkpoint(out_dir / "last")
        load_state(model, weights, str(out_dir / "last"))
        ts = torch.load(state_path, map_location="cpu", weights_only=True)
        opt.load_state_dict(ts["optimizer"])
        start_epoch, step, best = int(ts["epoch"]) + 1, int(ts["step"]), ts.get("best")
        best = None if best is None else float(best)

    if ctx.is_main:
        resolved = {"mode": mode, "data": str(data), "init": init, "model_name": model_name,
                    "world_size": ctx.world_size, **to_dict(cfg)}
        (out_dir / "config.json").write_text(json.dumps(resolved, indent=2))
    log = RunLog(out_dir / "metrics.jsonl", ctx.is_main)
    amp = cfg.amp and device.type == "cuda"
    final: Dict = {}

    for epoch in range(start_epoch, cfg.optim.epochs):
        ddp_model.train()
        train_sampler.set_epoch(epoch)
        bar = tqdm(train_loader, desc=f"{mode} {epoch + 1}/{cfg.optim.epochs}", unit="batch",
                   disable=not (progress and ctx.is_main), leave=False, file=sys.stderr)
        t0, seen, run_loss, run_n = time.time(), 0, 0.0, 0
        for batch in bar:
            b = batch.to(device)
            lr = cosine_lr(step, total_steps, cfg.optim.lr, cfg.optim.warmup_ratio)
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                if mode == "pretrain":
                    loss = ddp_model(b.x, b.padding_mask)["loss"]
                else:
                    logits = ddp_model(b.x, b.padding_mask)
                    loss = F.cross_entropy(logits.float(), b.labels, label_smoothing=cfg.optim.label_smoothing,
                                           ignore_index=-1)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at epoch {epoch + 1} step {step}; "
                                         f"lower optim.lr or check the data")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt.step()
            step += 1
            seen += b.x.shape[0] * ctx.world_size
            run_loss += loss.item()
            run_n += 1
            rate = seen / max(time.time() - t0, 1e-9)
            bar.set_postfix(loss=f"{loss.item():.4f}", clips_s=f"{rate:.0f}", lr=f"{lr:.2e}")
            if step % cfg.log_every == 0 or step == total_steps:
                log.write({"kind": "train", "epoch": epoch + 1, "step": step, "loss": run_loss / run_n,
                           "lr": lr, "clips_per_s": rate})
                run_loss, run_n = 0.0, 0
        epoch_time = time.time() - t0

        is_last = epoch + 1 == cfg.optim.epochs
        if (epoch + 1) % cfg.eval_every == 0 or is_last:
            metrics = evaluate_model(model, mode, eval_loader, device, labels, amp, ctx)
            metrics.update({"kind": "eval", "epoch": epoch + 1, "step": step, "split": eval_split,
                            "train_clips_per_s": seen / max(epoch_time, 1e-9)})
            log.write({k: v for k, v in metrics.items() if k not in ("confusion", "per_class_acc")})
            score = -metrics["loss"] if mode == "pretrain" else metrics["top1"]
            improved = best is None or score > best
            if improved:
                best = score
            final = metrics
            if ctx.is_main:
                save_kw = dict(kind="mae" if mode == "pretrain" else "classifier", model_cfg=cfg.model,
                               labels=labels, mae_cfg=cfg.mae if mode == "pretrain" else None,
                               extra={"epoch": epoch + 1, "step": step, "split": eval_split,
                                      "metrics": {k: v for k, v in metrics.items()
                                                  if k not in ("confusion", "per_class_acc")}})
                save_checkpoint(out_dir / "last", model, **save_kw)
                if improved:
                    save_checkpoint(out_dir / "best", model, **save_kw)
                tmp = state_path.with_suffix(".tmp")
                torch.save({"optimizer": opt.state_dict(), "epoch": epoch, "step": step, "best": best}, tmp)
                os.replace(tmp, state_path)
                if progress:
                    desc = (f"loss {metrics['loss']:.4f}" if mode == "pretrain" else
                            f"top-1 {metrics['top1']:.3f} top-5 {metrics['top5']:.3f} loss {metrics['loss']:.4f}")
                    print(f"[traction {mode}] epoch {epoch + 1}/{cfg.optim.epochs}: {eval_split} {desc}; "
                          f"{seen / max(epoch_time, 1e-9):.0f} clips/s", file=sys.stderr)
        ctx.barrier()

    if ctx.is_main:
        from traction.train.plots import plot_confusion, plot_curves
        plot_curves(out_dir / "metrics.jsonl", out_dir)
        if mode == "finetune" and final.get("confusion"):
            plot_confusion(final["confusion"], labels, out_dir / "confusion.png",
                           title=f"{eval_split}: top-1 {final['top1']:.3f}")
    ctx.close()
    final = dict(final)
    final["num_parameters"] = n_params
    final["run_dir"] = str(out_dir)
    return final


class _Encoder(torch.nn.Module):
    """View of a classifier without its head, for loading pretrained encoder weights strictly."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def state_dict(self, *a, **k):
        return {k2: v for k2, v in self.m.state_dict().items() if not k2.startswith("head.")}

    def load_state_dict(self, state, strict=True, assign=False):
        head = {k: v for k, v in self.m.state_dict().items() if k.startswith("head.")}
        return self.m.load_state_dict({**state, **head}, strict=strict, assign=assign)


@torch.no_grad()
def evaluate_model(model, mode: str, loader, device, labels, amp: bool, ctx: DistContext) -> Dict:
    """MAE: mean reconstruction loss; classifier: loss + classification metrics."""
    model.eval()
    if mode == "pretrain":
        g = torch.Generator(device="cpu").manual_seed(1234)  # fixed masks: comparable across epochs
        tot, n = 0.0, 0
        for batch in loader:
            b = batch.to(device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                # a CPU generator cannot drive CUDA sampling; on GPU the masks are random per epoch
                out = model(b.x, b.padding_mask, generator=g if device.type == "cpu" else None)
            tot += out["loss"].item() * b.x.shape[0]
            n += b.x.shape[0]
        t = torch.tensor([tot, n], dtype=torch.float64)
        if ctx.enabled:
            dist.all_reduce(t)
        return {"loss": (t[0] / t[1].clamp_min(1)).item(), "num_clips": int(t[1])}
    res = E.predict(model, loader, device, amp=amp, features=False)
    logits = ctx.all_gather_cat(res["logits"])
    lab = ctx.all_gather_cat(res["labels"])
    idx = ctx.all_gather_cat(res["index"])
    if ctx.enabled:  # DDP pads the last shard: drop the repeated clips
        first = {}
        for i, v in enumerate(idx.tolist()):
            first.setdefault(v, i)
        keep = torch.tensor(sorted(first.values()))
        logits, lab = logits[keep], lab[keep]
    valid = lab >= 0
    loss = F.cross_entropy(logits[valid], lab[valid]).item() if valid.any() else float("nan")
    m = E.classification_metrics(logits, lab, len(labels))
    m["loss"] = loss
    return m
