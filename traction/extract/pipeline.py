"""One clip: decode -> sample queries -> track -> depth -> lift -> resample to T (paper §3,
"Trajectory extraction"; appendix E).

``extract_clip`` is the whole computation for one video; ``Extractor`` holds the models (loaded
once per worker) and turns a ``Job`` into a ``ClipResult`` that the bulk runners write or log.

Determinism: the query seed of a clip is a hash of the global seed and the clip id, so a clip's
trajectories do not depend on which worker ran it or in what order (a resumed extraction writes
exactly what an uninterrupted one would have).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import time
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import numpy as np

from traction.errors import ConfigError, TractionError, VideoError
from traction.trajectories import Trajectories

TRACKERS = ("lk", "cotracker3")
DEPTH_MODELS = ("none", "vda-s", "vda-b", "vda-l")
SAMPLING_KINDS = ("all", "stride", "adaptive")
DECODERS = ("pyav", "dali", "auto")
BACKENDS = ("torch", "onnx", "tensorrt")   # = traction.runtime.BACKENDS (not imported: it loads torch)

# Below this many pixels per side a tracker has nothing to follow (LK's pyramid and CoTracker's
# stride-4 feature maps both collapse); such a clip is a bad input, not a silent blank record.
MIN_SIDE = 16

# The stage names of the error log (design.md "Errors"): where a clip failed.
STAGES = ("input", "decode", "track", "depth", "write")


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """Everything that decides what trajectories a clip gets (and so the store's identity)."""

    tracker: str = "lk"
    depth: str = "none"
    weights_dir: Optional[str] = None
    points: int = 2500
    frames: int = 32
    sampling: str = "all"          # all | stride | adaptive (appendix E)
    stride: int = 2
    max_stride: int = 20
    max_side: Optional[int] = None
    decoder: str = "pyav"
    device: str = "cpu"
    seed: int = 0
    backend: str = "torch"         # torch | onnx | tensorrt: where the tracker and depth networks run
    depth_input_size: int = 518    # short side of the depth network's input (VDA's input_size)

    def validate(self) -> "ExtractConfig":
        if self.tracker not in TRACKERS:
            raise ConfigError(f"--tracker {self.tracker!r}: unknown tracker (choose from {', '.join(TRACKERS)})")
        if self.depth not in DEPTH_MODELS:
            raise ConfigError(f"--depth {self.depth!r}: unknown depth model (choose from {', '.join(DEPTH_MODELS)})")
        if self.sampling not in SAMPLING_KINDS:
            raise ConfigError(f"--sampling {self.sampling!r}: unknown (choose from {', '.join(SAMPLING_KINDS)})")
        if self.decoder not in DECODERS:
            raise ConfigError(f"--decoder {self.decoder!r}: unknown (choose from {', '.join(DECODERS)})")
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend {self.backend!r}: unknown (choose from {', '.join(BACKENDS)})")
        if self.depth_input_size < 14:
            raise ConfigError(f"--depth-input-size {self.depth_input_size}: must be at least 14 (one ViT patch)")
        if self.points < 1:
            raise ConfigError(f"--points {self.points}: at least 1 trajectory per clip is needed")
        if self.frames < 2:
            raise ConfigError(f"--frames {self.frames}: at least 2 frames are needed for motion")
        if self.stride < 1 or self.max_stride < 1:
            raise ConfigError(f"--stride {self.stride}: strides must be >= 1")
        if self.max_side is not None and self.max_side < MIN_SIDE:
            raise ConfigError(f"--max-side {self.max_side}: frames smaller than {MIN_SIDE} px cannot be tracked")
        if self.weights_dir is not None and not os.path.isdir(self.weights_dir):
            raise ConfigError(f"--weights-dir {self.weights_dir}: no such directory")
        return self

    def store_meta(self) -> Dict[str, Any]:
        """The settings recorded once in the store header (store.json)."""
        return {"tracker": self.tracker, "depth_model": self.depth, "points": self.points,
                "frames": self.frames, "sampling": self.sampling, "stride": self.stride,
                "max_stride": self.max_stride, "max_side": self.max_side, "seed": self.seed,
                "depth_input_size": self.depth_input_size}

    def sampling_policy(self) -> Any:
        from traction.video import SamplingPolicy

        return SamplingPolicy(kind=self.sampling, num_frames=self.frames, stride=self.stride,
                              max_stride=self.max_stride)


@dataclasses.dataclass
class ClipResult:
    """What a worker sends back for one job: trajectories and meta, or where and why it failed."""

    clip_id: str
    path: str
    label: Optional[str]
    split: str
    trajectories: Optional[Trajectories] = None
    meta: Dict[str, Any] = dataclasses.field(default_factory=dict)
    stage: Optional[str] = None          # set on failure: one of STAGES
    reason: Optional[str] = None         # set on failure: one line

    @property
    def ok(self) -> bool:
        return self.trajectories is not None


def clip_seed(seed: int, clip_id: str) -> int:
    """A 63-bit query seed from the global seed and the clip id (independent of scheduling)."""
    digest = hashlib.sha256(f"{int(seed)}:{clip_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def one_line(exc: BaseException) -> str:
    """An exception as one log line: TractionErrors speak for themselves, others get their type."""
    text = " ".join(str(exc).split()) or "(no message)"
    if isinstance(exc, TractionError):
        return text
    kind = type(exc)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    return f"{name}: {text}"


@contextlib.contextmanager
def _stage(name: str, timings: Dict[str, float], tag: Optional[str] = None) -> Iterator[None]:
    """Time stage ``name``; tag an escaping exception with the log stage (``tag``, default ``name``)."""
    start = time.perf_counter()
    try:
        yield
    except BaseException as e:
        if not hasattr(e, "traction_stage"):
            try:
                e.traction_stage = tag or name  # type: ignore[attr-defined]
            except AttributeError:       # exceptions with __slots__ cannot be tagged
                pass
        raise
    finally:
        timings[f"{name}_s"] = timings.get(f"{name}_s", 0.0) + time.perf_counter() - start


def _numpy(x: Any) -> np.ndarray:
    """Model outputs may be torch tensors (any device) or arrays."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def check_frames(frames: np.ndarray, source: str) -> None:
    """VideoError for decoded frames no tracker can use (too few, too small, wrong layout).

    The decoder checks the source; this checks what it produced (after ``max_side`` resizing)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"{source}: frames must have shape (T, H, W, 3), got {tuple(frames.shape)}")
    t, h, w = frames.shape[:3]
    if t < 2:
        raise VideoError(f"{source}: decoded {t} frame(s); at least 2 are needed to track motion")
    if min(h, w) < MIN_SIDE:
        raise VideoError(f"{source}: frames of {w}x{h} px are too small to track "
                         f"(at least {MIN_SIDE} px per side)")


def extract_clip(path_or_frames: Union[str, os.PathLike, np.ndarray], *, tracker: Any, depth_model: Any,
                 points: int = 2500, frames: int = 32, sampling: Any = None,
                 max_side: Optional[int] = None, seed: int = 0, clip_id: Optional[str] = None,
                 decoder: str = "pyav", device: str = "cpu", fps: float = 0.0,
                 meta: Optional[Dict[str, Any]] = None, depth_input_size: int = 518) -> Trajectories:
    """Trajectories of one clip, resampled to ``frames`` samples in time.

    path_or_frames: a video file, or decoded frames (T, H, W, 3) uint8 RGB (sampled and resized
    like a file; ``fps`` gives their rate, default 30). ``seed`` is the global seed; the
    clip's own seed is ``clip_seed(seed, clip_id)`` (clip_id defaults to the file name).
    ``meta``, when given, is filled with the source, decoder, tracker, depth model, decoded
    size and frame count, the clip seed and the seconds spent per stage. ``depth_input_size`` is
    the depth model's ``input_size`` (short side of its network input).

    Raises TractionError subclasses (VideoError for unusable input); any exception leaving here
    carries ``.traction_stage`` in ("decode", "track", "depth") when it could be tagged.
    """
    from traction import ops, tracking
    from traction.video import decode, resolve_backend

    timings: Dict[str, float] = {}
    info: Dict[str, Any] = {} if meta is None else meta

    is_array = isinstance(path_or_frames, np.ndarray)
    source = "<array>" if is_array else os.fspath(path_or_frames)
    with _stage("decode", timings):
        video = decode(path_or_frames if is_array else source, backend=decoder, max_side=max_side,
                       sampling=sampling, device=device, fps=(fps or None) if is_array else None)
        video_frames = np.ascontiguousarray(_numpy(video.frames))                 # (T, H, W, 3) uint8
        check_frames(video_frames, source)
        frame_indices = _numpy(video.frame_indices).astype(np.float32)           # (T,)
        backend = "array" if is_array else resolve_backend(decoder, device)
    t_dec, h, w = video_frames.shape[:3]
    cid = clip_id if clip_id is not None else os.path.splitext(os.path.basename(source))[0]
    cseed = clip_seed(seed, cid)

    with _stage("track", timings):
        # Queries uniform over space and over ALL decoded frames (paper §3): points that enter
        # mid-clip get tracked too.
        queries = np.asarray(tracking.sample_queries(points, t_dec, h, w, cseed), dtype=np.float32)  # (N, 3)
        xy, vis = tracker.track(video_frames, queries)
        xy = _numpy(xy).astype(np.float32)                                     # (N, T_dec, 2)
        vis = _numpy(vis).astype(np.float32)                                   # (N, T_dec)
    depth = None
    if depth_model is not None:
        with _stage("depth", timings):
            depth_maps = _numpy(depth_model.predict(video_frames, input_size=depth_input_size))
            depth_maps = depth_maps.astype(np.float32)                         # (T_dec, Hd, Wd)
    # Lifting belongs to the depth stage of the error log; without depth it is the tracker's output.
    with _stage("lift", timings, tag="depth" if depth_model is not None else "track"):
        if depth_model is not None:
            depth = ops.lift_depth(depth_maps, xy, (h, w))                    # (N, T_dec)
        traj = Trajectories(xy=xy, vis=vis, depth=depth, queries=queries, height=h, width=w,
                            fps=float(video.fps), frame_indices=frame_indices)
        traj = traj.resample(frames)                                           # (N, frames, ...)

    info.update({
        "source": source, "decoder": backend, "tracker": getattr(tracker, "name", None),
        "depth_model": getattr(depth_model, "name", None) if depth_model is not None else "none",
        "original_size": [int(v) for v in video.original],
        "decoded_frames": int(t_dec), "decoded_size": [int(h), int(w)], "clip_seed": cseed,
        "timing": {k: round(v, 6) for k, v in timings.items()},
    })
    return traj


def load_models(config: ExtractConfig) -> Tuple[Any, Any]:
    """(tracker, depth model or None) for ``config``, loaded once per worker.

    Checkpoints are found by ``traction.weights`` (``--weights-dir``, then its cache, then a
    download from the published address), as the registries do for every caller. ``backend``
    picks where the networks run (``traction.runtime``); LK has none and ignores it."""
    from traction import tracking

    tracker = tracking.load_tracker(config.tracker, mode="offline", device=config.device,
                                    weights_dir=config.weights_dir, backend=config.backend)
    if config.depth == "none":  # 2D trajectories: no need to import the depth networks
        return tracker, None
    from traction import depth

    depth_model = depth.load_depth(config.depth, device=config.device, weights_dir=config.weights_dir,
                                   backend=config.backend)
    return tracker, depth_model


class Extractor:
    """Models loaded once; ``extractor(job)`` -> ``ClipResult`` that never raises for bad input."""

    def __init__(self, config: ExtractConfig) -> None:
        self.config = config.validate()
        self.tracker, self.depth_model = load_models(config)
        self.sampling = config.sampling_policy()

    def __call__(self, job: Any) -> ClipResult:
        cfg = self.config
        result = ClipResult(clip_id=job.clip_id, path=job.path, label=job.label, split=job.split)
        meta: Dict[str, Any] = {}
        try:
            result.trajectories = extract_clip(
                job.path, tracker=self.tracker, depth_model=self.depth_model, points=cfg.points,
                frames=cfg.frames, sampling=self.sampling, max_side=cfg.max_side, seed=cfg.seed,
                clip_id=job.clip_id, decoder=cfg.decoder, device=cfg.device, meta=meta,
                depth_input_size=cfg.depth_input_size)
        except Exception as e:  # a bad clip must not stop the bulk run (design.md "Errors")
            result.stage = getattr(e, "traction_stage", "decode")
            result.reason = one_line(e)
            return result
        meta["tracker"], meta["depth_model"] = cfg.tracker, cfg.depth
        result.meta = meta
        return result
