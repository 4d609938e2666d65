"""The data model rejects what the model cannot use, with one clear line each."""
import numpy as np
import pytest
import torch

import traction
from traction.errors import InvalidTrajectories


def _traj(N=5, T=8, **kw):
    rng = np.random.default_rng(0)
    args = dict(xy=rng.uniform(0, 100, (N, T, 2)), vis=np.ones((N, T)), depth=rng.uniform(1, 2, (N, T)),
                height=100, width=150, fps=10)
    args.update(kw)
    return traction.Trajectories(**args)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("field", ["xy", "depth"])
def test_non_finite_values(field, bad):
    t = _traj()
    arr = getattr(t, field).copy()
    arr.flat[3] = bad
    with pytest.raises(InvalidTrajectories, match=f"{field} contains 1 NaN or inf"):
        _traj(**{field: arr})


def test_zero_points_one_frame_and_wrong_shapes():
    with pytest.raises(InvalidTrajectories, match="N=0"):
        _traj(N=0)
    with pytest.raises(InvalidTrajectories, match="T=1 frame"):
        _traj(T=1)
    with pytest.raises(InvalidTrajectories, match=r"xy must have shape \(N, T, 2\)"):
        _traj(xy=np.zeros((5, 8, 3)))
    with pytest.raises(InvalidTrajectories, match="vis must have shape"):
        _traj(vis=np.ones((5, 7)))
    with pytest.raises(InvalidTrajectories, match="depth must have shape"):
        _traj(depth=np.ones((4, 8)))
    with pytest.raises(InvalidTrajectories, match=r"vis must lie in \[0, 1\]"):
        _traj(vis=np.full((5, 8), 2.0))
    with pytest.raises(InvalidTrajectories, match="height and width"):
        _traj(height=0)


def test_model_input_shape_errors():
    m = traction.create_model("traction_s", num_classes=3, embed_dim=48, depth=1, num_heads=4, num_frames=8)
    with pytest.raises(InvalidTrajectories, match=r"shape \(B, N, T=8, 4\)"):
        m(torch.rand(2, 5, 8, 3))
    with pytest.raises(InvalidTrajectories, match="T=8"):
        m(torch.rand(2, 5, 16, 4))
    with pytest.raises(InvalidTrajectories, match="N=0"):
        m(torch.rand(2, 0, 8, 4))
    with pytest.raises(InvalidTrajectories, match="padding_mask"):
        m(torch.rand(2, 5, 8, 4), torch.zeros(2, 4, dtype=torch.bool))


def test_model_input_conversion_follows_the_paper():
    t = _traj(N=50, T=8)
    x = t.to_model_input()
    assert x.shape == (50, 8, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., :2], t.xy / 150, rtol=1e-6)             # / max(H, W)
    xy_std = (t.xy / 150).std()
    assert abs(x[..., 2].mean()) < 1e-5 and abs(x[..., 2].std() - xy_std) < 1e-4
    assert (x[..., 3] == t.vis).all()
    assert (t.to_model_input(use_depth=False)[..., 2] == 0).all()


def test_resample_and_reverse():
    t = _traj(N=3, T=10)
    r = t.resample(4)
    assert r.xy.shape == (3, 4, 2) and r.frame_indices.tolist() == [0, 3, 6, 9]
    np.testing.assert_allclose(r.xy[:, 0], t.xy[:, 0])
    np.testing.assert_allclose(r.xy[:, -1], t.xy[:, -1])
    rev = t.time_reversed()
    np.testing.assert_array_equal(rev.xy[:, 0], t.xy[:, -1])
    np.testing.assert_array_equal(rev.time_reversed().xy, t.xy)
