"""Point trackers (paper §3, "Trajectory extraction"; design.md "Extraction").

    tracker = load_tracker("lk")                                   # no weights needed
    tracker = load_tracker("cotracker3", weights="scaled_offline.pth", mode="offline", device="cuda")
    tracker = load_tracker("cotracker3", backend="onnx")            # network in onnxruntime (traction.runtime)
    queries = sample_queries(2500, T, H, W, seed)                  # (N, 3) = (t, x, y)
    xy, vis = tracker.track(video, queries)                        # (N, T, 2), (N, T)

The learned trackers import lazily, so ``import traction.tracking`` stays light.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Optional

from traction.errors import ConfigError, TractionError
from traction.tracking.base import Tracker
from traction.tracking.lk import LKTracker

TRACKERS = ("lk", "cotracker3")


def _load_lk(weights: Optional[str], mode: str, device: str, **kw: Any) -> LKTracker:
    if weights is not None:
        raise ConfigError(f"tracker 'lk' takes no weights, got weights={weights!r}")
    kw.pop("weights_dir", None)                  # a generic option for learned trackers
    fields = {f.name for f in dataclasses.fields(LKTracker)} - {"name"}
    unknown = sorted(set(kw) - fields)
    if unknown:
        raise ConfigError(f"tracker 'lk': unknown option(s) {unknown}; known: {sorted(fields)}")
    return LKTracker(**kw)


def load_tracker(name: str, *, weights: Optional[str] = None, mode: str = "offline",
                 device: str = "cpu", backend: str = "torch", **kw: Any) -> Tracker:
    """The tracker registered as ``name`` ("lk" or "cotracker3"), ready to ``track``.

    ``weights`` is the checkpoint of a learned tracker (None: it looks in its weights cache);
    ``mode`` is "offline" (whole clip) or "online" (sliding windows) for CoTracker3; ``backend``
    ("torch", "onnx", "tensorrt") runs CoTracker3's offline network exported (``traction.runtime``;
    LK has no network and ignores it); ``kw`` go to the tracker (for "lk": win_size, levels, ...).
    """
    if backend != "torch":                    # keep the default path free of the runtime's imports
        from traction.runtime import check_backend

        check_backend(backend)
    if name == "lk":
        return _load_lk(weights, mode, device, **kw)
    if name == "cotracker3":
        if backend != "torch":
            from traction import runtime

            if mode != "offline":
                raise ConfigError(f"tracker 'cotracker3' backend {backend!r}: only the offline network is "
                                  f"exported; use mode='offline' or backend 'torch'")
            runtime.require_backend(backend, device)     # fail before reading the weights
            # The torch network is only traced for export, so it is loaded on the CPU.
            tracker = load_tracker(name, weights=weights, mode=mode, device="cpu", **kw)
            return runtime.exported_tracker(tracker, backend, device=device)
        try:
            module = importlib.import_module("traction.tracking.cotracker3")
        except ImportError as err:
            raise TractionError(f"tracker 'cotracker3' is unavailable: cannot import "
                                f"traction.tracking.cotracker3 ({err})") from None
        if not hasattr(module, "load"):
            raise TractionError("tracker 'cotracker3' is unavailable: traction.tracking.cotracker3 has no load()")
        return module.load(weights=weights, mode=mode, device=device, **kw)
    raise ConfigError(f"tracker {name!r} is unknown; known trackers: {', '.join(TRACKERS)}")


def sample_queries(num_points: int, num_frames: int, height: int, width: int, seed: int = 0,
                   **kw: Any):
    """(N, 3) float32 queries (t, x, y) uniform over frames and pixels (``traction.ops``)."""
    from traction import ops

    return ops.sample_queries(num_points, num_frames, height, width, seed, **kw)


__all__ = ["LKTracker", "TRACKERS", "Tracker", "load_tracker", "sample_queries"]
