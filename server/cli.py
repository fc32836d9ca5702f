"""The ``latentsync`` command: ``infer``, ``sync-score``, ``serve``, ``warmup``, ``worker``,
``preprocess``, ``train unet|syncnet|export`` and ``download-weights``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentsync_core.data.cli import add_parser as add_preprocess_parser
from latentsync_core.evaluation.cli import add_parser as add_eval_parser
from latentsync_core.training.cli import add_parser as add_train_parser
from server.db_cli import add_parser as add_db_parser
from server.settings import Settings
from server.worker_cli import add_parser as add_worker_parser


def _progress_printer() -> object:
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[stage] = tqdm(total=total, desc=f"{stage:>8}", unit="frame", leave=True)
        bar.total = max(total, 1)
        bar.n = min(done, bar.total)
        bar.refresh()

    progress.close = lambda: [b.close() for b in bars.values()]  # type: ignore[attr-defined]
    return progress


def _bounded(name: str, cast: type) -> Callable[[str], Any]:
    """An argparse type checking the library's bounds for job parameter ``name``."""
    from latentsync_core.inference.params import PARAM_BOUNDS

    lo, hi = PARAM_BOUNDS[name]

    def parse(text: str) -> Any:
        value = cast(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}")
        return value

    return parse


def cmd_infer(args: argparse.Namespace) -> int:
    from latentsync_core.errors import CodedError
    from latentsync_core.inference import LipSyncParams, build_pipeline
    from latentsync_core.inference.compile_cache import CompileArtifacts

    s = Settings()
    defaults = s.default_params()
    params = LipSyncParams(
        inference_steps=args.steps if args.steps is not None else defaults["inference_steps"],
        guidance_scale=args.guidance if args.guidance is not None else defaults["guidance_scale"],
        seed=args.seed if args.seed is not None else defaults["seed"],
        enable_deepcache=args.deepcache or defaults["enable_deepcache"],
    )
    # One-off runs stay eager unless asked: a cold compile costs ~100 s (cached on disk after).
    pipeline = build_pipeline(s.pipeline_options(compile=args.compile))
    pipeline.prepare_fast_path(CompileArtifacts(s.compile_artifacts_dir))
    progress = _progress_printer()
    try:
        result = pipeline.run(args.video, args.audio, args.output, params, progress=progress)
    except CodedError as exc:
        progress.close()  # type: ignore[attr-defined]
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    progress.close()  # type: ignore[attr-defined]
    size = f"{result.width}x{result.height}"
    print(f"wrote {result.output_path} ({result.frames} frames, {size}, {result.duration:.2f} s)")
    if result.frames_without_face:
        print(f"frames passed through without a face: {len(result.frames_without_face)}")
    if result.notice:
        print(f"NOTE: {result.notice}")
    return 0


def cmd_sync_score(args: argparse.Namespace) -> int:
    """Offset, LSE-C and LSE-D of a video's main face against its speech (SyncNetV2)."""
    import json

    from latentsync_core.errors import CodedError
    from latentsync_core.sync import load_syncnet_v2, score_video
    from latentsync_core.sync.plot import write_plot
    from latentsync_core.weights.official import MissingWeightsError

    s = Settings()
    device = None if s.device == "auto" else s.device
    try:
        syncnet, label = load_syncnet_v2(
            s.checkpoint_dir, "demo" if s.weights == "demo" else "official", device or "cpu"
        )
        report = score_video(args.video, args.audio, syncnet, device=device, detect_workers=s.detect_workers or None)
    except MissingWeightsError as exc:
        print(f"error [MISSING_WEIGHTS]: {exc}", file=sys.stderr)
        return 2
    except CodedError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    print(f"offset  {report.offset_frames:+d} frames ({report.offset_ms:+.0f} ms; negative: the audio lags)")
    print(f"LSE-C   {report.lse_c:.3f}   (confidence, higher is better)")
    print(f"LSE-D   {report.lse_d:.3f}   (distance, lower is better)")
    print(f"scored  {report.frames_scored} frames from frame {report.first_frame}; weights: {label}")
    if label == "demo":
        print("NOTE: demo weights (random SyncNet): these numbers say nothing about lip sync")
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2))
        print(f"wrote {args.json}")
    if args.plot:
        write_plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run("server.app:create_app", factory=True, host=args.host, port=args.port, log_level="info")
    return 0


def cmd_warmup(args: argparse.Namespace) -> int:
    """Compile the full-window kernels once and keep them as portable artifacts, so that a
    fresh process (a new container, an autoscaled replica) reaches full speed in seconds."""
    from latentsync_core.inference import build_pipeline
    from latentsync_core.inference.compile_cache import CompileArtifacts

    s = Settings()
    folder = Path(args.export) if args.export else s.compile_artifacts_dir
    pipeline = build_pipeline(s.pipeline_options(compile=True))
    seconds = pipeline.prepare_fast_path(CompileArtifacts(folder))
    state = pipeline.compile_artifacts
    if state == "none":
        print("error [NO_ARTIFACTS]: this PyTorch recorded no compiled kernels to save", file=sys.stderr)
        return 1
    print(f"compiled in {seconds:.1f} s; artifacts {state} in {folder}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from latentsync_core.weights.official import download_official_weights

    root = Path(args.dir) if args.dir else Settings().checkpoint_dir
    try:
        paths = download_official_weights(root)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"weights in {paths.unet.parent}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="latentsync", description="LatentSync 1.6 lip-sync")
    sub = parser.add_subparsers(dest="command", required=True)
    add_preprocess_parser(sub)
    add_worker_parser(sub)
    add_train_parser(sub)  # train unet | syncnet | export
    add_eval_parser(sub)  # eval run | report | syncnet-acc
    add_db_parser(sub)  # db check | rebuild
    p = sub.add_parser("infer", help="lip-sync one video to one audio file")
    p.add_argument("--video", required=True)
    p.add_argument("--audio", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--steps", type=_bounded("inference_steps", int))
    p.add_argument("--guidance", type=_bounded("guidance_scale", float))
    p.add_argument("--seed", type=_bounded("seed", int))
    p.add_argument("--deepcache", action="store_true")
    p.add_argument(
        "--compile", action="store_true", help="torch.compile full windows first (GPU; pays off on long videos)"
    )
    p.set_defaults(func=cmd_infer)
    p = sub.add_parser("sync-score", help="measure lip sync of a video: offset, LSE-C, LSE-D (SyncNetV2)")
    p.add_argument("video")
    p.add_argument("--audio", help="speech to score against (default: the video's own audio track)")
    p.add_argument("--json", help="write the scores as JSON here")
    p.add_argument("--plot", help="write a PNG of the confidence per second here")
    p.set_defaults(func=cmd_sync_score)
    p = sub.add_parser("serve", help="run the HTTP service")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("warmup", help="compile the fast path once and save its kernels for fresh processes")
    p.add_argument("--export", help="folder to write the compile artifacts to (default: the settings' folder)")
    p.set_defaults(func=cmd_warmup)
    p = sub.add_parser("download-weights", help="fetch the official weights (needs internet)")
    p.add_argument("--dir")
    p.set_defaults(func=cmd_download)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
