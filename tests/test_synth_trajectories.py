"""Synthetic 2.5D trajectory clips: determinism, labels and splits, validity, chirality, learnability."""
import argparse

import numpy as np
import pytest

from traction.errors import ConfigError
from traction.store import open_store
from traction.synth.trajectories import (CHIRAL_PAIRS, CLASSES, DEFAULT_CLASSES, clip_rng, main, make_clip, register_cli,
                                         synth_trajectories)


def motion_features(c):
    """Hand features a user would look at: object motion relative to the background.

    Object = nearest 30% of points by median inverse depth, background = farthest 45%; the camera
    is removed with the background's per-frame centroid and spread. Returns net dx, dy (px / 100),
    back-and-forth path length, log size change, rotation (rad, clockwise on screen > 0), and log
    change of the object's inverse depth above the background's."""
    xy, d = c.xy.astype(np.float64), c.depth.astype(np.float64)
    order = np.argsort(np.median(d, axis=1))
    n = len(order)
    obj, bg = order[-int(0.3 * n):], order[: int(0.45 * n)]
    cb = xy[bg].mean(0)                                       # (T, 2) background centroid
    sb = np.sqrt(((xy[bg] - cb) ** 2).sum(-1).mean(0))        # (T,) background spread
    comp = (xy[obj] - cb) / sb[None, :, None] * sb[0]         # (n_obj, T, 2) camera removed
    co = comp.mean(0)                                         # (T, 2)
    rel = comp - co
    so = np.sqrt((rel ** 2).sum(-1).mean(0))
    net = (co[-1] - co[0]) / 100
    path = np.abs(np.diff(co, axis=0)).sum() / 100 - np.abs(net).sum()
    ang = np.arctan2(rel[..., 1], rel[..., 0])                # (n_obj, T)
    rot = np.median(np.angle(np.exp(1j * np.diff(ang, axis=1))).sum(1))
    dob, dbg = np.median(d[obj], 0), np.median(d[bg], 0)
    ddepth = np.log((dob[-1] - dbg[-1]) / (dob[0] - dbg[0]))
    return np.array([net[0], net[1], path, np.log(so[-1] / so[0]), rot, ddepth])


def test_deterministic_per_seed_and_independent_of_n(tmp_path):
    a = synth_trajectories(tmp_path / "a", 24, seed=3, points=32, frames=8, progress=False)
    b = synth_trajectories(tmp_path / "b", 12, seed=3, points=32, frames=8, progress=False)
    c = synth_trajectories(tmp_path / "c", 12, seed=4, points=32, frames=8, progress=False)
    assert [(e.clip_id, e.label, e.split, e.checksum) for e in a.records[:12]] == \
           [(e.clip_id, e.label, e.split, e.checksum) for e in b.records]
    assert not np.array_equal(a[0].trajectories.xy, c[0].trajectories.xy)
    np.testing.assert_array_equal(make_clip(clip_rng(5, 2), "shake", 16, 8).xy,
                                  make_clip(clip_rng(5, 2), "shake", 16, 8).xy)


def test_resume_appends_missing_clips_only(tmp_path):
    first = synth_trajectories(tmp_path / "s", 12, seed=1, points=16, frames=8, progress=False)
    sums = {e.clip_id: e.checksum for e in first.records}
    store = synth_trajectories(tmp_path / "s", 30, seed=1, points=16, frames=8, progress=False)
    assert len(store) == 30 and len(store.clip_ids) == 30
    assert all(store.records[store.index_of(k)].checksum == v for k, v in sums.items())


def test_classes_splits_shapes_and_dtypes(tmp_path):
    store = synth_trajectories(tmp_path / "s", 120, seed=0, points=40, frames=32, progress=False,
                               val_fraction=0.1)
    assert len(DEFAULT_CLASSES) >= 10 and store.labels == sorted(DEFAULT_CLASSES)
    assert store.splits() == ["test", "train", "val"]
    assert 0.1 <= len(store.indices("test")) / len(store) <= 0.3
    assert store.verify() == []
    for i in range(0, 120, 7):
        rec = store[i]
        t = rec.trajectories
        assert (t.num_points, t.num_frames, t.height, t.width, t.fps) == (40, 32, 240, 320, 12.0)
        assert t.xy.dtype == t.vis.dtype == t.depth.dtype == t.queries.dtype == np.float32
        assert set(np.unique(t.vis)) <= {0.0, 1.0} and (t.depth > 0).all()
        # A query is a visible point of its trajectory, as the tracker was asked for it.
        tq = t.queries[:, 0].astype(int)
        rows = np.arange(t.num_points)
        assert np.allclose(t.queries[:, 0], tq) and (t.vis[rows, tq] == 1).all()
        np.testing.assert_allclose(t.xy[rows, tq], t.queries[:, 1:], atol=1e-4)
        np.testing.assert_array_equal(t.frame_indices, np.arange(32))
        assert rec.meta["tracker"] == "synthetic" and rec.meta["seed"] == 0 and rec.meta["index"] == i


@pytest.mark.parametrize("first,second", CHIRAL_PAIRS)
def test_chiral_partner_is_the_exact_time_reversal(first, second):
    a = make_clip(clip_rng(11, 4), first, 48, 16)
    b = make_clip(clip_rng(11, 4), second, 48, 16)
    r = a.time_reversed()
    for name in ("xy", "vis", "depth", "queries"):
        np.testing.assert_array_equal(getattr(b, name), getattr(r, name))


def test_reversed_clips_have_the_partners_motion_signature():
    # Feature index and sign that defines each canonical class (first of its pair).
    signature = {"move_left": (0, -1), "move_up": (1, -1), "move_towards": (5, +1),
                 "rotate_cw": (4, +1), "expand": (3, +1)}
    for first, second in CHIRAL_PAIRS:
        k, sign = signature[first]
        fwd = np.array([motion_features(make_clip(clip_rng(21, i), first, 96)) for i in range(12)])
        rev = np.array([motion_features(make_clip(clip_rng(21, i), first, 96).time_reversed()) for i in range(12)])
        partner = np.array([motion_features(make_clip(clip_rng(22, i), second, 96)) for i in range(12)])
        assert (sign * fwd[:, k] > 0).all(), first
        assert (sign * rev[:, k] < 0).all() and (sign * partner[:, k] < 0).all(), second
        # same distribution: the reversed clips' mean signature is within the partner's spread
        assert abs(rev[:, k].mean() - partner[:, k].mean()) < 1.5 * partner[:, k].std() + 1e-6, second


def test_occlusions_present():
    c = make_clip(clip_rng(0, 9), "move_left", 256, 32)
    hidden = 1 - c.vis.mean()
    assert 0.05 < hidden < 0.6
    # gaps inside a trajectory (visible, hidden, visible again), not only points leaving the frame
    v = c.vis > 0
    first, last = v.argmax(1), c.num_frames - 1 - v[:, ::-1].argmax(1)
    t = np.arange(c.num_frames)
    gap = (~v & (t >= first[:, None]) & (t <= last[:, None])).any(1)
    assert gap.sum() >= 10
    # and hidden points that are inside the frame (behind the object or occluded)
    inside = (c.xy[..., 0] >= 0) & (c.xy[..., 0] <= 319) & (c.xy[..., 1] >= 0) & (c.xy[..., 1] <= 239)
    assert (inside & ~v).sum() > 0.02 * v.size


def test_nearest_centroid_on_motion_features_beats_chance():
    k = len(CLASSES)
    feats, labels = [], []
    for i in range(k * 12):
        feats.append(motion_features(make_clip(clip_rng(5, i), CLASSES[i % k], 96)))
        labels.append(i % k)
    x, y = np.array(feats), np.array(labels)
    train = np.arange(len(y)) < k * 8
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-9
    z = (x - mu) / sd
    centroids = np.stack([z[train & (y == c)].mean(0) for c in range(k)])
    pred = ((z[~train][:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    accuracy = (pred == y[~train]).mean()
    assert accuracy > 0.6, accuracy  # chance is 1/12


def test_cli_and_errors(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "s"), "--n", "12", "--points", "16", "--frames", "8",
                 "--seed", "2", "--test-fraction", "0.25", "--no-progress"]) == 0
    assert "12 clips" in capsys.readouterr().out
    store = open_store(tmp_path / "s")
    assert len(store) == 12 and store.records[0].N == 16 and store.records[0].T == 8
    parser = argparse.ArgumentParser(prog="traction synth")
    register_cli(parser.add_subparsers(dest="what"))
    args = parser.parse_args(["trajectories", "--out", "x", "--n", "5"])
    assert args.func is main and args.n == 5 and args.seed == 0 and args.points == 256
    with pytest.raises(ConfigError, match="unknown synthetic class"):
        make_clip(clip_rng(0, 0), "dance")
    with pytest.raises(ConfigError, match="unknown synthetic classes"):
        synth_trajectories(tmp_path / "t", 3, classes=["dance"], progress=False)
