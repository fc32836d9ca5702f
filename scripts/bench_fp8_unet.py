"""The UNet alone, fp16 against float8 Linear layers, for a short GPU lease (no VAE, no media,
no wheels): random stage2_512 weights built in memory, one full window with guidance
(batch 2 x 16 frames, 512 px), the service's runner (``UNetRunner.prepare``: channels-last,
``torch.compile`` of the full and the DeepCache step).

Steps, each written to ``--json`` as it ends, skipped once ``--budget-s`` is spent:
accuracy of one call against float32 (TF32 off, the same weights): fp16, fp8 with the default
rule, fp8 on every eligible layer (all eager); then compiled fp16 and compiled fp8 (default
rule): compile seconds and median ms a call.

    python -m scripts.bench_fp8_unet --budget-s 200 --json OUT/unet.json [--smoke]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from latentsync_core.configs.loader import CONFIG_DIR
from latentsync_core.configs.unet import load_unet_config
from latentsync_core.inference.runners import AccelOptions, UNetRunner
from latentsync_core.models import UNet3DConditionModel
from latentsync_core.models.fp8 import FP8_MIN_IN_FEATURES, Float8Linear, convert_linears_to_fp8
from latentsync_core.weights.random_weights import randomize_, tiny_unet_config
from scripts.bench_fp8 import diff, median_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-s", type=float, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--smoke", action="store_true", help="CPU, the tiny UNet, 32 px, no compile")
    args = ap.parse_args()
    start = time.perf_counter()
    on_gpu = not args.smoke
    dev = torch.device("cuda" if on_gpu else "cpu")
    res: dict = {"device": torch.cuda.get_device_name() if on_gpu else "cpu (smoke)", "torch": torch.__version__}

    def left() -> float:
        return float("inf") if args.budget_s is None else args.budget_s - (time.perf_counter() - start)

    def save(step: str) -> None:
        res["elapsed_s"] = time.perf_counter() - start
        print(f"[{res['elapsed_s']:6.1f} s] {step}", flush=True)
        if args.json:
            args.json.write_text(json.dumps(res, indent=2, default=str))

    cfg = load_unet_config(CONFIG_DIR / "unet" / "stage2_512.yaml").model
    cfg = tiny_unet_config(cfg) if args.smoke else cfg
    unet = UNet3DConditionModel(cfg).eval()
    randomize_(unet, 0)  # the same values write_random_unet_checkpoint gives
    unet = unet.to(dev)
    r = 4 if args.smoke else 64
    g = torch.Generator().manual_seed(0)
    x = torch.randn((2, cfg.in_channels, 16, r, r), generator=g).to(dev)
    ctx = torch.randn((32, 50, cfg.cross_attention_dim), generator=g).to(dev)
    t = torch.tensor([500], device=dev)
    save("built")

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with torch.no_grad():
        ref = unet.forward_full(x, t, ctx)[0]
    dtype = torch.float16 if on_gpu else torch.float32
    unet = unet.to(dtype)
    x16, ctx16 = x.to(dtype), ctx.to(dtype)
    torch.backends.cuda.matmul.allow_tf32 = False  # torch's defaults
    torch.backends.cudnn.allow_tf32 = True
    acc: dict = {}
    res["accuracy_vs_float32"] = acc
    with torch.no_grad():
        acc["fp16"] = diff(unet.forward_full(x16, t, ctx16)[0], ref)
        for label, min_in in ((f"fp8 in>={FP8_MIN_IN_FEATURES}", FP8_MIN_IN_FEATURES), ("fp8 every layer", 0)):
            eight = copy.deepcopy(unet)
            n = len(convert_linears_to_fp8(eight, min_in))
            acc[label] = diff(eight.forward_full(x16, t, ctx16)[0], ref) | {"layers": n}
            del eight
    del ref
    save(f"accuracy {json.dumps({k: round(v['rel_l2'], 5) for k, v in acc.items()})}")

    shape, ctx_shape = tuple(x16.shape), tuple(ctx16.shape)
    for label, fp8 in (("fp16", False), ("fp8", True)):
        if left() < 60:
            res[f"{label}_skipped"] = f"budget ({left():.0f} s left)"
            save(f"{label} skipped")
            continue
        model = copy.deepcopy(unet) if fp8 else unet
        runner = UNetRunner(model, AccelOptions(compile=on_gpu, channels_last=on_gpu, fp8=fp8))
        t0 = time.perf_counter()
        runner.prepare(shape, ctx_shape)
        res[f"{label}_compile_s"] = time.perf_counter() - t0
        with torch.no_grad():
            res[f"{label}_ms"] = median_ms(lambda runner=runner: runner.full(x16, t, ctx16), dev, 10, 2)
            res[f"{label}_layers_fp8"] = sum(isinstance(m, Float8Linear) for m in model.modules())
        save(f"{label}: compile {res[f'{label}_compile_s']:.1f} s, {res[f'{label}_ms']:.2f} ms a call")
    if "fp16_ms" in res and "fp8_ms" in res:
        res["speedup"] = res["fp16_ms"] / res["fp8_ms"]
    save("done")


if __name__ == "__main__":
    main()
