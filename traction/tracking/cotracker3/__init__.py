"""CoTracker3 point tracker (offline and online), loading the official checkpoints unchanged.

    tracker = traction.tracking.cotracker3.load("scaled_offline.pth", mode="offline")
    xy, vis = tracker.track(video, queries)   # (T,H,W,3) uint8, (N,3) (t,x,y) px -> (N,T,2), (N,T)

Checkpoints: ``scaled_offline.pth`` / ``baseline_offline.pth`` (mode="offline", time embedding
of 60 frames) and ``scaled_online.pth`` / ``baseline_online.pth`` (mode="online", 16 frames).
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from traction.errors import CheckpointError, ConfigError, WeightsNotFound
from traction.tracking.cotracker3.model import CoTracker3, OnlineState
from traction.tracking.cotracker3.predictor import CoTracker3Tracker
from traction.weights import load_state_strict

__all__ = ["load", "load_state_dict_file", "build_model", "CoTracker3", "CoTracker3Tracker", "OnlineState"]

# Length of the stored time embedding of the official checkpoints.
DEFAULT_WINDOW = {"offline": 60, "online": 16}


def load_state_dict_file(path) -> dict:
    """Read an official .pth with ``weights_only=True``; unwrap a ``{"model": ...}`` wrapper the
    way the reference loader does."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsNotFound(f"cotracker3 weights {path!r}: no such file")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle with objects, a truncated file, not a torch file...
        raise CheckpointError(f"cotracker3 weights {path!r}: unreadable ({type(e).__name__}: {e})") from None
    if isinstance(sd, Mapping) and "model" in sd and isinstance(sd["model"], Mapping):
        sd = sd["model"]
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"cotracker3 weights {path!r}: expected a state dict, got {type(sd).__name__}")
    return dict(sd)


def build_model(state_dict: Mapping | None, window_len: int, source: str = "state_dict") -> CoTracker3:
    """A ``CoTracker3`` with ``state_dict`` loaded strictly; mismatches raise ``CheckpointError``."""
    model = CoTracker3(window_len=window_len)
    if state_dict is None:
        return model
    load_state_strict(model, state_dict, f"cotracker3 {source}",
                      hint="an offline checkpoint needs mode='offline', an online one mode='online'")
    return model


def load(weights=None, mode: str = "offline", device="cpu", window_len: int | None = None,
         iters: int = 6, support_grid: int | None = None, backward_tracking: bool = False,
         vis_threshold: float | None = None, dtype=None, state_dict: Mapping | None = None,
         weights_dir=None, variant: str = "scaled") -> CoTracker3Tracker:
    """Build a CoTracker3 tracker.

    weights: path to an official .pth; ``None`` asks ``traction.weights.resolve`` (local dirs,
    ``weights_dir``, ``$TRACTION_WEIGHTS``, download) for the ``variant`` ("scaled" or "baseline")
    of ``mode``. ``state_dict`` bypasses files (tests).
    mode: "offline" (whole clip at once) or "online" (sliding 16-frame windows, bounded memory).
    window_len: length of the checkpoint's time embedding (default 60 offline, 16 online).
    support_grid: side of the extra query grid (default 6 offline, 0 online, as the reference).
    vis_threshold: default 0.9 offline (on P(vis)), 0.6 online (on P(vis) * P(conf)).
    dtype: None/"fp32", "bf16" or "fp16" autocast.
    """
    if mode not in DEFAULT_WINDOW:
        raise ConfigError(f"cotracker3 mode={mode!r}: expected 'offline' or 'online'")
    source = "state_dict"
    if state_dict is None:
        if weights is None:
            try:
                from traction.weights import resolve
            except ImportError:
                raise WeightsNotFound("cotracker3 weights: none given and traction.weights is unavailable; "
                                      "pass weights='scaled_offline.pth' (or scaled_online.pth)") from None
            if variant not in ("scaled", "baseline"):
                raise ConfigError(f"cotracker3 variant={variant!r}: expected 'scaled' or 'baseline'")
            name = f"cotracker3-{mode}" if variant == "scaled" else f"cotracker3-baseline-{mode}"
            weights = resolve(name, weights_dir=weights_dir)
        state_dict = load_state_dict_file(weights)
        source = f"weights {os.fspath(weights)!r}"
    if window_len is None:
        # The checkpoint's time embedding fixes the window; fall back to the reference default.
        emb = state_dict.get("time_emb")
        window_len = int(emb.shape[1]) if emb is not None and emb.ndim == 3 else DEFAULT_WINDOW[mode]
    if int(window_len) < 2:
        raise ConfigError(f"cotracker3 window_len={window_len}: must be >= 2")
    model = build_model(state_dict, window_len, source)
    return CoTracker3Tracker(model, mode=mode, device=device, iters=iters, support_grid=support_grid,
                             backward_tracking=backward_tracking, vis_threshold=vis_threshold, dtype=dtype)
