"""traction.Engine: file and stream classification with a small trained checkpoint."""
import json
import tracemalloc

import numpy as np
import pytest

from tests.conftest import TINY
from traction.cli import main


@pytest.fixture(scope="module")
def checkpoint(synth_store, tmp_path_factory):
    run = tmp_path_factory.mktemp("eng") / "run"
    assert main(["finetune", "--data", str(synth_store), "--out", str(run), "--epochs", "1", "--batch-size", "64",
                 "--points", "32", "--device", "cpu", "--quiet"] + TINY + ["model.num_frames=16"]) == 0
    return run / "best"


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from traction.synth.videos import render_clip
    from traction.synth.trajectories import clip_rng
    clip = render_clip(clip_rng(0, 3), "move_left", frames=24)
    return clip.frames


def test_engine_extract_and_classify(checkpoint, video):
    import traction
    eng = traction.Engine(checkpoint=str(checkpoint), tracker="lk", depth="none", device="cpu", points=200)
    traj = eng.extract(video, fps=12)
    assert isinstance(traj, traction.Trajectories)
    assert traj.xy.shape == (200, 16, 2) and traj.vis.shape == (200, 16)
    preds = eng.classify(video, top_k=3, fps=12)
    assert len(preds) == 3 and preds[0]["label"] in json.loads((checkpoint.with_suffix(".json")).read_text())["labels"]
    probs = [p["probability"] for p in preds]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6


def test_classify_stream_one_prediction_per_stride_with_bounded_memory(checkpoint, video):
    import traction
    eng = traction.Engine(checkpoint=str(checkpoint), points=64)
    long_stream = (video[i % len(video)] for i in range(80))         # a generator: never held in full
    tracemalloc.start()
    preds = list(eng.classify_stream(long_stream, window=16, stride=8, top_k=2))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # window full at frame 15, then every 8 frames: 15, 23, ..., 79
    assert [p.frame_index for p in preds] == list(range(15, 80, 8))
    assert all(len(p.predictions) == 2 and p.latency_ms > 0 for p in preds)
    frame_bytes = video[0].nbytes
    assert peak < 40 * frame_bytes + 50e6        # the window, not the stream


def test_stream_rejects_bad_frames(checkpoint):
    import traction
    from traction.errors import VideoError
    eng = traction.Engine(checkpoint=str(checkpoint), points=32)
    frames = [np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64), np.uint8)]
    with pytest.raises(VideoError, match="stream frame 1"):
        list(eng.classify_stream(frames, window=2, stride=1))


def test_engine_needs_a_classifier(synth_store, tmp_path):
    import traction
    from traction.errors import TractionError
    run = tmp_path / "pre"
    assert main(["pretrain", "--data", str(synth_store), "--out", str(run), "--epochs", "1", "--batch-size", "128",
                 "--points", "16", "--device", "cpu", "--quiet"] + TINY + ["model.num_frames=16"]) == 0
    with pytest.raises(TractionError, match="classifier"):
        traction.Engine(checkpoint=str(run))


def test_classify_command(checkpoint, video, tmp_path, capsys):
    from traction.video import write_video
    path = tmp_path / "clip.mp4"
    write_video(str(path), video, fps=12)
    assert main(["classify", str(path), "--checkpoint", str(checkpoint), "--top-k", "2", "--json",
                 "--points", "100"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(res["predictions"]) == 2
    assert main(["classify", str(tmp_path / "missing.mp4"), "--checkpoint", str(checkpoint)]) == 1
    assert "missing.mp4" in capsys.readouterr().err
