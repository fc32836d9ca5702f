"""End-to-end benchmark of the pipeline with random full-size weights (no download): the
bundled 10 s 1080x1920 clip and its speech, 512 px, guidance 1.5, fp16 on a GPU.

Writes a random 5 GB ``latentsync_unet.pt``, a random SD VAE folder and a random Whisper
tiny checkpoint in the official layout, loads them through ``load_models`` (the service's
code path), warms up, compiles the full-window shapes (``--compile``), then times the runs
of issue 21's table (``bench_e2e_rows.py``): the exact path (DDIM 20) on a first request
and on a repeat with new speech (template hit), with and without DeepCache, the
``dpmpp_2m`` / ``unipc`` samplers at 10 steps, ``quality=fast``; each as frames/s end to
end, stage times, the time until the first window is denoised (the pipeline's per-window
progress), the per-job sync score's cost (``timings.sync``; a random SyncNetV2 costs what
the real one does) and a repeat with the score off; upstream's and our earlier figures
beside them (from NOTES.md and issue 21, labelled). The eager reference (``plain``) runs
last if the budget allows.

``--landmarks FILE`` replays faces recorded here by ``scripts/record_faces.py`` instead
of running the detector (the GPU machine has no dlib landmark model): the detect stage
then only decodes the frames; the detector's own cost (CPU work) counts as 0.
``--budget-s`` skips the compile and then whole runs, from the least important, so the
script ends in time; results are written to ``--json`` after every run.
``--smoke`` runs every row on the CPU with demo weights at 128 px, 1 step and 0.32 s of
speech: proof that the script works, not a measurement.

    python -m scripts.bench_e2e [--landmarks scripts/data/demo1_faces.npz] [--budget-s 420]
        [--compile auto|on|off] [--json FILE] [--table FILE] [--load-only] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch

from latentsync_core.inference import LipSyncParams, LipSyncPipeline
from latentsync_core.inference.runners import AccelOptions
from latentsync_core.inference.stages import ProgressEvent, Stage
from latentsync_core.inference.template_cache import TemplateCache
from latentsync_core.media.ffmpeg_bin import ffmpeg_exe, input_arg, run_ffmpeg
from latentsync_core.models.loading import ModelBundle, load_models
from latentsync_core.sync.video import load_syncnet_v2
from latentsync_core.vision.recorded_faces import RecordedFaceDetector
from scripts.bench_e2e_gpu import compare, fallbacks, flops_per_frame, frame_diff, unet_flops, write_weights
from scripts.bench_e2e_rows import RowSpec, rows, table

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT / "assets" / "demo1_video.mp4"
AUDIO = ROOT / "assets" / "demo1_audio.wav"
COMPILE_ESTIMATE_S = 150.0  # a cold compile on the H200 took 101-114 s (NOTES.md), plus margin
RESERVE_S = 15.0  # kept for the table and the JSON at the end


class Budget:
    """Seconds left of ``--budget-s`` (None: no limit), and an estimate of each run's cost
    from the last measured one: seconds per unit, a unit being one output frame through one
    full UNet step (a DeepCache shallow step counts its FLOP share; decoding, the VAE and the
    rest count as one more step)."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.start = time.perf_counter()  # counts from here: the caller allows for start-up
        self.rate: float | None = None  # seconds per unit, from the last run

    def left(self) -> float:
        return float("inf") if self.seconds is None else self.seconds - (time.perf_counter() - self.start)

    @staticmethod
    def units(frames: int, params: LipSyncParams, shallow_share: float) -> float:
        from latentsync_core.models import DeepCacheState
        from latentsync_core.models.unet import DEEPCACHE_INTERVAL

        steps = params.inference_steps
        full = DeepCacheState(DEEPCACHE_INTERVAL if params.enable_deepcache else 1).full_steps(steps)
        return frames * (full + shallow_share * (steps - full) + 1.0)

    def fits(self, units: float, factor: float = 1.0) -> bool:
        if self.seconds is None or self.rate is None:
            return True  # nothing measured yet: the first run always goes
        return 1.15 * factor * units * self.rate + RESERVE_S <= self.left()


def job(pipe: LipSyncPipeline, spec: RowSpec, audio: Path, work: Path, cache_root: Path, on_gpu: bool) -> dict:
    """Run one row's job; its measurements."""
    if spec.first:  # empty the template cache: this request plans its source from scratch
        for child in cache_root.iterdir():
            shutil.rmtree(child, ignore_errors=True)
    params = LipSyncParams(**spec.params)
    first_window: list[float] = []

    def progress(event: ProgressEvent) -> None:
        if event.stage == Stage.DENOISE and not first_window and event.done >= min(16, event.total):
            first_window.append(time.perf_counter() - t0)

    syncnet = pipe.syncnet
    if not spec.sync:
        pipe.syncnet = None
    if on_gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = fallbacks(pipe)
    t0 = time.perf_counter()
    try:
        res = pipe.run(VIDEO, audio, work / f"{spec.key}.mp4", params, progress=progress)
    finally:
        pipe.syncnet = syncnet
    wall = time.perf_counter() - t0
    timings = {k: round(v, 3) for k, v in res.timings.items()}
    return {
        "params": spec.params,
        "first_request": spec.first,
        "wall_s": wall,
        "frames": res.frames,
        "fps": res.frames / wall,
        "timings": timings,
        "sync_share": timings.get("sync", 0.0) / wall,
        "sync_score": res.sync is not None,
        "first_window_s": first_window[0] if first_window else None,
        "peak_gb": torch.cuda.max_memory_allocated() / 1e9 if on_gpu else None,
        "template_cache": res.template_cache,
        "fast_path": res.fast_path,
        "compiled_graph_fallbacks": fallbacks(pipe) - before,
    }


def build(args: argparse.Namespace, work: Path, detector: RecordedFaceDetector | None) -> tuple[ModelBundle, float]:
    """The models (random full-size weights on the GPU; demo weights in the smoke mode)."""
    if args.smoke:
        return load_models("demo", work / "no-checkpoints", work / "cache", device="cpu", detector=detector), 0.0
    t0 = time.perf_counter()
    write_weights(Path(args.weights_dir))
    written = time.perf_counter() - t0
    print(f"random weights ready in {written:.0f} s", flush=True)
    models = load_models("official", Path(args.weights_dir), work / "cache", device="cuda", detector=detector)
    return models, written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights-dir", default="/tmp/latentsync-bench-weights")
    ap.add_argument("--work", default="/tmp/latentsync-bench")
    ap.add_argument("--landmarks", type=Path, default=None, help="faces recorded by scripts/record_faces.py")
    ap.add_argument("--budget-s", type=float, default=None, help="end within this many seconds (from main's start)")
    ap.add_argument("--compile", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--load-only", action="store_true")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="CPU, demo weights, 1 step, 0.32 s of speech")
    ap.add_argument("--compare-seconds", type=float, default=0.0, help="also compare fast/plain fp16 with fp32")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--table", type=Path, default=None, help="also write the Markdown table here")
    args = ap.parse_args()
    on_gpu = not args.smoke
    if on_gpu and not torch.cuda.is_available():
        raise SystemExit("no GPU: use --smoke for the CPU check")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    budget = Budget(args.budget_s)
    device_name = torch.cuda.get_device_name() if on_gpu else "cpu (smoke mode: not a measurement)"
    results: dict[str, object] = {
        "device": device_name,
        "torch": torch.__version__,
        "ffmpeg": ffmpeg_exe(),
        "cpu_cores": os.cpu_count(),
        "budget_s": args.budget_s,
        "runs": {},
    }
    print(f"device: {device_name}, torch {torch.__version__}, {os.cpu_count()} CPU cores", flush=True)

    def save() -> None:
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))

    detector = RecordedFaceDetector.from_file(args.landmarks) if args.landmarks else None
    results["detection"] = (
        f"replayed from {args.landmarks.name} ({detector.recording.detector}, recorded on the CPU): "
        "the detect stage only decodes frames; the detector's cost counts as 0"
        if detector is not None
        else "the real detector on every frame of a first request"
    )
    models, written = build(args, work, detector)
    cache_root = work / "templates"
    shutil.rmtree(cache_root, ignore_errors=True)
    syncnet, _ = load_syncnet_v2(work, "demo", models.device)  # random weights: the real one's cost
    compile_wanted = on_gpu and (args.compile == "on" or (args.compile == "auto" and budget.left() > 300))
    accel = AccelOptions.for_device(models.device, compile=compile_wanted)
    pipe = LipSyncPipeline(models, accel=accel, template_cache=TemplateCache(cache_root, 4 << 30), syncnet=syncnet)
    t0 = time.perf_counter()
    pipe.warmup()
    warm_s = time.perf_counter() - t0
    compile_s = pipe.prepare_fast_path() if compile_wanted else None
    results.update(
        weights_written_s=written,
        load_s=models.load_seconds,
        warm_s=warm_s,
        compile_s=compile_s,
        compiled=compile_wanted,
    )
    if not compile_wanted:
        why = "CPU smoke mode" if not on_gpu else ("--compile off" if args.compile == "off" else "budget")
        results["compile_skipped"] = why
    compiled = f"{compile_s:.1f} s" if compile_s is not None else f"skipped ({results['compile_skipped']})"
    print(f"load {models.load_seconds:.1f} s, eager warm-up {warm_s:.1f} s, compile {compiled}", flush=True)
    save()
    if args.load_only:
        return

    full_f, shallow_f = flops_per_frame(pipe)
    results.update(unet_tflop_full_frame=full_f / 1e12, unet_tflop_shallow_frame=shallow_f / 1e12)
    shallow_share = shallow_f / full_f
    speech_a = work / "speech_a.wav"
    trim = ["-t", "0.32"] if args.smoke else []
    run_ffmpeg([*trim, "-i", input_arg(AUDIO), "-ac", "1", "-ar", "16000", "-y", str(speech_a)])
    speech_b = work / "speech_b.wav"  # the repeat's new speech: the same, reversed (same length)
    run_ffmpeg(["-i", input_arg(speech_a), "-af", "areverse", "-y", str(speech_b)])

    specs = rows(steps_override=1 if args.smoke else None)
    if args.skip_plain:
        specs = [s for s in specs if not s.plain]
    runs: dict[str, dict] = results["runs"]  # type: ignore[assignment]
    frames_estimate = None
    for spec in specs:
        params = LipSyncParams(**spec.params)
        units = Budget.units(frames_estimate or 1, params, shallow_share)
        if frames_estimate is not None and not budget.fits(units, factor=2.0 if spec.plain else 1.0):
            runs[spec.key] = {"skipped": f"budget ({budget.left():.0f} s left)"}
            print(f"{spec.name}: skipped, budget", flush=True)
            save()
            continue
        runner = pipe
        if spec.plain:  # the eager reference: its own pipeline, sharing the models
            runner = LipSyncPipeline(models, accel=AccelOptions(), detect_workers=1, syncnet=syncnet)
        audio = speech_b if not spec.first else speech_a
        r = job(runner, spec, audio, work, cache_root, on_gpu)
        frames_estimate = r["frames"]
        budget.rate = r["wall_s"] / Budget.units(r["frames"], params, shallow_share)
        if on_gpu:
            r["tflops"] = (
                unet_flops(r["frames"], params.inference_steps, params.enable_deepcache, full_f, shallow_f)
                / r["timings"]["denoise"]
                / 1e12
            )
        runs[spec.key] = r
        print(
            f"{spec.name}: {r['fps']:.2f} frames/s ({r['wall_s']:.1f} s), {r['timings']}, "
            f"first window {r['first_window_s']}, fallbacks {r['compiled_graph_fallbacks']}",
            flush=True,
        )
        save()
    if "plain_first" in runs and "skipped" not in runs["plain_first"] and "ddim20_first" in runs:
        mean, p999, mx = frame_diff(work / "plain_first.mp4", work / "ddim20_first.mp4", *video_size())
        results["fast_vs_plain"] = {"mean": mean, "p999": p999, "max": mx}
    if args.compare_seconds > 0 and on_gpu and budget.left() > 120:
        compare(models, pipe, Path(args.weights_dir), work, args.compare_seconds, results, detector)
    if detector is not None:
        results["replayed_faces"] = {"calls": detector.calls, "worst_thumbnail_diff": detector.worst_match}
    report(results, specs, args)
    save()


def video_size() -> tuple[int, int]:
    from latentsync_core.media.probe import probe_video

    info = probe_video(VIDEO)
    return info.width, info.height


def report(results: dict, specs: list[RowSpec], args: argparse.Namespace) -> None:
    """Print (and write to ``--table``) the table and the lines that explain it."""
    lines = [
        f"device: {results['device']}, torch {results['torch']}, {results['cpu_cores']} CPU cores; "
        f"load {results['load_s']:.1f} s, eager warm-up {results['warm_s']:.1f} s, "
        + (
            f"compile {results['compile_s']:.1f} s"
            if results["compiled"]
            else f"NOT compiled ({results['compile_skipped']}): eager path"
        ),
        f"detection: {results['detection']}",
        "",
        table(results["runs"], specs),
        "",
        "first window denoised: seconds from the job's start until the pipeline's progress reports the first 16 "
        "frames denoised (their VAE decode and paste-back follow).",
        "sync score cost: timings.sync (cropping + SyncNetV2 on the encoder's thread, beside the GPU, and the audio "
        "embedding at the end) against the job's wall time; compare the 'sync score OFF' row's wall time.",
    ]
    if "fast_vs_plain" in results:
        d = results["fast_vs_plain"]
        lines.append(
            f"fast vs plain output (first request): mean |diff| {d['mean']:.3f}, 99.9th pct {d['p999']:.0f}, "
            f"max {d['max']:.0f} (8-bit levels)"
        )
    if "replayed_faces" in results:
        rf = results["replayed_faces"]
        lines.append(
            f"replayed faces: {rf['calls']} lookups, worst thumbnail difference {rf['worst_thumbnail_diff']:.2f} "
            "levels (0: the frames decoded exactly as recorded)"
        )
    text = "\n".join(lines)
    print("\n" + text, flush=True)
    if args.table:
        args.table.write_text(text + "\n")


if __name__ == "__main__":
    main()
