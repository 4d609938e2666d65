"""Where the networks run: PyTorch, ONNX Runtime or TensorRT (``--backend torch|onnx|tensorrt``).

    tracker = load_tracker("cotracker3", backend="onnx")      # network in onnxruntime
    depth = load_depth("vda-s", backend="tensorrt", device="cuda")

Only the NETWORK changes backend. Everything around it (CoTracker's resize, support grid and
``finish_offline``; VDA's preprocessing, 32-frame windows and stitching) stays the PyTorch code,
so a backend changes results only within the export's numerical error.

Exported artifacts are cached under ``$TRACTION_CACHE`` (default ``~/.cache/traction``):
``onnx/<kind>-<key>.onnx`` and ``tensorrt/<kind>-<key>.engine``, where the key hashes the weights
(a checksum of the state dict), the input shape and the exporter versions. A network is exported
once per (weights, shape); later runs and other workers reuse the file. The ONNX graphs have fixed
shapes (CoTracker's exporter cannot make T and N dynamic), so CoTracker gets one file per (T, N)
and VDA one per network input size (h, w) with a dynamic batch of windows.
"""
from __future__ import annotations

import collections
import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from traction.errors import ConfigError, TractionError
from traction.tracking.cotracker3.model import MODEL_HW
from traction.tracking.cotracker3.predictor import CoTracker3Tracker
from traction.weights import user_cache_dir

BACKENDS = ("torch", "onnx", "tensorrt")
CACHE_FORMAT = 1                 # bump when an exporter changes what it writes
VDA_TRT_MAX_BATCH = 8            # windows per TensorRT call (the engine's profile maximum)
MAX_OPEN_NETWORKS = 4            # CoTracker shapes kept open at once (one session per (T, N))


def check_backend(backend: str, flag: str = "backend") -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"{flag} {backend!r}: unknown backend (choose from {', '.join(BACKENDS)})")
    return backend


# ----------------------------------------------------------------------------- cache

def cache_root() -> Path:
    """``$TRACTION_CACHE``, else ``$XDG_CACHE_HOME/traction``, else ``~/.cache/traction``."""
    if os.environ.get("TRACTION_CACHE"):
        return Path(os.environ["TRACTION_CACHE"])
    return user_cache_dir()


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state dict (names, dtypes, shapes and bytes): the weights' identity."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def artifact_key(**fields: Any) -> str:
    """A short hash of everything that decides an exported file's content."""
    fields = {"format": CACHE_FORMAT, "torch": torch.__version__, **fields}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cached_file(subdir: str, name: str, build: Callable[[Path], Any]) -> Path:
    """``cache_root()/subdir/name``, built by ``build(tmp_path)`` when absent.

    The file appears atomically (written under a temporary name, then renamed), so parallel
    workers never read half a file; two that race both build and the last rename wins."""
    folder = cache_root() / subdir
    path = folder / name
    if path.is_file():
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TractionError(f"cache {folder}: cannot create it ({e.strerror or e}); set TRACTION_CACHE") from None
    tmp = folder / f".{path.stem}.{os.getpid()}.tmp{path.suffix}"
    try:
        build(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# ----------------------------------------------------------------------------- sessions

def require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise TractionError("backend 'onnx' needs the onnxruntime package "
                            "(pip install 'traction[onnx]'); or use --backend torch") from None
    return onnxruntime


def require_tensorrt(device: Any = "cuda") -> Any:
    """The ``tensorrt`` module; one TractionError line naming whatever is missing otherwise."""
    missing = []
    try:
        import tensorrt as trt
    except ImportError:
        trt = None
        missing.append("the `tensorrt` Python package")
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU visible to PyTorch")
    if missing:
        raise TractionError(f"backend 'tensorrt' needs TensorRT and a CUDA GPU; missing here: "
                            f"{' and '.join(missing)} (use --backend onnx or torch)")
    if torch.device(device).type != "cuda":
        raise ConfigError(f"backend 'tensorrt' runs on the GPU: pass --device cuda (got {device!r})")
    return trt


class OnnxNetwork:
    """An ONNX file in onnxruntime: ``net(**inputs)`` -> list of output tensors on ``device``.

    CUDAExecutionProvider where the device is a GPU and onnxruntime has it, else CPU with as many
    threads as torch uses (bulk extraction sets one thread per worker)."""

    def __init__(self, path: os.PathLike, device: Any = "cpu"):
        ort = require_onnxruntime()
        self.path = Path(path)
        self.device = torch.device(device)
        providers: List[Any] = ["CPUExecutionProvider"]
        if self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": self.device.index or 0}))
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, **inputs: torch.Tensor) -> List[torch.Tensor]:
        feed = {k: v.detach().cpu().numpy() for k, v in inputs.items()}
        return [torch.from_numpy(np.asarray(o)).to(self.device) for o in self.session.run(None, feed)]


def build_tensorrt_engine(onnx_path: os.PathLike, engine_path: os.PathLike, *, fp16: bool = True,
                          profile: Optional[Dict[str, Tuple[Sequence[int], Sequence[int], Sequence[int]]]] = None
                          ) -> Path:
    """Build a TensorRT engine from an ONNX file; ``profile`` gives (min, opt, max) shapes of the
    inputs with dynamic axes (fixed-shape graphs need none)."""
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TractionError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if profile:
        p = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile.items():
            p.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
        config.add_optimization_profile(p)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise TractionError(f"{onnx_path}: TensorRT failed to build an engine (see its log above)")
    Path(engine_path).write_bytes(bytes(engine))
    return Path(engine_path)


class TensorRTNetwork:
    """A serialized TensorRT engine: ``net(**inputs)`` -> list of output tensors on the GPU.

    Inputs and outputs stay torch CUDA tensors (no host copies); the engine runs on torch's
    current stream, so later torch ops are ordered after it."""

    def __init__(self, path: os.PathLike, device: Any = "cuda"):
        trt = require_tensorrt(device)
        self.path = Path(path)
        self.device = torch.device(device)
        if self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        with torch.cuda.device(self.device):
            self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise TractionError(f"{self.path}: TensorRT cannot load this engine (built by another version "
                                    f"or GPU?); delete it to rebuild")
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [n for n in names if not is_input[n]]
        self.dtypes = {n: _TRT_TO_TORCH[str(self.engine.get_tensor_dtype(n))] for n in names}

    def __call__(self, **inputs: torch.Tensor) -> List[torch.Tensor]:
        with torch.cuda.device(self.device):
            keep = []                                 # inputs must outlive the launch
            for name in self.input_names:
                t = inputs[name].to(self.device, self.dtypes[name]).contiguous()
                keep.append(t)
                self.context.set_input_shape(name, tuple(t.shape))
                self.context.set_tensor_address(name, t.data_ptr())
            outputs = []
            for name in self.output_names:
                out = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=self.dtypes[name],
                                  device=self.device)
                self.context.set_tensor_address(name, out.data_ptr())
                outputs.append(out)
            stream = torch.cuda.current_stream(self.device)
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise TractionError(f"{self.path}: TensorRT execution failed")
        return [o.float() for o in outputs]


_TRT_TO_TORCH = {"DataType.FLOAT": torch.float32, "DataType.HALF": torch.float16, "DataType.INT32": torch.int32,
                 "DataType.INT64": torch.int64, "DataType.BOOL": torch.bool, "DataType.INT8": torch.int8,
                 "DataType.BF16": torch.bfloat16}


def open_network(onnx_path: Path, backend: str, device: Any, kind: str, key: str,
                 profile: Optional[Dict[str, Tuple[Sequence[int], Sequence[int], Sequence[int]]]] = None) -> Any:
    """An ``OnnxNetwork`` on ``onnx_path``, or (tensorrt) a cached fp16 engine built from it."""
    if backend == "onnx":
        return OnnxNetwork(onnx_path, device)
    trt = require_tensorrt(device)
    gpu = torch.cuda.get_device_name(torch.device(device))
    engine_key = artifact_key(onnx=key, tensorrt=trt.__version__, gpu=gpu, profile=profile, fp16=True)
    path = cached_file("tensorrt", f"{kind}-{engine_key}.engine",
                       lambda tmp: build_tensorrt_engine(onnx_path, tmp, fp16=True, profile=profile))
    return TensorRTNetwork(path, device)


def require_backend(backend: str, device: Any) -> None:
    """Fail before any weights are read when the backend cannot run here."""
    if backend == "onnx":
        require_onnxruntime()
    elif backend == "tensorrt":
        require_tensorrt(device)


# ----------------------------------------------------------------------------- CoTracker3

class ExportedCoTracker3(CoTracker3Tracker):
    """CoTracker3 offline whose network call runs as ONNX / TensorRT; resizing, the support grid
    and ``finish_offline`` are the torch predictor's (predictor.py), unchanged."""

    def __init__(self, tracker: CoTracker3Tracker, backend: str, device: Any = "cpu"):
        # The torch network stays on the CPU: it is only traced for export.
        super().__init__(tracker.model, mode="offline", device="cpu", iters=tracker.iters,
                         support_grid=tracker.support_grid, backward_tracking=tracker.backward_tracking,
                         vis_threshold=tracker.vis_threshold)
        self.device = torch.device(device)          # where frames are resized and outputs post-processed
        self.backend = backend
        self.digest = weights_digest(self.model)
        self.networks: "collections.OrderedDict[Tuple[int, int], Any]" = collections.OrderedDict()

    def network(self, T: int, N: int) -> Any:
        """The exported network for clips of T frames and N queries (an LRU of open sessions)."""
        if (T, N) in self.networks:
            self.networks.move_to_end((T, N))
            return self.networks[(T, N)]
        from traction.export.cotracker3_onnx import OPSET, export_cotracker3

        H, W = MODEL_HW
        key = artifact_key(kind="cotracker3-offline", weights=self.digest, T=T, N=N, H=H, W=W,
                           iters=self.iters, opset=OPSET)
        path = cached_file("onnx", f"cotracker3-{key}.onnx",
                           lambda tmp: export_cotracker3(self, tmp, T=T, N=N, H=H, W=W))
        self.networks[(T, N)] = open_network(path, self.backend, self.device, "cotracker3", key)
        while len(self.networks) > MAX_OPEN_NETWORKS:
            self.networks.popitem(last=False)
        return self.networks[(T, N)]

    def run_network(self, video: torch.Tensor, queries: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """video (B, T, 3, 384, 512), queries (B, N, 3) model px -> tracks (B, T, N, 2) model px,
        vis and conf probabilities (B, T, N): ``CoTracker3.forward``, one clip per call."""
        net = self.network(video.shape[1], queries.shape[1])
        outs = [net(video=video[b:b + 1].float(), queries=queries[b:b + 1].float())
                for b in range(video.shape[0])]
        return tuple(torch.cat(parts).to(self.device) for parts in zip(*outs))

    def _predict_offline(self, video, queries, backward: bool) -> dict:
        B, T, _, H, W = video.shape
        video = self._resize(video)                                         # (B, T, 3, 384, 512)
        queries_all = self._with_support_grid(queries)                      # (B, N+G, 3)
        tracks, vis, conf = self.run_network(video, queries_all)
        out = {"model_queries": queries_all, "raw_tracks": tracks, "raw_vis": vis, "raw_conf": conf}
        bwd = None
        if backward:
            inv_queries = queries_all.clone()
            inv_queries[..., 0] = T - 1 - inv_queries[..., 0]
            bwd = self.run_network(video.flip(1), inv_queries)
            out.update(bwd_model_queries=inv_queries, bwd_raw_tracks=bwd[0],
                       bwd_raw_vis=bwd[1], bwd_raw_conf=bwd[2])
        out.update(self.finish_offline(queries_all, queries.shape[1], (tracks, vis), bwd, (H, W)))
        return out


def exported_tracker(tracker: CoTracker3Tracker, backend: str, device: Any = None) -> CoTracker3Tracker:
    """``tracker`` (a torch ``CoTracker3Tracker``) with its network run by ``backend`` on ``device``
    (default: the tracker's)."""
    if check_backend(backend) == "torch":
        return tracker
    if tracker.mode != "offline":
        raise ConfigError(f"cotracker3 backend {backend!r}: only the offline network is exported; "
                          f"use mode='offline' or backend 'torch'")
    if tracker.autocast_dtype is not None:
        raise ConfigError(f"cotracker3 dtype={tracker.autocast_dtype}: autocast applies to backend 'torch' only "
                          f"(the tensorrt engine is fp16 already)")
    device = tracker.device if device is None else device
    require_backend(backend, device)
    return ExportedCoTracker3(tracker, backend, device)


# ----------------------------------------------------------------------------- Video Depth Anything

class ExportedVDA:
    """Video Depth Anything whose network (one 32-frame window batch per call) runs as ONNX /
    TensorRT; ``predict`` is the torch windowing and stitching (``traction.depth.vda.infer``)."""

    def __init__(self, model: torch.nn.Module, name: str, backend: str, device: Any = "cpu"):
        self.name = name
        self.backend = check_backend(backend)
        self.model = model.cpu().eval()               # kept for export only
        self.metric = bool(model.metric)
        self.autocast_dtype = None                    # the infer loop's autocast stays off
        self.device = torch.device(device)
        self.digest = weights_digest(self.model)
        self.networks: Dict[Tuple[int, int, int], Any] = {}

    def network(self, T: int, h: int, w: int) -> Any:
        if (T, h, w) not in self.networks:
            from traction.export.vda_onnx import OPSET, export_vda

            key = artifact_key(kind=self.name, weights=self.digest, T=T, h=h, w=w, opset=OPSET)
            path = cached_file("onnx", f"{self.name}-{key}.onnx",
                               lambda tmp: export_vda(self.model, tmp, T=T, h=h, w=w))
            profile = {"frames": ((1, T, 3, h, w), (1, T, 3, h, w), (VDA_TRT_MAX_BATCH, T, 3, h, w))}
            self.networks[(T, h, w)] = open_network(path, self.backend, self.device, self.name, key,
                                                    profile=profile if self.backend == "tensorrt" else None)
        return self.networks[(T, h, w)]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, 3, h, w) normalised frames -> (B, T, h, w) depth, as ``VideoDepthAnything.forward``."""
        B, T, _, h, w = x.shape
        net = self.network(T, h, w)
        step = VDA_TRT_MAX_BATCH if self.backend == "tensorrt" else B
        parts = [net(frames=x[i:i + step].float())[0] for i in range(0, B, step)]
        return torch.cat(parts).to(self.device)                             # (B, T, h, w)

    def predict(self, video: np.ndarray, input_size: int = 518, fps: Optional[float] = None,
                windows_per_batch: int = 1, progress: bool = False) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB -> (T, H, W) float32 depth (see ``VideoDepthAnything.predict``)."""
        from traction.depth.vda.infer import predict_video

        return predict_video(self, video, input_size=input_size, windows_per_batch=windows_per_batch,
                             progress=progress)

    def predict_many(self, videos, input_size: int = 518, windows_per_batch: int = 8,
                     progress: bool = False) -> List[np.ndarray]:
        from traction.depth.vda.infer import predict_videos

        return predict_videos(self, videos, input_size=input_size, windows_per_batch=windows_per_batch,
                              progress=progress)


def exported_depth(model: Any, name: str, backend: str, device: Any = "cpu") -> Any:
    """``model`` (a torch ``VideoDepthAnything``) with its network run by ``backend``."""
    if check_backend(backend) == "torch":
        return model
    if model.autocast_dtype is not None:
        raise ConfigError(f"depth model {name!r} dtype={model.autocast_dtype}: autocast applies to backend "
                          f"'torch' only (the tensorrt engine is fp16 already)")
    require_backend(backend, device)
    return ExportedVDA(model, name, backend, device)


# ----------------------------------------------------------------------------- classifier

def classifier_network(model: torch.nn.Module, backend: str, device: Any = "cpu", points: int = 2500) -> Any:
    """The trajectory classifier as an ONNX / TensorRT network with inputs ``x`` (B, N, T, 4) and
    ``padding_mask`` (B, N); None for backend 'torch'."""
    if check_backend(backend) == "torch":
        return None
    require_backend(backend, device)
    from traction.export.classifier import OPSET, export_onnx

    cpu_model = copy.deepcopy(model).cpu().eval()   # traced on the CPU, wherever the model lives
    key = artifact_key(kind="classifier", weights=weights_digest(cpu_model), T=model.cfg.num_frames, opset=OPSET)
    path = cached_file("onnx", f"classifier-{key}.onnx",
                       lambda tmp: export_onnx(cpu_model, tmp, points=min(points, 256)))
    T = model.cfg.num_frames
    top = max(points, 4096)
    profile = {"x": ((1, 2, T, 4), (1, points, T, 4), (64, top, T, 4)),
               "padding_mask": ((1, 2), (1, points), (64, top))}
    return open_network(path, backend, device, "classifier", key,
                        profile=profile if backend == "tensorrt" else None)


__all__ = ["BACKENDS", "ExportedCoTracker3", "ExportedVDA", "OnnxNetwork", "TensorRTNetwork",
           "build_tensorrt_engine", "cache_root", "cached_file", "check_backend", "classifier_network",
           "exported_depth", "exported_tracker", "require_backend", "require_onnxruntime", "require_tensorrt",
           "weights_digest"]
