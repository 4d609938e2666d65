"""``traction evaluate``: a checkpoint, a store, a protocol -> metrics (paper §5, appendix C)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import torch

from traction.config import DataConfig, TrainConfig
from traction.errors import ConfigError, StoreError
from traction.model.checkpoint import load_checkpoint
from traction.train import evaluation as E
from traction.train.data import make_loader, resolve_eval_split, split_indices
from traction.train.loop import resolve_device

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def _parse_pairs(pairs: Optional[str]) -> Optional[List[List[str]]]:
    if not pairs:
        return None
    out = []
    for item in pairs.split(","):
        if ":" not in item:
            raise ConfigError(f"--pairs: {item!r} is not of the form a:b")
        out.append(item.split(":", 1))
    return out


def evaluate(data: str, checkpoint: str, *, protocol: str = "top1", split: Optional[str] = None,
             train_split: str = "train", points: int = 0, device: str = "auto", k: int = 20,
             pairs: Optional[str] = None, batch_size: int = 64, save_features: Optional[str] = None,
             progress: bool = True, out_dir: Optional[str] = None, pool: Optional[str] = None) -> Dict:
    """``pool``: features for the frozen protocols; default "mean" for knn (appendix C), else "cls"."""
    from traction.store import open_store

    dev = resolve_device(device)
    model, meta = load_checkpoint(checkpoint, device=dev)
    if meta.get("kind") == "mae":
        model = model.encoder  # frozen-feature protocols only
        if protocol in ("top1", "chirality"):
            raise ConfigError(f"{checkpoint}: a pretraining checkpoint has no classifier; "
                              f"use --protocol knn or linear, or fine-tune it first")
    store = open_store(data)
    cfg = TrainConfig()
    cfg.model = model.cfg
    cfg.data = DataConfig(eval_points=points, eval_split=split or "")
    cfg.optim.batch_size = batch_size
    eval_split = resolve_eval_split(store, cfg.data)
    ckpt_labels = list(meta.get("labels") or [])
    labels = ckpt_labels if (protocol in ("top1", "chirality") and ckpt_labels) else list(store.labels)
    unknown = sorted(set(store.labels) - set(labels))
    eval_idx = split_indices(store, eval_split)
    loader, _ = make_loader(store, eval_idx, labels, cfg, train=False)
    pool = pool or ("mean" if protocol == "knn" else "cls")
    res = E.predict(model, loader, dev, features=True, progress=progress, desc=f"eval {eval_split}", pool=pool)
    out: Dict = {"protocol": protocol, "split": eval_split, "checkpoint": str(checkpoint), "pool": pool}
    if unknown and protocol in ("top1", "chirality"):
        out["labels_not_in_checkpoint"] = unknown

    train_cache: Dict = {}

    def train_features() -> Dict:
        """Features of the train split, computed once for --save-features and the frozen protocols."""
        if not train_cache:
            tr_loader, _ = make_loader(store, split_indices(store, train_split), labels, cfg, train=False)
            train_cache.update(E.predict(model, tr_loader, dev, features=True, progress=progress,
                                         desc=f"features {train_split}", pool=pool))
        return train_cache

    if save_features:  # train + eval split in one file, ready for `traction fuse`
        parts = [(res, eval_split)]
        if train_split != eval_split and store.indices(train_split):
            parts.insert(0, (train_features(), train_split))
        _save_features(save_features, parts, store)

    if protocol == "top1":
        m = E.classification_metrics(res["logits"], res["labels"], len(labels))
    elif protocol in ("knn", "linear", "chirality"):
        tr = train_features()
        keep = tr["labels"] >= 0
        if protocol == "knn":
            scores = E.knn_classify(tr["features"][keep], tr["labels"][keep], res["features"], len(labels), k=k)
            m = E.classification_metrics(scores, res["labels"], len(labels))
            m["k"] = k
        elif protocol == "linear":
            logits = E.linear_probe(tr["features"][keep], tr["labels"][keep], res["features"], len(labels))
            m = E.classification_metrics(logits, res["labels"], len(labels))
        else:
            declared = _parse_pairs(pairs) or store.meta.get("chiral_pairs")
            pair_idx = E.chiral_pairs_for(labels, declared)
            if not pair_idx:
                raise StoreError(f"{data}: no chiral class pairs found; pass --pairs a:b,c:d")
            rev_loader, _ = make_loader(store, eval_idx, labels, cfg, train=False, reverse_time=True)
            rev = E.predict(model, rev_loader, dev, features=False, progress=progress, desc="time-reversed")
            m = E.classification_metrics(res["logits"], res["labels"], len(labels))
            m.update(E.reversal_partner_rate(rev["logits"], rev["labels"], pair_idx))
            m.update(E.cia_pairwise_probe(tr["features"][keep], tr["labels"][keep], res["features"],
                                          res["labels"], pair_idx))
            m["pairs"] = [[labels[a], labels[b]] for a, b in pair_idx]
            m["num_clips"] = int((res["labels"] >= 0).sum())
    else:
        raise ConfigError(f"unknown protocol {protocol!r} (top1, knn, linear, chirality)")

    if out_dir and m.get("confusion"):
        from traction.train.plots import plot_confusion
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        plot_confusion(m["confusion"], labels, Path(out_dir) / f"confusion_{protocol}_{eval_split}.png",
                       title=f"{protocol} on {eval_split}: top-1 {m['top1']:.3f}")
    per_class = m.pop("per_class_acc", None)
    m.pop("confusion", None)
    out.update(m)
    if per_class:
        out["per_class_acc"] = dict(zip(labels, per_class))
    return out


def _save_features(path: str, parts, store) -> None:
    """features (M, D), labels (M,), split (M,) codes (0 train, 1 val, 2 test) + clip ids."""
    from safetensors.torch import save_file

    feats, labels, splits, clip_ids = [], [], [], []
    for res, split in parts:
        feats.append(res["features"])
        labels.append(res["labels"])
        splits.append(torch.full((len(res["index"]),), SPLIT_CODES.get(split, 3), dtype=torch.int64))
        clip_ids += [store.records[i].clip_id for i in res["index"].tolist()]
    save_file({"features": torch.cat(feats).contiguous(), "labels": torch.cat(labels).contiguous(),
               "split": torch.cat(splits).contiguous()}, path,
              metadata={"clip_ids": json.dumps(clip_ids), "labels": json.dumps(list(store.labels))})
