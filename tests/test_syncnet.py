"""StableSyncNet and SyncNetV2 against upstream's outputs on the same random weights
(tests/data/README.md), their configs and their strict checkpoint loading."""

import json
from pathlib import Path

import pytest
import torch

from latentsync_core.configs.loader import ConfigError, to_dict
from latentsync_core.configs.syncnet import SYNCNET_CONFIG_DIR, load_syncnet_config, load_syncnet_model_section
from latentsync_core.models import (
    CheckpointError,
    StableSyncNet,
    SyncNetV2,
    load_stable_syncnet,
    load_syncnet_v2_checkpoint,
)
from tests.reference_data import DATA

CONFIGS = ["syncnet_16_pixel_attn", "syncnet_16_pixel", "syncnet_16_latent", "syncnet_25_pixel"]


@pytest.fixture(scope="module")
def v2_state_dict(v2: dict) -> dict[str, torch.Tensor]:
    # Weight tensors are stored as int8 codes and one scale: the value is codes x scale.
    return {k: v["int8"].float() * v["scale"] if isinstance(v, dict) else v for k, v in v2["state_dict_packed"].items()}


def _relative_max_diff(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def test_stable_syncnet_embeddings_match_upstream(stable: dict) -> None:
    net = StableSyncNet.from_config(stable["config"])
    net.load_state_dict(stable["state_dict"], strict=True)
    with torch.no_grad():
        vision, audio = net(stable["image"].float(), stable["audio"])
    for name, ours, ref in (("vision", vision, stable["vision_embeds"]), ("audio", audio, stable["audio_embeds"])):
        diff = _relative_max_diff(ours, ref)
        print(f"StableSyncNet {name} embeds: max diff {diff:.2e} of the largest value")
        assert ours.shape == ref.shape and diff < 1e-4
    assert torch.allclose(vision.norm(dim=1), torch.ones(len(vision)), atol=1e-5)
    assert (torch.cosine_similarity(vision, audio) - stable["cosine"]).abs().max() < 1e-4


def test_full_size_keys_and_shapes_equal_the_manifest() -> None:
    manifest = json.loads((DATA / "stable_syncnet_manifest.json").read_text())
    config = load_syncnet_config(SYNCNET_CONFIG_DIR / "syncnet_16_pixel_attn.yaml")
    assert to_dict(config.model) == manifest["config"]  # our YAML carries upstream's values
    with torch.device("meta"):  # 401 M parameters: shapes only, nothing allocated
        net = StableSyncNet.from_config(manifest["config"])
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert list(ours) == list(manifest["state_dict"])  # same keys, in the checkpoint's order
    assert ours == manifest["state_dict"]
    assert sum(p.numel() for p in net.parameters()) == manifest["num_parameters"]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_loads_and_reduces_its_inputs_to_one_vector(name: str) -> None:
    config = load_syncnet_config(SYNCNET_CONFIG_DIR / f"{name}.yaml")
    model = config.model
    with torch.device("meta"):
        net = StableSyncNet.from_config(model)
        face = (32, 32) if config.data.latent_space else (config.data.resolution // 2, config.data.resolution)
        mel_frames = 80 if config.data.num_frames == 25 else 52
        vision, audio = net(torch.empty(2, model.visual_encoder.in_channels, *face), torch.empty(2, 1, 80, mel_frames))
    assert tuple(vision.shape) == (2, model.visual_encoder.block_out_channels[-1])
    assert tuple(audio.shape) == (2, model.audio_encoder.block_out_channels[-1])


def test_config_rejects_unknown_keys_and_bad_layouts(tmp_path: Path) -> None:
    source = (SYNCNET_CONFIG_DIR / "syncnet_16_pixel.yaml").read_text()
    bad_key = tmp_path / "bad_key.yaml"
    bad_key.write_text(source.replace("    dropout: 0.0\n", "    dropout: 0.0\n    dropuot: 0.1\n", 1))
    with pytest.raises(ConfigError, match=r"bad_key\.yaml.*dropuot"):
        load_syncnet_config(bad_key)
    with pytest.raises(ConfigError, match="attn_blocks"):
        load_syncnet_model_section(
            {"audio_encoder": {"block_out_channels": [32, 64], "downsample_factors": [2, 2], "attn_blocks": [0]}}
        )
    with pytest.raises(ConfigError, match="downsample_factors"):
        load_syncnet_model_section({"visual_encoder": {"block_out_channels": [32], "downsample_factors": [[1, 2, 3]]}})
    with pytest.raises(ConfigError, match="override .nope.x=1.*not in"):
        load_syncnet_config(SYNCNET_CONFIG_DIR / "syncnet_16_pixel.yaml", ["nope.x=1"])


def test_stable_syncnet_checkpoint_loading_is_strict(stable: dict, tmp_path: Path) -> None:
    sd = stable["state_dict"]
    wrapped, bare = tmp_path / "stable_syncnet.pt", tmp_path / "bare.pt"
    torch.save({"state_dict": sd, "global_step": 3}, wrapped)
    torch.save(sd, bare)
    for path in (wrapped, bare):
        net = load_stable_syncnet(path, stable["config"])
        assert all(torch.equal(net.state_dict()[k], v) for k, v in sd.items())

    missing = dict(sd)
    missing.pop("visual_encoder.norm_out.bias")
    torch.save({"state_dict": missing}, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing\.pt.*missing keys: visual_encoder\.norm_out\.bias"):
        load_stable_syncnet(tmp_path / "missing.pt", stable["config"])

    extra = {**sd, "audio_encoder.extra.weight": torch.zeros(1)}
    torch.save({"state_dict": extra}, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"extra\.pt.*unexpected keys: audio_encoder\.extra\.weight"):
        load_stable_syncnet(tmp_path / "extra.pt", stable["config"])

    with pytest.raises(CheckpointError, match="not found"):
        load_stable_syncnet(tmp_path / "nope.pt", stable["config"])


def test_syncnet_v2_embeddings_match_upstream(v2: dict, v2_state_dict: dict) -> None:
    net = SyncNetV2()
    net.load_state_dict(v2_state_dict, strict=True)
    with torch.no_grad():
        lip = net.forward_lip(v2["lip"].float())
        aud = net.forward_aud(v2["aud"])
    for name, ours, ref in (("lip", lip, v2["lip_embed"]), ("audio", aud, v2["aud_embed"])):
        diff = _relative_max_diff(ours, ref)
        print(f"SyncNetV2 {name} embeds: max diff {diff:.2e} of the largest value")
        assert ours.shape == ref.shape == (len(v2["lip"]), 1024) and diff < 1e-4


def test_syncnet_v2_keys_are_upstreams_and_loading_is_strict(v2_state_dict: dict, tmp_path: Path) -> None:
    assert list(SyncNetV2().state_dict()) == list(v2_state_dict)
    path = tmp_path / "syncnet_v2.model"
    torch.save(v2_state_dict, path)
    net = load_syncnet_v2_checkpoint(path)
    assert not net.training
    assert all(torch.equal(net.state_dict()[k], v) for k, v in v2_state_dict.items())

    missing = dict(v2_state_dict)
    missing.pop("netfclip.3.bias")
    torch.save(missing, tmp_path / "missing.model")
    with pytest.raises(CheckpointError, match=r"missing\.model.*missing keys: netfclip\.3\.bias"):
        load_syncnet_v2_checkpoint(tmp_path / "missing.model")

    torch.save({**v2_state_dict, "netcnnaud.99.weight": torch.zeros(1)}, tmp_path / "extra.model")
    with pytest.raises(CheckpointError, match=r"extra\.model.*unexpected keys: netcnnaud\.99\.weight"):
        load_syncnet_v2_checkpoint(tmp_path / "extra.model")
