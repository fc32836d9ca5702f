"""``latentsync infer`` (lip-sync one video to one speech track, with progress bars) and
``latentsync warmup`` (compile the fast path once and keep its kernels for fresh processes).

``add_parser(subparsers, settings)`` registers both; ``settings()`` gives what the commands
read from the deployment's settings (the service's ``Settings`` satisfies it), so the
library knows nothing of where they come from.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from latentsync_core.common.cli_exit import EXIT_OK, fail
from latentsync_core.inference.params import PARAM_BOUNDS
from latentsync_core.inference.stages import ProgressEvent

if TYPE_CHECKING:
    from latentsync_core.inference.factory import PipelineOptions


class InferenceSettings(Protocol):
    @property
    def compile(self) -> str: ...  # "auto", "on", "off"

    @property
    def compile_artifacts_dir(self) -> Path: ...

    def default_params(self) -> dict[str, Any]:
        """Job parameters a run leaves unset."""
        ...

    def pipeline_options(self, compile: bool | None = None) -> PipelineOptions: ...


class ProgressBars:
    """A tqdm bar per stage, the previous one closed when the next stage starts."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm import tqdm

        stage = event.stage.value
        bar = self.bars.get(stage)
        if bar is None:
            self.close()
            bar = self.bars[stage] = tqdm(total=event.total, desc=f"{stage:>8}", unit="frame", leave=True)
        bar.total = max(event.total, 1)
        bar.n = min(event.done, bar.total)
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _bounded(name: str, cast: type) -> Callable[[str], Any]:
    """An argparse type checking the library's bounds for job parameter ``name``."""
    lo, hi = PARAM_BOUNDS[name]

    def parse(text: str) -> Any:
        value = cast(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}")
        return value

    return parse


def cmd_infer(args: argparse.Namespace, settings: InferenceSettings) -> int:
    from latentsync_core.common.errors import CodedError
    from latentsync_core.inference import LipSyncParams, build_pipeline
    from latentsync_core.inference.compile_cache import CompileArtifacts
    from latentsync_core.inference.params import apply_quality

    given = {
        "inference_steps": args.steps,
        "guidance_scale": args.guidance,
        "seed": args.seed,
        "enable_deepcache": args.deepcache,
        "sampler": args.sampler,
        "face": args.face,
        "sync_mode": args.sync_mode,
    }
    try:  # before loading models: a bad sampler, preset, face or mode fails at once
        params = LipSyncParams(**apply_quality(args.quality, given, settings.default_params()))
    except CodedError as exc:
        return fail(exc.code, exc.message)
    # One-off runs stay eager unless asked (--compile, or COMPILE=on; not auto): a cold compile
    # costs ~100 s (cached on disk after).
    compile = settings.compile == "on" if args.compile is None else args.compile
    pipeline = build_pipeline(settings.pipeline_options(compile=compile))
    pipeline.prepare_fast_path(CompileArtifacts(settings.compile_artifacts_dir))
    bars = ProgressBars()
    try:
        result = pipeline.run(args.video, args.audio, args.output, params, progress=bars)
    except CodedError as exc:
        bars.close()
        return fail(exc.code, exc.message)
    bars.close()
    size = f"{result.width}x{result.height}"
    print(f"wrote {result.output_path} ({result.frames} frames, {size}, {result.duration:.2f} s)")
    if result.frames_without_face:
        print(f"frames passed through without a face: {len(result.frames_without_face)}")
    if result.notice:
        print(f"NOTE: {result.notice}")
    return EXIT_OK


def cmd_warmup(args: argparse.Namespace, settings: InferenceSettings) -> int:
    """Compile the full-window kernels once and keep them as portable artifacts, so that a
    fresh process (a new container, an autoscaled replica) reaches full speed in seconds."""
    from latentsync_core.inference import build_pipeline
    from latentsync_core.inference.compile_cache import CompileArtifacts

    folder = Path(args.export) if args.export else settings.compile_artifacts_dir
    pipeline = build_pipeline(settings.pipeline_options(compile=True))
    seconds = pipeline.prepare_fast_path(CompileArtifacts(folder))
    state = pipeline.compile_artifacts
    if state == "none":
        return fail("NO_ARTIFACTS", "this PyTorch recorded no compiled kernels to save", status=1)
    print(f"compiled in {seconds:.1f} s; artifacts {state} in {folder}")
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction, settings: Callable[[], InferenceSettings]) -> None:
    """Register ``infer`` and ``warmup`` on a ``latentsync`` sub-command parser."""
    p = subparsers.add_parser("infer", help="lip-sync one video to one audio file")
    p.add_argument("--video", required=True)
    p.add_argument("--audio", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--steps", type=_bounded("inference_steps", int))
    p.add_argument("--guidance", type=_bounded("guidance_scale", float))
    p.add_argument("--seed", type=_bounded("seed", int))
    p.add_argument("--deepcache", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--sampler", help="ddim (default, upstream's), dpmpp_2m or unipc (these at ~10 --steps)")
    p.add_argument("--quality", help="exact (default) or fast (DeepCache + dpmpp_2m at 10 steps, unless set)")
    p.add_argument("--face", help="largest | speaker | track:<id> | point:<x>,<y>@<seconds> (`faces` lists tracks)")
    p.add_argument("--sync-mode", default="bounce", help="bounce | loop | cut_off | silence | remap (README)")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        help="torch.compile full windows first (GPU; pays off on long videos; default: on if $LATENTSYNC_COMPILE=on)",
    )
    p.set_defaults(func=lambda args: cmd_infer(args, settings()))
    p = subparsers.add_parser("warmup", help="compile the fast path once and save its kernels for fresh processes")
    p.add_argument("--export", help="folder to write the compile artifacts to (default: the settings' folder)")
    p.set_defaults(func=lambda args: cmd_warmup(args, settings()))
