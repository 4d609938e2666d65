"""Shared fixtures: tiny stores and tiny model configs so the suite runs in minutes on 2 cores."""
from __future__ import annotations

import functools
import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRACTION_SHARED", REPO.parent / "shared"))

# Small but complete model: every code path of traction_s, a fraction of the cost.
TINY = ["model.embed_dim=48", "model.depth=2", "model.num_heads=4", "model.tokenizer_hidden=64",
        "model.drop_path=0.0"]


@pytest.fixture(scope="session")
def synth_store(tmp_path_factory) -> Path:
    """360 synthetic clips (12 classes, 64 points, 16 frames) with train/test splits."""
    from traction.synth.trajectories import synth_trajectories

    out = tmp_path_factory.mktemp("synth") / "store"
    synth_trajectories(out, n=360, seed=0, points=64, frames=16, progress=False)
    return out


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} is absent (set TRACTION_SHARED)")
    return SHARED


# ------------------------------------------------------------------------------ parity fixtures
# Golden outputs of the official CoTracker3 / Video Depth Anything code run with synthetic weights
# (see the parity README). Tests that need them skip with the path when they are absent.

def parity_dir() -> Path:
    """``$TRACTION_SHARED`` itself when it holds the parity files, else its ``parity/`` folder."""
    return SHARED if (SHARED / "weights.py").exists() else SHARED / "parity"


PARITY = parity_dir()


@functools.lru_cache(maxsize=None)
def _exec_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("parity_weights", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def parity_weights() -> ModuleType:
    """The parity README's weight rule (``weights.py``); skips the test when it is absent."""
    path = PARITY / "weights.py"
    if not path.is_file():
        pytest.skip(f"parity weight rule not found at {path} (set TRACTION_SHARED)")
    return _exec_module(path)


def synthetic_state_dict(spec: Dict[str, Tuple[tuple, str]]) -> Dict[str, Any]:
    """Deterministic synthetic weights for ``spec`` (key -> (shape, dtype)), CPU tensors."""
    return parity_weights().synthetic_state_dict(spec)


def read_fixture(name: str) -> Tuple[Dict[str, Any], dict, Dict[str, Tuple[tuple, str]]]:
    """``PARITY/<name>.safetensors`` as (tensors, JSON metadata, official state-dict spec
    key -> (shape, dtype)); skips the test when the file is absent."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = PARITY / f"{name}.safetensors"
    if not path.is_file():
        pytest.skip(f"parity fixture not found at {path} (set TRACTION_SHARED)")
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["json"])
    spec = {k: (tuple(s), d) for k, (s, d) in meta["spec"].items()}
    return load_file(str(path)), meta, spec


def official_checkpoint(spec: Dict[str, Tuple[tuple, str]], path: Path) -> Path:
    """Synthetic weights saved the way the official checkpoints are: a plain torch state dict."""
    import torch

    torch.save(synthetic_state_dict(spec), path)
    return path
