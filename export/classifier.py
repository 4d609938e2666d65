"""The trajectory classifier as ONNX (checked with onnxruntime), an AOTInductor package, or a
TensorRT engine built from the ONNX (fp16; needs TensorRT and a CUDA GPU).

Inputs of every artifact: ``x`` (B, N, T, 4) float32 normalized trajectories and ``padding_mask``
(B, N) bool (True = padding); output ``logits`` (B, num_classes). B and N are dynamic in ONNX.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Dict

import numpy as np
import torch

from traction.errors import TractionError


class _Classifier(torch.nn.Module):
    """Fixed signature wrapper (positional inputs, one output)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        return self.model(x, padding_mask)


OPSET = 17


def _example(model, batch: int, points: int):
    T = model.cfg.num_frames
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, points, T, 4, generator=g)
    pm = torch.zeros(batch, points, dtype=torch.bool)
    return x, pm


def export_onnx(model, path: Path, *, batch: int = 1, points: int = 2500, opset: int = OPSET) -> Path:
    model = _Classifier(model.eval())
    x, pm = _example(model.model, batch, points)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
        torch.onnx.export(model, (x, pm), str(path), input_names=["x", "padding_mask"], output_names=["logits"],
                          dynamic_axes={"x": {0: "B", 1: "N"}, "padding_mask": {0: "B", 1: "N"},
                                        "logits": {0: "B"}},
                          opset_version=opset, dynamo=False)
    return path


def check_onnx(model, path: Path, *, batch: int = 2, points: int = 300, atol: float = 1e-4) -> Dict[str, float]:
    """Run the ONNX file in onnxruntime (CPU) and PyTorch on the same random padded batch."""
    import onnxruntime as ort

    g = torch.Generator().manual_seed(1)
    T = model.cfg.num_frames
    x = torch.rand(batch, points, T, 4, generator=g)
    pm = torch.zeros(batch, points, dtype=torch.bool)
    pm[-1, points // 2:] = True  # one clip with fewer trajectories
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x.numpy(), "padding_mask": pm.numpy()})[0]
    with torch.no_grad():
        ref = model.eval()(x, pm).numpy()
    err = float(np.abs(got - ref).max())
    if not err <= atol:
        raise TractionError(f"{path}: onnxruntime differs from PyTorch by {err:.2e} (> {atol:.0e})")
    return {"max_abs_diff": err}


def export_aoti(model, path: Path, *, batch: int = 1, points: int = 2500) -> Path:
    """AOTInductor package (.pt2) with dynamic B and N; load with torch._inductor.aoti_load_package."""
    from torch.export import Dim, export

    model = _Classifier(model.eval())
    x, pm = _example(model.model, max(batch, 2), points)
    B, N = Dim("B", min=1, max=1024), Dim("N", min=2, max=16384)
    ep = export(model, (x, pm), dynamic_shapes={"x": {0: B, 1: N}, "padding_mask": {0: B, 1: N}})
    return Path(torch._inductor.aoti_compile_and_package(ep, package_path=str(path)))


def export_tensorrt(onnx_path: Path, path: Path, *, fp16: bool = True, max_points: int = 4096,
                    max_batch: int = 64) -> Path:
    try:
        import tensorrt as trt
    except ImportError:
        raise TractionError("TensorRT export needs the `tensorrt` package and a CUDA GPU; "
                            "export to ONNX and build the engine on the target machine") from None
    if not torch.cuda.is_available():
        raise TractionError("TensorRT export needs a CUDA GPU")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        raise TractionError(f"{onnx_path}: TensorRT cannot parse it: {parser.get_error(0)}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    T = network.get_input(0).shape[2]
    profile.set_shape("x", (1, 2, T, 4), (1, 2500, T, 4), (max_batch, max_points, T, 4))
    profile.set_shape("padding_mask", (1, 2), (1, 2500), (max_batch, max_points))
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise TractionError("TensorRT failed to build the engine (see its log above)")
    Path(path).write_bytes(bytes(engine))
    return Path(path)


def export_classifier(checkpoint: str, fmt: str, out: str, *, points: int = 2500, batch: int = 1) -> Path:
    from traction.model.checkpoint import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    if meta.get("kind") != "classifier":
        raise TractionError(f"{checkpoint}: only classifier checkpoints can be exported (this one is "
                            f"{meta.get('kind')!r})")
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        export_onnx(model, out_path, batch=batch, points=points)
        check_onnx(model, out_path)
        return out_path
    if fmt == "aoti":
        return export_aoti(model, out_path, batch=batch, points=points)
    if fmt == "tensorrt":
        onnx_path = out_path.with_suffix(".onnx")
        export_onnx(model, onnx_path, batch=batch, points=points)
        return export_tensorrt(onnx_path, out_path)
    raise TractionError(f"unknown export format {fmt!r} (onnx, aoti, tensorrt)")
