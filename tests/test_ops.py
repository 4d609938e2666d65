"""The trajectory core (traction.ops): the C++ core against its NumPy twins, and the meaning of
the twins themselves. Axis letters: B batch, N points, T frames, C channels."""
from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from traction import ops
from traction.errors import ConfigError, InvalidTrajectories
from traction.ops import AugmentParams, reference, rng

needs_core = pytest.mark.skipif(not ops.core_available(),
                                reason="traction._core not built (run tools/build_core.sh)")

BIG_SEEDS = [0, 1, 2**31 - 1, 2**63 + 12345, 2**64 - 1]
OFF = AugmentParams(crop_prob=0, rotate_prob=0, translate_prob=0, shift_prob=0, jitter_std=0)
STRONG = AugmentParams(crop_prob=1, crop_min_scale=0.5, rotate_prob=1, translate_prob=1,
                       shift_prob=1, shift_max=3, jitter_std=0.01)


def both(fn, *args, **kwargs):
    """(C++ result, NumPy result) of ops.<fn>."""
    f = getattr(ops, fn)
    return f(*args, backend="cpp", **kwargs), f(*args, backend="numpy", **kwargs)


def assert_same(a, b, atol=1e-5):
    """Float arrays within atol; integer and boolean arrays exactly; tuples element-wise."""
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y, atol)
        return
    assert a.shape == b.shape and a.dtype == b.dtype
    if a.dtype.kind in "fc":
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)
    else:
        np.testing.assert_array_equal(a, b)


def random_raw(r, b, n, t, h=240, w=320, vis_p=0.7):
    """(B, N, T, 4) raw pixel trajectories (some outside the frame), (B, 2) frame sizes."""
    raw = np.empty((b, n, t, 4), np.float32)
    raw[..., 0] = r.uniform(-0.1 * w, 1.1 * w, (b, n, t))
    raw[..., 1] = r.uniform(-0.1 * h, 1.1 * h, (b, n, t))
    raw[..., 2] = r.uniform(0.5, 20.0, (b, n, t))
    raw[..., 3] = (r.uniform(size=(b, n, t)) < vis_p) * r.uniform(0.5, 1.0, (b, n, t))
    return raw, np.tile(np.array([[h, w]], np.float32), (b, 1))


# -------------------------------------------------------------------------------------------- rng
@needs_core
def test_rng_and_streams_match_core():
    from traction import _core

    assert dict(_core.STREAMS) == reference.STREAMS
    for seed in BIG_SEEDS:
        for a, b in [(0, 0), (3, 7), (2**40, 2**62), (2**64 - 1, 5)]:
            assert _core.rng_uniform(seed, 11, a, b) == float(rng.uniform(seed, 11, a, b))
            assert abs(_core.rng_normal(seed, 50, a, b) - float(rng.normal(seed, 50, a, b))) < 1e-12


def test_rng_distribution():
    u = rng.uniform(7, 1, 0, np.arange(20000))
    z = rng.normal(7, 50, 0, np.arange(20000))
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
    assert not np.array_equal(rng.uniform(7, 1, 0, np.arange(8)), rng.uniform(8, 1, 0, np.arange(8)))
    assert not np.array_equal(rng.uniform(7, 1, 0, np.arange(8)), rng.uniform(7, 2, 0, np.arange(8)))


# --------------------------------------------------------------------------------------- resample
@needs_core
@pytest.mark.parametrize("n,t_in,c", [(1, 1, 1), (1, 2, 3), (7, 5, 2), (13, 32, 4)])
@pytest.mark.parametrize("t_out", [1, 2, 3, 7, 32, 65])
def test_resample_core_matches_numpy(n, t_in, c, t_out):
    r = np.random.default_rng(n * 100 + t_in)
    x = r.normal(size=(n, t_in, c)).astype(np.float32)
    vis = r.uniform(size=(n, t_in)).astype(np.float32)
    assert_same(*both("resample", x, vis, t_out))


def test_resample_meaning():
    r = np.random.default_rng(0)
    x = r.normal(size=(4, 9, 3)).astype(np.float32)
    vis = (r.uniform(size=(4, 9)) > 0.3).astype(np.float32)
    same, same_vis = ops.resample(x, vis, 9, backend="numpy")
    np.testing.assert_array_equal(same, x)                       # identity at T_out == T_in
    np.testing.assert_array_equal(same_vis, vis)
    up, up_vis = ops.resample(x, vis, 17, backend="numpy")         # p_j = j / 2
    np.testing.assert_array_equal(up[:, ::2], x)                  # input frames kept, endpoints too
    np.testing.assert_allclose(up[:, 1::2], 0.5 * (x[:, :-1] + x[:, 1:]), atol=1e-6)
    np.testing.assert_array_equal(up_vis[:, 1::2], np.minimum(vis[:, :-1], vis[:, 1:]))
    down, _ = ops.resample(x, vis, 3, backend="numpy")
    np.testing.assert_array_equal(down, x[:, [0, 4, 8]])
    one, _ = ops.resample(x, vis, 1, backend="numpy")
    np.testing.assert_array_equal(one, x[:, :1])                  # p_0 = 0
    rep, _ = ops.resample(x[:, :1], vis[:, :1], 5, backend="numpy")
    np.testing.assert_array_equal(rep, np.repeat(x[:, :1], 5, axis=1))


# -------------------------------------------------------------------------------------- normalize
@needs_core
@pytest.mark.parametrize("case", ["plain", "b1_n1_t1", "all_invisible", "all_invalid", "constant_depth",
                                  "no_depth"])
def test_normalize_core_matches_numpy(case):
    r = np.random.default_rng(1)
    b, n, t = (1, 1, 1) if case == "b1_n1_t1" else (3, 40, 8)
    raw, hw = random_raw(r, b, n, t, h=180, w=320)
    hw[-1] = (400, 300)                                            # portrait sample too
    valid = r.uniform(size=(b, n)) < 0.7
    if case == "all_invisible":
        raw[..., 3] = 0
    if case == "all_invalid":
        valid[0] = False
    if case == "constant_depth":
        raw[..., 2] = 3.0
    has_depth = case != "no_depth"
    assert_same(*both("normalize", raw, hw, has_depth, valid))
    assert_same(*both("normalize", raw, hw, has_depth, None))


def test_normalize_meaning():
    r = np.random.default_rng(2)
    raw, hw = random_raw(r, 2, 50, 6, h=240, w=320)
    raw[..., 0] = np.clip(raw[..., 0], 0, 319)
    raw[..., 1] = np.clip(raw[..., 1], 0, 239)
    valid = np.ones((2, 50), bool)
    valid[1, 30:] = False
    out = ops.normalize(raw, hw, True, valid, backend="numpy")
    assert out[..., 0].min() >= 0 and out[..., 0].max() <= 1.0          # x in [0, W/m]
    assert out[..., 1].min() >= 0 and out[..., 1].max() <= 0.75         # y in [0, H/m]
    np.testing.assert_allclose(out[0, :, :, :2], raw[0, :, :, :2] / 320, atol=1e-6)
    np.testing.assert_array_equal(out[..., 3][valid], raw[..., 3][valid])  # v unchanged
    assert not out[1, 30:].any()                                        # padding is zeros
    for b, npts in [(0, 50), (1, 30)]:
        sel = raw[b, :npts, :, 3] >= 0.5                                # visible entries
        xy_std = np.concatenate([out[b, :npts, :, 0][sel], out[b, :npts, :, 1][sel]]).std()
        d = out[b, :npts, :, 2][sel]
        assert abs(d.mean()) < 1e-5
        np.testing.assert_allclose(d.std(), xy_std, rtol=1e-4)
    flat = ops.normalize(raw, hw, False, valid, backend="numpy")
    assert not flat[..., 2].any()                                       # no depth -> 0
    raw[..., 3] = 0                                                     # none visible: all entries
    d = ops.normalize(raw, hw, True, None, backend="numpy")[0, :, :, 2]
    assert abs(d.mean()) < 1e-5 and d.std() > 0


# ---------------------------------------------------------------------------------- sample_subset
@needs_core
@pytest.mark.parametrize("seed", BIG_SEEDS)
def test_sample_subset_core_matches_numpy(seed):
    num_valid = np.array([0, 1, 4, 5, 6, 300])
    for k in (1, 5, 512):
        assert_same(*both("sample_subset", num_valid, k, seed))
    assert_same(*both("sample_subset", [7], 7, seed))                  # B=1, k == N


def test_sample_subset_meaning():
    num_valid = np.array([2500, 512, 100, 0])
    index, mask = ops.sample_subset(num_valid, 512, 5, backend="numpy")
    assert index.shape == (4, 512) and index.dtype == np.int64 and mask.dtype == bool
    for b, nv in enumerate(num_valid):
        take = min(nv, 512)
        assert mask[b].sum() == take and mask[b, :take].all()
        picked = index[b, :take]
        assert len(set(picked.tolist())) == take and (picked < max(nv, 1)).all()  # no repeats
        assert (index[b, take:] == 0).all()
    assert sorted(index[1].tolist()) == list(range(512))               # k == N: a permutation
    assert index[1].tolist() != list(range(512))                       # in random order
    again, _ = ops.sample_subset(num_valid, 512, 5, backend="numpy")
    other, _ = ops.sample_subset(num_valid, 512, 6, backend="numpy")
    np.testing.assert_array_equal(again, index)
    assert not np.array_equal(other[0], index[0])
    # Roughly uniform: every point is picked about k/N of the time over many seeds.
    counts = np.zeros(20)
    for s in range(400):
        counts[ops.sample_subset([20], 5, s, backend="numpy")[0][0]] += 1
    assert counts.min() > 60 and counts.max() < 140                    # expectation 100


# ---------------------------------------------------------------------------------------- augment
def _normalized_batch(r, b, n, t):
    raw, hw = random_raw(r, b, n, t)
    valid = r.uniform(size=(b, n)) < 0.8
    return ops.normalize(raw, hw, True, valid, backend="numpy"), valid, hw


@needs_core
@pytest.mark.parametrize("params", [AugmentParams(), STRONG, OFF], ids=["default", "strong", "off"])
@pytest.mark.parametrize("b,n,t", [(6, 30, 8), (1, 1, 1), (2, 5, 3)])
def test_augment_core_matches_numpy(params, b, n, t):
    r = np.random.default_rng(b * n * t)
    x, valid, hw = _normalized_batch(r, b, n, t)
    for seed in (3, 2**64 - 1):
        assert_same(*both("augment", x, valid, hw, params, seed))
    valid[:] = False                                                    # all invalid
    assert_same(*both("augment", x, valid, hw, params, 3))


@needs_core
def test_augment_core_matches_numpy_all_invisible():
    r = np.random.default_rng(4)
    x, valid, hw = _normalized_batch(r, 4, 20, 5)
    x[..., 3] = 0
    assert_same(*both("augment", x, valid, hw, STRONG, 9))


def test_augment_all_off_is_identity():
    r = np.random.default_rng(5)
    x, valid, hw = _normalized_batch(r, 3, 20, 6)
    x_aug, valid_aug = ops.augment(x, valid, hw, OFF, 1, backend="numpy")
    np.testing.assert_array_equal(x_aug, x)
    np.testing.assert_array_equal(valid_aug, valid)
    zero_range = AugmentParams(crop_prob=0, rotate_max_deg=0, translate_max=0, shift_max=0, jitter_std=0)
    x_aug, _ = ops.augment(x, valid, hw, zero_range, 1, backend="numpy")
    np.testing.assert_allclose(x_aug, x, atol=1e-6)


def test_augment_shift_moves_frames():
    r = np.random.default_rng(6)
    x, valid, hw = _normalized_batch(r, 8, 10, 12)
    x[..., 3] = 1
    params = dataclasses.replace(OFF, shift_prob=1, shift_max=3)
    x_aug, _ = ops.augment(x, valid, hw, params, 11, backend="numpy")
    shifts = []
    for b in range(8):
        keep = valid[b]
        found = []
        for s in range(-3, 4):
            src = np.clip(np.arange(12) - s, 0, 11)                     # out[t] = in[t - s]
            expect = x[b][keep][:, src].copy()
            expect[:, (np.arange(12) - s < 0) | (np.arange(12) - s > 11), 3] = 0   # padding invisible
            if np.array_equal(x_aug[b][keep], expect):
                found.append(s)
        assert len(found) == 1
        shifts += found
    assert len(set(shifts)) > 1                                         # per-sample shifts


def test_augment_crop_drops_outside_points():
    # The frame centre lies in every crop box of scale >= 0.5; the top-left corner in none.
    hw = np.array([[240, 320]], np.float32)
    t = 4
    x = np.zeros((1, 3, t, 4), np.float32)
    x[0, 0, :, :2] = (0.5, 0.375)                                       # centre, always inside
    x[0, 1, :, :2] = (0.001, 0.001)                                     # corner
    x[0, 2, :2, :2] = (0.5, 0.375)                                      # centre, then corner
    x[0, 2, 2:, :2] = (0.001, 0.001)
    x[..., 2], x[..., 3] = 0.3, 1.0
    valid = np.ones((1, 3), bool)
    params = dataclasses.replace(OFF, crop_prob=1, crop_min_scale=0.5)
    for seed in range(5):
        x_aug, valid_aug = ops.augment(x, valid, hw, params, seed, backend="numpy")
        assert valid_aug.tolist() == [[True, False, True]]
        assert not x_aug[0, 1].any()                                    # dropped -> zeros
        assert (x_aug[0, 2, :2, 3] == 1).all() and (x_aug[0, 2, 2:, 3] == 0).all()
        c = x_aug[0, 0, 0]
        assert 0 <= c[0] <= 1 and 0 <= c[1] <= 0.75 and c[2] == np.float32(0.3)
        assert not np.allclose(c[:2], (0.5, 0.375))                     # recentered: zoomed in


def test_augment_keeps_invalid_untouched_and_is_deterministic():
    r = np.random.default_rng(7)
    x, valid, hw = _normalized_batch(r, 4, 25, 8)
    x[~valid] = 0.25
    a = ops.augment(x, valid, hw, STRONG, 123, backend="numpy")
    np.testing.assert_array_equal(a[0][~valid], x[~valid])
    assert not a[1][~valid].any()
    assert_same(a, ops.augment(x, valid, hw, STRONG, 123, backend="numpy"), atol=0)
    assert not np.array_equal(a[0], ops.augment(x, valid, hw, STRONG, 124, backend="numpy")[0])


# ------------------------------------------------------------------------------------- lift_depth
@needs_core
@pytest.mark.parametrize("n,t,hd,wd,h,w", [(1, 1, 1, 1, 10, 10), (5, 3, 1, 7, 20, 30), (40, 4, 9, 16, 270, 480),
                                           (6, 2, 33, 17, 33, 17)])
def test_lift_depth_core_matches_numpy(n, t, hd, wd, h, w):
    r = np.random.default_rng(n + hd)
    depth = r.uniform(0, 10, (t, hd, wd)).astype(np.float32)
    xy = np.stack([r.uniform(-0.2 * w, 1.2 * w, (n, t)), r.uniform(-0.2 * h, 1.2 * h, (n, t))], -1)
    assert_same(*both("lift_depth", depth, xy.astype(np.float32), (h, w)))


def test_lift_depth_meaning():
    # A depth map linear in x and y is reproduced exactly inside the frame: bilinear is exact.
    t, h, w = 2, 12, 16
    hd, wd = 6, 8                                                       # half resolution
    yy, xx = np.meshgrid(np.arange(hd), np.arange(wd), indexing="ij")
    depth = np.stack([xx + 10.0 * yy, 2 * xx - yy]).astype(np.float32)  # (T, Hd, Wd)
    xy = np.array([[[1.5, 1.5], [7.0, 3.0]], [[13.5, 9.5], [0.5, 0.5]]], np.float32)  # (N, T, 2) px
    got = ops.lift_depth(depth, xy, (h, w), backend="numpy")
    xd, yd = (xy[..., 0] + 0.5) / 2 - 0.5, (xy[..., 1] + 0.5) / 2 - 0.5  # depth px
    expect = np.where([[True, False], [True, False]], xd + 10 * yd, 2 * xd - yd)
    np.testing.assert_allclose(got, expect, atol=1e-5)
    same = ops.lift_depth(depth, np.array([[[3, 2], [3, 2]]], np.float32), (hd, wd), backend="numpy")
    np.testing.assert_array_equal(same, [[depth[0, 2, 3], depth[1, 2, 3]]])  # pixel centres
    outside = ops.lift_depth(depth, np.array([[[-50, -50], [1e4, 1e4]]], np.float32), (h, w), backend="numpy")
    np.testing.assert_array_equal(outside, [[depth[0, 0, 0], depth[1, -1, -1]]])  # border value


# --------------------------------------------------------------------------------- sample_queries
@needs_core
@pytest.mark.parametrize("n,t,h,w", [(1, 1, 1, 1), (7, 1, 5, 9), (2500, 32, 240, 320), (300, 1000, 2, 3)])
def test_sample_queries_core_matches_numpy(n, t, h, w):
    for seed in BIG_SEEDS:
        assert_same(*both("sample_queries", n, t, h, w, seed), atol=0)


def test_sample_queries_meaning():
    q = ops.sample_queries(2000, 32, 240, 320, seed=4, backend="numpy")
    assert q.shape == (2000, 3) and q.dtype == np.float32
    t, x, y = q.T
    assert (t == np.floor(t)).all() and t.min() == 0 and t.max() == 31
    assert (np.diff(t) >= 0).all()                                      # sorted by t
    assert x.min() >= 0 and x.max() <= 319 and y.min() >= 0 and y.max() <= 239
    assert abs(x.mean() - 159.5) < 10 and abs(y.mean() - 119.5) < 8    # uniform over space
    np.testing.assert_array_equal(q, ops.sample_queries(2000, 32, 240, 320, seed=4, backend="numpy"))
    assert not np.array_equal(q, ops.sample_queries(2000, 32, 240, 320, seed=5, backend="numpy"))


# ------------------------------------------------------------------------ threads and determinism
@needs_core
def test_core_is_independent_of_thread_count(monkeypatch):
    # Sizes large enough that every function splits its work over several threads.
    r = np.random.default_rng(8)
    raw, hw = random_raw(r, 3, 2048, 16)
    valid = r.uniform(size=(3, 2048)) < 0.9
    x = ops.normalize(raw, hw, True, valid, backend="numpy")
    depth = r.uniform(size=(16, 24, 32)).astype(np.float32)
    calls = {
        "resample": lambda: ops.resample(raw[0, :, :, :3], raw[0, :, :, 3], 32, backend="cpp"),
        "normalize": lambda: ops.normalize(raw, hw, True, valid, backend="cpp"),
        "sample_subset": lambda: ops.sample_subset(valid.sum(1), 64, 2**64 - 5, backend="cpp"),
        "augment": lambda: ops.augment(x, valid, hw, STRONG, 77, backend="cpp"),
        "lift_depth": lambda: ops.lift_depth(depth, raw[0, :, :, :2], (240, 320), backend="cpp"),
        "sample_queries": lambda: ops.sample_queries(20000, 16, 240, 320, 77, backend="cpp"),
    }
    results = {}
    for threads in ("1", "2", "7"):
        monkeypatch.setenv("TRACTION_NUM_THREADS", threads)
        from traction import _core
        assert _core.num_threads() == int(threads)
        for name, call in calls.items():
            out = call()
            if name in results:
                assert_same(out, results[name], atol=0)
            results[name] = out


# ------------------------------------------------------------------------- dispatch and errors
def test_backend_selection(monkeypatch):
    monkeypatch.setenv("TRACTION_CORE", "numpy")
    assert ops.resolve_backend() == "numpy" and ops.resolve_backend("cpp") == "cpp"
    monkeypatch.delenv("TRACTION_CORE")
    assert ops.resolve_backend() == "cpp"
    monkeypatch.setenv("TRACTION_CORE", "fortran")
    with pytest.raises(ConfigError, match="TRACTION_CORE"):
        ops.sample_queries(3, 2, 4, 4)
    with pytest.raises(ConfigError, match="backend"):
        ops.sample_queries(3, 2, 4, 4, backend="gpu")


def test_missing_core_says_how_to_build(monkeypatch):
    monkeypatch.setitem(sys.modules, "traction._core", None)           # import now fails
    assert not ops.core_available()
    with pytest.raises(ImportError, match="build_core.sh"):
        ops.sample_queries(3, 2, 4, 4, backend="cpp")
    assert ops.sample_queries(3, 2, 4, 4, backend="numpy").shape == (3, 3)


@pytest.mark.parametrize("call,match", [
    (lambda: ops.resample(np.zeros((2, 3)), np.zeros((2, 3)), 4), "x must have shape"),
    (lambda: ops.resample(np.zeros((2, 3, 2)), np.zeros((2, 4)), 4), "vis must have shape"),
    (lambda: ops.resample(np.zeros((2, 3, 2)), np.zeros((2, 3)), 0), "num_frames"),
    (lambda: ops.resample(np.zeros((0, 3, 2)), np.zeros((0, 3)), 4), "N=0"),
    (lambda: ops.normalize(np.zeros((1, 2, 3, 3)), [[1, 1]], True), "raw must have shape"),
    (lambda: ops.normalize(np.zeros((1, 2, 3, 4)), [[0, 1]], True), "hw must hold positive"),
    (lambda: ops.normalize(np.zeros((1, 2, 3, 4)), [[1, 1]], True, np.ones((1, 3))), "valid must have shape"),
    (lambda: ops.sample_subset([3, -1], 2, 0), "num_valid must be >= 0"),
    (lambda: ops.sample_subset([3], 0, 0), "k must be >= 1"),
    (lambda: ops.sample_subset([3], 2, 1.5), "seed must be an integer"),
    (lambda: ops.augment(np.zeros((1, 2, 3, 4)), np.ones((1, 3), bool), [[1, 1]]), "valid must have shape"),
    (lambda: ops.lift_depth(np.zeros((2, 4, 4)), np.zeros((3, 3, 2)), (4, 4)), "xy must have shape"),
    (lambda: ops.lift_depth(np.zeros((2, 4, 4)), np.full((3, 2, 2), np.nan), (4, 4)), "NaN"),
    (lambda: ops.lift_depth(np.zeros((2, 4, 4)), np.zeros((3, 2, 2)), (0, 4)), "video_hw"),
    (lambda: ops.sample_queries(10, 0, 4, 4), "num_frames"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(InvalidTrajectories, match=match):
        call()


@pytest.mark.parametrize("params,match", [
    (AugmentParams(crop_prob=1.5), "crop_prob"), (AugmentParams(crop_min_scale=0), "crop_min_scale"),
    (AugmentParams(jitter_std=-1), "jitter_std"), (AugmentParams(shift_max=1.5), "shift_max"),
])
def test_bad_augment_params_raise_config_error(params, match):
    with pytest.raises(ConfigError, match=match):
        ops.augment(np.zeros((1, 2, 3, 4)), np.ones((1, 2), bool), [[4, 4]], params, 0, backend="numpy")


@needs_core
def test_core_reads_buffers_without_copies():
    from traction import _core

    x = np.zeros((3, 4, 2), np.float32)
    vis = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError):                      # float64 is not silently copied ...
        _core.resample(x.astype(np.float64), vis, 5)
    with pytest.raises(TypeError):                      # ... nor is a strided view
        _core.resample(x[:, ::2], vis[:, ::2], 5)
    with pytest.raises(TypeError):
        _core.normalize(np.zeros((1, 3, 4, 4), np.float32), np.ones((1, 2), np.float32), True,
                        np.ones((1, 3), np.float32))
    out, _ = ops.resample(x[:, ::2].astype(np.float64), vis[:, ::2], 5, backend="cpp")  # the wrapper converts
    assert out.shape == (3, 5, 2)


@needs_core
def test_trajectories_use_the_core():
    from traction import Trajectories

    r = np.random.default_rng(9)
    traj = Trajectories(xy=r.uniform(0, 100, (20, 10, 2)), vis=r.uniform(size=(20, 10)),
                        depth=r.uniform(1, 5, (20, 10)), height=100, width=150, fps=10)
    assert_same(traj.to_model_input(backend="cpp"), traj.to_model_input(backend="numpy"))
    a, b = traj.resample(32, backend="cpp"), traj.resample(32, backend="numpy")
    assert_same((a.xy, a.vis, a.depth), (b.xy, b.vis, b.depth))
