"""`traction demo` (the README's main command) runs every step of the video path and leaves its
outputs where it says; here on a handful of tiny clips."""
import json

from traction.cli import main


def test_demo_end_to_end_small(tmp_path, capsys):
    out = tmp_path / "demo"
    # 8 clips per class: the low-discrepancy split then puts at least one of each class in "test"
    code = main(["demo", "--out", str(out), "--n", "80", "--epochs", "1", "--points", "32", "--workers", "1"])
    assert code == 0
    err = capsys.readouterr().err
    assert "$ traction synth videos" in err and "$ traction extract" in err and "$ traction finetune" in err
    assert "traction demo: done in" in err and "test top-1" in err
    last = json.loads((out / "run" / "last.json").read_text())
    assert 0.0 <= last["metrics"]["top1"] <= 1.0 and last["metrics"]["num_clips"] > 0
    for f in ("run/confusion.png", "run/accuracy.png", "tracks.png", "videos/list.txt"):
        assert (out / f).stat().st_size > 0, f
    assert len(list((out / "videos").glob("*.mp4"))) == 80
