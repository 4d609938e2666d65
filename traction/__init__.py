"""traction: action recognition from sparse 2.5D point trajectories (TrAction).

Axis letters, fixed everywhere: B batch, N points (trajectories), T frames, C channels.

Importing traction has no side effects: heavy submodules load on first attribute access.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

# In a source checkout, the top-level `kernels/` and `export/` folders are the subpackages
# `traction.kernels` and `traction.export` (an installed wheel maps them there; see pyproject.toml).
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_REPO_ROOT, "kernels", "__init__.py")) and \
        not os.path.isdir(os.path.join(os.path.dirname(__file__), "kernels")):
    __path__.append(_REPO_ROOT)  # type: ignore[name-defined]

# public name -> (module, attribute)
_LAZY = {
    "Trajectories": ("traction.trajectories", "Trajectories"),
    "TractionError": ("traction.errors", "TractionError"),
    "create_model": ("traction.model.registry", "create_model"),
    "list_models": ("traction.model.registry", "list_models"),
    "open_store": ("traction.store", "open_store"),
    "StoreWriter": ("traction.store", "StoreWriter"),
    "Engine": ("traction.engine", "Engine"),
}
_SUBMODULES = {"ops", "model", "store", "train", "synth", "video", "tracking", "depth", "extract",
               "kernels", "export", "config", "engine", "cli", "weights", "viz"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"traction.{name}")
    raise AttributeError(f"module 'traction' has no attribute {name!r}")


__all__ = sorted(_LAZY) + ["__version__"]
