"""Which execution variant of the UNet and VAE is fastest on this GPU (random full-size
weights, one 16-frame window with guidance = batch 2): eager vs channels-last vs
torch.compile, and how long a compile takes cold and with a warm on-disk cache.

    python -m scripts.bench_variants [--variants eager,eager_cl,compile,compile_cl] [--vae]
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from latentsync_core.config import CONFIG_DIR, load_unet_config
from latentsync_core.inference.runners import AccelOptions, UNetRunner, VAERunner
from latentsync_core.models import DeepCacheState
from scripts.bench_gpu import FRAMES, random_unet, sd_vae, timed
from scripts.bench_table import print_table

TFLOP_PER_FRAME_PASS = 1.102  # measured with FlopCounterMode (NOTES.md)


def time_unet(runner: UNetRunner, x, t, ctx, feature) -> tuple[float, float]:
    with torch.no_grad():
        full = timed(lambda: runner.full(x, t, ctx), warmup=2, reps=7)
        shallow = timed(lambda: runner.shallow(x, t, ctx, feature), warmup=2, reps=7)
    return full, shallow


def time_vae(runner: VAERunner, img, lat) -> tuple[float, float]:
    with torch.no_grad():
        return timed(lambda: runner.moments(img), reps=5), timed(lambda: runner.decode(lat), reps=5)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default="eager,eager_cl,compile,compile_cl")
    ap.add_argument("--windows", type=int, default=1)
    ap.add_argument("--vae", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    cfg = load_unet_config(CONFIG_DIR / "unet" / "stage2_512.yaml").model
    dtype = torch.float16
    rows: list[tuple[str, str]] = []
    results: dict[str, float] = {}
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    b = 2 * args.windows
    shape = (b, 13, FRAMES, 64, 64)
    ctx_shape = (b * FRAMES, 50, 384)
    gen = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(shape, device="cuda", dtype=dtype, generator=gen)
    ctx = torch.randn(ctx_shape, device="cuda", dtype=dtype, generator=gen)
    t = torch.tensor([500.0], device="cuda")
    reference = None
    for variant in args.variants.split(","):
        unet = random_unet(cfg, dtype)  # the same seed: identical weights for every variant
        opts = AccelOptions(compile=variant.startswith("compile"), channels_last=variant.endswith("_cl"))
        runner = UNetRunner(unet, opts)
        prep = runner.prepare(shape, ctx_shape)
        with torch.no_grad():
            out, feature = runner.full(x, t, ctx)
            out = out.float()
            if reference is None:
                reference = out
            rel = ((out - reference).norm() / reference.norm()).item()
            full, shallow = time_unet(runner, x, t, ctx, feature)
        tflops = TFLOP_PER_FRAME_PASS * b * FRAMES / full
        fps = args.windows * FRAMES / (full * 20)
        n_full = DeepCacheState().full_steps(20)
        deep = args.windows * FRAMES / (full * n_full + shallow * (20 - n_full))
        rows.append((f"UNet {variant} ({args.windows} window/call)", f"{full * 1000:.1f} ms, {tflops:.0f} TFLOP/s, "
                     f"{fps:.2f} f/s; shallow {shallow * 1000:.1f} ms, DeepCache {deep:.2f} f/s; "
                     f"prepare {prep:.0f} s; rel diff {rel:.1e}"))  # fmt: skip
        results.update({f"{variant}_ms": full * 1000, f"{variant}_shallow_ms": shallow * 1000})
        results[f"{variant}_prep_s"] = prep
        print(rows[-1], flush=True)
        del unet, runner, out, feature
        torch.cuda.empty_cache()
    if args.vae:
        for variant in ("eager", "eager_cl", "compile_cl"):
            vae = sd_vae().to("cuda", dtype).eval()
            opts = AccelOptions(compile=variant.startswith("compile"), channels_last=variant.endswith("_cl"))
            runner = VAERunner(vae, opts)
            prep = runner.prepare((FRAMES, 3, 512, 512))
            img = torch.randn(FRAMES, 3, 512, 512, device="cuda", dtype=dtype)
            lat = torch.randn(FRAMES, 4, 64, 64, device="cuda", dtype=dtype)
            enc, dec = time_vae(runner, img, lat)
            rows.append((f"VAE {variant}, 16 frames", f"encode {enc * 1000:.1f} ms, decode {dec * 1000:.1f} ms, "
                         f"prepare {prep:.0f} s"))  # fmt: skip
            results.update({f"vae_{variant}_enc_ms": enc * 1000, f"vae_{variant}_dec_ms": dec * 1000})
            print(rows[-1], flush=True)
            del vae, runner
            torch.cuda.empty_cache()
    rows.append(("peak GPU memory", f"{torch.cuda.max_memory_allocated() / 1e9:.1f} GB"))
    rows.append(("inductor cache", os.environ.get("TORCHINDUCTOR_CACHE_DIR", "(default)")))
    print_table(rows, "variant")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
