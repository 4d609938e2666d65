"""Where model weights come from (design.md "Extraction"; issue: weights).

``resolve(name, weights=None, weights_dir=None)`` returns a local file, looking in order at:

1. ``weights`` — an explicit file path (an error if it does not exist);
2. ``weights_dir`` (``--weights-dir``), then ``$TRACTION_WEIGHTS``, then ``~/.cache/traction/weights``
   for the official file name;
3. a download from the published address into the first writable of those directories, once,
   atomically (temporary file, then rename), with a progress bar. The SHA-256 of the download is
   written beside it (``<file>.sha256``) and checked on every later use, so a truncated or
   altered file is caught; where the registry knows the published hash it is checked too.

When nothing works the error names the file, where it was looked for, and where to get it.
The official .pth files are plain state dicts and are read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

from traction.errors import CheckpointError, WeightsNotFound


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    filename: str
    url: str
    sha256: Optional[str] = None   # published hash where known; else recorded at first download
    license: str = ""


_HF = "https://huggingface.co"
REGISTRY: Dict[str, WeightSpec] = {
    "cotracker3-offline": WeightSpec("scaled_offline.pth", f"{_HF}/facebook/cotracker3/resolve/main/scaled_offline.pth",
                                     license="CC-BY-NC 4.0"),
    "cotracker3-online": WeightSpec("scaled_online.pth", f"{_HF}/facebook/cotracker3/resolve/main/scaled_online.pth",
                                    license="CC-BY-NC 4.0"),
    "cotracker3-baseline-offline": WeightSpec("baseline_offline.pth",
                                              f"{_HF}/facebook/cotracker3/resolve/main/baseline_offline.pth",
                                              license="CC-BY-NC 4.0"),
    "cotracker3-baseline-online": WeightSpec("baseline_online.pth",
                                             f"{_HF}/facebook/cotracker3/resolve/main/baseline_online.pth",
                                             license="CC-BY-NC 4.0"),
    "vda-s": WeightSpec("video_depth_anything_vits.pth",
                        f"{_HF}/depth-anything/Video-Depth-Anything-Small/resolve/main/video_depth_anything_vits.pth",
                        license="Apache-2.0"),
    "vda-b": WeightSpec("video_depth_anything_vitb.pth",
                        f"{_HF}/depth-anything/Video-Depth-Anything-Base/resolve/main/video_depth_anything_vitb.pth",
                        license="CC-BY-NC 4.0"),
    "vda-l": WeightSpec("video_depth_anything_vitl.pth",
                        f"{_HF}/depth-anything/Video-Depth-Anything-Large/resolve/main/video_depth_anything_vitl.pth",
                        license="CC-BY-NC 4.0"),
    "vda-s-metric": WeightSpec("metric_video_depth_anything_vits.pth",
                               f"{_HF}/depth-anything/Metric-Video-Depth-Anything-Small/resolve/main/"
                               "metric_video_depth_anything_vits.pth", license="Apache-2.0"),
    "vda-b-metric": WeightSpec("metric_video_depth_anything_vitb.pth",
                               f"{_HF}/depth-anything/Metric-Video-Depth-Anything-Base/resolve/main/"
                               "metric_video_depth_anything_vitb.pth", license="CC-BY-NC 4.0"),
    "vda-l-metric": WeightSpec("metric_video_depth_anything_vitl.pth",
                               f"{_HF}/depth-anything/Metric-Video-Depth-Anything-Large/resolve/main/"
                               "metric_video_depth_anything_vitl.pth", license="CC-BY-NC 4.0"),
}


def user_cache_dir() -> Path:
    """traction's folder in the user's cache: ``$XDG_CACHE_HOME/traction``, else ``~/.cache/traction``."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "traction"


def search_dirs(weights_dir: Optional[str | Path] = None) -> List[Path]:
    dirs = []
    if weights_dir:
        dirs.append(Path(weights_dir))
    if os.environ.get("TRACTION_WEIGHTS"):
        dirs.append(Path(os.environ["TRACTION_WEIGHTS"]))
    dirs.append(user_cache_dir() / "weights")
    return dirs


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _check_hash(path: Path, spec: Optional[WeightSpec]) -> None:
    sidecar = path.with_name(path.name + ".sha256")
    expected = spec.sha256 if spec and spec.sha256 else None
    if expected is None and sidecar.is_file():
        expected = sidecar.read_text().split()[0]
    if expected is None:
        return
    actual = sha256_of(path)
    if actual != expected:
        raise CheckpointError(f"{path}: SHA-256 {actual[:12]}... does not match the expected {expected[:12]}...; "
                              f"the file is corrupt or was replaced: delete it to download it again")


def download(url: str, dest: Path, *, progress: bool = True, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` atomically and record its SHA-256 beside it."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while True:
                    block = r.read(1 << 20)
                    if not block:
                        break
                    f.write(block)
                    bar.update(len(block))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    dest.with_name(dest.name + ".sha256").write_text(sha256_of(dest) + "  " + dest.name + "\n")
    return dest


def resolve(name: str, weights: Optional[str | Path] = None, weights_dir: Optional[str | Path] = None,
            *, allow_download: bool = True, progress: bool = True) -> Path:
    """Local path of the weights for model ``name`` (see the module docstring)."""
    spec = REGISTRY.get(name)
    if weights is not None:
        p = Path(weights)
        if not p.is_file():
            raise WeightsNotFound(f"{p}: weights file not found"
                                  + (f" (the official file for {name} is {spec.url})" if spec else ""))
        _check_hash(p, spec if spec and p.name == spec.filename else None)
        return p
    if spec is None:
        raise WeightsNotFound(f"no weights registered for {name!r}; known: {', '.join(sorted(REGISTRY))}")
    dirs = search_dirs(weights_dir)
    for d in dirs:
        p = d / spec.filename
        if p.is_file():
            _check_hash(p, spec)
            return p
    where = ", ".join(str(d) for d in dirs)
    if allow_download and os.environ.get("TRACTION_OFFLINE", "") not in ("1", "true"):
        for d in dirs:
            try:
                d.mkdir(parents=True, exist_ok=True)
                if not os.access(d, os.W_OK):
                    continue
            except OSError:
                continue
            try:
                path = download(spec.url, d / spec.filename, progress=progress)
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                reason = getattr(e, "reason", e)
                raise WeightsNotFound(
                    f"{spec.filename} for {name}: not found in {where}, and the download from {spec.url} failed "
                    f"({reason}); download it by hand into one of those directories or pass --weights-dir") from None
            _check_hash(path, spec)
            return path
    raise WeightsNotFound(f"{spec.filename} for {name}: not found in {where}; get it from {spec.url} "
                          f"and put it there, or pass --weights-dir")


def describe() -> str:
    """A table of known weights for ``--help`` texts."""
    width = max(len(k) for k in REGISTRY)
    return "\n".join(f"  {k:<{width}}  {v.filename}  ({v.license})" for k, v in sorted(REGISTRY.items()))


def copy_into_cache(src: str | Path, name: str, weights_dir: Optional[str | Path] = None) -> Path:
    """Install a local file as the weights of ``name`` (e.g. from a shared drive)."""
    spec = REGISTRY[name]
    d = search_dirs(weights_dir)[0]
    d.mkdir(parents=True, exist_ok=True)
    dest = d / spec.filename
    shutil.copyfile(src, dest)
    dest.with_name(dest.name + ".sha256").write_text(sha256_of(dest) + "  " + dest.name + "\n")
    return dest


def load_state_strict(model, state, source: str, hint: str = "", assign: bool = False) -> None:
    """Load ``state`` into ``model`` strictly, or raise one ``CheckpointError`` line that names the
    missing keys, unexpected keys and shape mismatches (a few of each), then ``hint``.

    Every loader of traction (classifier checkpoints, CoTracker3, Video Depth Anything) goes
    through here, so a wrong or truncated file reads the same everywhere. ``assign`` adopts the
    tensors (for a model built on the meta device)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]

    def brief(items: List[str]) -> str:
        return ", ".join(items[:3]) + (f" (+{len(items) - 3} more)" if len(items) > 3 else "")

    problems = [f"{what} {len(items)}: {brief(items)}" for what, items in
                (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes))
                if items]
    if problems:
        raise CheckpointError(f"{source}: weights do not match the model; " + "; ".join(problems)
                              + (f"; {hint}" if hint else ""))
    model.load_state_dict(state, strict=True, assign=assign)
