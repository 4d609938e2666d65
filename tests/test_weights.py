"""Weight resolution: explicit path, --weights-dir, $TRACTION_WEIGHTS, cache, checksums, clear errors."""
import pytest

from traction import weights as W
from traction.errors import CheckpointError, WeightsNotFound


def test_explicit_path_and_directories(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TRACTION_WEIGHTS", raising=False)
    f = tmp_path / "mine.pth"
    f.write_bytes(b"x")
    assert W.resolve("vda-s", weights=f) == f
    d = tmp_path / "wd"
    d.mkdir()
    (d / "video_depth_anything_vits.pth").write_bytes(b"y")
    assert W.resolve("vda-s", weights_dir=d) == d / "video_depth_anything_vits.pth"
    env = tmp_path / "env"
    env.mkdir()
    (env / "scaled_offline.pth").write_bytes(b"z")
    monkeypatch.setenv("TRACTION_WEIGHTS", str(env))
    assert W.resolve("cotracker3-offline") == env / "scaled_offline.pth"


def test_missing_weights_say_what_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TRACTION_WEIGHTS", raising=False)
    with pytest.raises(WeightsNotFound, match="scaled_online.pth.*huggingface"):
        W.resolve("cotracker3-online", allow_download=False)
    with pytest.raises(WeightsNotFound, match="weights file not found"):
        W.resolve("vda-b", weights=tmp_path / "nope.pth")
    with pytest.raises(WeightsNotFound, match="no weights registered"):
        W.resolve("cotracker9")


def test_download_failure_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TRACTION_WEIGHTS", raising=False)
    monkeypatch.setitem(W.REGISTRY, "test-model", W.WeightSpec("t.pth", "http://127.0.0.1:9/t.pth"))
    with pytest.raises(WeightsNotFound, match="download from http://127.0.0.1:9/t.pth failed"):
        W.resolve("test-model")


def test_download_is_atomic_and_checksummed(tmp_path, monkeypatch):
    src = tmp_path / "published.pth"
    src.write_bytes(b"weights" * 1000)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TRACTION_WEIGHTS", raising=False)
    monkeypatch.setitem(W.REGISTRY, "test-model", W.WeightSpec("t.pth", src.as_uri()))
    got = W.resolve("test-model", progress=False)
    assert got.read_bytes() == src.read_bytes()
    assert (got.parent / "t.pth.sha256").read_text().split()[0] == W.sha256_of(src)
    assert not [p for p in got.parent.iterdir() if ".part" in p.name]
    got.write_bytes(b"tampered")                                        # corruption is caught later
    with pytest.raises(CheckpointError, match="SHA-256"):
        W.resolve("test-model")
