"""The trajectory store: round trips, appends, integrity checks and crash safety (design.md "Data model")."""
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import traction
from traction.errors import CorruptRecord, StoreError
from traction.store import StoreWriter, log_error, open_store, read_errors, stats

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Shared by the tests and the SIGKILL child process, so both build the very same records.
CLIP_SRC = textwrap.dedent("""
    import numpy as np
    from traction.trajectories import Trajectories

    def clip(i):
        rng = np.random.default_rng(1000 + i)
        n, t = 5 + i % 4, 6
        depth = rng.random((n, t)) if i % 3 else None
        vis = (rng.random((n, t)) > 0.2).astype(np.float32)
        return Trajectories(xy=rng.random((n, t, 2)) * 50, vis=vis, depth=depth,
                            height=48, width=64, fps=10.0 + i % 2)

    def label(i):
        return ["jump", "run", "sit"][i % 3]

    def split(i):
        return "test" if i % 5 == 0 else "train"
""")
_ns: dict = {}
exec(CLIP_SRC, _ns)
clip, label, split = _ns["clip"], _ns["label"], _ns["split"]


def write(root, ids, shard_size=3, **kw):
    with StoreWriter(root, shard_size=shard_size, tracker="lk", depth_model="none", **kw) as w:
        for i in ids:
            w.add(f"clip-{i:04d}", clip(i), label=label(i), split=split(i), meta={"source": f"v{i}.mp4", "i": i})
    return root


def assert_same_trajectories(a, b):
    for name in ("xy", "vis", "queries", "frame_indices"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (a.depth is None) == (b.depth is None)
    if a.depth is not None:
        np.testing.assert_array_equal(a.depth, b.depth)
    assert (a.height, a.width, a.fps) == (b.height, b.width, b.fps)


def manifest_ids(root):
    """Clip ids of the complete manifest lines, duplicates included."""
    with open(os.path.join(root, "manifest.jsonl"), "rb") as f:
        complete = f.read().split(b"\n")[:-1]  # the part after the last newline is torn
    return [json.loads(line)["clip_id"] for line in complete if line.strip()]


# ---------------------------------------------------------------------- round trips
def test_round_trip_with_and_without_depth(tmp_path):
    root = write(tmp_path / "c", range(7))
    store = traction.open_store(root)
    assert len(store) == 7
    assert store.labels == ["jump", "run", "sit"]
    assert store.label_to_index == {"jump": 0, "run": 1, "sit": 2}
    assert store.splits() == ["test", "train"]
    assert store.indices("test") == [0, 5]
    assert store.indices(None) == list(range(7))
    assert store.clip_ids == {f"clip-{i:04d}" for i in range(7)}
    assert store.verify() == []
    depths = set()
    for i, rec in enumerate(store):
        assert rec.clip_id == f"clip-{i:04d}" and rec.label == label(i) and rec.split == split(i)
        assert_same_trajectories(rec.trajectories, clip(i))
        assert rec.meta["tracker"] == "lk" and rec.meta["source"] == f"v{i}.mp4" and rec.meta["i"] == i
        depths.add(rec.trajectories.has_depth)
    assert depths == {True, False}
    entry = store.records[1]
    assert (entry.N, entry.T, entry.H, entry.W) == (6, 6, 48, 64) and entry.checksum.startswith("sha256:")
    assert store.get("clip-0003").clip_id == "clip-0003"
    assert store[-1].clip_id == "clip-0006"
    with pytest.raises(IndexError):
        store[7]
    # DataLoader workers pickle the dataset: a store with open shards must survive that.
    again = pickle.loads(pickle.dumps(store))
    assert_same_trajectories(again[2].trajectories, clip(2))


def test_many_shards_and_stats(tmp_path):
    root = write(tmp_path / "c", range(11), shard_size=2)
    assert len(os.listdir(tmp_path / "c" / "shards")) == 6
    s = stats(open_store(root))
    assert s["num_clips"] == 11
    assert s["per_split"] == {"test": 3, "train": 8}
    assert s["per_label"] == {"jump": 4, "run": 4, "sit": 3}
    assert sum(s["N"].values()) == 11 and s["T"] == {6: 11}
    assert s["with_depth"] == sum(1 for i in range(11) if i % 3)


def test_append_on_reopen_and_has(tmp_path):
    root = write(tmp_path / "c", range(4))
    with StoreWriter(root, shard_size=3) as w:
        assert w.has("clip-0002") and not w.has("clip-0009")
        w.add("clip-0009", clip(9), label=label(9))
        assert w.has("clip-0009")  # pending records count for resumable loops
        with pytest.raises(StoreError, match="clip-0001.*already in store"):
            w.add("clip-0001", clip(1))
    store = open_store(root)
    assert len(store) == 5 and "clip-0009" in store
    assert_same_trajectories(store.get("clip-0009").trajectories, clip(9))
    assert manifest_ids(root) == [f"clip-{i:04d}" for i in (0, 1, 2, 3, 9)]


def test_overwrite_replaces_record_in_place(tmp_path):
    root = write(tmp_path / "c", range(3))
    with StoreWriter(root) as w:
        w.add("clip-0001", clip(7), label="other", overwrite=True)
    store = open_store(root)
    assert len(store) == 3 and store.index_of("clip-0001") == 1
    assert store[1].label == "other"
    assert_same_trajectories(store[1].trajectories, clip(7))


def test_two_writers_share_a_store(tmp_path):
    root = str(tmp_path / "c")
    a, b = StoreWriter(root, shard_size=100), StoreWriter(root, shard_size=100)
    a.add("clip-0000", clip(0)); a.add("both", clip(1))
    b.add("clip-0002", clip(2)); b.add("both", clip(3))
    a.flush(); b.close(); a.close()
    store = open_store(root)
    assert sorted(store.clip_ids) == ["both", "clip-0000", "clip-0002"]
    assert b.skipped == ["both"]  # the first committed copy wins
    assert_same_trajectories(store.get("both").trajectories, clip(1))


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(StoreError, match="not a traction store.*no manifest"):
        open_store(tmp_path)
    with pytest.raises(StoreError, match="no such directory"):
        open_store(tmp_path / "missing")
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(b"x")
    with pytest.raises(StoreError, match="not empty and not a traction store"):
        StoreWriter(tmp_path / "videos")
    with StoreWriter(tmp_path / "c") as w:
        with pytest.raises(StoreError, match="label must be a string"):
            w.add("x", clip(0), label=3)
        with pytest.raises(StoreError, match="expected traction.Trajectories"):
            w.add("x", np.zeros((3, 4, 2)))
        with pytest.raises(StoreError, match="not JSON-serializable"):
            w.add("x", clip(0), meta={"f": object()})
    assert len(open_store(tmp_path / "c")) == 0


# ---------------------------------------------------------------------- integrity
def test_checksum_detects_a_flipped_byte(tmp_path):
    root = write(tmp_path / "c", range(3), shard_size=10)
    shard = tmp_path / "c" / "shards" / "000000.safetensors"
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0x01  # inside the tensor data (the header is at the front)
    shard.write_bytes(bytes(data))
    store = open_store(root)
    problems = store.verify()
    assert len(problems) == 1 and "checksum mismatch" in problems[0] and "000000.safetensors" in problems[0]
    bad = [i for i in range(3) if any(store.records[i].clip_id in p for p in problems)]
    with pytest.raises(CorruptRecord, match=f"{store.records[bad[0]].clip_id}.*000000.safetensors"):
        store[bad[0]]
    ok = [i for i in range(3) if i not in bad]
    assert_same_trajectories(store[ok[0]].trajectories, clip(ok[0]))


def test_missing_and_truncated_shards_are_named(tmp_path):
    root = write(tmp_path / "c", range(6), shard_size=2)
    shards = tmp_path / "c" / "shards"
    os.remove(shards / "000001.safetensors")
    data = (shards / "000002.safetensors").read_bytes()
    (shards / "000002.safetensors").write_bytes(data[: len(data) // 2])
    store = open_store(root)  # lazy: opening reads only the manifest
    assert len(store) == 6
    with pytest.raises(StoreError, match="000001.safetensors: shard file is missing"):
        store[2]
    with pytest.raises(CorruptRecord, match="clip-0004.*000002.safetensors.*unreadable shard"):
        store[4]
    assert_same_trajectories(store[0].trajectories, clip(0))
    assert len(store.verify()) == 4


# ---------------------------------------------------------------------- crash leftovers
def test_torn_manifest_line_is_ignored_then_repaired(tmp_path):
    root = write(tmp_path / "c", range(4))
    manifest = tmp_path / "c" / "manifest.jsonl"
    full = manifest.read_bytes()
    last_start = full[:-1].rfind(b"\n") + 1
    manifest.write_bytes(full[: last_start + 25])  # killed in the middle of writing the last line
    store = open_store(root)
    assert len(store) == 3 and store.verify() == []
    write(root, [5])  # a writer cuts the torn tail and re-adds the lost line from its shard
    store = open_store(root)
    assert sorted(store.clip_ids) == [f"clip-{i:04d}" for i in (0, 1, 2, 3, 5)]
    assert sorted(manifest_ids(root)) == sorted(store.clip_ids) and store.verify() == []


def test_orphan_shard_and_temp_file_are_recovered(tmp_path):
    root = write(tmp_path / "c", range(6), shard_size=3)
    manifest = tmp_path / "c" / "manifest.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    manifest.write_bytes(b"".join(lines[:3]))  # killed after the rename, before the manifest append
    tmp = tmp_path / "c" / "shards" / ".tmp-000009.safetensors"
    tmp.write_bytes(b"half a shard")  # killed while writing a shard
    assert len(open_store(root)) == 3  # readers see only committed records
    StoreWriter(root).close()
    store = open_store(root)
    assert len(store) == 6 and store.verify() == []
    assert not tmp.exists()
    assert sorted(manifest_ids(root)) == [f"clip-{i:04d}" for i in range(6)]


def test_partially_appended_shard_lines_are_completed(tmp_path):
    root = write(tmp_path / "c", range(6), shard_size=3)
    manifest = tmp_path / "c" / "manifest.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    manifest.write_bytes(b"".join(lines[:4]) + lines[4][:10])  # 1 of 3 lines + a torn one
    assert len(open_store(root)) == 4
    with StoreWriter(root) as w:
        assert w.has("clip-0005")
    assert sorted(manifest_ids(root)) == [f"clip-{i:04d}" for i in range(6)]
    assert open_store(root).verify() == []


def test_unreadable_orphan_shard_is_set_aside(tmp_path):
    root = write(tmp_path / "c", range(2))
    junk = tmp_path / "c" / "shards" / "000007.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.warns(UserWarning, match="set aside"):
        StoreWriter(root).close()
    assert not junk.exists() and (tmp_path / "c" / "shards" / "000007.safetensors.corrupt").exists()
    assert len(open_store(root)) == 2
    assert read_errors(root)[-1]["stage"] == "store"


def test_error_log(tmp_path):
    root = write(tmp_path / "c", range(1))
    log_error(root, "bad.mp4", "decode", "moov atom not found")
    with open(os.path.join(root, "errors.jsonl"), "ab") as f:
        f.write(b'{"path": "torn')  # a killed worker
    with StoreWriter(root) as w:
        w.log_error("worse.mp4", "track", "out of memory", worker=3)
    errs = read_errors(open_store(root))
    assert [(e["path"], e["stage"]) for e in errs] == [("bad.mp4", "decode"), ("worse.mp4", "track")]
    assert errs[1]["worker"] == 3 and errs[0]["reason"] == "moov atom not found"


# ---------------------------------------------------------------------- real SIGKILL
CHILD_SRC = CLIP_SRC + textwrap.dedent("""
    import sys
    from traction.store import StoreWriter

    root, n = sys.argv[1], int(sys.argv[2])
    with StoreWriter(root, shard_size=3, tracker="lk", depth_model="none") as w:
        for i in range(n):
            cid = f"clip-{i:04d}"
            if w.has(cid):
                continue
            w.add(cid, clip(i), label=label(i), split=split(i), meta={"source": f"v{i}.mp4", "i": i})
            print(cid, flush=True)
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_at_random_moments_then_resume(tmp_path):
    n = 60
    child = tmp_path / "child.py"
    child.write_text(CHILD_SRC)
    root = str(tmp_path / "killed")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rnd = random.Random(1234)
    kills = 0
    for attempt in range(8):
        proc = subprocess.Popen([sys.executable, str(child), root, str(n)], stdout=subprocess.PIPE, env=env)
        wanted, seen = rnd.randint(1, 8), 0
        while seen < wanted and proc.stdout.readline():
            seen += 1
        time.sleep(rnd.uniform(0.0, 0.01))
        proc.kill()
        proc.wait()
        proc.stdout.close()
        kills += proc.returncode == -signal.SIGKILL
        if os.path.exists(os.path.join(root, "manifest.jsonl")):
            store = open_store(root)  # opens cleanly after every kill
            ids = manifest_ids(root)
            assert len(ids) == len(set(ids)) and store.verify() == []
    assert kills >= 4
    done = subprocess.run([sys.executable, str(child), root, str(n)], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()

    reference = open_store(write(str(tmp_path / "clean"), range(n)))
    store = open_store(root)
    ids = manifest_ids(root)
    assert len(ids) == len(set(ids)) == n
    assert store.clip_ids == reference.clip_ids
    assert store.verify() == []
    for ref in reference:
        rec = store.get(ref.clip_id)
        assert (rec.label, rec.split, rec.meta["i"]) == (ref.label, ref.split, ref.meta["i"])
        assert_same_trajectories(rec.trajectories, ref.trajectories)
