"""GPU benchmark with random full-size weights (no checkpoint download needed).

Measures, on the GPU it runs on: checkpoint load time (a random 5 GB `latentsync_unet.pt`
written to local disk), one UNet call per window batch (16 frames, CFG batch 2, 64x64
latents) in float16 and bfloat16 with 1, 2 and 4 windows stacked in the batch, a DeepCache
shallow step, VAE encode/decode, and the face paste-back at 1080x1920; counts the UNet's
FLOPs and prints achieved TFLOP/s and frames/s per stage in one table.

    python -m scripts.bench_gpu [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from latentsync_core.configs.loader import CONFIG_DIR
from latentsync_core.configs.unet import load_unet_config
from latentsync_core.models import DeepCacheState, UNet3DConditionModel, load_unet_checkpoint
from scripts.bench_table import print_table

FRAMES = 16


def timed(fn, warmup: int = 2, reps: int = 5) -> float:
    """Median seconds of ``fn`` on the GPU (CUDA events)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return sorted(times)[len(times) // 2]


def sd_vae():
    """The SD VAE architecture (sd-vae-ft-mse's sizes) with random weights."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    )


def random_unet(cfg, dtype: torch.dtype) -> UNet3DConditionModel:
    with torch.device("meta"):
        model = UNet3DConditionModel(cfg)
    model = model.to_empty(device="cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p[0].numel() if p.dim() >= 2 else 1
            p.normal_(0, 1 / fan_in**0.5 if p.dim() >= 2 else 0.02, generator=gen)
            if name.endswith("norm.weight") or ".norm" in name and name.endswith("weight"):
                p.fill_(1.0)
        for module in model.modules():  # the positional-encoding buffers are deterministic
            if hasattr(module, "pe"):
                from latentsync_core.models.motion_module import PositionalEncoding

                module.pe.copy_(PositionalEncoding(module.pe.shape[-1], module.pe.shape[1]).pe.to("cuda"))
    return model.to(dtype).eval()


def bench_unet(cfg, dtype: torch.dtype, window_counts: tuple[int, ...], rows: list, results: dict) -> None:
    unet = random_unet(cfg, dtype)
    name = str(dtype).replace("torch.", "")
    t = torch.tensor(500, device="cuda")
    for windows in window_counts:
        b = 2 * windows
        x = torch.randn(b, 13, FRAMES, 64, 64, device="cuda", dtype=dtype)
        ctx = torch.randn(b * FRAMES, 50, 384, device="cuda", dtype=dtype)
        with torch.no_grad():
            if "unet_tflop_per_frame_pass" not in results:
                with FlopCounterMode(display=False) as counter:
                    unet(x, t, encoder_hidden_states=ctx)
                results["unet_tflop_per_frame_pass"] = counter.get_total_flops() / (b * FRAMES) / 1e12
            sec = timed(lambda x=x, ctx=ctx: unet(x, t, encoder_hidden_states=ctx))
        tflops = results["unet_tflop_per_frame_pass"] * b * FRAMES / sec
        frames = windows * FRAMES
        rows.append((f"UNet {name}, {windows} window(s)/call", f"{sec * 1000:.1f} ms, {tflops:.0f} TFLOP/s, "
                     f"{frames / (sec * 20):.2f} frames/s at 20 steps"))  # fmt: skip
        results[f"unet_{name}_w{windows}_ms"] = sec * 1000
    if dtype == torch.float16:
        x = torch.randn(2, 13, FRAMES, 64, 64, device="cuda", dtype=dtype)
        ctx = torch.randn(2 * FRAMES, 50, 384, device="cuda", dtype=dtype)
        with torch.no_grad():
            _, feature = unet.forward_full(x, t, ctx, capture=True)
            sec = timed(lambda: unet.forward_shallow(x, t, ctx, feature))
        rows.append(("UNet fp16 DeepCache shallow step", f"{sec * 1000:.1f} ms"))
        results["unet_deepcache_shallow_ms"] = sec * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    rows: list[tuple[str, str]] = []
    results: dict[str, float] = {}
    cfg = load_unet_config(CONFIG_DIR / "unet" / "stage2_512.yaml").model
    gpu = torch.cuda.get_device_name()
    print(f"GPU: {gpu}, torch {torch.__version__}")

    # 1. Load time of a 5 GB checkpoint from local disk.
    if not args.quick:
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            path = Path(tmp) / "latentsync_unet.pt"
            m = random_unet(cfg, torch.float32)
            torch.save({"state_dict": {k: v.cpu() for k, v in m.state_dict().items()}, "global_step": 1}, path)
            del m
            torch.cuda.empty_cache()
            size_gb = path.stat().st_size / 1e9
            t0 = time.perf_counter()
            loaded, _ = load_unet_checkpoint(path, cfg, device="cuda", dtype=torch.float16)
            torch.cuda.synchronize()
            load_s = time.perf_counter() - t0
            del loaded
            torch.cuda.empty_cache()
        rows.append(("load 5 GB checkpoint -> GPU fp16", f"{load_s:.1f} s ({size_gb:.2f} GB file)"))
        results["load_s"] = load_s

    # 2. UNet per window batch.
    for dtype in (torch.float16, torch.bfloat16):
        bench_unet(cfg, dtype, (1, 2, 4) if not args.quick else (1, 4), rows, results)
        torch.cuda.empty_cache()

    # 3. VAE (SD architecture, random weights).
    vae = sd_vae().to("cuda", torch.float16).eval()
    img = torch.randn(FRAMES, 3, 512, 512, device="cuda", dtype=torch.float16)
    lat = torch.randn(FRAMES, 4, 64, 64, device="cuda", dtype=torch.float16)
    with torch.no_grad():
        enc = timed(lambda: vae.encode(img).latent_dist.sample(), reps=3)
        dec = timed(lambda: vae.decode(lat).sample, reps=3)
    rows.append(("VAE encode 16 frames (x2 per window)", f"{enc * 1000:.1f} ms"))
    rows.append(("VAE decode 16 frames", f"{dec * 1000:.1f} ms"))
    results.update(vae_encode_ms=enc * 1000, vae_decode_ms=dec * 1000)
    vae = None
    torch.cuda.empty_cache()

    # 4. Paste-back at 1080x1920 on the GPU.
    from latentsync_core.vision.alignment import FaceAligner

    aligner = FaceAligner(512, device="cuda")
    frames = torch.randint(0, 255, (FRAMES, 1920, 1080, 3), dtype=torch.uint8, device="cuda")
    faces = torch.rand(FRAMES, 3, 512, 512, device="cuda") * 2 - 1
    mats = torch.tensor([[[2.5, 0.05, -1000.0], [-0.05, 2.5, -1700.0]]], device="cuda").repeat(FRAMES, 1, 1)
    restore = timed(lambda: aligner.restore_batch(frames, faces, mats), reps=3)
    warp = timed(lambda: aligner.warp_faces(frames, mats), reps=3)
    rows.append(("restore 16 frames 1080x1920", f"{restore * 1000:.1f} ms"))
    rows.append(("align (warp) 16 frames", f"{warp * 1000:.1f} ms"))
    results.update(restore_ms=restore * 1000, warp_ms=warp * 1000)

    # 5. Projection: per output frame at 20 steps with CFG.
    steps = 20
    per_frame = {
        "denoise (fp16, 1 window/call)": results["unet_float16_w1_ms"] * steps / FRAMES,
        "denoise (best batching)": min(
            v / (16 * int(k.split("_w")[1].split("_")[0]))
            for k, v in results.items()
            if k.startswith("unet_") and "_w" in k
        )
        * steps,  # fmt: skip
        "vae": (2 * results["vae_encode_ms"] + results["vae_decode_ms"]) / FRAMES,
        "align+restore": (results["restore_ms"] + results["warp_ms"]) / FRAMES,
    }
    total = per_frame["denoise (best batching)"] + per_frame["vae"] + per_frame["align+restore"]
    n_full = DeepCacheState().full_steps(steps)
    deep = (results["unet_float16_w1_ms"] * n_full + results["unet_deepcache_shallow_ms"] * (steps - n_full)) / FRAMES
    rows.append(("GPU ms per output frame (best, no DeepCache)", f"{total:.1f} ms -> {1000 / total:.1f} frames/s"))
    deep_total = deep + per_frame["vae"] + per_frame["align+restore"]
    rows.append(("GPU ms per output frame (DeepCache)", f"{deep_total:.1f} ms -> {1000 / deep_total:.1f} frames/s"))
    rows.append(("peak GPU memory", f"{torch.cuda.max_memory_allocated() / 1e9:.1f} GB"))
    tf = results["unet_tflop_per_frame_pass"]
    rows.append(("UNet FLOPs per frame per pass", f"{tf:.3f} TFLOP ({tf * 2 * steps:.1f} TFLOP per output frame)"))
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
