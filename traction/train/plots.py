"""PNG plots written into run directories (matplotlib, headless Agg backend)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Sequence


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def read_metrics(path: str | Path) -> List[dict]:
    rows = []
    p = Path(path)
    if p.is_file():
        for line in p.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line of a killed run
    return rows


def plot_curves(metrics_path: str | Path, out_dir: str | Path) -> List[Path]:
    """loss.png (train loss per step, eval loss per epoch) and accuracy.png (eval top-1/top-5)."""
    plt = _plt()
    rows = read_metrics(metrics_path)
    out_dir = Path(out_dir)
    written = []
    steps = [(r["step"], r["loss"]) for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval"]
    if steps:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(*zip(*steps), lw=1, label="train")
        ev = [(r["step"], r["loss"]) for r in evals if "loss" in r]
        if ev:
            ax.plot(*zip(*ev), "o-", label="eval")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "loss.png", dpi=120)
        plt.close(fig)
        written.append(out_dir / "loss.png")
    acc = [(r["epoch"], r["top1"], r.get("top5")) for r in evals if "top1" in r]
    if acc:
        fig, ax = plt.subplots(figsize=(6, 4))
        e, t1, t5 = zip(*acc)
        ax.plot(e, t1, "o-", label="top-1")
        if all(v is not None for v in t5):
            ax.plot(e, t5, "s--", label="top-5")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "accuracy.png", dpi=120)
        plt.close(fig)
        written.append(out_dir / "accuracy.png")
    return written


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path,
                   title: str = "") -> Path:
    import numpy as np

    plt = _plt()
    cm = np.asarray(confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    n = len(labels)
    size = max(4.0, min(0.35 * n + 2, 30))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if n <= 60:
        ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(n), labels, fontsize=7)
        if n <= 25:
            for i in range(n):
                for j in range(n):
                    if cm[i, j]:
                        ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6,
                                color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion (row-normalized)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
