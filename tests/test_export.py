"""Classifier export: ONNX checked against PyTorch with onnxruntime on CPU."""
import pytest
import torch

import traction
from traction.model.checkpoint import load_checkpoint, save_checkpoint

pytest.importorskip("onnxruntime")

TINY = dict(embed_dim=48, depth=2, num_heads=4, tokenizer_hidden=64, num_frames=8)


@pytest.fixture
def ckpt(tmp_path):
    m = traction.create_model("traction_s", num_classes=7, **TINY)
    return save_checkpoint(tmp_path / "best", m, kind="classifier", model_cfg=m.cfg, labels=list("abcdefg"))


def test_onnx_export_matches_pytorch_on_dynamic_sizes(ckpt, tmp_path):
    import numpy as np
    import onnxruntime as ort

    from traction.export import export_classifier
    out = export_classifier(str(ckpt), "onnx", str(tmp_path / "m.onnx"), points=50)
    model, _ = load_checkpoint(ckpt)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for B, N in [(1, 1), (1, 2500), (3, 77)]:                            # edge sizes, dynamic axes
        x = torch.rand(B, N, 8, 4)
        pm = torch.zeros(B, N, dtype=torch.bool)
        if B > 1:
            pm[-1, N // 3:] = True
        got = sess.run(None, {"x": x.numpy(), "padding_mask": pm.numpy()})[0]
        ref = model(x, pm).detach().numpy()
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_export_cli_and_errors(ckpt, tmp_path, capsys):
    from traction.cli import main
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "a.onnx"),
                 "--points", "20"]) == 0
    assert (tmp_path / "a.onnx").stat().st_size > 10_000
    assert main(["export", "--checkpoint", str(tmp_path / "nope"), "--format", "onnx", "--out", "x.onnx"]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert main(["export", "--checkpoint", str(ckpt), "--format", "tensorrt", "--out",
                     str(tmp_path / "m.engine")]) == 1
        assert "TensorRT" in capsys.readouterr().err
