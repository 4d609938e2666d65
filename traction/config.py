"""Typed configuration (design.md "The model", paper appendix D).

Every choice of the method is a field here with the paper's value as the default, so each ablation
of paper §5.3 is one override (``model.use_depth=false``, ``model.use_vis=false``,
``model.use_sine=false``, ``model.use_pos_enc=false``, ``model.relative_coords=true``,
``model.num_frames=8``, ``data.points=16``). A run saves its resolved config as ``config.json``.

Overrides are ``key=value`` strings; ``key`` is ``section.field`` or a bare field name that is
unique across sections. Values are parsed as JSON where possible (``true``, ``3``, ``[1,2]``),
otherwise taken as strings, then checked against the field's type.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Tuple

from traction.errors import ConfigError


@dataclass
class ModelConfig:
    """The trajectory transformer (paper §3, appendix D)."""

    num_frames: int = 32             # T: trajectory length fed to the model
    embed_dim: int = 288             # transformer width
    depth: int = 6                   # encoder layers
    num_heads: int = 4
    mlp_ratio: float = 4.0
    num_registers: int = 4           # register tokens prepended after [CLS]
    num_freqs: int = 16              # sinusoidal bands per channel (sin+cos: 32 values = "embedding dim 32")
    max_log2: float = 4.0            # highest band = pi * 2**max_log2 (normalized coordinates); the paper
                                     # gives no range: bands finer than 1/16 of the frame mostly encode
                                     # tracking jitter, and models learn slower with them (synthetic set,
                                     # 5 epochs: 0.75 with 8.0, 0.85 with 4.0, 0.83 with 3.0)
    tokenizer_hidden: int = 288      # hidden width of the per-trajectory MLP (eq. 1)
    tokenizer_dropout: float = 0.1
    attn_dropout: float = 0.0
    drop_path: float = 0.1           # stochastic depth, linearly increasing over layers
    head_dropout: float = 0.0
    pos_enc_scale: float = 100.0     # start position multiplier inside the 3D sinusoidal encoding
    use_depth: bool = True           # ablation "w/o depth": 2D trajectories
    use_vis: bool = True             # ablation "w/o visibility"
    use_sine: bool = True            # ablation "w/o sine-enc.": raw coordinates into the MLP
    use_pos_enc: bool = True         # ablation "w/o pos enc."
    relative_coords: bool = False    # ablation "rel. coords": each trajectory minus its start position
    fused_tokenizer: str = "torch"   # "torch" | "triton" | "auto" (= triton on CUDA): fused encode+linear kernel


@dataclass
class MAEConfig:
    """Masked-trajectory pretraining (paper §3 "Self-supervised pretraining", appendix C/D)."""

    mask_ratio: float = 0.9
    decoder_dim: int = 144
    decoder_depth: int = 2
    decoder_heads: int = 4


@dataclass
class AugmentConfig:
    """Trajectory augmentations (paper appendix B); applied in the compiled core on whole batches.

    Ranges are in normalized units (the frame spans [0, W/max(H, W)] x [0, H/max(H, W)]).
    A probability of 0 disables one augmentation; ``enabled=false`` disables all.
    """

    enabled: bool = True
    crop_prob: float = 0.5
    crop_min_scale: float = 0.7
    rotate_prob: float = 0.5
    rotate_max_deg: float = 15.0
    translate_prob: float = 0.5
    translate_max: float = 0.1
    shift_prob: float = 0.5
    shift_max: int = 4
    jitter_std: float = 0.002


@dataclass
class DataConfig:
    points: int = 512                # trajectories sampled per clip and step in training (paper §4)
    eval_points: int = 0             # 0 = all trajectories at evaluation (paper §4)
    train_split: str = "train"
    eval_split: str = ""             # "" = "val" if the store has it, else "test"
    label_fraction: float = 1.0      # fraction of labelled training clips used (per class, seeded)
    workers: int = 0                 # DataLoader worker processes


@dataclass
class OptimConfig:
    epochs: int = 15
    batch_size: int = 64
    lr: float = 2e-4
    betas: Tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 5e-3
    warmup_ratio: float = 0.1
    grad_clip: float = 1.0           # 0 = off (the paper does not say; clipping keeps small runs stable)
    label_smoothing: float = 0.0


@dataclass
class TrainConfig:
    """Everything a pretraining or fine-tuning run needs; saved resolved as ``RUN/config.json``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    mae: MAEConfig = field(default_factory=MAEConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    device: str = "auto"             # "auto" | "cpu" | "cuda" | "cuda:1"
    amp: bool = True                 # bf16 autocast on CUDA (ignored on CPU)
    eval_every: int = 1              # epochs between evaluations
    log_every: int = 20              # steps between metric lines

    @staticmethod
    def pretrain_defaults() -> "TrainConfig":
        """Appendix D, pretraining column: 300 epochs, batch 512."""
        cfg = TrainConfig()
        cfg.optim.epochs, cfg.optim.batch_size = 300, 512
        return cfg

    @staticmethod
    def finetune_defaults() -> "TrainConfig":
        """Appendix D, fine-tuning column: 15 epochs, batch 64."""
        return TrainConfig()


# --------------------------------------------------------------------------- (de)serialisation

def to_dict(cfg: Any) -> Dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _field_types(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Union:  # Optional[X]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(value, args[0], where)
    if origin in (tuple, Tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        return tuple(_coerce(v, args[0] if len(args) == 2 and args[1] is Ellipsis else args[i], where)
                     for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=where + ".")
    return value


def from_dict(cls: type, data: Dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a (possibly partial) nested dict; unknown keys are an error."""
    types = _field_types(cls)
    unknown = sorted(set(data) - set(types))
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(prefix + k for k in unknown)}")
    obj = cls()
    for k, v in data.items():
        setattr(obj, k, _coerce(v, types[k], prefix + k))
    return obj


def _all_paths(cls: type, prefix: str = "") -> Dict[str, Tuple[type, str, Any]]:
    """'section.field' -> (owner dataclass, field name, type) for every leaf field."""
    out = {}
    for name, tp in _field_types(cls).items():
        if dataclasses.is_dataclass(tp):
            out.update(_all_paths(tp, prefix + name + "."))
        else:
            out[prefix + name] = (cls, name, tp)
    return out


def _resolve_key(cfg: TrainConfig, key: str) -> Tuple[Any, str, Any]:
    paths = _all_paths(type(cfg))
    if key not in paths:
        matches = [p for p in paths if p.split(".")[-1] == key]
        if len(matches) == 1:
            key = matches[0]
        elif len(matches) > 1:
            raise ConfigError(f"config key {key!r} is ambiguous: {', '.join(sorted(matches))}")
        else:
            raise ConfigError(f"unknown config key {key!r} (see `traction pretrain --help` for the list)")
    obj: Any = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        obj = getattr(obj, p)
    return obj, parts[-1], paths[key][2]


def apply_overrides(cfg: TrainConfig, overrides: Iterable[str]) -> TrainConfig:
    """Apply ``key=value`` strings in order (see the module docstring)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        obj, name, tp = _resolve_key(cfg, key.strip())
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if tp is str and not isinstance(value, str):
            value = raw
        setattr(obj, name, _coerce(value, tp, key.strip()))
    return cfg


def set_value(cfg: TrainConfig, key: str, value: Any) -> None:
    """Set one field by (possibly bare) name, with type checking (used by CLI flags)."""
    obj, name, tp = _resolve_key(cfg, key)
    setattr(obj, name, _coerce(value, tp, key))


def load_config_file(path: str | Path, base: Optional[TrainConfig] = None) -> TrainConfig:
    """Merge a JSON config file (full or partial, nested like ``config.json``) into ``base``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    merged = to_dict(base or TrainConfig())
    _deep_update(merged, data, str(p))
    return from_dict(TrainConfig, merged)


def _deep_update(dst: Dict[str, Any], src: Dict[str, Any], where: str) -> None:
    for k, v in src.items():
        if k not in dst:
            raise ConfigError(f"{where}: unknown config key {k!r}")
        if isinstance(dst[k], dict) and isinstance(v, dict):
            _deep_update(dst[k], v, where)
        else:
            dst[k] = v


def config_keys_help() -> str:
    """One line per override key with its default, for ``--help``."""
    cfg = TrainConfig()
    lines = []
    for path in _all_paths(TrainConfig):
        obj: Any = cfg
        for p in path.split("."):
            obj = getattr(obj, p)
        lines.append(f"  {path}={json.dumps(obj)}")
    return "\n".join(lines)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Cross-field checks with one clear line each."""
    m = cfg.model
    if m.embed_dim % m.num_heads:
        raise ConfigError(f"model.embed_dim={m.embed_dim} is not divisible by model.num_heads={m.num_heads}")
    if cfg.mae.decoder_dim % cfg.mae.decoder_heads:
        raise ConfigError("mae.decoder_dim must be divisible by mae.decoder_heads")
    if not 0.0 <= cfg.mae.mask_ratio < 1.0:
        raise ConfigError(f"mae.mask_ratio must be in [0, 1), got {cfg.mae.mask_ratio}")
    if m.num_frames < 2:
        raise ConfigError(f"model.num_frames must be >= 2, got {m.num_frames}")
    if cfg.data.points < 1:
        raise ConfigError(f"data.points must be >= 1, got {cfg.data.points}")
    if not 0.0 < cfg.data.label_fraction <= 1.0:
        raise ConfigError(f"data.label_fraction must be in (0, 1], got {cfg.data.label_fraction}")
    if cfg.optim.epochs < 1 or cfg.optim.batch_size < 1:
        raise ConfigError("optim.epochs and optim.batch_size must be >= 1")
    if m.fused_tokenizer not in ("auto", "triton", "torch"):
        raise ConfigError(f"model.fused_tokenizer must be auto, triton or torch, got {m.fused_tokenizer!r}")
    return cfg
