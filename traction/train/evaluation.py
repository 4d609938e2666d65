"""Evaluation protocols (paper §4, §5.2, appendix C).

- ``classification_metrics``: top-1, top-5, mean class accuracy, per-class accuracy, confusion.
- ``knn_classify``: kNN on pooled features with weighted majority vote (IARD protocol of DisMo).
- ``linear_probe``: a linear classifier trained on frozen features.
- ``chirality``: for every chiral pair (a, b), time-reversed clips of a should be predicted as b
  (fraction reported), and the Chirality-in-Action protocol: one linear probe per pair on frozen
  features, mean accuracy over pairs.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F


@torch.no_grad()
def predict(model, loader, device, *, amp: bool = False, features: bool = True, progress: bool = False,
            desc: str = "eval", pool: str = "cls") -> Dict[str, torch.Tensor]:
    """Run a classifier over a loader -> logits (M, C), features (M, D), labels (M,), index (M,).

    ``features`` are pooled as ``pool`` says ("cls" or "mean"); logits always come from [CLS]."""
    from tqdm import tqdm

    model.eval()
    logits, feats, labels, index = [], [], [], []
    it = tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress)
    for batch in it:
        b = batch.to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            h = model.encode(b.x, b.padding_mask)                               # (B, P+N, D)
            lg = model.forward_head(model.pool(h, b.padding_mask, "cls"))
            f = model.pool(h, b.padding_mask, pool)
        logits.append(lg.float().cpu())
        if features:
            feats.append(f.float().cpu())
        labels.append(batch.labels)
        index.append(batch.index)
    out = {"logits": torch.cat(logits), "labels": torch.cat(labels), "index": torch.cat(index)}
    if features:
        out["features"] = torch.cat(feats)
    return out


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Dict[str, object]:
    """top1, top5, mean_class_acc, per_class_acc (list), confusion (C x C list), num_clips."""
    keep = labels >= 0
    logits, labels = logits[keep], labels[keep]
    n = int(labels.numel())
    if n == 0:
        return {"top1": float("nan"), "top5": float("nan"), "mean_class_acc": float("nan"),
                "per_class_acc": [], "confusion": [], "num_clips": 0}
    pred = logits.argmax(1)
    k = min(5, logits.shape[1])
    top5 = (logits.topk(k, dim=1).indices == labels[:, None]).any(1).float().mean().item()
    conf = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    conf.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    support = conf.sum(1)
    per_class = [(conf[c, c].item() / support[c].item()) if support[c] > 0 else float("nan")
                 for c in range(num_classes)]
    present = [a for a in per_class if not math.isnan(a)]
    return {"top1": (pred == labels).float().mean().item(), "top5": top5,
            "mean_class_acc": float(np.mean(present)), "per_class_acc": per_class,
            "confusion": conf.tolist(), "num_clips": n}


def knn_classify(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 num_classes: int, k: int = 20, temperature: float = 0.07) -> torch.Tensor:
    """Weighted kNN on L2-normalized features: each of the k nearest training clips votes for its
    class with weight exp(cosine / temperature). Returns class scores (M_test, C)."""
    tr = F.normalize(train_feats.float(), dim=1)
    te = F.normalize(test_feats.float(), dim=1)
    k = min(k, tr.shape[0])
    scores = torch.zeros(te.shape[0], num_classes)
    for start in range(0, te.shape[0], 1024):  # chunks bound the (M, M_train) similarity matrix
        sim = te[start:start + 1024] @ tr.T                                      # (m, M_train)
        top, idx = sim.topk(k, dim=1)                                            # (m, k)
        w = (top / temperature).exp()
        votes = torch.zeros(sim.shape[0], num_classes)
        votes.scatter_add_(1, train_labels[idx], w)
        scores[start:start + 1024] = votes
    return scores


def linear_probe(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 num_classes: int, *, epochs: int = 100, lr: float = 1e-2, weight_decay: float = 1e-4,
                 batch_size: int = 256, min_steps: int = 100, seed: int = 0) -> torch.Tensor:
    """Train a linear layer on frozen (standardized) features; return test logits (M_test, C).

    At least ``min_steps`` updates are made so that small groups are trained long enough
    (appendix D, CiA protocol)."""
    g = torch.Generator().manual_seed(seed)
    mean, std = train_feats.mean(0), train_feats.std(0).clamp_min(1e-6)
    xtr, xte = (train_feats - mean) / std, (test_feats - mean) / std
    layer = torch.nn.Linear(xtr.shape[1], num_classes)
    opt = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay)
    n = xtr.shape[0]
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    total = max(epochs * steps_per_epoch, min_steps)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    step = 0
    while step < total:
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, batch_size):
            idx = perm[s:s + batch_size]
            loss = F.cross_entropy(layer(xtr[idx]), train_labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step >= total:
                break
    with torch.no_grad():
        return layer(xte)


def chiral_pairs_for(labels: Sequence[str], declared: Optional[Sequence[Sequence[str]]] = None
                     ) -> List[Tuple[int, int]]:
    """Index pairs (a, b) of chiral classes present in ``labels``.

    ``declared`` pairs (e.g. from the store's metadata or ``--pairs``) win; otherwise pairs are found
    by name: classes whose names differ by one word from a list of opposites (left/right, up/down,
    towards/away, cw/ccw, open/close, ...)."""
    pos = {l: i for i, l in enumerate(labels)}
    out = []
    if declared:
        for a, b in declared:
            if a in pos and b in pos:
                out.append((pos[a], pos[b]))
        return out
    opposites = [("left", "right"), ("up", "down"), ("towards", "away"), ("cw", "ccw"),
                 ("clockwise", "counterclockwise"), ("open", "close"), ("opening", "closing"),
                 ("in", "out"), ("expand", "contract"), ("push", "pull"), ("forward", "backward")]
    seen = set()
    for a in labels:
        for w1, w2 in opposites:
            for x, y in ((w1, w2), (w2, w1)):
                toks = a.replace("-", "_").split("_")
                if x in toks:
                    b_toks = [y if t == x else t for t in toks]
                    for cand in labels:
                        if cand.replace("-", "_").split("_") == b_toks and (pos[cand], pos[a]) not in seen:
                            seen.add((pos[a], pos[cand]))
                            out.append((pos[a], pos[cand]))
    return out


def reversal_partner_rate(rev_logits: torch.Tensor, labels: torch.Tensor, pairs: List[Tuple[int, int]]
                          ) -> Dict[str, object]:
    """Fraction of time-reversed clips of a chiral class predicted as its partner class."""
    partner = {}
    for a, b in pairs:
        partner[a], partner[b] = b, a
    keep = torch.tensor([int(l) in partner for l in labels.tolist()], dtype=torch.bool)
    if keep.sum() == 0:
        return {"partner_rate": float("nan"), "same_rate": float("nan"), "num_clips": 0}
    pred = rev_logits[keep].argmax(1)
    lab = labels[keep]
    target = torch.tensor([partner[int(l)] for l in lab.tolist()])
    return {"partner_rate": (pred == target).float().mean().item(),
            "same_rate": (pred == lab).float().mean().item(), "num_clips": int(keep.sum())}


def cia_pairwise_probe(train_feats, train_labels, test_feats, test_labels, pairs, *, seed: int = 0
                       ) -> Dict[str, object]:
    """Chirality-in-Action protocol (appendix C): a linear probe per chiral pair, mean test accuracy."""
    accs = {}
    for a, b in pairs:
        tr = (train_labels == a) | (train_labels == b)
        te = (test_labels == a) | (test_labels == b)
        if tr.sum() < 2 or te.sum() < 1:
            continue
        ytr = (train_labels[tr] == b).long()
        yte = (test_labels[te] == b).long()
        logits = linear_probe(train_feats[tr], ytr, test_feats[te], 2, epochs=10, lr=1e-3, seed=seed)
        accs[f"{a}-{b}"] = (logits.argmax(1) == yte).float().mean().item()
    return {"cia_mean_acc": float(np.mean(list(accs.values()))) if accs else float("nan"), "cia_per_pair": accs}
