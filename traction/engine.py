"""``traction.Engine``: video (file or live frames) -> trajectories -> action prediction.

    engine = traction.Engine(checkpoint="run/finetune/best", tracker="lk", depth="none", device="cpu")
    traj = engine.extract("clip.mp4")               # traction.Trajectories
    preds = engine.classify("clip.mp4", top_k=5)    # [{"label", "probability", "index"}, ...]
    engine = traction.Engine(..., backend="onnx")   # tracker, depth and classifier networks in onnxruntime
    for p in engine.classify_stream(frames):        # frames: iterable of HxWx3 uint8 arrays
        ...                                         # one StreamPrediction per stride of frames

Streaming keeps a ring buffer of the last ``window`` frames (bounded memory whatever the stream's
length); every ``stride`` new frames it tracks the window, lifts it, and classifies it.
"""
from __future__ import annotations

import collections
import dataclasses
import time
from typing import Dict, Iterable, Iterator, List, Optional, Union

import numpy as np
import torch

from traction.errors import TractionError, VideoError
from traction.trajectories import Trajectories


@dataclasses.dataclass
class StreamPrediction:
    frame_index: int                 # index (in the stream) of the newest frame in the window
    window: int                      # frames in the classified window
    predictions: List[Dict]          # top-k [{"label", "probability", "index"}]
    latency_ms: float                # extraction + classification time for this window

    @property
    def label(self) -> str:
        return self.predictions[0]["label"]


class Engine:
    def __init__(self, checkpoint: str, *, tracker: str = "lk", depth: str = "none", device: str = "cpu",
                 weights_dir: Optional[str] = None, points: int = 2500, sampling: str = "all",
                 max_side: Optional[int] = None, seed: int = 0, backend: str = "torch",
                 depth_input_size: int = 518):
        from traction.extract.pipeline import ExtractConfig, load_models
        from traction.model.checkpoint import load_checkpoint
        from traction.train.loop import resolve_device

        self.device = resolve_device(device)
        model, meta = load_checkpoint(checkpoint, device=self.device)
        if meta.get("kind") != "classifier":
            raise TractionError(f"{checkpoint}: the Engine needs a fine-tuned classifier checkpoint "
                                f"(this one is {meta.get('kind')!r})")
        self.model = model.eval()
        self.labels: List[str] = list(meta.get("labels") or [])
        self.num_frames = model.cfg.num_frames
        self.use_depth = model.cfg.use_depth and depth != "none"
        # One backend for every network (tracker, depth, classifier); see traction.runtime.
        self.config = ExtractConfig(tracker=tracker, depth=depth, weights_dir=weights_dir, points=points,
                                    frames=self.num_frames, sampling=sampling, max_side=max_side,
                                    device=str(self.device), seed=seed, backend=backend,
                                    depth_input_size=depth_input_size).validate()
        self.backend = backend
        self._network = None
        if backend != "torch":
            from traction.runtime import classifier_network

            self._network = classifier_network(model, backend, self.device, points=points)
        self.tracker, self.depth_model = load_models(self.config)

    # ------------------------------------------------------------------ extraction
    def extract(self, video: Union[str, np.ndarray], *, fps: float = 0.0, clip_id: Optional[str] = None
                ) -> Trajectories:
        from traction.extract.pipeline import extract_clip

        cfg = self.config
        return extract_clip(video, tracker=self.tracker, depth_model=self.depth_model, points=cfg.points,
                            frames=cfg.frames, sampling=cfg.sampling_policy(), max_side=cfg.max_side,
                            seed=cfg.seed, clip_id=clip_id or "stream", decoder=cfg.decoder,
                            device=cfg.device, fps=fps, depth_input_size=cfg.depth_input_size)

    # ------------------------------------------------------------------ classification
    @torch.no_grad()
    def logits(self, traj: Trajectories) -> torch.Tensor:
        if traj.num_frames != self.num_frames:
            traj = traj.resample(self.num_frames)
        x = torch.from_numpy(traj.to_model_input(use_depth=self.use_depth))[None]  # (1, N, T, 4)
        if self._network is not None:
            pm = torch.zeros(x.shape[:2], dtype=torch.bool)                         # (1, N) no padding
            return self._network(x=x, padding_mask=pm)[0].float().cpu()
        return self.model(x.to(self.device)).float().cpu()

    def classify_trajectories(self, traj: Trajectories, top_k: int = 5) -> List[Dict]:
        probs = self.logits(traj).softmax(-1)[0]
        k = min(top_k, probs.numel())
        top = probs.topk(k)
        return [{"label": self.labels[i] if i < len(self.labels) else str(i), "probability": float(p), "index": int(i)}
                for p, i in zip(top.values.tolist(), top.indices.tolist())]

    def classify(self, video: Union[str, np.ndarray], top_k: int = 5, *, fps: float = 0.0) -> List[Dict]:
        return self.classify_trajectories(self.extract(video, fps=fps), top_k)

    def classify_stream(self, frames: Iterable[np.ndarray], *, window: Optional[int] = None, stride: int = 8,
                        top_k: int = 5, fps: float = 30.0) -> Iterator[StreamPrediction]:
        """One prediction every ``stride`` frames over the last ``window`` frames (default: T of the
        model); the first once the window is full. Memory is bounded by the window."""
        window = window or self.num_frames
        if window < 2 or stride < 1:
            raise TractionError(f"classify_stream: window must be >= 2 and stride >= 1 (got {window}, {stride})")
        buf: collections.deque = collections.deque(maxlen=window)
        shape = None
        since = 0
        for i, frame in enumerate(frames):
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise VideoError(f"stream frame {i}: expected an HxWx3 uint8 array, got "
                                 f"{frame.dtype} {tuple(frame.shape)}")
            if shape is None:
                shape = frame.shape
            elif frame.shape != shape:
                raise VideoError(f"stream frame {i}: size {frame.shape[:2]} differs from the first frame's {shape[:2]}")
            buf.append(frame)
            since += 1
            if len(buf) == window and since >= stride:
                since = 0
                t0 = time.perf_counter()
                clip = np.stack(buf)                                              # (window, H, W, 3)
                preds = self.classify_trajectories(self.extract(clip, fps=fps), top_k)
                yield StreamPrediction(frame_index=i, window=window, predictions=preds,
                                       latency_ms=(time.perf_counter() - t0) * 1e3)
