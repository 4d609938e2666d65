"""traction.kernels: the Triton kernels against their PyTorch twins, on CPU through Triton's
interpreter (TRITON_INTERPRET=1), plus the impl switch and input checks."""
import os

# The interpreter must be on before triton is imported (triton.jit picks the mode when a kernel is
# defined). It is put back after the imports and set per test below, so the other test modules
# keep the default choice ("auto" on CPU = the PyTorch twin).
_PREVIOUS_INTERPRET = os.environ.get("TRITON_INTERPRET")
os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

triton = pytest.importorskip("triton", reason="triton is not installed (pip install 'traction[test]')")

from traction.errors import ConfigError, InvalidTrajectories  # noqa: E402
from traction.kernels import (frequency_linear_reference, fused_frequency_linear,  # noqa: E402
                              resolve_impl)
from traction.model.encoding import frame_feature_dim, frequency_encode  # noqa: E402

if _PREVIOUS_INTERPRET is None:
    del os.environ["TRITON_INTERPRET"]
else:
    os.environ["TRITON_INTERPRET"] = _PREVIOUS_INTERPRET


@pytest.fixture(autouse=True)
def _interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.delenv("TRACTION_KERNELS", raising=False)


def _inputs(M, T, Hd, *, bias=True, dtype=torch.float32, lead=None, seed=0, **layout):
    """Random x (M | *lead, T, 4), weight, bias and output grad for the feature layout in ``layout``."""
    g = torch.Generator().manual_seed(seed)
    df = frame_feature_dim(layout.get("num_freqs", 16), layout.get("use_depth", True),
                           layout.get("use_vis", True), layout.get("use_sine", True))
    x = torch.rand((*(lead or (M,)), T, 4), generator=g) * 1.2 - 0.1        # slightly outside [0, 1]
    x[..., 3] = (x[..., 3] > 0.3).float()                                   # visibility flags
    w = torch.randn(Hd, T * df, generator=g) / (T * df) ** 0.5
    b = torch.randn(Hd, generator=g) if bias else None
    cast = [t.to(dtype).requires_grad_() if t is not None else None for t in (x, w, b)]
    return cast, torch.randn((*(lead or (M,)), Hd), generator=g).to(dtype)


def _run(impl, x, w, b, dy, **kw):
    """Forward and grads (dx, dW, db) of one implementation on fresh leaves."""
    leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in (x, w, b)]
    y = fused_frequency_linear(*leaves, impl=impl, **kw)
    y.backward(dy)
    return [y.detach()] + [t.grad if t is not None else None for t in leaves]


def _assert_close(got, want, rel, what):
    """max |got - want| <= rel * max |want|: tolerance scaled to the tensor (dx carries factors f up to 800)."""
    assert got.shape == want.shape and got.dtype == want.dtype, what
    scale = want.float().abs().max().clamp_min(1e-6)
    err = (got.float() - want.float()).abs().max()
    assert err <= rel * scale, f"{what}: max error {err:.3g} > {rel} * {scale:.3g}"


CASES = [  # M, T, Hd, options
    (1, 1, 16, {}),                                        # single row, single frame
    (37, 2, 40, {}),                                       # M and Hd not multiples of the tile
    (40, 8, 48, {}),
    (3, 32, 16, {}),                                       # the paper's T=32 (K = 3104)
    (17, 3, 20, dict(use_depth=False)),
    (17, 3, 20, dict(use_vis=False)),
    (9, 2, 16, dict(use_depth=False, use_vis=False)),
    (21, 4, 24, dict(use_sine=False)),                     # "w/o sine-enc." ablation: raw channels
    (21, 2, 24, dict(num_freqs=1)),
    (21, 2, 24, dict(num_freqs=5, max_log2=3.0)),
    (33, 2, 24, dict(bias=False)),
]


@pytest.mark.parametrize("M,T,Hd,opts", CASES)
def test_triton_matches_torch_twin_fp32(M, T, Hd, opts):
    kw = {k: v for k, v in opts.items() if k != "bias"}
    (x, w, b), dy = _inputs(M, T, Hd, **opts)
    got = _run("triton", x, w, b, dy, **kw)
    want = _run("torch", x, w, b, dy, **kw)
    for name, g, r in zip(("y", "dx", "dW", "db"), got, want):
        if r is None:
            assert g is None, name
        else:
            _assert_close(g, r, 1e-5, name)


@pytest.mark.parametrize("dtype,rel", [(torch.bfloat16, 3e-2), (torch.float16, 4e-3)])
def test_triton_matches_torch_twin_half(dtype, rel):
    (x, w, b), dy = _inputs(29, 3, 40, dtype=dtype)
    got = _run("triton", x, w, b, dy)
    want = _run("torch", x, w, b, dy)
    for name, g, r in zip(("y", "dx", "dW", "db"), got, want):
        _assert_close(g, r, rel, f"{dtype} {name}")


def test_half_precision_input_keeps_fp32_angles():
    """bf16 x: both paths encode in fp32, so the top band (f = 256 pi) is still right."""
    (x, w, b), _ = _inputs(16, 2, 16)
    x16 = x.detach().to(torch.bfloat16)
    exact = F.linear(frequency_encode(x16.double()).flatten(-2), w.detach().double(), b.detach().double())
    for impl in ("triton", "torch"):
        y = fused_frequency_linear(x16, w.detach(), b.detach(), impl=impl)
        assert y.dtype == torch.float32
        _assert_close(y.double(), exact, 1e-5, impl)


def test_twin_is_frequency_encode_then_linear():
    (x, w, b), _ = _inputs(12, 3, 20)
    want = F.linear(frequency_encode(x).flatten(-2), w, b)
    assert torch.equal(frequency_linear_reference(x, w, b), want)


def test_leading_dims_and_frozen_weight():
    """(B, N, T, 4) -> (B, N, Hd); grads flow only to tensors that require them."""
    (x, w, b), dy = _inputs(0, 2, 24, lead=(2, 11))
    w = w.detach()                                                          # frozen tokenizer
    outs = {}
    for impl in ("triton", "torch"):
        xi = x.detach().clone().requires_grad_()
        y = fused_frequency_linear(xi, w, b.detach(), impl=impl)
        assert y.shape == (2, 11, 24)
        y.backward(dy)
        outs[impl] = (y.detach(), xi.grad)
    for g, r, name in zip(outs["triton"], outs["torch"], ("y", "dx")):
        _assert_close(g, r, 1e-5, name)


def test_data_input_without_grad():
    """The usual training case: x is data (no grad), only the parameters learn."""
    (x, w, b), dy = _inputs(19, 2, 24)
    grads = {}
    for impl in ("triton", "torch"):
        wi, bi = w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
        fused_frequency_linear(x.detach(), wi, bi, impl=impl).backward(dy)
        grads[impl] = (wi.grad, bi.grad)
    for g, r, name in zip(grads["triton"], grads["torch"], ("dW", "db")):
        _assert_close(g, r, 1e-5, name)


def test_autocast_computes_in_autocast_dtype():
    (x, w, b), dy = _inputs(20, 2, 32)
    outs = {}
    for impl in ("triton", "torch"):
        leaves = [t.detach().clone().requires_grad_() for t in (x, w, b)]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = fused_frequency_linear(*leaves, impl=impl)
        assert y.dtype == torch.bfloat16, impl
        y.backward(dy.to(torch.bfloat16))
        assert all(t.grad.dtype == torch.float32 for t in leaves), impl    # fp32 master params
        outs[impl] = [y.detach()] + [t.grad for t in leaves]
    for name, g, r in zip(("y", "dx", "dW", "db"), outs["triton"], outs["torch"]):
        _assert_close(g, r, 3e-2, name)


def test_empty_batch():
    (x, w, b), _ = _inputs(1, 2, 8)
    y = fused_frequency_linear(x[:0], w, b, impl="triton")
    assert y.shape == (0, 8)


def test_impl_switch(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_impl(None, cpu, "k") == "triton"                         # auto + interpreter
    assert resolve_impl("torch", cpu, "k") == "torch"
    monkeypatch.setenv("TRACTION_KERNELS", "torch")
    assert resolve_impl(None, cpu, "k") == "torch"
    monkeypatch.setenv("TRACTION_KERNELS", "fast")
    with pytest.raises(ConfigError, match="TRACTION_KERNELS='fast'"):
        resolve_impl(None, cpu, "k")
    with pytest.raises(ConfigError, match="impl='cuda'"):
        resolve_impl("cuda", cpu, "k")
    monkeypatch.delenv("TRACTION_KERNELS")
    monkeypatch.delenv("TRITON_INTERPRET")
    assert resolve_impl(None, cpu, "k") == "torch"                          # auto on CPU, no interpreter
    (x, w, b), _ = _inputs(4, 2, 8)
    with pytest.raises(ConfigError, match="needs a CUDA tensor or TRITON_INTERPRET=1"):
        fused_frequency_linear(x, w, b, impl="triton")
    assert fused_frequency_linear(x, w, b).shape == (4, 8)                  # auto falls back to torch


def test_bad_inputs_raise_clear_errors():
    (x, w, b), _ = _inputs(4, 2, 8)
    with pytest.raises(InvalidTrajectories, match=r"x: expected shape \(\.\.\., T, 4\)"):
        fused_frequency_linear(x[..., :3], w, b)
    with pytest.raises(ConfigError, match=r"weight: expected shape \(Hd, T\*Df\) = \(Hd, 2\*97\)"):
        fused_frequency_linear(x, w[:, :-1], b)
    with pytest.raises(ConfigError, match="bias: expected shape"):
        fused_frequency_linear(x, w, b[:-1])
    with pytest.raises(ConfigError, match="weight: expected shape"):
        fused_frequency_linear(x, w, b, use_vis=False)                      # layout has 96 features
