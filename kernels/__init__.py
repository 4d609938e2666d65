"""Triton kernels for the GPU hot paths, each with a PyTorch twin that defines its meaning.

- ``fused_frequency_linear``: sinusoidal frequency encoding of trajectories (paper §3) fused with
  the tokenizer's first linear layer, forward and backward, without materializing the encoding.
  Twin: ``frequency_linear_reference``.

Every kernel takes ``impl="triton" | "torch" | None``; None reads the environment variable
``TRACTION_KERNELS`` ("triton" | "torch" | "auto", default "auto": Triton on CUDA tensors or under
``TRITON_INTERPRET=1``, else PyTorch). Asking for "triton" where it cannot run raises ConfigError.
Importing this package does not import triton; the kernels load on first use.
"""
from .dispatch import ENV_VAR, resolve_impl, triton_can_run, triton_installed
from .frequency_linear import frequency_linear_reference, fused_frequency_linear

__all__ = ["ENV_VAR", "fused_frequency_linear", "frequency_linear_reference", "resolve_impl",
           "triton_can_run", "triton_installed"]
