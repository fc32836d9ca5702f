"""Helpers of ``scripts/bench_e2e.py``: random full-size weights, UNet FLOPs, output
differences, the float32 comparison, and the count of compiled-graph fallbacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from latentsync_core.configs.loader import CONFIG_DIR
from latentsync_core.configs.unet import load_unet_config
from latentsync_core.inference import LipSyncParams, LipSyncPipeline
from latentsync_core.inference.runners import AccelOptions
from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.media.video_io import FrameReader
from latentsync_core.models import DeepCacheState
from latentsync_core.models.loading import ModelBundle, load_models
from latentsync_core.models.unet import DEEPCACHE_INTERVAL
from latentsync_core.vision.face_detection import FaceDetector
from latentsync_core.weights.random_weights import write_random_unet_checkpoint, write_random_whisper_checkpoint

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT / "assets" / "demo1_video.mp4"
AUDIO = ROOT / "assets" / "demo1_audio.wav"


def write_weights(root: Path) -> None:
    """Random stage2_512 UNet, SD VAE and Whisper tiny checkpoints in the official layout."""
    from whisper.model import ModelDimensions

    from scripts.bench_gpu import sd_vae

    if not (root / "latentsync_unet.pt").is_file():
        cfg = load_unet_config(CONFIG_DIR / "unet" / "stage2_512.yaml").model
        write_random_unet_checkpoint(root / "latentsync_unet.pt", cfg)
    if not (root / "sd-vae-ft-mse" / "config.json").is_file():
        sd_vae().save_pretrained(root / "sd-vae-ft-mse")
    tiny = ModelDimensions(80, 1500, 384, 6, 4, 51865, 448, 384, 6, 4)  # Whisper tiny's real sizes
    if not (root / "whisper" / "tiny.pt").is_file():
        write_random_whisper_checkpoint(root / "whisper" / "tiny.pt", tiny)


def flops_per_frame(pipe: LipSyncPipeline) -> tuple[float, float]:
    """UNet FLOPs per frame for a full pass and for a DeepCache shallow pass."""
    m = pipe.m
    r = m.resolution // 8
    x = torch.randn((1, 13, 16, r, r), device=m.device, dtype=m.dtype)
    ctx = torch.randn((16, 50, m.unet.config.cross_attention_dim), device=m.device, dtype=m.dtype)
    t = torch.tensor([500], device=m.device)
    with torch.no_grad(), FlopCounterMode(display=False) as full:
        _, feature = m.unet.forward_full(x, t, ctx, capture=True)
    with torch.no_grad(), FlopCounterMode(display=False) as shallow:
        m.unet.forward_shallow(x, t, ctx, feature)
    return full.get_total_flops() / 16, shallow.get_total_flops() / 16


def unet_flops(frames: int, steps: int, deepcache: bool, full: float, shallow: float) -> float:
    refresh = DeepCacheState(DEEPCACHE_INTERVAL if deepcache else 1).full_steps(steps)
    return 2 * frames * (refresh * full + (steps - refresh) * shallow)  # batch 2: guidance


def fallbacks(pipe: LipSyncPipeline) -> int:
    """Calls the compiled graphs handed to the eager modules so far (0 when not compiled):
    a row whose count grows did not run what it claims to measure."""
    runners = (pipe.unet._full, pipe.unet._shallow, pipe.vae._moments, pipe.vae._decode)
    return sum(getattr(fn, "fallbacks", 0) for fn in runners)


def frame_diff(a: Path, b: Path, width: int, height: int) -> tuple[float, float, float]:
    """Mean, 99.9th percentile and max absolute difference of two videos' frames."""
    diffs = []
    with FrameReader(a, width, height) as ra, FrameReader(b, width, height) as rb:
        for fa, fb in zip(ra, rb, strict=False):
            diffs.append(np.abs(fa.astype(np.int16) - fb.astype(np.int16))[::4, ::4])
    d = np.stack(diffs)
    return float(d.mean()), float(np.percentile(d, 99.9)), float(d.max())


def compare(
    models: ModelBundle,
    fast: LipSyncPipeline,
    weights: Path,
    work: Path,
    seconds: float,
    results: dict,
    detector: FaceDetector | None,
) -> None:
    """Is the fast path within float16 tolerance? Compare its output, and the plain fp16
    path's, with the plain path in float32 (TF32 off) on the first ``seconds`` of speech."""
    short = work / "speech_short.wav"
    run_ffmpeg(["-t", f"{seconds}", "-i", input_arg(AUDIO), "-ac", "1", "-ar", "16000", "-y", str(short)])
    params = LipSyncParams(inference_steps=20, guidance_scale=1.5)
    outs = {}
    fast.run(VIDEO, short, work / "cmp_fast.mp4", params)
    outs["fast fp16"] = work / "cmp_fast.mp4"
    plain16 = LipSyncPipeline(models, accel=AccelOptions(), detect_workers=1)
    plain16.run(VIDEO, short, work / "cmp_plain16.mp4", params)
    outs["plain fp16"] = work / "cmp_plain16.mp4"
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    models32 = load_models("official", weights, work / "cache", device="cuda", dtype="float32", detector=detector)
    LipSyncPipeline(models32, accel=AccelOptions(), detect_workers=1).run(VIDEO, short, work / "cmp_32.mp4", params)
    outs["plain fp32"] = work / "cmp_32.mp4"
    for a, b in (("fast fp16", "plain fp16"), ("fast fp16", "plain fp32"), ("plain fp16", "plain fp32")):
        mean, p999, mx = frame_diff(outs[a], outs[b], 1080, 1920)
        results[f"{a} vs {b} ({seconds:g} s)"] = {"mean": mean, "p999": p999, "max": mx}
