"""Summary counts of a store, shown by the command line (``traction`` store / dataset summaries)."""
from __future__ import annotations

import collections
from typing import Any, Dict

from traction.store.reader import TrajectoryStore


def _sorted_counts(counter: "collections.Counter[Any]") -> Dict[Any, int]:
    return {k: counter[k] for k in sorted(counter, key=lambda k: (k is None, str(k) if not isinstance(k, int) else k))}


def stats(store: TrajectoryStore) -> Dict[str, Any]:
    """Counts from the manifest alone (no record is read).

    Keys: num_clips; per_split {split: n}; per_label {label: n} (None = unlabeled);
    per_split_label {split: {label: n}}; N and T histograms {value: n}; with_depth;
    trackers and depth_models {name: n}; sizes {"WxH": n}."""
    recs = store.records
    per_split_label: Dict[str, "collections.Counter[Any]"] = collections.defaultdict(collections.Counter)
    for e in recs:
        per_split_label[e.split][e.label] += 1
    return {
        "num_clips": len(recs),
        "per_split": _sorted_counts(collections.Counter(e.split for e in recs)),
        "per_label": _sorted_counts(collections.Counter(e.label for e in recs)),
        "per_split_label": {s: _sorted_counts(c) for s, c in sorted(per_split_label.items())},
        "N": _sorted_counts(collections.Counter(e.N for e in recs)),
        "T": _sorted_counts(collections.Counter(e.T for e in recs)),
        "with_depth": sum(e.has_depth for e in recs),
        "trackers": _sorted_counts(collections.Counter(e.tracker for e in recs)),
        "depth_models": _sorted_counts(collections.Counter(e.depth_model for e in recs)),
        "sizes": _sorted_counts(collections.Counter(f"{e.W}x{e.H}" for e in recs)),
    }


def format_stats(s: Dict[str, Any]) -> str:
    """``stats`` as a few human-readable lines."""
    def fmt(d: Dict[Any, int]) -> str:
        return ", ".join(f"{k}: {v}" for k, v in d.items()) or "-"

    lines = [f"clips: {s['num_clips']} ({s['with_depth']} with depth)",
             f"splits: {fmt(s['per_split'])}",
             f"labels ({len(s['per_label'])}): {fmt(s['per_label'])}",
             f"points N: {fmt(s['N'])}",
             f"frames T: {fmt(s['T'])}",
             f"trackers: {fmt(s['trackers'])}; depth models: {fmt(s['depth_models'])}",
             f"frame sizes: {fmt(s['sizes'])}"]
    return "\n".join(lines)
