"""Shared by the UNet training tests: a tiny DATA folder (face crops of the bundled talking
head, cut and scaled by ffmpeg as `latentsync preprocess` lays them out), small random
weights in the official layout, and a tiny training config."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from latentsync_core.configs.loader import CONFIG_DIR, to_dict
from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.models.stable_syncnet import StableSyncNet
from latentsync_core.sync.video import demo_syncnet_v2
from latentsync_core.weights.demo import demo_unet_config, ensure_demo_weights

ROOT = Path(__file__).resolve().parent.parent
DEMO_VIDEO = ROOT / "assets" / "demo1_video.mp4"
FACE_CROP = "crop=360:360:423:560"  # the speaker's face in the 1080x1920 demo video
DEMO_SYNCNET = CONFIG_DIR / "syncnet" / "syncnet_demo.yaml"
FRAMES = 8  # frames per window in the tests (the real 16 cost twice the CPU time)
# A StableSyncNet for 8-frame windows of 64 px faces: (24, 32, 64) lower halves, (1, 80, 26) mel.
TEST_SYNCNET = {
    "audio_encoder": {"in_channels": 1, "block_out_channels": [32, 32, 32, 32, 64],
                      "downsample_factors": [[2, 1], [2, 1], 2, 3, 3], "attn_blocks": [0, 0, 0, 1, 0]},
    "visual_encoder": {"in_channels": 3 * FRAMES, "block_out_channels": [32, 32, 32, 32, 32, 64],
                       "downsample_factors": [[1, 2], 2, 2, 2, 2, 2], "attn_blocks": [0, 0, 0, 0, 1, 0]},
}  # fmt: skip


def make_clip(path: Path, start: float, seconds: float) -> Path:
    """A 256 px face clip at 25 fps with 16 kHz mono audio, like preprocess's clips."""
    path.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg(["-ss", str(start), "-t", str(seconds), "-i", input_arg(DEMO_VIDEO),
                "-vf", f"{FACE_CROP},scale=256:256,fps=25", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
                "-pix_fmt", "yuv420p", "-ac", "1", "-ar", "16000", "-c:a", "aac", str(path)])  # fmt: skip
    return path


def make_data(root: Path, train: list[tuple[float, float]], val: list[tuple[float, float]]) -> Path:
    """DATA/clips/*.mp4 and the two file lists of absolute paths."""
    lists = {}
    for side, spans in (("train", train), ("val", val)):
        clips = [make_clip(root / "clips" / f"{side}{i}.mp4", s, d) for i, (s, d) in enumerate(spans)]
        lists[side] = "".join(f"{c}\n" for c in clips)
    (root / "fileslist_train.txt").write_text(lists["train"])
    (root / "fileslist_val.txt").write_text(lists["val"])
    return root


def make_weights(root: Path) -> Path:
    """The demo weights (tiny UNet, VAE, Whisper) in the official layout, plus a random
    StableSyncNet of the demo SyncNet config and a random SyncNetV2."""
    ensure_demo_weights(root)
    folder = root / "demo-weights-v1"
    torch.manual_seed(5)
    net = StableSyncNet.from_config(TEST_SYNCNET)
    torch.save({"state_dict": net.state_dict()}, folder / "stable_syncnet.pt")
    (folder / "auxiliary").mkdir(exist_ok=True)
    torch.save(demo_syncnet_v2().state_dict(), folder / "auxiliary" / "syncnet_v2.model")
    return folder


def write_config(path: Path, weights: Path, **run: object) -> Path:
    """A stage-2 fine-tune config of the tiny model at 64 px from ``weights``; ``run`` and
    dotted keys (``data__num_frames``) override."""
    sync_cfg = yaml.safe_load(DEMO_SYNCNET.read_text())
    sync_cfg["model"] = TEST_SYNCNET
    sync_cfg["data"].update(num_frames=FRAMES, resolution=64)
    sync_cfg["ckpt"]["inference_ckpt_path"] = str(weights / "stable_syncnet.pt")
    sync_path = path.with_name(path.stem + "_syncnet.yaml")
    sync_path.write_text(yaml.safe_dump(sync_cfg))
    cfg = {
        "data": {"syncnet_config_path": str(sync_path), "num_frames": FRAMES, "resolution": 64, "num_workers": 0,
                 "batch_size": 1, "val_video_path": "", "val_audio_path": ""},
        "ckpt": {"resume_ckpt_path": str(weights / "latentsync_unet.pt"), "save_ckpt_steps": 100, "keep_last": 2},
        "run": {"trainable_modules": ["motion_modules.", "attentions."], "sync_loss_weight": 0.05,
                "perceptual_loss_weight": 0.0, "trepa_loss_weight": 0.0, "mixed_precision_training": False,
                "enable_gradient_checkpointing": False, "vae_gradient_checkpointing": False, "inference_steps": 2,
                "num_val_clips": 1, "max_train_steps": 1000},
        "optimizer": {"lr": 1e-3},
        "model": to_dict(demo_unet_config()),
    }  # fmt: skip
    for key, value in run.items():
        section, _, name = key.partition("__")
        if name:
            cfg[section][name] = value
        else:
            cfg["run"][key] = value
    path.write_text(yaml.safe_dump(cfg))
    return path
