"""Shared fixtures: tiny stores and tiny model configs so the suite runs in minutes on 2 cores."""
from __future__ import annotations

import os
from pathlib import Path

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
