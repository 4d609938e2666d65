import json

import pytest

from traction import config as C
from traction.errors import ConfigError


def test_defaults_are_the_papers():
    cfg = C.TrainConfig()
    assert (cfg.model.embed_dim, cfg.model.depth, cfg.model.num_heads, cfg.model.num_registers) == (288, 6, 4, 4)
    assert cfg.model.num_frames == 32 and cfg.model.num_freqs * 2 == 32
    assert (cfg.mae.mask_ratio, cfg.mae.decoder_dim, cfg.mae.decoder_depth, cfg.mae.decoder_heads) == (0.9, 144, 2, 4)
    assert (cfg.optim.lr, cfg.optim.betas, cfg.optim.weight_decay, cfg.optim.warmup_ratio) == (2e-4, (0.9, 0.999), 5e-3, 0.1)
    assert cfg.data.points == 512 and cfg.data.eval_points == 0
    pre = C.TrainConfig.pretrain_defaults()
    assert (pre.optim.epochs, pre.optim.batch_size) == (300, 512)
    assert (cfg.optim.epochs, cfg.optim.batch_size) == (15, 64)


def test_overrides_dotted_and_bare_keys():
    cfg = C.apply_overrides(C.TrainConfig(), ["model.use_depth=false", "use_vis=0", "optim.lr=1e-3",
                                              "betas=[0.8,0.9]", "eval_split=val", "num_frames=8"])
    assert cfg.model.use_depth is False and cfg.model.use_vis is False
    assert cfg.optim.lr == 1e-3 and cfg.optim.betas == (0.8, 0.9)
    assert cfg.data.eval_split == "val" and cfg.model.num_frames == 8


@pytest.mark.parametrize("item, msg", [
    ("model.nope=1", "unknown config key"),
    ("nope=1", "unknown config key"),
    ("use_depth", "key=value"),
    ("model.depth=abc", "expected an integer"),
    ("use_depth=maybe", "true or false"),
    ("optim.lr=[1]", "expected a number"),
])
def test_bad_overrides_are_clear(item, msg):
    with pytest.raises(ConfigError, match=msg):
        C.apply_overrides(C.TrainConfig(), [item])


def test_ambiguous_bare_key():
    # "depth" is a field of ModelConfig only, "enabled" of AugmentConfig only; make one that clashes
    with pytest.raises(ConfigError):
        C._resolve_key(C.TrainConfig(), "doesnotexist")


def test_config_file_roundtrip(tmp_path):
    cfg = C.apply_overrides(C.TrainConfig(), ["model.depth=3", "augment.enabled=false"])
    p = tmp_path / "c.json"
    p.write_text(json.dumps(C.to_dict(cfg)))
    back = C.load_config_file(p)
    assert C.to_dict(back) == C.to_dict(cfg)
    (tmp_path / "partial.json").write_text(json.dumps({"optim": {"epochs": 3}}))
    assert C.load_config_file(tmp_path / "partial.json").optim.epochs == 3
    (tmp_path / "bad.json").write_text(json.dumps({"optim": {"epochz": 3}}))
    with pytest.raises(ConfigError, match="epochz"):
        C.load_config_file(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        C.load_config_file(tmp_path / "broken.json")


def test_validate_catches_inconsistent_settings():
    cfg = C.apply_overrides(C.TrainConfig(), ["model.embed_dim=290"])
    with pytest.raises(ConfigError, match="divisible"):
        C.validate(cfg)
    with pytest.raises(ConfigError, match="mask_ratio"):
        C.validate(C.apply_overrides(C.TrainConfig(), ["mask_ratio=1.0"]))
