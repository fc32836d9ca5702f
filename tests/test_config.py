import json
from pathlib import Path

import pytest

from latentsync_core.configs.audio import load_audio_config
from latentsync_core.configs.loader import CONFIG_DIR, ConfigError, to_dict
from latentsync_core.configs.scheduler import load_scheduler_config
from latentsync_core.configs.unet import load_unet_config

UNET_CONFIGS = ["stage1.yaml", "stage1_512.yaml", "stage2.yaml", "stage2_512.yaml", "stage2_efficient.yaml"]


@pytest.mark.parametrize("name", UNET_CONFIGS)
def test_every_unet_config_loads(name: str) -> None:
    cfg = load_unet_config(CONFIG_DIR / "unet" / name)
    assert cfg.model.in_channels == 13
    assert cfg.model.cross_attention_dim == 384
    assert cfg.run.inference_steps == 20 and cfg.run.seed == 1247


def test_config_variants_differ_as_upstream() -> None:
    by_name = {n: load_unet_config(CONFIG_DIR / "unet" / n) for n in UNET_CONFIGS}
    assert not by_name["stage1.yaml"].model.use_motion_module
    assert by_name["stage2_efficient.yaml"].model.motion_module_decoder_only
    assert by_name["stage2_512.yaml"].data.resolution == 512
    assert by_name["stage2.yaml"].data.resolution == 256


def test_stage2_512_model_section_equals_upstream(data_dir: Path) -> None:
    manifest = json.loads((data_dir / "stage2_512_manifest.json").read_text())
    ours = to_dict(load_unet_config(CONFIG_DIR / "unet" / "stage2_512.yaml").model)
    assert ours == manifest["config"]


def test_override_changes_one_value() -> None:
    cfg = load_unet_config(CONFIG_DIR / "unet" / "stage2_512.yaml", ["model.cross_attention_dim=768"])
    assert cfg.model.cross_attention_dim == 768
    assert cfg.model.block_out_channels == [320, 640, 1280, 1280]


def test_wrong_type_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  layers_per_block: two\n")
    with pytest.raises(ConfigError) as err:
        load_unet_config(bad)
    assert str(bad) in str(err.value) and "model.layers_per_block" in str(err.value)


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  cross_attention_dims: 384\n")
    with pytest.raises(ConfigError) as err:
        load_unet_config(bad)
    assert str(bad) in str(err.value) and "model.cross_attention_dims" in str(err.value)


def test_bad_override_is_rejected() -> None:
    with pytest.raises(ConfigError, match="model.cross_attention_dim"):
        load_unet_config(CONFIG_DIR / "unet" / "stage2_512.yaml", ["model.cross_attention_dim=wide"])
    with pytest.raises(ConfigError, match="key=value"):
        load_unet_config(CONFIG_DIR / "unet" / "stage2_512.yaml", ["model.cross_attention_dim"])


def test_scheduler_and_audio_configs() -> None:
    sched = load_scheduler_config()
    assert (sched.beta_start, sched.beta_end, sched.steps_offset, sched.clip_sample) == (0.00085, 0.012, 1, False)
    assert load_audio_config().audio.sample_rate == 16000
    with pytest.raises(ConfigError, match="steps_offset"):
        load_scheduler_config(overrides=["steps_offset=one"])
