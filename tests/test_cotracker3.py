"""CoTracker3: parity with the official implementation, loading, and the numpy interface.

The golden outputs come from the official code run with synthetic weights
(``<repo>/../shared/parity``, override with ``$TRACTION_SHARED``; see its README for the
tensors and tolerances). The weights are saved as an official-style ``.pth`` and loaded through
the public loader, so the whole path a user takes is covered.
"""
from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import PARITY, REPO, official_checkpoint, read_fixture, synthetic_state_dict
from traction.errors import CheckpointError, InvalidTrajectories, TractionError, VideoError
from traction.tracking import cotracker3

needs_parity = pytest.mark.skipif(not (PARITY / "cotracker3_offline.safetensors").exists(),
                                  reason=f"parity fixtures not found at {PARITY} (set TRACTION_SHARED)")

# README tolerances: tracks in px, probabilities, logits; booleans exact away from the threshold.
TRACK_ATOL, PROB_ATOL, LOGIT_ATOL, BOOL_MARGIN = 1e-2, 1e-3, 1e-2, 2e-3


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    # One intra-op thread: on a shared 2-core machine this is 2-3x faster than two spinning
    # threads (and the README's tolerances cover 1 vs 2 threads). Restored afterwards.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _close(actual, expected, atol, what):
    err = (actual.float().cpu() - expected.float()).abs().max().item()
    assert err <= atol, f"{what}: max abs error {err:.3g} > {atol}"


def _bool_equal(actual, expected, prob, thr, what):
    decided = (prob.float().cpu() - thr).abs() > BOOL_MARGIN
    flips = ((actual.cpu() != expected) & decided).sum().item()
    assert flips == 0, f"{what}: {flips} visibility flips away from the threshold"


def _video(t):
    return torch.from_numpy(t["frames"].numpy()).permute(0, 3, 1, 2)[None].float()   # (1, T, 3, H, W)


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    t, meta, spec = read_fixture("cotracker3_offline")
    path = official_checkpoint(spec, tmp_path_factory.mktemp("ct3") / "scaled_offline.pth")
    tracker = cotracker3.load(weights=path, mode="offline")
    out = tracker.predict(_video(t), t["queries"], backward_tracking=True)
    return t, spec, tracker, out


@pytest.fixture(scope="module")
def online(tmp_path_factory):
    t, meta, spec = read_fixture("cotracker3_online")
    sd = synthetic_state_dict(spec)
    path = tmp_path_factory.mktemp("ct3") / "scaled_online.pth"
    torch.save({"model": sd}, path)                         # training-checkpoint layout
    tracker = cotracker3.load(weights=path, mode="online")
    out = tracker.predict(_video(t), t["queries"], keep_steps=True)
    return t, meta, spec, tracker, out


def _check_spec(model, spec):
    sd = model.state_dict()
    assert list(sd) == list(spec), "state-dict keys or their order differ from the official model"
    for k, v in sd.items():
        assert (tuple(v.shape), str(v.dtype).replace("torch.", "")) == spec[k], k
    # time_emb must be a loaded buffer, not recomputed (README: the rule fills it with noise)
    assert "time_emb" in dict(model.named_buffers())


@needs_parity
def test_offline_state_dict_matches_official_spec(offline):
    _, spec, tracker, _ = offline
    _check_spec(tracker.model, spec)


@needs_parity
def test_offline_raw_network_call(offline):
    t, _, _, out = offline
    _close(out["model_queries"], t["model_queries"], 1e-4, "model_queries")
    _close(out["raw_tracks"], t["raw_tracks"], TRACK_ATOL, "raw_tracks")
    _close(out["raw_vis"], t["raw_vis"], PROB_ATOL, "raw_vis")
    _close(out["raw_conf"], t["raw_conf"], PROB_ATOL, "raw_conf")


@needs_parity
def test_offline_predictor_forward_only(offline):
    # Same network outputs, post-processed without backward tracking.
    t, _, tracker, out = offline
    H, W = t["frames"].shape[1:3]
    res = tracker.finish_offline(out["model_queries"], 64, (out["raw_tracks"], out["raw_vis"]), None, (H, W))
    _close(res["tracks"], t["pred_tracks"], TRACK_ATOL, "pred_tracks")
    _bool_equal(res["visibility"], t["pred_visibility"], res["vis_prob"], 0.9, "pred_visibility")


@needs_parity
def test_offline_predictor_backward_tracking(offline):
    t, _, _, out = offline
    _close(out["bwd_model_queries"], t["bwd_model_queries_inv"], 1e-4, "bwd queries")
    _close(out["bwd_raw_tracks"], t["bwd_raw_tracks_inv"], TRACK_ATOL, "bwd_raw_tracks")
    _close(out["bwd_raw_vis"], t["bwd_raw_vis_inv"], PROB_ATOL, "bwd_raw_vis")
    _close(out["bwd_raw_conf"], t["bwd_raw_conf_inv"], PROB_ATOL, "bwd_raw_conf")
    _close(out["tracks"], t["pred_bwd_tracks"], TRACK_ATOL, "pred_bwd_tracks")
    _bool_equal(out["visibility"], t["pred_bwd_visibility"], out["vis_prob"], 0.9, "pred_bwd_visibility")


@needs_parity
def test_online_state_dict_matches_official_spec(online):
    _, _, spec, tracker, _ = online
    _check_spec(tracker.model, spec)


@needs_parity
def test_online_windows(online):
    t, meta, _, _, out = online
    assert len(out["steps"]) == sum(c["model_called"] for c in meta["settings"]["chunks"])
    _close(out["model_queries"], t["model_queries"], 1e-4, "model_queries")
    for k, step in enumerate(out["steps"]):
        for name in ("raw_tracks", "tracks"):
            assert step[name].shape == t[f"step{k}_{name}"].shape
            _close(step[name], t[f"step{k}_{name}"], TRACK_ATOL, f"step{k}_{name}")
        for name in ("raw_vis", "raw_conf"):
            _close(step[name], t[f"step{k}_{name}"], PROB_ATOL, f"step{k}_{name}")
        _bool_equal(step["visibility"], t[f"step{k}_visibility"], step["raw_vis"] * step["raw_conf"],
                    0.6, f"step{k}_visibility")


@needs_parity
def test_online_final_result(online):
    t, _, _, _, out = online
    _close(out["tracks"], t["pred_tracks"], TRACK_ATOL, "pred_tracks")
    _bool_equal(out["visibility"], t["pred_visibility"], out["vis_prob"], 0.6, "pred_visibility")
    _close(out["vis_logits"], t["final_vis_logits"], LOGIT_ATOL, "final_vis_logits")
    _close(out["conf_logits"], t["final_conf_logits"], LOGIT_ATOL, "final_conf_logits")


@needs_parity
def test_track_numpy_interface_matches_predict(offline):
    # traction's (N, T, ...) order is the network's (B, T, N, ...) transposed; a short clip keeps it fast.
    t, _, tracker, _ = offline
    clip = t["frames"].numpy()[:2]
    queries = np.array([[0, 10.0, 20.0], [1, 300.5, 400.0], [1, 0.0, 479.0]], np.float32)
    xy, vis, prob = tracker.track(clip, queries, return_probs=True)
    assert xy.shape == (3, 2, 2) and vis.shape == (3, 2) and prob.shape == (3, 2)
    assert xy.dtype == np.float32 and vis.dtype == np.float32
    assert set(np.unique(vis)) <= {0.0, 1.0}
    ref = tracker.predict(torch.from_numpy(clip).permute(0, 3, 1, 2)[None].float(), torch.from_numpy(queries)[None])
    np.testing.assert_allclose(xy, ref["tracks"][0].permute(1, 0, 2).numpy(), atol=1e-4)
    np.testing.assert_array_equal(vis, ref["visibility"][0].T.numpy().astype(np.float32))
    # each query frame holds the query point itself, visible
    n, tq = np.arange(3), queries[:, 0].astype(int)
    np.testing.assert_allclose(xy[n, tq], queries[:, 1:], atol=1e-3)
    assert (vis[n, tq] == 1.0).all()
    assert ((prob > 0.9) | (np.arange(2)[None] == tq[:, None]) == (vis == 1.0)).all()

    # several clips in one batch give each clip's own result
    other = np.ascontiguousarray(clip[::-1])
    xy_b, vis_b, _ = tracker.track_batch(np.stack([clip, other]), np.stack([queries, queries[::-1]]))
    assert xy_b.shape == (2, 3, 2, 2) and vis_b.shape == (2, 3, 2)
    np.testing.assert_allclose(xy_b[0], xy, atol=1e-3)
    np.testing.assert_array_equal(vis_b[0], vis)
    xy_1, vis_1 = tracker.track(other, queries[::-1])
    np.testing.assert_allclose(xy_b[1], xy_1, atol=1e-3)
    np.testing.assert_array_equal(vis_b[1], vis_1)


# --------------------------------------------------------------------------- loading errors

@needs_parity
def test_checkpoint_with_missing_key_is_rejected(tmp_path):
    _, _, spec = read_fixture("cotracker3_online")
    sd = synthetic_state_dict(spec)
    del sd["updateformer.virual_tracks"]
    path = tmp_path / "broken.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="virual_tracks"):
        cotracker3.load(weights=path, mode="online")


@needs_parity
def test_offline_checkpoint_in_online_mode_is_rejected():
    _, _, spec = read_fixture("cotracker3_offline")
    with pytest.raises(CheckpointError, match="time_emb"):
        cotracker3.load(state_dict=synthetic_state_dict(spec), mode="online", window_len=16)


def test_missing_checkpoint_file_is_a_clear_error(tmp_path):
    path = tmp_path / "nope" / "scaled_offline.pth"
    with pytest.raises(TractionError, match="nope"):
        cotracker3.load(weights=path, mode="offline")


def test_unreadable_checkpoint_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        cotracker3.load(weights=path)


def test_bad_inputs_are_rejected_before_running():
    tracker = cotracker3.load(state_dict=cotracker3.CoTracker3(window_len=16).state_dict(), mode="online")
    assert tracker.name == "cotracker3"
    video = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(InvalidTrajectories, match="query frames"):
        tracker.track(video, np.array([[4, 1.0, 1.0]], np.float32))
    with pytest.raises(InvalidTrajectories, match="shape"):
        tracker.track(video, np.zeros((3, 2), np.float32))
    with pytest.raises(VideoError, match="uint8"):
        tracker.track(video[..., 0], np.zeros((1, 3), np.float32))
    with pytest.raises(InvalidTrajectories, match=r"\(2, N, 3\)"):
        tracker.track_batch(np.stack([video, video]), np.zeros((1, 1, 3), np.float32))
    with pytest.raises(TractionError, match="mode"):
        cotracker3.load(state_dict={}, mode="sideways")


def test_registry_builds_cotracker3(tmp_path):
    from traction.tracking import load_tracker
    path = tmp_path / "ct3.pth"
    torch.save(cotracker3.CoTracker3(window_len=16).state_dict(), path)
    tracker = load_tracker("cotracker3", weights=str(path), mode="online", iters=2)
    assert isinstance(tracker, cotracker3.CoTracker3Tracker)
    assert tracker.mode == "online" and tracker.iters == 2 and tracker.vis_threshold == 0.6


# --------------------------------------------------------------------------- fast paths

_CORR_CASES = [  # (B, T, N, C, H, W, radius): edge sizes, C not a multiple of the block, 1-px maps
    (1, 2, 3, 32, 12, 10, 3),
    (2, 1, 1, 20, 1, 2, 3),
    (1, 3, 5, 128, 6, 7, 3),
    (1, 1, 2, 16, 5, 5, 1),
]


_INTERPRET_SCRIPT = """
import sys, torch
from traction.tracking.cotracker3.corr_triton import local_correlation_triton
cases = torch.load(sys.argv[1])
torch.save([local_correlation_triton(c["fmap"], c["xy"], c["support"], c["r"]) for c in cases], sys.argv[2])
"""


def test_triton_correlation_matches_pytorch_definition(tmp_path):
    pytest.importorskip("triton")
    from traction.tracking.cotracker3.sampling import local_correlation
    cases = []
    for case in _CORR_CASES:
        B, T, N, C, H, W, r = case
        g = torch.Generator().manual_seed(sum(case))
        # positions inside, outside (border padding) and exactly on pixel centres / the last pixel
        xy = torch.rand(B, T, N, 2, generator=g) * torch.tensor([W + 6.0, H + 6.0]) - 3.0
        xy[..., 0, :] = torch.tensor([float(W - 1), float(H - 1)])
        if N > 1:
            xy[..., 1, :] = torch.tensor([1.0, 0.0])
        cases.append({"fmap": torch.randn(B, T, C, H, W, generator=g), "xy": xy, "r": r,
                      "support": torch.randn(B, N, 2 * r + 1, 2 * r + 1, C, generator=g)})
    torch.save(cases, tmp_path / "in.pt")
    # TRITON_INTERPRET must be set before triton.language is first imported: use a fresh process.
    env = {**os.environ, "TRITON_INTERPRET": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _INTERPRET_SCRIPT, str(tmp_path / "in.pt"), str(tmp_path / "out.pt")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outs = torch.load(tmp_path / "out.pt")
    for case, c, out in zip(_CORR_CASES, cases, outs):
        ref = local_correlation(c["fmap"], c["xy"], c["support"], c["r"])
        assert out.shape == ref.shape == (*c["xy"].shape[:3], (2 * c["r"] + 1) ** 4), case
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-4, msg=f"case {case}")


def _load_export_module():
    try:
        from traction.export import cotracker3_onnx       # installed wheel layout
        return cotracker3_onnx
    except ImportError:
        spec_ = importlib.util.spec_from_file_location("cotracker3_onnx", REPO / "export" / "cotracker3_onnx.py")
        mod = importlib.util.module_from_spec(spec_)
        spec_.loader.exec_module(mod)
        return mod


def test_onnx_export_matches_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    # Random weights of the right scale (not the parity ones: this checks the export, not the model).
    model = cotracker3.CoTracker3(window_len=60)
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(v.shape, generator=g) / (math.sqrt(v[0].numel()) if v.ndim > 1 else 10.0)
          for k, v in model.state_dict().items()}
    tracker = cotracker3.load(state_dict=sd, mode="offline", iters=2)
    T, N, H, W = 4, 5, 64, 96
    path = _load_export_module().export_cotracker3(tracker, tmp_path / "ct3.onnx", T=T, N=N, H=H, W=W)
    video = torch.rand(1, T, 3, H, W, generator=g) * 255.0
    queries = torch.cat([torch.tensor([0.0, 3, 1, 2, 0]).reshape(1, N, 1),
                         torch.rand(1, N, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])], dim=-1)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"video": video.numpy(), "queries": queries.numpy()})
    with torch.no_grad():
        want = tracker.model(video, queries, iters=2)
    for name, a, b in zip(("tracks", "vis", "conf"), got, want):
        assert a.shape == tuple(b.shape), name
        np.testing.assert_allclose(a, b.numpy(), atol=1e-3, err_msg=name)
