"""Where the UNet's GPU time goes (one 16-frame window, CFG batch 2), eager or compiled
(the pipeline's runner). Random full-size weights. Kernels are grouped by kind.

    python -m scripts.profile_unet [--compile] [--windows N]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from latentsync_core.configs.loader import CONFIG_DIR
from latentsync_core.configs.unet import load_unet_config
from latentsync_core.inference.runners import AccelOptions, UNetRunner
from scripts.bench_gpu import FRAMES, random_unet, timed

KINDS = [  # (group, substrings of the kernel name), first match wins
    ("attention", ("flash", "fmha", "attention", "sdpa", "cudnn_generated_fort_native_sdpa")),
    ("conv", ("conv", "implicit", "sm90_xmma_fprop", "fprop", "dgrad", "nhwc")),
    ("gemm", ("gemm", "nvjet", "cutlass", "sm90_xmma", "cublas")),
    ("triton fused", ("triton_",)),
    ("norm", ("norm",)),
    ("copy/layout", ("copy", "transpose", "permute", "cat")),
]


def kind(name: str) -> str:
    low = name.lower()
    for group, keys in KINDS:
        if any(k in low for k in keys):
            return group
    return "other elementwise"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--windows", type=int, default=1)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    cfg = load_unet_config(CONFIG_DIR / "unet" / "stage2_512.yaml").model
    runner = UNetRunner(random_unet(cfg, torch.float16), AccelOptions(compile=args.compile, channels_last=True))
    b = 2 * args.windows
    shape, ctx_shape = (b, 13, FRAMES, 64, 64), (b * FRAMES, 50, 384)
    runner.prepare(shape, ctx_shape)
    x = torch.randn(shape, device="cuda", dtype=torch.float16)
    ctx = torch.randn(ctx_shape, device="cuda", dtype=torch.float16)
    t = torch.tensor([500.0], device="cuda")
    with torch.no_grad():
        total = timed(lambda: runner.full(x, t, ctx))
        print(f"{'compiled' if args.compile else 'eager'}: {total * 1000:.1f} ms per call ({args.windows} window(s))")
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            runner.full(x, t, ctx)
            torch.cuda.synchronize()
    groups: dict[str, float] = defaultdict(float)
    kernels: dict[str, float] = defaultdict(float)
    for evt in prof.key_averages():
        us = evt.device_time_total
        if us <= 0:
            continue
        groups[kind(evt.key)] += us
        kernels[evt.key] += us
    busy = sum(groups.values())
    print(f"GPU busy {busy / 1000:.1f} ms of {total * 1000:.1f} ms")
    for g, us in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {g:<18} {us / 1000:7.1f} ms  {100 * us / busy:5.1f} %")
    print("top kernels:")
    for name, us in sorted(kernels.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {us / 1000:7.2f} ms  {name[:110]}")


if __name__ == "__main__":
    main()
