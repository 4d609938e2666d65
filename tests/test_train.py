"""End to end on a tiny synthetic store: finetune, pretrain -> finetune, resume, evaluate, errors."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, TINY
from traction.cli import main
from traction.store import open_store

FLAGS = ["--batch-size", "32", "--points", "32", "--device", "cpu", "--quiet"]
OVERRIDES = TINY + ["model.num_frames=16"]
FAST = ["--epochs", "2"] + FLAGS + OVERRIDES


def _json_out(capsys):
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


@pytest.fixture(scope="module")
def finetuned(synth_store, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "ft"
    assert main(["finetune", "--data", str(synth_store), "--out", str(run), "--json"] + FAST) == 0
    return run


def test_finetune_writes_a_complete_run(finetuned):
    for name in ("config.json", "metrics.jsonl", "best.safetensors", "best.json", "last.safetensors",
                 "last.json", "train_state.pt", "loss.png", "accuracy.png", "confusion.png"):
        assert (finetuned / name).is_file(), name
    cfg = json.loads((finetuned / "config.json").read_text())
    assert cfg["mode"] == "finetune" and cfg["model"]["embed_dim"] == 48 and cfg["optim"]["epochs"] == 2
    meta = json.loads((finetuned / "best.json").read_text())
    assert meta["kind"] == "classifier" and len(meta["labels"]) == 10
    rows = [json.loads(l) for l in (finetuned / "metrics.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in rows} == {"train", "eval"}
    assert [r["epoch"] for r in rows if r["kind"] == "eval"] == [1, 2]


def test_json_output_and_learning(synth_store, tmp_path, capsys):
    run = tmp_path / "ft"
    assert main(["finetune", "--data", str(synth_store), "--out", str(run), "--json", "--epochs", "4"] + FLAGS
                + ["optim.lr=1e-3"] + OVERRIDES) == 0
    res = _json_out(capsys)
    for key in ("top1", "top5", "mean_class_acc", "num_clips", "per_class_acc"):
        assert key in res
    assert res["num_clips"] == len(open_store(synth_store).indices("test"))
    assert res["top1"] > 3 / 10, res  # well above chance (1/10) after a few hundred clip-steps


def test_pretrain_then_finetune_from_it(synth_store, tmp_path, capsys):
    pre = tmp_path / "pre"
    assert main(["pretrain", "--data", str(synth_store), "--out", str(pre), "--json"] + FAST) == 0
    res = _json_out(capsys)
    assert res["loss"] > 0 and json.loads((pre / "best.json").read_text())["kind"] == "mae"
    ft = tmp_path / "ft"
    assert main(["finetune", "--data", str(synth_store), "--out", str(ft), "--init", str(pre), "--epochs", "1"]
                + FLAGS + OVERRIDES) == 0
    # the encoder really came from the pretraining run
    from safetensors.torch import load_file
    pre_w = load_file(str(pre / "last.safetensors"))
    from traction.model.checkpoint import load_state
    from traction.model.transformer import TrajectoryTransformer
    from traction.config import TrainConfig, apply_overrides
    cfg = apply_overrides(TrainConfig(), TINY + ["model.num_frames=16"])
    m = TrajectoryTransformer(cfg.model, num_classes=12)
    from traction.train.loop import _Encoder
    load_state(_Encoder(m), {k[8:]: v for k, v in pre_w.items() if k.startswith("encoder.")}, "pre")
    assert m.cls_token.abs().sum() > 0


def test_resume_continues_where_it_stopped(synth_store, tmp_path, capsys):
    run = tmp_path / "r"
    args = ["finetune", "--data", str(synth_store), "--out", str(run)]
    assert main(args + ["--epochs", "1"] + FLAGS + OVERRIDES) == 0
    assert main(args + ["--epochs", "2", "--resume"] + FLAGS + OVERRIDES) == 0
    evals = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in l]
    assert [e["epoch"] for e in evals] == [1, 2]
    assert evals[1]["step"] == 2 * evals[0]["step"]


@pytest.mark.parametrize("protocol", ["top1", "knn", "linear", "chirality"])
def test_evaluate_protocols(finetuned, synth_store, capsys, protocol):
    assert main(["evaluate", "--data", str(synth_store), "--checkpoint", str(finetuned / "best"),
                 "--protocol", protocol, "--json", "--quiet"]) == 0
    res = _json_out(capsys)
    assert res["protocol"] == protocol and res["num_clips"] == len(open_store(synth_store).indices("test"))
    assert 0.0 <= res["top1"] <= 1.0 and 0.0 <= res["mean_class_acc"] <= 1.0
    if protocol == "chirality":
        assert len(res["pairs"]) == 4 and 0.0 <= res["partner_rate"] <= 1.0
        assert 0.0 <= res["cia_mean_acc"] <= 1.0


def test_save_features_and_fuse(finetuned, synth_store, tmp_path, capsys):
    feats = tmp_path / "traj.safetensors"
    assert main(["evaluate", "--data", str(synth_store), "--checkpoint", str(finetuned), "--quiet",
                 "--save-features", str(feats)]) == 0
    from safetensors import safe_open
    from safetensors.torch import save_file
    import torch
    with safe_open(str(feats), "pt") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}
    assert t["features"].shape == (360, 48) and set(t["split"].tolist()) == {0, 2}
    # a stand-in "vision" feature set: noisy one-hot labels, as a strong appearance model would give
    g = torch.Generator().manual_seed(0)
    vis = torch.nn.functional.one_hot(t["labels"], 12).float() + 0.5 * torch.randn(360, 12, generator=g)
    vpath = tmp_path / "vision.safetensors"
    save_file({"features": vis, "labels": t["labels"], "split": t["split"]}, str(vpath), metadata=meta)
    capsys.readouterr()
    assert main(["fuse", "--traj-features", str(feats), "--vision-features", str(vpath), "--out",
                 str(tmp_path / "fuse"), "--json", "--epochs", "30", "--lr", "1e-2", "--quiet"]) == 0
    res = _json_out(capsys)
    assert {"traj_top1", "vision_top1", "fused_top1"} <= set(res)
    assert res["fused_top1"] >= res["traj_top1"] - 0.05


# --------------------------------------------------------------------------- errors

def _err(capsys):
    return capsys.readouterr().err.strip().splitlines()


def test_unknown_config_key_is_one_line(synth_store, tmp_path, capsys):
    assert main(["finetune", "--data", str(synth_store), "--out", str(tmp_path / "x"), "model.nope=1"]) == 1
    err = _err(capsys)
    assert len(err) == 1 and "unknown config key 'model.nope'" in err[0]


def test_missing_and_corrupt_checkpoint(finetuned, synth_store, tmp_path, capsys):
    assert main(["evaluate", "--data", str(synth_store), "--checkpoint", str(tmp_path / "nothing")]) == 1
    assert "checkpoint not found" in _err(capsys)[-1]
    bad = tmp_path / "bad"
    bad.mkdir()
    for suffix in (".json", ".safetensors"):
        (bad / f"best{suffix}").write_bytes((finetuned / f"best{suffix}").read_bytes())
    data = (bad / "best.safetensors").read_bytes()
    (bad / "best.safetensors").write_bytes(data[: len(data) // 2])           # truncated
    assert main(["evaluate", "--data", str(synth_store), "--checkpoint", str(bad)]) == 1
    assert "corrupt or truncated" in _err(capsys)[-1]
    (bad / "best.json").write_text("{not json")
    assert main(["evaluate", "--data", str(synth_store), "--checkpoint", str(bad)]) == 1
    assert "corrupt checkpoint metadata" in _err(capsys)[-1]


def test_resume_without_a_run(synth_store, tmp_path, capsys):
    assert main(["finetune", "--data", str(synth_store), "--out", str(tmp_path / "none"), "--resume"] + FAST) == 1
    assert "nothing to resume" in _err(capsys)[-1]


def test_store_written_halfway(synth_store, tmp_path, capsys):
    import shutil
    half = tmp_path / "half"
    shutil.copytree(synth_store, half)
    shards = sorted((half / "shards").glob("*.safetensors"))
    shards[-1].unlink()                                                    # manifest now points at nothing
    assert main(["finetune", "--data", str(half), "--out", str(tmp_path / "o")] + FAST) == 1
    err = _err(capsys)[-1]
    assert err.startswith("traction: error:") and shards[-1].name in err
    assert main(["finetune", "--data", str(tmp_path), "--out", str(tmp_path / "o")] + FAST) == 1
    assert "not a traction store" in _err(capsys)[-1]


def test_non_finite_loss_stops_with_a_clear_message(synth_store, tmp_path, capsys):
    assert main(["finetune", "--data", str(synth_store), "--out", str(tmp_path / "nan")] + FAST
                + ["optim.lr=1e30", "grad_clip=0"]) == 1
    assert "non-finite loss" in _err(capsys)[-1]


def test_torchrun_ddp_two_cpu_processes(synth_store, tmp_path):
    """Multi-process training (DDP over gloo) gives a complete run written once by rank 0."""
    run = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
           "-m", "traction.cli", "finetune", "--data", str(synth_store), "--out", str(run), "--json"] + FAST
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    store = open_store(synth_store)
    assert res["num_clips"] == len(store.indices("test"))  # every test clip exactly once across the 2 ranks
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["world_size"] == 2
    steps = [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in l]
    per_epoch = -(-len(store.indices("train")) // (2 * 32))   # train clips / (2 ranks x 32 per step)
    assert steps == [per_epoch, 2 * per_epoch]
