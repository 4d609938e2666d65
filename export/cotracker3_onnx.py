"""Export the CoTracker3 offline network to ONNX.

The exported graph is the network call of the offline predictor (``CoTracker3.forward``):
inputs ``video`` (B, T, 3, H, W) float 0..255 at model resolution and ``queries`` (B, N, 3)
(t, x, y) in model px; outputs ``tracks`` (B, T, N, 2) model px, ``vis`` and ``conf``
probabilities (B, T, N). Shapes are fixed at export (the refinement loop is unrolled ``iters``
times). Resizing, the support grid and the post-processing stay in Python: feed the outputs to
``CoTracker3Tracker.finish_offline`` to get the predictor's result.

    tracker = traction.tracking.cotracker3.load("scaled_offline.pth")
    export_cotracker3(tracker, "cotracker3.onnx", T=32, N=2536, H=384, W=512)

The legacy TorchScript exporter is used (``dynamo=False``) so that no onnxscript is needed;
opset 20 is the first with N-D GridSample (the query-frame sampling is 3-D).
"""
from __future__ import annotations

import os
import warnings

import torch

OPSET = 20


class _OfflineNetwork(torch.nn.Module):
    """The network with the predictor's iteration count baked in."""

    def __init__(self, model, iters: int):
        super().__init__()
        self.model = model
        self.iters = iters

    def forward(self, video: torch.Tensor, queries: torch.Tensor):
        return self.model(video, queries, iters=self.iters)


def export_cotracker3(tracker, path, T: int, N: int, H: int = 384, W: int = 512, B: int = 1,
                      iters: int | None = None) -> str:
    """Write ``tracker``'s network as ONNX for clips of B x T frames of H x W and N queries.

    H and W must be multiples of 4 (the feature stride) and at least 32. Returns the path.
    """
    from traction.errors import ConfigError
    if H % 4 or W % 4 or min(H, W) < 32 or min(T, N, B) < 1:
        raise ConfigError(f"export_cotracker3: need T, N, B >= 1 and H, W multiples of 4 >= 32, "
                          f"got T={T} N={N} B={B} H={H} W={W}")
    if tracker.mode != "offline":
        raise ConfigError(f"export_cotracker3: only the offline network is exported, got mode={tracker.mode!r}")
    net = _OfflineNetwork(tracker.model, tracker.iters if iters is None else int(iters)).eval().cpu()
    g = torch.Generator().manual_seed(0)
    video = torch.rand(B, T, 3, H, W, generator=g) * 255.0
    queries = torch.cat([torch.randint(0, T, (B, N, 1), generator=g).float(),
                         torch.rand(B, N, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])], dim=-1)
    path = os.fspath(path)
    with torch.no_grad(), warnings.catch_warnings():
        # Shapes are fixed on purpose, so the tracer's "treated as a constant" notes are expected.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(net, (video, queries), path, dynamo=False, opset_version=OPSET,
                          input_names=["video", "queries"], output_names=["tracks", "vis", "conf"])
    return path
