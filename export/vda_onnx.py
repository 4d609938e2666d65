"""Video Depth Anything network as ONNX, checked against PyTorch with onnxruntime (CPU).

The graph is the raw network ``forward``: input ``frames`` (B, T, 3, h, w) float32, normalised as
``traction.depth.vda.preprocess`` does; output ``depth`` (B, T, h, w). T, h and w are fixed at export
(the position embedding is resampled for one patch grid, the temporal embedding is sliced to T);
B is dynamic, so several windows or clips run in one call. Window scheduling and stitching stay in
Python (``traction.depth.vda.infer``), which is cheap next to the network.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from traction.errors import ConfigError, TractionError

OPSET = 17


def _example(T: int, h: int, w: int, batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, T, 3, h, w, generator=g)


def export_vda(model, path, T: int = 32, h: int = 518, w: int = 518, *, batch: int = 1, opset: int = OPSET) -> Path:
    """Write ``model`` (a ``VideoDepthAnything``) to ``path`` as ONNX for T frames of h x w."""
    if h % 14 or w % 14 or not 1 <= T <= 32:
        raise ConfigError(f"export size T={T}, {h}x{w}: need 1 <= T <= 32 and h, w multiples of 14")
    path = Path(path)
    model = model.eval()
    x = _example(T, h, w, batch, seed=0).to(model.device)
    # One chunk per call: the exported graph should not unroll Python loops over frames.
    saved = model.encoder_chunk, model.head_chunk
    model.encoder_chunk, model.head_chunk = 0, 0
    with torch.no_grad():
        model.pretrained.fixed_pos = model.pretrained.position_embedding(h // 14, w // 14)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
            torch.onnx.export(model, (x,), str(path), input_names=["frames"], output_names=["depth"],
                              dynamic_axes={"frames": {0: "B"}, "depth": {0: "B"}},
                              opset_version=opset, dynamo=False)
    finally:
        model.encoder_chunk, model.head_chunk = saved
        model.pretrained.fixed_pos = None
    return path


def check_vda_onnx(model, path, *, batch: int = 2, atol: float = 1e-3, rtol: float = 1e-4) -> dict[str, float]:
    """Run the ONNX file in onnxruntime (CPU) and ``model`` in PyTorch on the same random input."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    _, T, _, h, w = sess.get_inputs()[0].shape
    x = _example(T, h, w, batch, seed=1)
    got = sess.run(None, {"frames": x.numpy()})[0]
    with torch.no_grad():
        ref = model.eval()(x.to(model.device)).float().cpu().numpy()
    err = np.abs(got - ref)
    if not np.all(err <= atol + rtol * np.abs(ref)):
        raise TractionError(f"{path}: onnxruntime differs from PyTorch by up to {err.max():.2e} "
                            f"(> {atol:.0e} + {rtol:.0e} * |depth|)")
    return {"max_abs_diff": float(err.max()), "max_depth": float(np.abs(ref).max())}
