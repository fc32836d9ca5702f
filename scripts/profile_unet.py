"""Where the UNet's GPU time goes (one 16-frame window, CFG batch 2), and what
torch.compile gives. Random full-size weights.

    python -m scripts.profile_unet [--compile]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from latentsync_core.config import CONFIG_DIR, load_unet_config
from scripts.bench_gpu import FRAMES, random_unet, timed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--windows", type=int, default=1)
    args = ap.parse_args()
    cfg = load_unet_config(CONFIG_DIR / "unet" / "stage2_512.yaml").model
    unet = random_unet(cfg, torch.float16)
    b = 2 * args.windows
    x = torch.randn(b, 13, FRAMES, 64, 64, device="cuda", dtype=torch.float16)
    ctx = torch.randn(b * FRAMES, 50, 384, device="cuda", dtype=torch.float16)
    t = torch.tensor(500, device="cuda")
    with torch.no_grad():
        base = timed(lambda: unet(x, t, encoder_hidden_states=ctx))
        print(f"eager: {base * 1000:.1f} ms per call ({args.windows} window(s))")
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            unet(x, t, encoder_hidden_states=ctx)
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60))
        if args.compile:
            compiled = torch.compile(unet, dynamic=False)
            t0 = time.perf_counter()
            ref = unet(x, t, encoder_hidden_states=ctx).sample
            out = compiled(x, t, encoder_hidden_states=ctx).sample
            torch.cuda.synchronize()
            print(
                f"compile: {time.perf_counter() - t0:.0f} s; max abs diff vs eager {(out - ref).abs().max().item():.3e}"
            )
            fast = timed(lambda: compiled(x, t, encoder_hidden_states=ctx))
            print(f"compiled: {fast * 1000:.1f} ms per call ({base / fast:.2f}x)")


if __name__ == "__main__":
    main()
