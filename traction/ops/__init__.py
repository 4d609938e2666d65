"""The trajectory core: CPU hot paths of the data pipeline (design.md, ``csrc/``).

Each function checks its inputs, then runs either the compiled C++ core (``traction._core``:
multi-threaded, GIL released, reads NumPy buffers without copies) or its NumPy twin in
``traction.ops.reference``, which defines the meaning. Choose with ``backend="cpp" | "numpy"``;
``None`` reads the environment variable ``TRACTION_CORE`` (default ``"cpp"``). The C++ core uses
``TRACTION_NUM_THREADS`` threads (default: all cores); results do not depend on it.

Random functions take an integer ``seed`` (reduced modulo 2**64) and are deterministic per seed;
see ``traction.ops.rng``. Pass a different seed per training step.

Axis letters: B batch, N points, T frames, C channels.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Optional, Tuple

import numpy as np

from traction.errors import ConfigError, InvalidTrajectories
from traction.ops import reference
from traction.ops.reference import STREAMS, AugmentParams
from traction.ops.rng import as_seed

__all__ = ["resample", "normalize", "sample_subset", "augment", "lift_depth", "sample_queries",
           "AugmentParams", "STREAMS", "core_available", "resolve_backend"]

BACKENDS = ("cpp", "numpy")
_BUILD_HINT = ("traction._core (the compiled trajectory core) is not built: run tools/build_core.sh "
               "or `pip install .`, or set TRACTION_CORE=numpy")


def core_available() -> bool:
    """Whether the compiled extension ``traction._core`` can be imported."""
    try:
        importlib.import_module("traction._core")
    except ImportError:
        return False
    return True


def resolve_backend(backend: Optional[str] = None) -> str:
    """``backend`` or, when None, ``$TRACTION_CORE`` (default "cpp"); checked against BACKENDS."""
    if backend is None:
        backend = os.environ.get("TRACTION_CORE", "") or "cpp"
        source = "TRACTION_CORE"
    else:
        source = "backend"
    if backend not in BACKENDS:
        raise ConfigError(f"{source} must be one of {BACKENDS}, got {backend!r}")
    return backend


def _core(backend: Optional[str]):
    """The C++ module, or None for the NumPy twin."""
    if resolve_backend(backend) == "numpy":
        return None
    try:
        return importlib.import_module("traction._core")
    except ImportError as e:
        raise ImportError(_BUILD_HINT) from e


# ------------------------------------------------------------------------------------ input checks
def _array(name: str, a, dtype, ndim: int, shape_doc: str) -> np.ndarray:
    """``a`` as a C-contiguous array of ``dtype`` (no copy when it already is one)."""
    try:
        arr = np.ascontiguousarray(a, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise InvalidTrajectories(f"{name} must be a numeric array of shape {shape_doc}: {e}") from None
    if arr.ndim != ndim:
        raise InvalidTrajectories(f"{name} must have shape {shape_doc}, got {tuple(arr.shape)}")
    return arr


def _expect(name: str, arr: np.ndarray, shape: tuple, shape_doc: str) -> None:
    if tuple(arr.shape) != tuple(shape):
        raise InvalidTrajectories(f"{name} must have shape {shape_doc} = {tuple(shape)}, got {tuple(arr.shape)}")


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidTrajectories(f"{name} must be an integer, got {value!r}")
    if int(value) < minimum:
        raise InvalidTrajectories(f"{name} must be >= {minimum}, got {int(value)}")
    return int(value)


def _seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InvalidTrajectories(f"seed must be an integer, got {seed!r}")
    return as_seed(int(seed))


def _frame_sizes(name: str, hw: np.ndarray) -> None:
    if not (np.isfinite(hw).all() and (hw > 0).all()):
        raise InvalidTrajectories(f"{name} must hold positive finite (H, W) frame sizes, got {hw.tolist()[:4]}")


def _nonempty(name: str, arr: np.ndarray, letters: str) -> None:
    for letter, size in zip(letters, arr.shape):
        if size == 0:
            raise InvalidTrajectories(f"{name} has {letter}=0; at least 1 is needed")


# ---------------------------------------------------------------------------------------- functions
def resample(x, vis, num_frames: int, *, backend: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Linear resampling in time: x (N, T_in, C), vis (N, T_in) -> (N, T_out, C), (N, T_out).

    Output frame j sits at p_j = j (T_in-1)/(T_out-1) of the input; an interpolated sample is only
    as visible as its less visible neighbour (paper §5.3, appendix E).
    """
    x = _array("x", x, np.float32, 3, "(N, T_in, C)")
    vis = _array("vis", vis, np.float32, 2, "(N, T_in)")
    _nonempty("x", x, "NTC")
    _expect("vis", vis, x.shape[:2], "(N, T_in)")
    num_frames = _positive_int("num_frames", num_frames)
    core = _core(backend)
    if core is None:
        return reference.resample(x, vis, num_frames)
    return core.resample(x, vis, num_frames)


def normalize(raw, hw, has_depth: bool = True, valid=None, *, backend: Optional[str] = None) -> np.ndarray:
    """Model input from raw trajectories: raw (B, N, T, 4) = (x px, y px, d, v), hw (B, 2) = (H, W),
    valid (B, N) bool or None (all valid) -> (B, N, T, 4) float32 (paper §3).

    x, y are divided by max(H, W); depth gets zero mean and the std of x and y pooled, over the
    valid points' visible entries; it is 0 without depth or when constant. Padding comes out zero.
    """
    raw = _array("raw", raw, np.float32, 4, "(B, N, T, 4)")
    if raw.shape[3] != 4:
        raise InvalidTrajectories(f"raw must have shape (B, N, T, 4) = (x, y, d, v), got {tuple(raw.shape)}")
    _nonempty("raw", raw, "BNT")
    hw = _array("hw", hw, np.float32, 2, "(B, 2)")
    _expect("hw", hw, (raw.shape[0], 2), "(B, 2)")
    _frame_sizes("hw", hw)
    if valid is not None:
        valid = _array("valid", valid, np.bool_, 2, "(B, N)")
        _expect("valid", valid, raw.shape[:2], "(B, N)")
    core = _core(backend)
    if core is None:
        return reference.normalize(raw, hw, bool(has_depth), valid)
    return core.normalize(raw, hw, bool(has_depth), valid)


def sample_subset(num_valid, k: int, seed: int, *, backend: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """k random points per sample without replacement: num_valid (B,) -> index (B, k) int64,
    mask (B, k) bool. Samples with fewer than k points give all of them (in random order), then
    index 0 with mask False (paper §4: 512 random trajectories per clip and step)."""
    num_valid = _array("num_valid", num_valid, np.int64, 1, "(B,)")
    if num_valid.size and num_valid.min() < 0:
        raise InvalidTrajectories(f"num_valid must be >= 0, got {int(num_valid.min())}")
    k = _positive_int("k", k)
    seed = _seed(seed)
    core = _core(backend)
    if core is None:
        return reference.sample_subset(num_valid, k, seed)
    return core.sample_subset(num_valid, k, seed)


def _check_params(params: AugmentParams) -> AugmentParams:
    if not isinstance(params, AugmentParams):
        raise ConfigError(f"params must be traction.ops.AugmentParams, got {type(params).__name__}")
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if not np.isfinite(value):
            raise ConfigError(f"augmentation {f.name} must be finite, got {value!r}")
        if f.name.endswith("_prob") and not 0.0 <= value <= 1.0:
            raise ConfigError(f"augmentation {f.name} must lie in [0, 1], got {value!r}")
        if value < 0:
            raise ConfigError(f"augmentation {f.name} must be >= 0, got {value!r}")
    if not 0.0 < params.crop_min_scale <= 1.0:
        raise ConfigError(f"augmentation crop_min_scale must lie in (0, 1], got {params.crop_min_scale!r}")
    if int(params.shift_max) != params.shift_max:
        raise ConfigError(f"augmentation shift_max must be an integer, got {params.shift_max!r}")
    return params


def augment(x, valid, hw, params: Optional[AugmentParams] = None, seed: int = 0, *,
            backend: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Trajectory augmentations of paper appendix B: x (B, N, T, 4) normalized (x, y, d, v),
    valid (B, N) bool, hw (B, 2) = (H, W) -> (x_aug, valid_aug), same shapes.

    Per sample, in order: spatial crop with recentering (points never visible inside the crop are
    dropped: zeros, valid False), rotation about the frame centre, translation, temporal shift
    with edge padding (padded frames invisible), per-trajectory Gaussian jitter. See
    ``AugmentParams`` and ``traction.ops.reference.augment``.
    """
    x = _array("x", x, np.float32, 4, "(B, N, T, 4)")
    if x.shape[3] != 4:
        raise InvalidTrajectories(f"x must have shape (B, N, T, 4) = (x, y, d, v), got {tuple(x.shape)}")
    _nonempty("x", x, "BNT")
    valid = _array("valid", valid, np.bool_, 2, "(B, N)")
    _expect("valid", valid, x.shape[:2], "(B, N)")
    hw = _array("hw", hw, np.float32, 2, "(B, 2)")
    _expect("hw", hw, (x.shape[0], 2), "(B, 2)")
    _frame_sizes("hw", hw)
    params = _check_params(AugmentParams() if params is None else params)
    seed = _seed(seed)
    core = _core(backend)
    if core is None:
        return reference.augment(x, valid, hw, params, seed)
    p = params
    return core.augment(x, valid, hw, float(p.crop_prob), float(p.crop_min_scale), float(p.rotate_prob),
                        float(p.rotate_max_deg), float(p.translate_prob), float(p.translate_max),
                        float(p.shift_prob), int(p.shift_max), float(p.jitter_std), seed)


def lift_depth(depth, xy, video_hw: Tuple[int, int], *, backend: Optional[str] = None) -> np.ndarray:
    """2D -> 2.5D: bilinear sample of frame t's depth map at each point. depth (T, Hd, Wd),
    xy (N, T, 2) in video pixels of a (H, W) video -> (N, T) float32. Pixel centres sit at integer
    coordinates in both grids; points outside the frame take the border value."""
    depth = _array("depth", depth, np.float32, 3, "(T, Hd, Wd)")
    _nonempty("depth", depth, "THW")
    xy = _array("xy", xy, np.float32, 3, "(N, T, 2)")
    _nonempty("xy", xy, "NT")
    _expect("xy", xy, (xy.shape[0], depth.shape[0], 2), "(N, T, 2)")
    if not np.isfinite(xy).all():
        raise InvalidTrajectories(f"xy contains {int((~np.isfinite(xy)).sum())} NaN or inf value(s)")
    try:
        h, w = (float(v) for v in video_hw)
    except (TypeError, ValueError):
        raise InvalidTrajectories(f"video_hw must be (H, W), got {video_hw!r}") from None
    if not (np.isfinite([h, w]).all() and h > 0 and w > 0):
        raise InvalidTrajectories(f"video_hw must be positive (H, W), got {video_hw!r}")
    core = _core(backend)
    if core is None:
        return reference.lift_depth(depth, xy, (h, w))
    return core.lift_depth(depth, xy, h, w)


def sample_queries(num_points: int, num_frames: int, height: int, width: int, seed: int = 0, *,
                   backend: Optional[str] = None) -> np.ndarray:
    """(N, 3) float32 tracking queries (t, x, y) uniform over frames and pixels (paper §3),
    stably sorted by t: t integer in [0, T-1], x in [0, W-1], y in [0, H-1]."""
    num_points = _positive_int("num_points", num_points)
    num_frames = _positive_int("num_frames", num_frames)
    height = _positive_int("height", height)
    width = _positive_int("width", width)
    seed = _seed(seed)
    core = _core(backend)
    if core is None:
        return reference.sample_queries(num_points, num_frames, height, width, seed)
    return core.sample_queries(num_points, num_frames, height, width, seed)
