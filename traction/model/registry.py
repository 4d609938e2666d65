"""Model registry (timm-style): named variants with typed constructors.

    model = traction.create_model("traction_s", num_classes=174)
    model = traction.create_model("traction_s", num_classes=10, use_depth=False)   # ablation
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List

from traction.config import MAEConfig, ModelConfig
from traction.errors import ConfigError

_REGISTRY: Dict[str, Callable[[], ModelConfig]] = {}


def register_model(name: str):
    def deco(fn: Callable[[], ModelConfig]):
        _REGISTRY[name] = fn
        return fn
    return deco


@register_model("traction_s")
def traction_s() -> ModelConfig:
    """The paper's model: 6 layers, width 288, 4 heads, T=32, 16 frequency bands (appendix D)."""
    return ModelConfig()


@register_model("traction_ti")
def traction_ti() -> ModelConfig:
    """A smaller variant for quick CPU experiments and streaming on edge devices."""
    return ModelConfig(embed_dim=192, depth=4, num_heads=3, tokenizer_hidden=192)


def list_models() -> List[str]:
    return sorted(_REGISTRY)


def model_config(name: str, **overrides) -> ModelConfig:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    cfg = _REGISTRY[name]()
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown model option(s): {', '.join(unknown)}")
    return dataclasses.replace(cfg, **overrides)


def create_model(name: str = "traction_s", num_classes: int = 0, *, verbose: bool = False, **overrides):
    """Build a ``TrajectoryTransformer``; ``overrides`` are ``ModelConfig`` fields."""
    from traction.model.transformer import TrajectoryTransformer

    model = TrajectoryTransformer(model_config(name, **overrides), num_classes=num_classes)
    if verbose:
        print(f"{name}: {model.num_parameters() / 1e6:.2f}M parameters")
    return model


def create_mae(name: str = "traction_s", mae: MAEConfig | None = None, **overrides):
    from traction.model.mae import TrajectoryMAE

    return TrajectoryMAE(model_config(name, **overrides), mae or MAEConfig())
