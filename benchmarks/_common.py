"""What every benchmark script repeats: machine and version description, result files, timing.

Scripts run as ``python benchmarks/X.py`` and import this module after
``sys.path.insert(0, str(Path(__file__).resolve().parent))``.
"""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"

# name in the report -> distribution names to try, first installed wins
_DISTRIBUTIONS = {
    "torch": ("torch",),
    "numpy": ("numpy",),
    "triton": ("triton", "pytorch-triton"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python",
               "opencv-contrib-python-headless"),
    "av": ("av",),
}


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(dist: str) -> str:
    """Installed version of one distribution, or "not installed"."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _traction_version() -> str:
    # A source checkout on PYTHONPATH has no distribution metadata: ask the package itself.
    found = version("traction")
    if found != "not installed":
        return found
    try:
        import traction
        return traction.__version__
    except ImportError:
        return "not installed"


def versions(*extra: str) -> dict:
    """Versions of python, torch, numpy, triton, onnxruntime, opencv, av and traction ("not
    installed" where missing), plus the distributions named in ``extra``. Read from package
    metadata, so nothing heavy is imported."""
    out = {"python": platform.python_version()}
    for name, dists in _DISTRIBUTIONS.items():
        found = [v for v in map(version, dists) if v != "not installed"]
        out[name] = found[0] if found else "not installed"
    out["traction"] = _traction_version()
    for dist in extra:
        out[dist] = version(dist)
    return out


def device_name(device) -> str:
    """The GPU model for a CUDA device, else the CPU model."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def device_tag(device) -> str:
    """Short lowercase tag for file names: "cpu", or the GPU model as a slug ("nvidia-h100-80gb-hbm3")."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")


def utc_now() -> str:
    """The current time, UTC, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def environment(device="cpu") -> dict:
    """Where and with what a result was measured: date (UTC ISO), CPU model, logical CPUs, torch
    threads, the CUDA device's name (None on CPU), the 1-minute load average (wall times inflate
    on a busy machine) and ``versions()``."""
    import torch

    device = torch.device(device)
    return {
        "date": utc_now(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "versions": versions(),
    }


def write_result(name: str, payload: dict, directory=None) -> Path:
    """Write ``payload`` as JSON (indent 2) to ``directory``/``name`` (default benchmarks/results/);
    returns the path."""
    path = Path(directory) if directory is not None else RESULTS
    path.mkdir(parents=True, exist_ok=True)
    path = path / name
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def time_call(fn: Callable[[], object], reps: int = 3, warmup: int = 1, sync_cuda: bool = False,
              budget_s: float = 0.0, max_reps: int | None = None) -> float:
    """Median wall seconds of ``fn()`` over ``reps`` calls after ``warmup`` untimed ones.

    With ``budget_s`` the calls go on past ``reps`` until that many seconds of timing have
    passed (at most ``max_reps`` calls): short functions get more samples. ``sync_cuda`` waits
    for queued GPU work before and after each call, so the time is the work's, not the launch's.
    """
    if reps < 1:
        from traction.errors import ConfigError
        raise ConfigError(f"time_call reps={reps}: must be >= 1")
    if sync_cuda:
        import torch
        sync = torch.cuda.synchronize
    else:
        def sync():
            return None
    for _ in range(warmup):
        fn()
    sync()
    times = []
    start = time.perf_counter()
    while len(times) < reps or (time.perf_counter() - start < budget_s
                                and (max_reps is None or len(times) < max_reps)):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
