"""Video Depth Anything (S / B / L, relative and metric): a clean implementation that loads the
official checkpoints unchanged.

    from traction.depth import vda
    model = vda.load("vda-s", weights="video_depth_anything_vits.pth")
    depth = model.predict(video)            # (T, H, W, 3) uint8 RGB -> (T, H, W) float32
    raw = model(x)                          # (B, T, 3, h, w) normalised -> (B, T, h, w)
"""
from __future__ import annotations

import os

import torch

from traction.errors import CheckpointError, ConfigError, WeightsNotFound
from traction.weights import load_state_strict

from .infer import INFER_LEN, OVERLAP, model_input_size, preprocess, window_frame_indices
from .model import VideoDepthAnything

# name -> (encoder, metric, official checkpoint file name)
VARIANTS = {
    "vda-s": ("vits", False, "video_depth_anything_vits.pth"),
    "vda-b": ("vitb", False, "video_depth_anything_vitb.pth"),
    "vda-l": ("vitl", False, "video_depth_anything_vitl.pth"),
    "vda-s-metric": ("vits", True, "metric_video_depth_anything_vits.pth"),
    "vda-b-metric": ("vitb", True, "metric_video_depth_anything_vitb.pth"),
    "vda-l-metric": ("vitl", True, "metric_video_depth_anything_vitl.pth"),
}

__all__ = ["VARIANTS", "VideoDepthAnything", "load", "read_state_dict", "build", "INFER_LEN", "OVERLAP",
           "model_input_size", "preprocess", "window_frame_indices"]


def build(name: str, **kw) -> VideoDepthAnything:
    """An uninitialised-weights model of variant ``name`` (random init; for tests and export)."""
    if name not in VARIANTS:
        raise ConfigError(f"depth model {name!r}: expected one of {sorted(VARIANTS)}")
    encoder, metric, _ = VARIANTS[name]
    return VideoDepthAnything(encoder, metric=metric, **kw)


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """Tensors of an official ``.pth`` (read with ``weights_only=True``: no arbitrary pickles) or a
    ``.safetensors`` file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsNotFound(f"weights {path!r}: no such file")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            sd = load_file(path)
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any read failure is a bad checkpoint for the user
        raise CheckpointError(f"weights {path!r}: unreadable ({type(e).__name__}: {e})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"weights {path!r}: not a state dict of tensors")
    return sd


def load(name: str, weights=None, device="cpu", dtype=None, state_dict=None, weights_dir=None,
         **kw) -> VideoDepthAnything:
    """Video Depth Anything ``name`` (see ``VARIANTS``) with official weights, in eval mode.

    Args:
        weights: path to the official ``.pth`` (or a ``.safetensors``); None asks
            ``traction.weights.resolve(name, weights_dir=...)``.
        device: where the model runs.
        dtype: None/float32, or float16/bfloat16 for autocast in ``predict``.
        state_dict: tensors to load instead of reading ``weights``.
        **kw: ``attention`` ("sdpa" | "math"), ``encoder_chunk``, ``head_chunk``.
    Raises:
        WeightsNotFound, CheckpointError (unreadable file; missing / unexpected keys or shapes).
    """
    if name not in VARIANTS:
        raise ConfigError(f"depth model {name!r}: expected one of {sorted(VARIANTS)}")
    if state_dict is not None:
        source = "state_dict"
    else:
        if weights is None:
            try:
                from traction.weights import resolve
            except ImportError:
                raise WeightsNotFound(f"depth model {name!r}: no weights= path given and "
                                      f"traction.weights is unavailable") from None
            weights = resolve(name, weights_dir=weights_dir)
        source = repr(os.fspath(weights))
        state_dict = read_state_dict(weights)
    # Build on the meta device and adopt the checkpoint tensors: no time spent on random init,
    # no second copy of the weights.
    with torch.device("meta"):
        model = build(name, dtype=dtype, **kw)
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    load_state_strict(model, state_dict, f"weights {source}", hint=f"expected {name}", assign=True)
    return model.to(device).eval().requires_grad_(False)
