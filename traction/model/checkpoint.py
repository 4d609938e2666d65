"""Checkpoints: weights as safetensors (no pickle) beside a JSON file with everything needed to
rebuild the model: model config, kind, label names, epoch and metrics.

    RUN/best.safetensors + RUN/best.json       (also last.*)

``load_checkpoint`` accepts the stem (``RUN/best``), either file, or a run directory (then
``best`` if present, else ``last``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from traction.config import MAEConfig, ModelConfig, from_dict, to_dict
from traction.errors import CheckpointError, ConfigError

FORMAT = "traction-checkpoint/1"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(stem: str | Path, model: torch.nn.Module, *, kind: str, model_cfg: ModelConfig,
                    labels: Optional[list] = None, mae_cfg: Optional[MAEConfig] = None,
                    extra: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``stem.safetensors`` then ``stem.json`` (each atomically; the JSON last, so a JSON
    always describes complete weights)."""
    from safetensors.torch import save

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    _atomic_write_bytes(stem.with_suffix(".safetensors"), save(state, metadata={"format": FORMAT}))
    meta = {"format": FORMAT, "kind": kind, "model": to_dict(model_cfg), "labels": list(labels or []),
            "num_classes": len(labels or []), **(extra or {})}
    if mae_cfg is not None:
        meta["mae"] = to_dict(mae_cfg)
    _atomic_write_bytes(stem.with_suffix(".json"), json.dumps(meta, indent=2).encode())
    return stem


def resolve_checkpoint(path: str | Path) -> Path:
    """-> the stem (path without suffix) of an existing checkpoint, or CheckpointError."""
    p = Path(path)
    if p.is_dir():
        for name in ("best", "last"):
            if (p / f"{name}.json").is_file():
                return p / name
        raise CheckpointError(f"{p}: no checkpoint in this directory (expected best.json or last.json)")
    stem = p.with_suffix("") if p.suffix in (".json", ".safetensors") else p
    if not stem.with_suffix(".json").is_file() or not stem.with_suffix(".safetensors").is_file():
        raise CheckpointError(f"{path}: checkpoint not found (need {stem}.json and {stem}.safetensors)")
    return stem


def read_checkpoint(path: str | Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """-> (state dict, metadata) with clear errors for missing or corrupt files."""
    from safetensors.torch import load_file

    stem = resolve_checkpoint(path)
    try:
        meta = json.loads(stem.with_suffix(".json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{stem}.json: corrupt checkpoint metadata ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{stem}.json: not a traction checkpoint (format {meta.get('format')!r})")
    try:
        state = load_file(str(stem.with_suffix(".safetensors")))
    except Exception as e:  # safetensors raises its own error types for truncated/garbled files
        raise CheckpointError(f"{stem}.safetensors: corrupt or truncated weights ({str(e).splitlines()[0]})") from None
    return state, meta


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu", num_classes: Optional[int] = None):
    """Rebuild the model a checkpoint describes. Returns (model, metadata).

    kind "classifier" -> TrajectoryTransformer with its head; kind "mae" -> TrajectoryMAE.
    """
    from traction.model.mae import TrajectoryMAE
    from traction.model.transformer import TrajectoryTransformer

    state, meta = read_checkpoint(path)
    try:
        model_cfg = from_dict(ModelConfig, meta["model"])
    except (KeyError, ConfigError) as e:
        raise CheckpointError(f"{path}: checkpoint metadata has no usable model config ({e})") from None
    if meta.get("kind") == "mae":
        model = TrajectoryMAE(model_cfg, from_dict(MAEConfig, meta.get("mae", {})))
    else:
        model = TrajectoryTransformer(model_cfg, num_classes=meta.get("num_classes", 0)
                                      if num_classes is None else num_classes)
    load_state(model, state, str(path))
    return model.to(device).eval(), meta


def load_state(model: torch.nn.Module, state: Dict[str, torch.Tensor], where: str) -> None:
    """Strict load with one clear line on mismatch (``traction.weights.load_state_strict``)."""
    from traction.weights import load_state_strict

    load_state_strict(model, state, where)


def encoder_weights_from(path: str | Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Encoder weights for fine-tuning from a pretraining (MAE) or classifier checkpoint/run."""
    state, meta = read_checkpoint(path)
    if meta.get("kind") == "mae":
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    return state, meta
