"""Which execution variant of the UNet and VAE is fastest on this GPU (random full-size
weights, one 16-frame window with guidance = batch 2): eager vs channels-last vs
torch.compile, FP8 Linear layers (torchao) and a CUDA-graph DeepCache step, and how long a
compile takes cold and with a warm on-disk cache. ``--attention`` times the spatial
self-attention shape alone (head dim 40) per SDPA back end, padded to 48/64, and FlexAttention.
Output differences are against a float32 eager run of the same weights and inputs.

    python -m scripts.bench_variants [--variants eager,eager_cl,compile,compile_cl,fp8_cl] [--vae] [--attention]
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from latentsync_core.configs.loader import CONFIG_DIR
from latentsync_core.configs.unet import load_unet_config
from latentsync_core.inference.runners import AccelOptions, UNetRunner, VAERunner
from latentsync_core.models import DeepCacheState
from scripts.bench_attention import attention_rows
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


def shallow_as_cuda_graph(unet, x, t, ctx, feature) -> float:
    """Milliseconds per DeepCache step compiled with CUDA graphs (mode reduce-overhead)."""
    graphs = torch.compile(unet.forward_shallow, mode="reduce-overhead", fullgraph=True, dynamic=False)
    return timed(lambda: graphs(x, t, ctx, feature), warmup=3, reps=7) * 1000


def quantize_fp8(unet: torch.nn.Module) -> None:
    """FP8 (e4m3) weights and dynamically scaled FP8 activations for every Linear layer
    (torchao); convolutions stay in 16 bits. Row-wise scales need bfloat16 weights; with
    float16 one scale per tensor."""
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, PerTensor, quantize_

    granularity = PerRow() if next(unet.parameters()).dtype == torch.bfloat16 else PerTensor()
    quantize_(unet, Float8DynamicActivationFloat8WeightConfig(granularity=granularity))


def measure_variant(variant, cfg, dtype, shape, ctx_shape, x, t, ctx, reference, windows, rows, results) -> None:
    """Time one UNet variant on the shared inputs; a row and JSON fields."""
    b = shape[0]
    unet = random_unet(cfg, dtype)  # the same seed: identical weights for every variant
    if variant.startswith("fp8"):
        quantize_fp8(unet)
    compiled = variant.startswith(("compile", "fp8"))
    opts = AccelOptions(compile=compiled, channels_last=variant.endswith("_cl"))
    runner = UNetRunner(unet, opts)
    prep = runner.prepare(shape, ctx_shape)
    with torch.no_grad():
        out, feature = runner.full(x, t, ctx)
        out = out.float()
        rel = ((out - reference).norm() / reference.norm()).item()
        full, shallow = time_unet(runner, x, t, ctx, feature)
        graph_ms = shallow_as_cuda_graph(unet, runner._layout(x), t, ctx, feature) if compiled else None
    tflops = TFLOP_PER_FRAME_PASS * b * FRAMES / full
    fps = windows * FRAMES / (full * 20)
    n_full = DeepCacheState().full_steps(20)
    deep = windows * FRAMES / (full * n_full + shallow * (20 - n_full))
    rows.append((f"UNet {variant} ({windows} window/call)", f"{full * 1000:.1f} ms, {tflops:.0f} TFLOP/s, "
                 f"{fps:.2f} f/s; shallow {shallow * 1000:.1f} ms, DeepCache {deep:.2f} f/s; "
                 f"prepare {prep:.0f} s; rel diff {rel:.1e}"))  # fmt: skip
    results.update({f"{variant}_ms": full * 1000, f"{variant}_shallow_ms": shallow * 1000})
    results[f"{variant}_prep_s"] = prep
    if graph_ms is not None:  # is the DeepCache step launch-bound?
        rows.append((f"  {variant}: shallow step as a CUDA graph", f"{graph_ms:.1f} ms"))
        results[f"{variant}_shallow_graph_ms"] = graph_ms
    print(rows[-1], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default="eager,eager_cl,compile,compile_cl")
    ap.add_argument("--windows", type=int, default=1)
    ap.add_argument("--vae", action="store_true")
    ap.add_argument("--attention", action="store_true")
    ap.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    cfg = load_unet_config(CONFIG_DIR / "unet" / "stage2_512.yaml").model
    dtype = getattr(torch, args.dtype)
    rows: list[tuple[str, str]] = []
    results: dict[str, float] = {}
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    b = 2 * args.windows
    shape = (b, 13, FRAMES, 64, 64)
    ctx_shape = (b * FRAMES, 50, 384)
    gen = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(shape, device="cuda", dtype=dtype, generator=gen)
    ctx = torch.randn(ctx_shape, device="cuda", dtype=dtype, generator=gen)
    t = torch.tensor([500], device="cuda")  # int64, as the scheduler's timesteps (a float recompiles)
    with torch.no_grad():  # the float32 reference: same seed, same weights before rounding
        unet32 = random_unet(cfg, torch.float32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        reference = unet32.forward_full(x.float(), t, ctx.float(), capture=True)[0]
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        del unet32
        torch.cuda.empty_cache()
    for variant in args.variants.split(","):
        try:
            measure_variant(variant, cfg, dtype, shape, ctx_shape, x, t, ctx, reference, args.windows, rows, results)
        except Exception as exc:  # noqa: BLE001 - one failed variant is a row, the others still run
            rows.append((f"UNet {variant}", f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:100]}"))
            print(rows[-1], flush=True)
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
    if args.attention:
        rows.extend(attention_rows(results))
    rows.append(("peak GPU memory", f"{torch.cuda.max_memory_allocated() / 1e9:.1f} GB"))
    rows.append(("inductor cache", os.environ.get("TORCHINDUCTOR_CACHE_DIR", "(default)")))
    print_table(rows, "variant")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
