"""End-to-end GPU benchmark of the pipeline with random full-size weights (no download):
the bundled 10 s 1080x1920 clip and its speech, 512 px, 20 steps, guidance 1.5.

Writes a random 5 GB ``latentsync_unet.pt``, a random SD VAE folder and a random Whisper
tiny checkpoint in the official layout, loads them through ``load_models`` (the service's
code path) and times, in one table:

- load and warm-up (eager), then the compile of the full-window shapes;
- the fast path on a first request (face detection on every frame) and on a repeat
  request with new speech (template cache hit), with and without DeepCache;
- the plain path (eager, one detection thread, no cache) as the reference, and the
  difference between its output and the fast path's;
- per stage frames/s, peak GPU memory, achieved UNet TFLOP/s.

    python -m scripts.bench_e2e [--load-only] [--skip-plain] [--json FILE]

Run it twice with the same TORCHINDUCTOR_CACHE_DIR to see the load+warm time of a
restart (the compiled kernels come from the on-disk cache).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from latentsync_core.configs.loader import CONFIG_DIR
from latentsync_core.configs.unet import load_unet_config
from latentsync_core.inference import LipSyncParams, LipSyncPipeline
from latentsync_core.inference.runners import AccelOptions
from latentsync_core.inference.template_cache import TemplateCache
from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.media.video_io import FrameReader
from latentsync_core.models import DeepCacheState
from latentsync_core.models.loading import load_models
from latentsync_core.models.unet import DEEPCACHE_INTERVAL
from latentsync_core.weights.random_weights import write_random_unet_checkpoint, write_random_whisper_checkpoint
from scripts.bench_table import print_table

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT / "assets" / "demo1_video.mp4"
AUDIO = ROOT / "assets" / "demo1_audio.wav"


def write_weights(root: Path) -> None:
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
    t = torch.tensor([500.0], device=m.device)
    with torch.no_grad(), FlopCounterMode(display=False) as full:
        _, feature = m.unet.forward_full(x, t, ctx, capture=True)
    with torch.no_grad(), FlopCounterMode(display=False) as shallow:
        m.unet.forward_shallow(x, t, ctx, feature)
    return full.get_total_flops() / 16, shallow.get_total_flops() / 16


def unet_flops(frames: int, steps: int, deepcache: bool, full: float, shallow: float) -> float:
    refresh = DeepCacheState(DEEPCACHE_INTERVAL if deepcache else 1).full_steps(steps)
    return 2 * frames * (refresh * full + (steps - refresh) * shallow)  # batch 2: guidance


def frame_diff(a: Path, b: Path, width: int, height: int) -> tuple[float, float, float]:
    """Mean, 99.9th percentile and max absolute difference of two videos' frames."""
    diffs = []
    with FrameReader(a, width, height) as ra, FrameReader(b, width, height) as rb:
        for fa, fb in zip(ra, rb, strict=False):
            diffs.append(np.abs(fa.astype(np.int16) - fb.astype(np.int16))[::4, ::4])
    d = np.stack(diffs)
    return float(d.mean()), float(np.percentile(d, 99.9)), float(d.max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights-dir", default="/tmp/latentsync-bench-weights")
    ap.add_argument("--work", default="/tmp/latentsync-bench")
    ap.add_argument("--load-only", action="store_true")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--compare-seconds", type=float, default=0.0, help="also compare fast/plain fp16 with fp32")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    weights = Path(args.weights_dir)
    rows: list[tuple[str, str]] = []
    results: dict[str, object] = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    print(f"GPU: {results['gpu']}, torch {results['torch']}, {os.cpu_count()} CPU cores", flush=True)

    t0 = time.perf_counter()
    write_weights(weights)
    size = (weights / "latentsync_unet.pt").stat().st_size / 1e9
    print(f"random weights ready in {time.perf_counter() - t0:.0f} s", flush=True)

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    models = load_models("official", weights, work / "cache", device="cuda")
    load_s = time.perf_counter() - t0
    cache = TemplateCache(work / "templates", max_bytes=4 << 30)
    pipe = LipSyncPipeline(models, accel=AccelOptions.for_device(models.device), template_cache=cache)
    t0 = time.perf_counter()
    pipe.warmup()
    warm_s = time.perf_counter() - t0
    compile_s = pipe.prepare_fast_path()
    rows.append((f"load (UNet {size:.2f} GB file, VAE, Whisper, detector)", f"{load_s:.1f} s"))
    rows.append(("warm-up, eager (service ready)", f"{warm_s:.1f} s"))
    rows.append(("compile full-window shapes (UNet, VAE)", f"{compile_s:.1f} s"))
    results.update(load_s=load_s, warm_s=warm_s, compile_s=compile_s)
    print(rows[-3:], flush=True)
    if args.load_only:
        print_table(rows)
        return

    full_f, shallow_f = flops_per_frame(pipe)
    results.update(unet_tflop_full_frame=full_f / 1e12, unet_tflop_shallow_frame=shallow_f / 1e12)
    # A second speech track for the repeat request: the same speech reversed (same length).
    speech_b = work / "speech_b.wav"
    run_ffmpeg(["-i", input_arg(AUDIO), "-af", "areverse", "-ac", "1", "-ar", "16000", str(speech_b)])

    def job(name: str, pipeline: LipSyncPipeline, audio: Path, deepcache: bool, out: str) -> dict:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        params = LipSyncParams(inference_steps=20, guidance_scale=1.5, enable_deepcache=deepcache)
        t0 = time.perf_counter()
        res = pipeline.run(VIDEO, audio, work / out, params)
        wall = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() / 1e9
        n = res.frames
        tflops = unet_flops(n, 20, deepcache, full_f, shallow_f) / res.timings["denoise"] / 1e12
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in res.timings.items())
        detect_fps = n / res.timings["detect"] if res.timings["detect"] > 0 else float("inf")
        rows.append((name, f"{n / wall:.2f} frames/s end to end ({wall:.1f} s, {n} frames)"))
        rows.append(("  stages", stages))
        rows.append(("  frames/s", f"detect {detect_fps:.0f}, denoise+decode+restore {n / res.timings['denoise']:.2f}; "
                     f"UNet {tflops:.0f} TFLOP/s achieved over the denoise stage; peak GPU {peak:.1f} GB; "
                     f"template cache {res.template_cache}"))  # fmt: skip
        print(rows[-3:], flush=True)
        info = {"wall_s": wall, "frames": n, "fps": n / wall, "timings": res.timings, "peak_gb": peak,
                "tflops": tflops, "template_cache": res.template_cache}  # fmt: skip
        results[name] = info
        return info

    job("fast, first request (detection), no DeepCache", pipe, AUDIO, False, "fast_first.mp4")
    job("fast, repeat request (template hit), no DeepCache", pipe, speech_b, False, "fast_repeat.mp4")
    job("fast, repeat request (template hit), DeepCache", pipe, speech_b, True, "fast_repeat_dc.mp4")
    job("fast, first request again (hit), DeepCache", pipe, AUDIO, True, "fast_first_dc.mp4")
    if not args.skip_plain:
        plain = LipSyncPipeline(models, accel=AccelOptions(), detect_workers=1)  # eager reference
        job("plain path (eager, 1 detection thread, no cache)", plain, AUDIO, False, "plain.mp4")
        w, h = 1080, 1920
        mean, p999, mx = frame_diff(work / "plain.mp4", work / "fast_first.mp4", w, h)
        rows.append(("fast vs plain output (same request)", f"mean |diff| {mean:.3f}, 99.9th pct {p999:.0f}, "
                     f"max {mx:.0f} (8-bit levels, whole frames)"))  # fmt: skip
        results["fast_vs_plain"] = {"mean": mean, "p999": p999, "max": mx}
    if args.compare_seconds > 0:
        compare(models, pipe, weights, work, args.compare_seconds, rows, results)
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


def compare(
    models, fast: LipSyncPipeline, weights: Path, work: Path, seconds: float, rows: list, results: dict
) -> None:
    """Is the fast path within float16 tolerance? Compare its output, and the plain fp16
    path's, with the plain path in float32 (TF32 off) on the first ``seconds`` of speech."""
    short = work / "speech_short.wav"
    run_ffmpeg(["-t", f"{seconds}", "-i", input_arg(AUDIO), "-ac", "1", "-ar", "16000", str(short)])
    params = LipSyncParams(inference_steps=20, guidance_scale=1.5)
    outs = {}
    fast.run(VIDEO, short, work / "cmp_fast.mp4", params)
    outs["fast fp16"] = work / "cmp_fast.mp4"
    plain16 = LipSyncPipeline(models, accel=AccelOptions(), detect_workers=1)
    plain16.run(VIDEO, short, work / "cmp_plain16.mp4", params)
    outs["plain fp16"] = work / "cmp_plain16.mp4"
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    models32 = load_models("official", weights, work / "cache", device="cuda", dtype="float32")
    LipSyncPipeline(models32, accel=AccelOptions(), detect_workers=1).run(VIDEO, short, work / "cmp_32.mp4", params)
    outs["plain fp32"] = work / "cmp_32.mp4"
    for a, b in (("fast fp16", "plain fp16"), ("fast fp16", "plain fp32"), ("plain fp16", "plain fp32")):
        mean, p999, mx = frame_diff(outs[a], outs[b], 1080, 1920)
        rows.append((f"{a} vs {b} ({seconds:g} s)", f"mean |diff| {mean:.3f}, 99.9th pct {p999:.0f}, max {mx:.0f}"))
        results[f"{a} vs {b}"] = {"mean": mean, "p999": p999, "max": mx}


if __name__ == "__main__":
    main()
