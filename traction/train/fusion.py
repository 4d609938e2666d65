"""Late fusion of trajectory and vision features (paper §4 "complementary fusion", appendices C, D).

Both backbones are frozen; their features are concatenated and one linear layer is trained from
scratch (the fine-tuning recipe with 5 epochs, weight decay 5e-2, warmup ratio 0.4). For
reference the same recipe is run on each feature set alone, so the gain is measured in one run.

Feature files (``traction evaluate --save-features F`` writes them for trajectories; any vision
model's features can be written in the same layout): safetensors with ``features`` (M, D) float,
``labels`` (M,) int64 (-1 = unlabelled), ``split`` (M,) int64 (0 train, 1 val, 2 test) and the
metadata key ``clip_ids`` (a JSON list of M ids) used to align the two files.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from traction.errors import TractionError
from traction.train.loop import cosine_lr


def load_features(path: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, list]:
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise TractionError(f"{path}: feature file not found")
    try:
        with safe_open(str(p), "pt") as f:
            meta = f.metadata() or {}
            t = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise TractionError(f"{path}: not a readable safetensors feature file ({str(e).splitlines()[0]})") from None
    missing = {"features", "labels", "split"} - set(t)
    if missing or "clip_ids" not in meta:
        raise TractionError(f"{path}: feature file lacks {sorted(missing | ({'clip_ids'} - set(meta)))}")
    ids = json.loads(meta["clip_ids"])
    if len(ids) != t["features"].shape[0]:
        raise TractionError(f"{path}: {len(ids)} clip ids for {t['features'].shape[0]} feature rows")
    return t["features"].float(), t["labels"].long(), t["split"].long(), ids


def train_linear(xtr, ytr, xte, num_classes: int, *, epochs: int, lr: float, weight_decay: float,
                 warmup_ratio: float, batch_size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    layer = torch.nn.Linear(xtr.shape[1], num_classes)
    opt = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay)
    steps = max(1, math.ceil(xtr.shape[0] / batch_size)) * epochs
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(xtr.shape[0], generator=g)
        for s in range(0, xtr.shape[0], batch_size):
            for grp in opt.param_groups:
                grp["lr"] = cosine_lr(step, steps, lr, warmup_ratio)
            idx = perm[s:s + batch_size]
            loss = F.cross_entropy(layer(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    with torch.no_grad():
        return layer(xte)


def fuse(traj_path: str, vision_path: str, out: str, *, epochs: int = 5, lr: float = 2e-4,
         weight_decay: float = 5e-2, warmup_ratio: float = 0.4, seed: int = 0, progress: bool = True) -> Dict:
    ft, lt, st, ids_t = load_features(traj_path)
    fv, lv, sv, ids_v = load_features(vision_path)
    pos_v = {c: i for i, c in enumerate(ids_v)}
    common = [i for i, c in enumerate(ids_t) if c in pos_v]
    if not common:
        raise TractionError(f"{traj_path} and {vision_path} share no clip ids")
    jt = torch.tensor(common)
    jv = torch.tensor([pos_v[ids_t[i]] for i in common])
    ft, lt, st, fv = ft[jt], lt[jt], st[jt], fv[jv]
    if not torch.equal(lt, lv[jv]):
        raise TractionError("the two feature files disagree on the labels of shared clips")
    train = (st == 0) & (lt >= 0)
    test_code = 1 if ((st == 1) & (lt >= 0)).any() else 2
    test = (st == test_code) & (lt >= 0)
    if not train.any() or not test.any():
        raise TractionError("fusion needs labelled train clips and val or test clips in both files")
    C = int(lt.max()) + 1
    res: Dict = {"num_train": int(train.sum()), "num_clips": int(test.sum()),
                 "split": {1: "val", 2: "test"}[test_code]}
    kw = dict(epochs=epochs, lr=lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio, seed=seed)
    for name, x in (("traj", ft), ("vision", fv), ("fused", torch.cat([ft, fv], dim=1))):
        logits = train_linear(x[train], lt[train], x[test], C, **kw)
        res[f"{name}_top1"] = (logits.argmax(1) == lt[test]).float().mean().item()
    res["top1"] = res["fused_top1"]
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "fusion.json").write_text(json.dumps(res, indent=2))
    return res
