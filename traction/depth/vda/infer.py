"""Whole-video inference for Video Depth Anything: 32-frame windows, overlap 10, key frames,
scale/shift alignment and linear blending (Video Depth Anything, Sec. 3.3 "Inference strategy for
super-long sequence"), with the semantics of the official ``infer_video_depth``.

Windows start every STEP = 22 frames. In window k >= 1 the first OVERLAP = 10 slots hold key frames
instead of the frames the window would start with: slot 0 is video frame 0 (a fixed anchor),
slot 1 is frame 22(k-1) + 12, slots 2..9 are the last 8 frames of window k-1 (= frames 22k + 2..9).
The window inputs therefore never depend on model outputs, so any number of windows can run in one
batch. Stitching then walks the windows in order:

* window 0 is taken as is; its slots 0 and 12 become the alignment references;
* window k: (scale, shift) is fitted by least squares from its slots 0..1 to the references,
  applied to the whole window and clamped at 0 (relative models only; metric models use 1, 0);
  slots 2..9 are blended linearly (weights 0, 1/7, ..., 1) into the last 8 stitched frames,
  slots 10..31 are appended, and slot 12 replaces the second reference.

Memory is bounded: frames are preprocessed as windows need them, the output is written into one
(T, H, W) array as windows finish, and only two reference frames are carried between windows.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from traction.errors import ConfigError, VideoError

from .dinov2 import PATCH

INFER_LEN = 32                       # frames per window
OVERLAP = 10                         # slots of a window filled with key frames
STEP = INFER_LEN - OVERLAP           # 22: window stride
KEYFRAMES = (0, 12, 24, 25, 26, 27, 28, 29, 30, 31)   # slots of window k-1 copied into window k
INTERP_LEN = 8                       # blended frames between consecutive windows
ALIGN_LEN = OVERLAP - INTERP_LEN     # 2: slots used to fit scale and shift
REF_SLOT = KEYFRAMES[1]              # 12: slot that becomes the next alignment reference

MEAN = np.array([0.485, 0.456, 0.406])   # ImageNet statistics (float64, as the reference computes)
STD = np.array([0.229, 0.224, 0.225])
MAX_ASPECT = 1.78                    # wider videos get a smaller input_size to bound memory


def check_video(video) -> np.ndarray:
    if not isinstance(video, np.ndarray):
        raise VideoError(f"video of type {type(video).__name__}: expected a numpy array (T, H, W, 3) uint8")
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise VideoError(f"video of shape {video.shape} and dtype {video.dtype}: expected (T, H, W, 3) uint8 RGB")
    if min(video.shape[:3]) == 0:
        raise VideoError(f"video of shape {video.shape}: needs at least one frame of at least 1x1 pixels")
    return video


def model_input_size(H: int, W: int, input_size: int = 518) -> tuple[int, int]:
    """Network input (h, w) for H x W frames: the short side scaled to about ``input_size``,
    aspect ratio kept, both rounded to multiples of 14 and not below ``input_size``."""
    if input_size < PATCH:
        raise ConfigError(f"input_size={input_size}: must be at least {PATCH}")
    ratio = max(H, W) / min(H, W)
    if ratio > MAX_ASPECT:
        input_size = round(int(input_size * 1.777 / ratio) / PATCH) * PATCH
    scale = max(input_size / H, input_size / W)

    def to_multiple(x: float) -> int:
        y = int(np.round(x / PATCH) * PATCH)
        return y if y >= input_size else int(np.ceil(x / PATCH) * PATCH)

    return to_multiple(scale * H), to_multiple(scale * W)


def preprocess(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB -> (T, 3, h, w) float32: bicubic resize (OpenCV INTER_CUBIC on
    float32 in [0, 1]) then ImageNet normalisation."""
    import cv2

    h, w = size
    out = np.empty((len(frames), 3, h, w), dtype=np.float32)
    for i, frame in enumerate(frames):
        img = cv2.resize(frame.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_CUBIC)
        out[i] = ((img - MEAN) / STD).transpose(2, 0, 1)                   # (3, h, w)
    return torch.from_numpy(out)


def window_frame_indices(T: int) -> np.ndarray:
    """(K, 32) video frame index of every slot of every window, K = ceil(T / 22).

    Past the end the video is padded with its last frame."""
    starts = np.arange(0, T, STEP)
    idx = starts[:, None] + np.arange(INFER_LEN)[None, :]                   # (K, 32)
    idx[1:, 0] = 0                                                          # the anchor frame
    idx[1:, 1] = starts[:-1] + REF_SLOT                                     # slot 12 of the previous window
    return np.minimum(idx, T - 1)


def fit_scale_shift(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Least-squares (s, t) minimising |s * pred + t - target|^2 over all pixels.

    Sums run in float64. A degenerate system (constant prediction) gives (1, 0), as the reference
    does when its determinant is exactly zero."""
    p, q = pred.double().flatten(), target.double().flatten()
    n = float(p.numel())
    a00, a01, b0, b1 = (p * p).sum().item(), p.sum().item(), (p * q).sum().item(), q.sum().item()
    det = a00 * n - a01 * a01
    if det <= 1e-12 * a00 * n:
        return 1.0, 0.0
    return (n * b0 - a01 * b1) / det, (a00 * b1 - a01 * b0) / det


class WindowStitcher:
    """Writes window depths, in order, into ``out`` (T, H, W) float32."""

    def __init__(self, out: np.ndarray, metric: bool):
        self.out = out
        self.metric = metric
        self.k = 0
        self.refs: list[torch.Tensor] = []
        self.blend = np.arange(INTERP_LEN, dtype=np.float64) / (INTERP_LEN - 1)   # 0, 1/7, ..., 1

    def add(self, depth: torch.Tensor) -> None:
        """depth (n, H, W) float32, the first n >= 13 slots of the next window at output resolution
        (slots past the end of the video may be left out)."""
        T, s = len(self.out), self.k * STEP
        if self.k == 0:
            n = min(INFER_LEN, T)
            self.out[:n] = depth[:n].cpu().numpy()
            self.refs = [depth[0], depth[REF_SLOT]]
        else:
            if self.metric:
                scale, shift = 1.0, 0.0
            else:
                scale, shift = fit_scale_shift(depth[:ALIGN_LEN], torch.stack(self.refs))
            depth = (depth * scale + shift).clamp_min(0)
            post = depth[ALIGN_LEN:OVERLAP].cpu().numpy()                   # (8, H, W)
            for i, w in enumerate(self.blend):
                t = s + ALIGN_LEN + i
                if t < T:
                    self.out[t] = self.out[t] * (1.0 - w) + post[i] * w
            n = max(0, min(INFER_LEN, T - s) - OVERLAP)
            self.out[s + OVERLAP:s + OVERLAP + n] = depth[OVERLAP:OVERLAP + n].cpu().numpy()
            self.refs = [self.refs[0], depth[REF_SLOT]]
        self.k += 1


class _VideoJob:
    """One video in flight: its window plan, preprocessed-frame cache, output and stitcher."""

    def __init__(self, video: np.ndarray, input_size: int, metric: bool):
        self.video = check_video(video)
        T, H, W, _ = video.shape
        self.size = model_input_size(H, W, input_size)
        self.idx = window_frame_indices(T)                                  # (K, 32)
        self.out = np.empty((T, H, W), dtype=np.float32)
        self.stitcher = WindowStitcher(self.out, metric)
        self.frames: dict[int, torch.Tensor] = {}                           # preprocessed, by frame index

    def window_input(self, k: int) -> torch.Tensor:
        """(32, 3, h, w) network input of window k."""
        row = self.idx[k].tolist()
        missing = sorted(set(row) - self.frames.keys())
        if missing:
            for i, x in zip(missing, preprocess(self.video[missing], self.size)):
                self.frames[i] = x
        return torch.stack([self.frames[i] for i in row])

    def add(self, k: int, depth: torch.Tensor) -> None:
        """Stitch window k's raw depth (32, h, w); windows must come in order."""
        T, H, W = self.out.shape
        n = max(REF_SLOT + 1, min(INFER_LEN, T - k * STEP))                  # slots that can reach the output
        full = F.interpolate(depth[:n, None].float(), size=(H, W), mode="bilinear", align_corners=True)
        self.stitcher.add(full[:, 0])                                       # (n, H, W)
        # window k+1 reads frame 0 and frames from 22k + 12 on; nothing earlier is needed again
        for i in [i for i in self.frames if 0 < i < k * STEP + REF_SLOT]:
            del self.frames[i]
        if k == len(self.idx) - 1:
            self.frames.clear()


def predict_videos(model, videos, input_size: int = 518, windows_per_batch: int = 1,
                   progress: bool = False) -> list[np.ndarray]:
    """Several (T_i, H_i, W_i, 3) uint8 RGB videos -> [(T_i, H_i, W_i) float32 depth].

    Windows of all videos are scheduled in order and run ``windows_per_batch`` at a time; a batch
    only mixes windows that share the network input size (consecutive videos of equal size), so
    short clips of one dataset fill a batch together."""
    if windows_per_batch < 1:
        raise ConfigError(f"windows_per_batch={windows_per_batch}: must be at least 1")
    jobs = [_VideoJob(v, input_size, model.metric) for v in videos]
    plan = [(job, k) for job in jobs for k in range(len(job.idx))]
    batches, batch = [], []
    for job, k in plan:
        if batch and (len(batch) == windows_per_batch or batch[0][0].size != job.size):
            batches.append(batch)
            batch = []
        batch.append((job, k))
    if batch:
        batches.append(batch)
    if progress:
        from tqdm import tqdm
        batches = tqdm(batches, desc="depth", unit="batch")
    device, dtype = model.device, model.autocast_dtype
    for batch in batches:
        x = torch.stack([job.window_input(k) for job, k in batch]).to(device)  # (k, 32, 3, h, w)
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                    enabled=dtype is not None):
            depth = model(x)                                                # (k, 32, h, w)
        for (job, k), window in zip(batch, depth):
            job.add(k, window)
    return [job.out for job in jobs]


def predict_video(model, video: np.ndarray, input_size: int = 518, windows_per_batch: int = 1,
                  progress: bool = False) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB -> (T, H, W) float32 depth; see the module docstring."""
    return predict_videos(model, [video], input_size, windows_per_batch, progress)[0]
