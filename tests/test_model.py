import pytest
import torch

import traction
from traction.config import MAEConfig
from traction.model.mae import TrajectoryMAE
from traction.model.registry import model_config

TINY = dict(embed_dim=48, depth=2, num_heads=4, tokenizer_hidden=64, num_frames=8, drop_path=0.0,
            tokenizer_dropout=0.0)


def _x(B=2, N=20, T=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, N, T, 4, generator=g)
    x[..., 3] = (x[..., 3] > 0.3).float()
    return x


def test_traction_s_matches_the_paper(capsys):
    m = traction.create_model("traction_s", num_classes=174, verbose=True)
    assert "M parameters" in capsys.readouterr().out
    n = m.num_parameters()
    assert 5e6 < n < 8e6, n  # "under 8M parameters" (paper §4)
    assert len(m.blocks) == 6 and m.cfg.embed_dim == 288 and m.cfg.num_heads == 4
    assert m.reg_tokens.shape == (1, 4, 288) and m.cls_token.shape == (1, 1, 288)
    x = torch.rand(2, 10, 32, 4)
    assert m(x).shape == (2, 174)
    assert m.forward_features(x).shape == (2, 288)


def test_padding_is_ignored():
    m = traction.create_model("traction_s", num_classes=5, **TINY).eval()
    x = _x(1, 12)
    padded = torch.cat([x, torch.rand(1, 7, 8, 4) * 100], dim=1)             # junk in the padding
    mask = torch.zeros(1, 19, dtype=torch.bool)
    mask[:, 12:] = True
    torch.testing.assert_close(m(padded, mask), m(x), atol=1e-5, rtol=1e-5)


def test_trajectory_order_does_not_matter():
    m = traction.create_model("traction_s", num_classes=5, **TINY).eval()
    x = _x(2, 16)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(m(x[:, perm]), m(x), atol=1e-5, rtol=1e-5)


def test_time_direction_matters():
    m = traction.create_model("traction_s", num_classes=5, **TINY).eval()
    x = _x(1, 16)
    assert not torch.allclose(m(x), m(x.flip(2)), atol=1e-4)


@pytest.mark.parametrize("flag", ["use_depth", "use_vis", "use_sine", "use_pos_enc", "relative_coords"])
def test_each_ablation_runs_and_changes_the_input_path(flag):
    value = flag == "relative_coords"  # the others default to True
    m = traction.create_model("traction_s", num_classes=3, **TINY, **{flag: value})
    x = _x()
    out = m(x)
    out.sum().backward()
    assert out.shape == (2, 3) and all(p.grad is not None for p in m.tokenizer.parameters())
    m.eval()
    x2 = x.clone()
    if flag == "use_depth":      # depth must not matter any more
        x2[..., 2] += 1.0
        torch.testing.assert_close(m(x2), m(x))
    elif flag == "use_vis":
        x2[..., 3] = 1 - x2[..., 3]
        torch.testing.assert_close(m(x2), m(x))
    elif flag == "relative_coords":
        # translating a trajectory over all frames changes only its start position
        m_nopos = traction.create_model("traction_s", num_classes=3, **TINY, relative_coords=True,
                                        use_pos_enc=False).eval()
        x2[..., :3] += 0.3
        torch.testing.assert_close(m_nopos(x2), m_nopos(x), atol=1e-4, rtol=1e-4)


def test_tokenizer_input_width_follows_the_switches():
    from traction.model.encoding import frame_feature_dim
    assert frame_feature_dim(16, True, True, True) == 97
    assert frame_feature_dim(16, False, True, True) == 65
    assert frame_feature_dim(16, True, False, False) == 3
    m = traction.create_model("traction_s", num_frames=32)
    assert m.tokenizer.fc1.in_features == 32 * 97


def test_unknown_model_and_option():
    from traction.errors import ConfigError
    with pytest.raises(ConfigError, match="unknown model"):
        traction.create_model("traction_xxl")
    with pytest.raises(ConfigError, match="unknown model option"):
        traction.create_model("traction_s", widht=3)


# --------------------------------------------------------------------------- MAE

def _mae(**kw):
    return TrajectoryMAE(model_config("traction_s", **TINY), MAEConfig(**kw))


def test_mae_masks_ninety_percent_and_reconstructs_xy():
    mae = _mae()
    x = _x(2, 40)
    out = mae(x)
    assert out["pred"].shape == (2, 40, 8, 2)
    assert out["mask"].sum(1).tolist() == [36.0, 36.0]  # 90% of 40 removed
    out["loss"].backward()
    assert mae.mask_token.grad is not None and mae.encoder.tokenizer.fc1.weight.grad is not None


def test_mae_encoder_never_sees_removed_tokens():
    mae = _mae().eval()
    x = _x(1, 30)
    g = torch.Generator().manual_seed(5)
    latent, mask, _, _ = mae.forward_encoder(x, None, 0.9, generator=g)
    x2 = x.clone()
    x2[0, mask[0].bool()] += 10.0                                          # change only removed tokens
    latent2, mask2, _, _ = mae.forward_encoder(x2, None, 0.9, generator=torch.Generator().manual_seed(5))
    assert torch.equal(mask, mask2)
    torch.testing.assert_close(latent, latent2)


def test_mae_loss_counts_only_removed_real_tokens():
    x = _x(1, 10)
    pred = x[..., :2].clone()
    mask = torch.zeros(1, 10)
    mask[0, :3] = 1
    pred[0, 5:] += 1.0                                                     # errors on kept tokens only
    assert TrajectoryMAE.forward_loss(x, pred, mask, None).item() == 0.0
    pred[0, 0] += 2.0                                                      # error on a removed token
    pad = torch.zeros(1, 10, dtype=torch.bool)
    loss = TrajectoryMAE.forward_loss(x, pred, mask, pad).item()
    assert abs(loss - 2.0 / 3) < 1e-5
    pad[0, 0] = True                                                       # ... unless it is padding
    assert TrajectoryMAE.forward_loss(x, pred, mask, pad).item() == 0.0


def test_mae_keeps_real_tokens_before_padding():
    pad = torch.zeros(2, 20, dtype=torch.bool)
    pad[1, 10:] = True
    keep, restore, mask = TrajectoryMAE.random_masking(20, pad, 2, 0.5, "cpu", torch.Generator().manual_seed(0))
    assert keep.shape == (2, 10)
    assert not pad[1][keep[1]].any()                                       # sample 1 keeps only its 10 real ones
    assert torch.equal(torch.gather(torch.arange(20).expand(2, -1), 1, restore).sort(1).values,
                       torch.arange(20).expand(2, -1))


def test_mean_pooling_ignores_padding():
    m = traction.create_model("traction_s", num_classes=5, **TINY).eval()
    x = _x(1, 10)
    padded = torch.cat([x, torch.rand(1, 5, 8, 4)], dim=1)
    mask = torch.zeros(1, 15, dtype=torch.bool)
    mask[:, 10:] = True
    torch.testing.assert_close(m.forward_features(padded, mask, pool="mean"), m.forward_features(x, pool="mean"),
                               atol=1e-5, rtol=1e-5)
    assert m.forward_features(x, pool="mean").shape == (1, 48)
