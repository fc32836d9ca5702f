"""FP8 (float8 e4m3 Linear layers, ``AccelOptions(fp8=True)``) against the fp16 fast path,
in one GPU lease: random full-size weights, the bundled clip, replayed landmarks.

In order, each step skipped when ``--budget-s`` would not cover it:
1. accuracy of one UNet call (batch 2 x 16 frames, t=500, the same random inputs): the
   noise prediction of fp16 and of fp8 (eager and compiled) against float32 (TF32 off, the
   same weights): max / mean |diff|, ||diff|| / ||ref||, PSNR over the reference's range;
2. every Linear shape of that call: fp16 product vs the float8 product alone (input
   already quantized: the floor) vs the whole eager float8 layer (the ceiling), and
   torchao's float8 layer on the largest shape at the very end, when torchao imports;
3. the fp16 fast path compiled: UNet ms per call; DDIM 20 first request and repeat
   (issue 21's rows, the re-measure of NOTES.md's table);
4. the same model converted to fp8 (in place), compiled: UNet ms per call; DDIM 20
   repeat and first request, then DDIM 20 + DeepCache repeat.
Results go to ``--json`` after each step, the table to ``--table``.
``--smoke``: CPU, demo weights, 1 step, 0.32 s of speech, no compile (float8 products run
on the CPU's reference kernel): proof that the script works, not a measurement.

    python -m scripts.bench_fp8 --landmarks scripts/data/demo1_faces.npz --budget-s 500 \
        --json OUT/fp8.json --table OUT/fp8.md [--smoke]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from latentsync_core.inference import LipSyncParams, LipSyncPipeline
from latentsync_core.inference.runners import AccelOptions
from latentsync_core.inference.template_cache import TemplateCache
from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.models.fp8 import FP8_MIN_IN_FEATURES, Float8Linear, _rowwise, eligible
from latentsync_core.sync.video import load_syncnet_v2
from latentsync_core.vision.recorded_faces import RecordedFaceDetector
from scripts.bench_e2e import AUDIO, build, job
from scripts.bench_e2e_rows import RowSpec, rows

COMPILE_S = 150.0  # a cold UNet + VAE compile took 128 s on the H100 (NOTES.md), plus margin


def diff(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    d = out.double() - ref.double()
    rmse = d.pow(2).mean().sqrt().item()
    span = (ref.max() - ref.min()).item()
    return {
        "max_abs": d.abs().max().item(),
        "mean_abs": d.abs().mean().item(),
        "rel_l2": (d.norm() / ref.double().norm()).item(),
        "psnr_db": 20 * math.log10(span / rmse) if rmse > 0 else float("inf"),
        "finite": bool(torch.isfinite(out).all()),
    }


def unet_inputs(models, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One full window's UNet inputs with guidance (batch 2), float32."""
    cfg = models.unet.config
    r = models.resolution // 8
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn((2, cfg.in_channels, 16, r, r), generator=g).to(models.device)
    ctx = torch.randn((32, 50, cfg.cross_attention_dim), generator=g).to(models.device)
    return x, torch.tensor([500], device=models.device), ctx


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], object], device: torch.device, iters: int = 10, warm: int = 2) -> float:
    """Median of ``iters`` timed calls (CUDA events on a GPU), after ``warm`` untimed ones."""
    for _ in range(warm):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def linear_shapes(unet: nn.Module, call: Callable[[], object], min_in: int) -> Counter:
    """(rows, in, out, fp8-eligible by the default rule) of every Linear call in ``call``."""
    seen: Counter = Counter()
    hooks = []
    for name, m in unet.named_modules():
        if isinstance(m, nn.Linear):
            ok = eligible(name, m, min_in)

            def hook(mod, inp, _out, ok=ok):
                seen[(inp[0].numel() // mod.in_features, mod.in_features, mod.out_features, ok)] += 1

            hooks.append(m.register_forward_hook(hook))
    try:
        call()
    finally:
        for h in hooks:
            h.remove()
    return seen


def one_gemm(m: int, k: int, n: int, device: torch.device, dtype: torch.dtype, iters: int) -> dict:
    """One Linear shape: fp16 product, the float8 product alone, the eager float8 layer."""
    x = torch.randn((m, k), device=device, dtype=dtype)
    lin = nn.Linear(k, n, device=device, dtype=dtype)
    f8 = Float8Linear(lin)
    q, s = _rowwise(x)
    with torch.no_grad():
        t16 = median_ms(lambda: F.linear(x, lin.weight, lin.bias), device, iters)
        t8 = median_ms(
            lambda: torch._scaled_mm(
                q, f8.weight_fp8.t(), scale_a=s, scale_b=f8.weight_scale, out_dtype=torch.bfloat16
            ),
            device,
            iters,
        )
        t8_layer = median_ms(lambda: f8(x), device, iters)
        err = diff(f8(x), F.linear(x.float(), lin.weight.float(), lin.bias.float()))["rel_l2"]
    flop = 2 * m * k * n
    return {
        "fp16_ms": t16,
        "fp8_mm_ms": t8,
        "fp8_layer_eager_ms": t8_layer,
        "fp16_tflops": flop / t16 / 1e9,
        "fp8_mm_tflops": flop / t8 / 1e9,
        "fp8_rel_l2": err,
    }


def gemm_table(shapes: Counter, device: torch.device, dtype: torch.dtype, smoke: bool) -> list[dict]:
    """``one_gemm`` for every Linear shape of a UNet call that float8 accepts, largest first."""
    out = []
    for (m, k, n, ok), count in sorted(shapes.items(), key=lambda kv: -kv[0][0] * kv[0][1] * kv[0][2] * kv[1]):
        if k % 16 or n % 16 or m < 16:
            continue
        row = {"rows": m, "in": k, "out": n, "calls": count, "default_rule": ok}
        out.append(row | one_gemm(m, k, n, device, dtype, 2 if smoke else 20))
    return out


def torchao_check(device: torch.device, dtype: torch.dtype, shape: tuple[int, int, int]) -> dict:
    """torchao's float8 (dynamic row-wise activations, row-wise weights) on one shape,
    eager, beside ours; its error if it does not import or run."""
    try:
        import torchao
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return {"error": f"import: {type(exc).__name__}: {exc}"}
    try:
        m, k, n = shape
        x = torch.randn((m, k), device=device, dtype=torch.bfloat16)
        lin = nn.Sequential(nn.Linear(k, n, device=device, dtype=torch.bfloat16))
        ref = F.linear(x.float(), lin[0].weight.float(), lin[0].bias.float())
        ours = Float8Linear(lin[0])
        # set_inductor_config=False: its default turns on coordinate-descent tuning for the whole
        # process, and the pipeline's compile after it then ran past a 600 s lease (2026-12-08)
        quantize_(lin, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow(), set_inductor_config=False))
        with torch.no_grad():
            return {
                "version": torchao.__version__,
                "shape": shape,
                "torchao_eager_ms": median_ms(lambda: lin(x), device),
                "ours_eager_ms": median_ms(lambda: ours(x), device),
                "torchao_rel_l2": diff(lin(x), ref)["rel_l2"],
                "ours_rel_l2": diff(ours(x), ref)["rel_l2"],
                "dtype_note": f"bfloat16 model here (torchao's row-wise path); the UNet runs {dtype}",
            }
    except Exception as exc:  # noqa: BLE001
        return {"error": f"run: {type(exc).__name__}: {exc}"}


def main() -> None:  # noqa: PLR0915 - one lease, one straight sequence of steps
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights-dir", default="/tmp/latentsync-bench-weights")
    ap.add_argument("--work", default="/tmp/latentsync-bench-fp8")
    ap.add_argument("--landmarks", type=Path, default=None)
    ap.add_argument("--budget-s", type=float, default=None)
    ap.add_argument("--smoke", action="store_true")
    rule = f"fp8 rule: Linear layers of at least this many inputs (default {FP8_MIN_IN_FEATURES}; 0 in --smoke)"
    ap.add_argument("--min-in-features", type=int, default=None, help=rule)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--table", type=Path, default=None)
    args = ap.parse_args()
    start = time.perf_counter()

    def left() -> float:
        return float("inf") if args.budget_s is None else args.budget_s - (time.perf_counter() - start)

    on_gpu = not args.smoke
    if on_gpu and not torch.cuda.is_available():
        raise SystemExit("no GPU: use --smoke for the CPU check")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {"device": torch.cuda.get_device_name() if on_gpu else "cpu (smoke: not a measurement)"}
    min_in = args.min_in_features if args.min_in_features is not None else (0 if args.smoke else FP8_MIN_IN_FEATURES)
    res.update(torch=torch.__version__, min_in_features=min_in, runs16={}, runs8={}, accuracy={})

    def save(step: str) -> None:
        res["last_step"] = step
        res["elapsed_s"] = time.perf_counter() - start
        print(f"[{time.perf_counter() - start:6.1f} s] {step}", flush=True)
        if args.json:
            args.json.write_text(json.dumps(res, indent=2, default=str))

    detector = RecordedFaceDetector.from_file(args.landmarks) if args.landmarks else None
    models, written = build(argparse.Namespace(smoke=args.smoke, weights_dir=args.weights_dir), work, detector)
    dev = models.device
    res.update(weights_written_s=written, load_s=models.load_seconds)
    save("loaded")

    # 1. accuracy, eager: float32 reference, fp16 (the fp8 rows come after the conversion)
    x, t, ctx = unet_inputs(models)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ref_model = copy.deepcopy(models.unet).float()
    with torch.no_grad():
        ref = ref_model.forward_full(x, t, ctx)[0]
        del ref_model
        x16, ctx16 = x.to(models.dtype), ctx.to(models.dtype)
        shapes = linear_shapes(models.unet, lambda: models.unet.forward_full(x16, t, ctx16), min_in)
        res["accuracy"]["fp16 eager"] = diff(models.unet.forward_full(x16, t, ctx16)[0], ref)
    torch.backends.cuda.matmul.allow_tf32 = False  # torch's defaults back
    torch.backends.cudnn.allow_tf32 = True
    if on_gpu:
        torch.cuda.empty_cache()
    save("accuracy fp16")

    # 2. the Linear shapes
    res["gemms"] = gemm_table(shapes, dev, models.dtype, args.smoke)
    tot16 = sum(g["fp16_ms"] * g["calls"] for g in res["gemms"])
    res["linear_ms_per_call"] = {
        "fp16_all": tot16,
        "fp8_mm_all": sum(g["fp8_mm_ms"] * g["calls"] for g in res["gemms"]),
        "fp16_default_rule": sum(g["fp16_ms"] * g["calls"] for g in res["gemms"] if g["default_rule"]),
        "fp8_mm_default_rule": sum(g["fp8_mm_ms"] * g["calls"] for g in res["gemms"] if g["default_rule"]),
        "fp8_layer_eager_default_rule": sum(
            g["fp8_layer_eager_ms"] * g["calls"] for g in res["gemms"] if g["default_rule"]
        ),
    }
    save("gemms")

    # 3. fp16 fast path
    cache_root = work / "templates"
    syncnet, _ = load_syncnet_v2(work, "demo", dev)
    speech_a, speech_b = work / "speech_a.wav", work / "speech_b.wav"
    trim = ["-t", "0.32"] if args.smoke else []
    run_ffmpeg([*trim, "-i", input_arg(AUDIO), "-ac", "1", "-ar", "16000", "-y", str(speech_a)])
    run_ffmpeg(["-i", input_arg(speech_a), "-af", "areverse", "-y", str(speech_b)])
    by_key = {s.key: s for s in rows(steps_override=1 if args.smoke else None)}

    def run_row(pipe: LipSyncPipeline, key: str, into: dict, label: str) -> None:
        spec: RowSpec = by_key[key]
        last = max((r["wall_s"] for r in [*res["runs16"].values(), *res["runs8"].values()] if "wall_s" in r), default=0)
        if last and left() < 1.2 * last + 10:
            into[key] = {"skipped": f"budget ({left():.0f} s left)"}
            save(f"{label} {key}: skipped")
            return
        params = LipSyncParams(**spec.params)
        r = job(pipe, spec, speech_a if spec.first else speech_b, work, cache_root, on_gpu)
        r["steps"] = params.inference_steps
        into[key] = r
        save(f"{label} {spec.name}: {r['fps']:.2f} frames/s, denoise {r['timings'].get('denoise')} s")

    unet_iters = (1, 0) if args.smoke else (10, 2)  # timed calls, warm-up calls
    accel16 = AccelOptions.for_device(dev, compile=on_gpu)
    pipe16 = LipSyncPipeline(models, accel=accel16, template_cache=TemplateCache(cache_root, 4 << 30), syncnet=syncnet)
    pipe16.warmup()
    res["compile16_s"] = pipe16.prepare_fast_path() if on_gpu else None
    with torch.no_grad():
        res["unet_ms16"] = median_ms(lambda: pipe16.unet.full(x16, t, ctx16), dev, *unet_iters)
        res["accuracy"]["fp16 compiled"] = diff(pipe16.unet.full(x16, t, ctx16)[0], ref)
    save(f"fp16 compiled in {res['compile16_s']} s, UNet {res['unet_ms16']:.1f} ms a call")
    run_row(pipe16, "ddim20_first", res["runs16"], "fp16")  # also fills the template cache for the repeats

    # 4. fp8 on a copy of the UNet (the fp16 pipeline keeps its own), compiled
    pipe8 = None
    if left() < COMPILE_S:
        res["fp8_skipped"] = f"budget ({left():.0f} s left)"
        save("fp8 skipped")
    else:
        models8 = replace(models, unet=copy.deepcopy(models.unet))
        accel8 = replace(AccelOptions.for_device(dev, compile=on_gpu, fp8=True), fp8_min_in_features=min_in)
        cache8 = TemplateCache(cache_root, 4 << 30)  # the same folder: repeats hit fp16's templates
        pipe8 = LipSyncPipeline(models8, accel=accel8, template_cache=cache8, syncnet=syncnet)
        res["fp8_layers"] = sum(isinstance(m, Float8Linear) for m in models8.unet.modules())
        with torch.no_grad():
            res["accuracy"]["fp8 eager"] = diff(models8.unet.forward_full(x16, t, ctx16)[0], ref)
        save(f"fp8: {res['fp8_layers']} layers converted")
        res["compile8_s"] = pipe8.prepare_fast_path() if on_gpu else None
        with torch.no_grad():
            res["unet_ms8"] = median_ms(lambda: pipe8.unet.full(x16, t, ctx16), dev, *unet_iters)
            res["accuracy"]["fp8 compiled"] = diff(pipe8.unet.full(x16, t, ctx16)[0], ref)
        save(f"fp8 compiled in {res['compile8_s']} s, UNet {res['unet_ms8']:.1f} ms a call")
    # the pairs that matter most first: a budget cuts from the end
    order = [(pipe8, "ddim20_hit"), (pipe16, "ddim20_hit"), (pipe8, "ddim20_first")]
    order += [(pipe8, "ddim20_dc_hit"), (pipe16, "ddim20_dc_hit")]
    for pipe, key in order:
        if pipe is not None:
            run_row(pipe, key, res["runs8"] if pipe is pipe8 else res["runs16"], "fp8" if pipe is pipe8 else "fp16")
    if on_gpu and res["gemms"]:  # last: importing torchao may change process-wide settings
        g0 = res["gemms"][0]
        res["torchao"] = torchao_check(dev, models.dtype, (g0["rows"], g0["in"], g0["out"]))
    if on_gpu:
        res["peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
    text = report(res)
    print("\n" + text, flush=True)
    if args.table:
        args.table.write_text(text + "\n")
    save("done")


def report(res: dict) -> str:
    rule = f"fp8 rule: Linear layers of >= {res['min_in_features']} inputs"
    lines = [f"device: {res['device']}, torch {res['torch']}; {rule}"]
    lines += ["", "| run | fp16 frames/s | fp8 frames/s | fp16 denoise s | fp8 denoise s |", "|---|---|---|---|---|"]
    for key in ("ddim20_first", "ddim20_hit", "ddim20_dc_hit"):
        a, b = res["runs16"].get(key, {}), res["runs8"].get(key, {})

        def cell(r: dict, f: str) -> str:
            if "skipped" in r:
                return "skipped"
            v = r.get(f) if f != "denoise" else r.get("timings", {}).get("denoise")
            return f"{v:.2f}" if isinstance(v, float | int) else "-"

        lines.append(f"| {key} | {cell(a, 'fps')} | {cell(b, 'fps')} | {cell(a, 'denoise')} | {cell(b, 'denoise')} |")
    ms16, ms8 = res.get("unet_ms16"), res.get("unet_ms8")
    if ms16 and ms8:
        speed = f"fp16 {ms16:.1f} ms, fp8 {ms8:.1f} ms ({ms16 / ms8:.3f}x)"
        lines.append(f"\nUNet call (batch 2 x 16 frames, compiled): {speed}")
    lines += ["", "| vs float32 (one UNet call, t=500) | max abs | mean abs | rel L2 | PSNR dB |"]
    lines.append("|---|---|---|---|---|")
    for name, d in res["accuracy"].items():
        nums = f"{d['max_abs']:.4g} | {d['mean_abs']:.4g} | {d['rel_l2']:.4g} | {d['psnr_db']:.1f}"
        lines.append(f"| {name} | {nums} |")
    lines += ["", "| rows x in x out (calls) | converted | fp16 ms | fp8 mm ms | fp8 eager layer ms | fp8 mm TFLOP/s |"]
    lines.append("|---|---|---|---|---|---|")
    for g in res.get("gemms", []):
        lines.append(
            f"| {g['rows']}x{g['in']}x{g['out']} ({g['calls']}) | {g['default_rule']} | {g['fp16_ms']:.3f} | "
            f"{g['fp8_mm_ms']:.3f} | {g['fp8_layer_eager_ms']:.3f} | {g['fp8_mm_tflops']:.0f} |"
        )
    per_call = {k: round(v, 2) for k, v in res["linear_ms_per_call"].items()}
    lines.append(f"\nLinear ms per UNet call: {json.dumps(per_call)}")
    if "torchao" in res:
        lines.append(f"torchao: {json.dumps(res['torchao'], default=str)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
