"""Monocular video depth for 2.5D trajectories (paper §3; design.md "Extraction").

    model = load_depth("vda-s", weights="video_depth_anything_vits.pth")   # or "none" -> None
    depth = model.predict(video, input_size=518)                          # (T, H, W) float32
    model = load_depth("vda-s", backend="onnx")     # network in onnxruntime (traction.runtime)

Video Depth Anything imports lazily, so ``import traction.depth`` stays light.
"""
from __future__ import annotations

import importlib
from typing import Any, Optional

from traction.depth.base import DepthModel
from traction.errors import ConfigError, TractionError

VDA_MODELS = ("vda-s", "vda-b", "vda-l", "vda-s-metric", "vda-b-metric", "vda-l-metric")
DEPTH_MODELS = ("none",) + VDA_MODELS


def load_depth(name: str, *, weights: Optional[str] = None, device: str = "cpu", backend: str = "torch",
               **kw: Any) -> Optional[DepthModel]:
    """The depth model registered as ``name``; "none" returns None (2D trajectories).

    ``weights`` is the checkpoint path (None: the model looks in its weights cache); ``backend``
    ("torch", "onnx", "tensorrt") runs the network exported (``traction.runtime``); ``kw`` go to
    the model's loader (e.g. dtype, attention).
    """
    if backend != "torch":                    # keep the default path free of the runtime's imports
        from traction.runtime import check_backend

        check_backend(backend)
    if name == "none":
        return None
    if name in VDA_MODELS and backend != "torch":
        from traction import runtime

        runtime.require_backend(backend, device)         # fail before reading the weights
        # The torch network is only traced for export, so it is loaded on the CPU.
        model = load_depth(name, weights=weights, device="cpu", **kw)
        return runtime.exported_depth(model, name, backend, device=device)
    if name in VDA_MODELS:
        try:
            module = importlib.import_module("traction.depth.vda")
        except ImportError as err:
            raise TractionError(f"depth model {name!r} is unavailable: cannot import traction.depth.vda ({err})") from None
        if not hasattr(module, "load"):
            raise TractionError(f"depth model {name!r} is unavailable: traction.depth.vda has no load()")
        return module.load(name, weights=weights, device=device, **kw)
    raise ConfigError(f"depth model {name!r} is unknown; known depth models: {', '.join(DEPTH_MODELS)}")


__all__ = ["DEPTH_MODELS", "DepthModel", "VDA_MODELS", "load_depth"]
