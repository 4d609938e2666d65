"""Choosing between a Triton kernel and its PyTorch twin.

Every kernel in ``traction.kernels`` takes ``impl="triton" | "torch" | None``. ``None`` reads the
environment variable ``TRACTION_KERNELS`` ("triton" | "torch" | "auto", default "auto"); "auto"
picks Triton when it can run: on a CUDA tensor, or anywhere under Triton's CPU interpreter
(``TRITON_INTERPRET=1``, which is how the tests run the kernels without a GPU).
"""
from __future__ import annotations

import importlib.util
import os

import torch

from traction.errors import ConfigError

ENV_VAR = "TRACTION_KERNELS"
IMPLS = ("triton", "torch")


def triton_installed() -> bool:
    """True when the ``triton`` package can be imported (it is an optional dependency)."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """True when Triton's CPU interpreter is switched on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "y", "on")


def triton_can_run(device: torch.device) -> bool:
    """True when a Triton kernel can run on tensors living on ``device``."""
    return triton_installed() and (device.type == "cuda" or interpreting())


def resolve_impl(impl: str | None, device: torch.device, kernel: str) -> str:
    """Return "triton" or "torch" for a call of ``kernel`` on ``device``.

    Raises ConfigError for an unknown choice, and when "triton" is asked for where it cannot run
    (so a requested fast path never silently falls back to the slow one).
    """
    source = "impl"
    if impl is None:
        impl, source = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto", ENV_VAR
    if impl == "auto":
        return "triton" if triton_can_run(device) else "torch"
    if impl not in IMPLS:
        raise ConfigError(f"{source}={impl!r}: {kernel} implementation must be one of "
                          f"'triton', 'torch', 'auto'")
    if impl == "triton":
        if not triton_installed():
            raise ConfigError(f"{source}='triton': {kernel} needs the triton package, which is not "
                              f"installed (pip install triton)")
        if not triton_can_run(device):
            raise ConfigError(f"{source}='triton': {kernel} needs a CUDA tensor or TRITON_INTERPRET=1, "
                              f"got a tensor on {device.type}")
    return impl
