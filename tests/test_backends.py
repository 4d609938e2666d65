"""``--backend torch|onnx|tensorrt``: the exported tracker and depth networks (traction.runtime).

With the parity fixtures' synthetic official-layout weights (``<repo>/../shared/parity``, override
with ``$TRACTION_SHARED``; skipped when absent), the onnx backend of CoTracker3 offline and of
VDA-S must match the torch backend within the parity README's tolerances, networks must be
exported once per (weights, shape), tensorrt must fail with one clear line where it cannot run,
and ``traction extract --tracker cotracker3 --depth vda-s`` must run end to end from checkpoints
stored under their official file names.

The clip (8 frames, 30 points) and the VDA input size are shared by the tests, so the
end-to-end onnx run reuses the networks the parity tests exported (each export costs ~20 s).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import official_checkpoint, read_fixture
from traction.errors import ConfigError, TractionError

FIXTURES = {"cotracker3": "cotracker3_offline", "vits": "vda_vits"}
OFFICIAL_NAMES = {"cotracker3": "scaled_offline.pth", "vits": "video_depth_anything_vits.pth"}

# Parity README tolerances: tracks in px, probabilities; VDA depth (infer) atol + rtol.
TRACK_ATOL, PROB_ATOL, BOOL_MARGIN = 1e-2, 1e-3, 2e-3
DEPTH_ATOL, DEPTH_RTOL = 5e-4, 1e-4

FRAMES, HEIGHT, WIDTH, POINTS = 8, 48, 64, 30
DEPTH_INPUT = 28                           # VDA network input 28 x 42 for a 48 x 64 clip: fast on a CPU


def _official_checkpoint(model: str, directory: Path) -> Path:
    """Synthetic weights saved as the official checkpoint: a plain state dict under its file name."""
    _, _, spec = read_fixture(FIXTURES[model])
    return official_checkpoint(spec, directory / OFFICIAL_NAMES[model])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Weights dir with both official files, a private export cache, one torch thread."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'traction[onnx]')")
    pytest.importorskip("onnx", reason="onnx is not installed (pip install 'traction[onnx]')")
    weights = tmp_path_factory.mktemp("weights")
    for model in OFFICIAL_NAMES:
        _official_checkpoint(model, weights)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)       # tiny networks: per-op overhead dominates, 2 threads only spin
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRACTION_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield weights
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clip():
    from traction.synth.videos import render_clip

    return render_clip(np.random.default_rng(3), "move_left", frames=FRAMES, height=HEIGHT, width=WIDTH).frames


def _cache_files(suffix: str) -> list:
    from traction.runtime import cache_root

    return sorted(p.name for p in cache_root().rglob(f"*{suffix}"))


def _bool_equal(actual, expected, prob, thr, what):
    decided = (prob - thr).abs() > BOOL_MARGIN
    flips = ((actual != expected) & decided).sum().item()
    assert flips == 0, f"{what}: {flips} visibility flips away from the threshold"


def test_cotracker3_onnx_matches_torch_and_is_exported_once(env, clip):
    from traction.tracking import load_tracker, sample_queries

    weights = env / "scaled_offline.pth"
    video = torch.from_numpy(clip).permute(0, 3, 1, 2)[None]                  # (1, T, 3, H, W) uint8
    queries = torch.from_numpy(np.asarray(sample_queries(POINTS, FRAMES, HEIGHT, WIDTH, 0)))[None]  # (1, N, 3)
    ref = load_tracker("cotracker3", weights=str(weights)).predict(video, queries)
    onnx = load_tracker("cotracker3", weights=str(weights), backend="onnx")
    got = onnx.predict(video, queries)

    for name in ("model_queries", "raw_tracks", "tracks"):
        err = (got[name] - ref[name]).abs().max().item()
        assert err <= TRACK_ATOL, f"{name}: onnx differs from torch by {err:.3g} px"
    for name in ("raw_vis", "raw_conf"):
        err = (got[name] - ref[name]).abs().max().item()
        assert err <= PROB_ATOL, f"{name}: onnx differs from torch by {err:.3g}"
    _bool_equal(got["visibility"], ref["visibility"], ref["vis_prob"], onnx.vis_threshold, "visibility")
    assert ref["tracks"].shape == (1, FRAMES, POINTS, 2) and ref["raw_tracks"].std() > 1.0  # not degenerate

    # One file per (weights, T, N): a second tracker with the same weights reuses it.
    files = _cache_files(".onnx")
    assert len(files) == 1 and files[0].startswith("cotracker3-")
    path = next(iter(onnx.networks.values())).path
    stamp = path.stat().st_mtime_ns
    again = load_tracker("cotracker3", weights=str(weights), backend="onnx")
    assert again.network(FRAMES, POINTS + 36).path == path and path.stat().st_mtime_ns == stamp
    assert _cache_files(".onnx") == files


def test_vda_onnx_matches_torch(env, clip):
    from traction.depth import load_depth

    weights = env / "video_depth_anything_vits.pth"
    video = np.concatenate([clip, clip[::-1], clip])                         # 24 frames: 2 windows, stitched
    ref = load_depth("vda-s", weights=str(weights)).predict(video, input_size=DEPTH_INPUT)
    model = load_depth("vda-s", weights=str(weights), backend="onnx")
    got = model.predict(video, input_size=DEPTH_INPUT)
    assert got.shape == ref.shape == (3 * FRAMES, HEIGHT, WIDTH) and got.dtype == np.float32
    assert ref.std() > 0.1                                                   # not degenerate
    np.testing.assert_allclose(got, ref, atol=DEPTH_ATOL, rtol=DEPTH_RTOL)
    # Several windows per call (dynamic batch of the exported graph) give the same depth.
    np.testing.assert_allclose(model.predict(video, input_size=DEPTH_INPUT, windows_per_batch=2), got,
                               atol=1e-5, rtol=1e-5)
    assert len([f for f in _cache_files(".onnx") if f.startswith("vda-s-")]) == 1


def test_tensorrt_without_tensorrt_is_one_clear_line(env):
    from traction.depth import load_depth
    from traction.tracking import load_tracker

    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        pytest.skip("TensorRT and a GPU are present: the tensorrt backend can run here")
    for load in (lambda: load_tracker("cotracker3", weights=str(env / "scaled_offline.pth"), backend="tensorrt"),
                 lambda: load_depth("vda-s", weights=str(env / "video_depth_anything_vits.pth"),
                                    backend="tensorrt")):
        with pytest.raises(TractionError, match="backend 'tensorrt' needs TensorRT and a CUDA GPU; missing") as e:
            load()
        assert "\n" not in str(e.value)


def test_backend_choices_are_checked():
    from traction.depth import load_depth
    from traction.extract.pipeline import ExtractConfig
    from traction.tracking import load_tracker

    with pytest.raises(ConfigError, match="backend 'onxx': unknown backend"):
        load_tracker("lk", backend="onxx")
    with pytest.raises(ConfigError, match="--backend 'trt': unknown"):
        ExtractConfig(backend="trt").validate()
    with pytest.raises(ConfigError, match="--depth-input-size 10"):
        ExtractConfig(depth_input_size=10).validate()
    assert load_depth("none", backend="onnx") is None                        # 2D: nothing to export
    assert load_tracker("lk", backend="onnx").name == "lk"                   # LK has no network
    with pytest.raises(ConfigError, match="only the offline network"):
        load_tracker("cotracker3", mode="online", backend="onnx")


def _extract(env, tmp_path, backend: str):
    from traction.cli import main
    from traction.store import open_store, read_errors
    from traction.synth.videos import render_clip
    from traction.video import write_video

    video = tmp_path / "clip.mp4"
    if not video.exists():
        frames = render_clip(np.random.default_rng(3), "move_left", frames=FRAMES, height=HEIGHT, width=WIDTH).frames
        write_video(str(video), frames, fps=10.0)
    out = tmp_path / f"store-{backend}"
    code = main(["extract", str(video), "--out", str(out), "--tracker", "cotracker3", "--depth", "vda-s",
                 "--weights-dir", str(env), "--points", str(POINTS), "--frames", str(FRAMES),
                 "--depth-input-size", str(DEPTH_INPUT), "--backend", backend, "--workers", "0", "--no-progress"])
    assert code == 0, read_errors(str(out))
    store = open_store(str(out))
    assert store.meta["tracker"] == "cotracker3" and store.meta["depth_model"] == "vda-s"
    (record,) = list(store)
    return record.trajectories


def test_extract_cotracker3_vda_end_to_end_torch_and_onnx(env, tmp_path):
    traj = _extract(env, tmp_path, "torch")
    assert traj.xy.shape == (POINTS, FRAMES, 2) and traj.depth.shape == (POINTS, FRAMES)
    assert np.isfinite(traj.depth).all() and traj.depth.std() > 0
    # The same extraction with exported networks (reused from the tests above) writes the same record.
    onnx = _extract(env, tmp_path, "onnx")
    np.testing.assert_allclose(onnx.xy, traj.xy, atol=TRACK_ATOL)
    np.testing.assert_allclose(onnx.depth, traj.depth, atol=2e-3, rtol=1e-3)


def test_classify_backend_onnx_gives_the_torch_prediction(tmp_path, monkeypatch, capsys):
    """``traction classify --backend onnx``: the classifier runs in onnxruntime (LK has no network)."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'traction[onnx]')")
    from traction.cli import main
    from traction.model.checkpoint import save_checkpoint
    from traction.model.registry import create_model, model_config
    from traction.synth.videos import render_clip

    monkeypatch.setenv("TRACTION_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    overrides = dict(embed_dim=48, depth=2, num_heads=4, tokenizer_hidden=64, drop_path=0.0, num_frames=8)
    labels = ["a", "b", "c", "d"]
    model = create_model("traction_s", num_classes=len(labels), **overrides)
    stem = save_checkpoint(tmp_path / "clf", model, kind="classifier",
                           model_cfg=model_config("traction_s", **overrides), labels=labels)
    video = tmp_path / "clip.mp4"
    from traction.video import write_video

    write_video(str(video), render_clip(np.random.default_rng(1), "move_left", frames=12, height=48,
                                        width=64).frames, fps=10.0)
    results = {}
    for backend in ("torch", "onnx"):
        assert main(["classify", str(video), "--checkpoint", str(stem), "--points", "64", "--top-k", "4",
                     "--backend", backend, "--json"]) == 0
        results[backend] = json.loads(capsys.readouterr().out)["predictions"]
    probs = {b: {p["label"]: p["probability"] for p in preds} for b, preds in results.items()}
    assert sorted(probs["onnx"]) == labels
    np.testing.assert_allclose([probs["onnx"][k] for k in labels], [probs["torch"][k] for k in labels], atol=1e-4)
    assert len(_cache_files(".onnx")) == 1 and _cache_files(".onnx")[0].startswith("classifier-")
