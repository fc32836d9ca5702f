"""One preprocessing run: check that it can run, resume the manifest, let an engine work
through every pending item, then write the file lists and the report.

Everything that stops a run before work starts is a :class:`CodedError` (a stable code and
a sentence). Rejected items are results, not failures.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentsync_core.common.errors import CodedError
from latentsync_core.data.config import PreprocessConfig
from latentsync_core.data.engine import Engine, drive
from latentsync_core.data.fileslists import write_fileslists
from latentsync_core.data.items import Stage, source_id
from latentsync_core.data.layout import Layout
from latentsync_core.data.manifest import Manifest
from latentsync_core.data.progress import StageBars
from latentsync_core.data.report import build_report, write_report
from latentsync_core.data.scheduler import Scheduler
from latentsync_core.storage.atomic import remove

log = logging.getLogger(__name__)
PIPELINE_VERSION = "1"  # bump when stage code changes what it produces


@dataclass
class RunSummary:
    report: dict[str, Any]
    complete: bool  # every item has its final decision
    errors: list[dict[str, Any]] = field(default_factory=list)
    layout: Layout | None = None


def discover_sources(input_dir: Path, extensions: list[str]) -> list[tuple[str, str, str, int]]:
    """``(source_id, path relative to input_dir, absolute path, size)`` of every video file
    below ``input_dir`` (by extension), in path order."""
    found = []
    for path in sorted(p for p in input_dir.rglob("*") if p.is_file() and p.suffix.lower() in extensions):
        rel = path.relative_to(input_dir).as_posix()
        found.append((source_id(rel), rel, str(path.resolve()), path.stat().st_size))
    return found


def _check_meta(manifest: Manifest, cfg: PreprocessConfig, models: dict[str, str], input_dir: Path) -> None:
    """A resumed run must produce what the first one did: same options, weights and models."""
    wanted = {"pipeline_version": PIPELINE_VERSION, "fingerprint": cfg.fingerprint(), **models}
    meta = manifest.meta()
    if not meta:
        first = {"config": json.dumps(cfg.to_dict()), "input_dir": str(input_dir)}
        manifest.set_meta({**wanted, **first, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
        return
    differ = [k for k, v in wanted.items() if meta.get(k) != v]
    if differ:
        before = json.loads(meta.get("config", "{}"))
        keys = [k for k, v in cfg.to_dict().items() if before.get(k) != v] if "fingerprint" in differ else []
        what = ", ".join(keys + [k for k in differ if k != "fingerprint"]) or ", ".join(differ)
        raise CodedError(
            "CONFIG_CHANGED",
            f"{manifest.path.parent} was made with other settings ({what} differ); "
            "use the same settings to resume, or a new output folder",
        )


def run_preprocess(
    input_dir: str | Path, output_dir: str | Path, cfg: PreprocessConfig, progress: bool = True
) -> RunSummary:
    from latentsync_core.data.models import describe_models
    from latentsync_core.media.ffmpeg_bin import ffmpeg_exe

    input_dir, layout = Path(input_dir).resolve(), Layout(output_dir)
    if not input_dir.is_dir():
        raise CodedError("INPUT_NOT_FOUND", f"input folder not found: {input_dir}")
    if layout.root == input_dir or input_dir in layout.root.parents:
        raise CodedError("OUTPUT_INSIDE_INPUT", "the output folder must not be inside the input folder")
    sources = discover_sources(input_dir, cfg.video_extensions)
    if not sources:
        raise CodedError("NO_INPUT_FILES", f"no video files ({', '.join(cfg.video_extensions)}) under {input_dir}")
    try:
        ffmpeg_exe()
    except RuntimeError as exc:
        raise CodedError("FFMPEG_MISSING", str(exc)) from exc
    try:
        layout.create()
    except OSError as exc:
        raise CodedError("OUTPUT_NOT_WRITABLE", f"cannot create {layout.root}: {exc}") from exc
    models = describe_models(cfg)
    engine = _make_engine(cfg)
    manifest = Manifest(layout.manifest)
    try:
        _check_meta(manifest, cfg, models, input_dir)
        layout.remove_partials()
        manifest.add_sources(sources)
        run_id = manifest.start_run(engine.name, engine.workers, engine.devices)
        started = time.time()
        bars = StageBars(progress)
        sched = Scheduler(cfg, layout, manifest, run_id, bars)
        status = "interrupted"
        try:
            sched.start()
            drive(sched, engine)
            status = "complete" if sched.complete else "incomplete"
        finally:
            bars.close()
            wall = time.time() - started
            if status == "interrupted":
                manifest.finish_run(run_id, status, wall, {"processed": _by_stage(sched.processed)})
        if sched.complete and not cfg.keep_intermediate:
            remove(layout.work)
        counts = write_fileslists(manifest, layout, cfg.val_fraction)
        run_info = {
            "run_id": run_id,
            "status": status,
            "engine": engine.name,
            "workers": engine.workers,
            "devices": engine.devices,
            "wall_seconds": round(wall, 3),
            "processed": _by_stage(sched.processed),
            "footage_seconds_this_run": _footage_checked(manifest, run_id),
            "errors": sched.errors[:50],
            "error_count": len(sched.errors),
            "fileslists": counts,
        }
        report = build_report(manifest, cfg, models, run_info)
        write_report(report, layout)
        manifest.finish_run(run_id, status, wall, {"processed": run_info["processed"], "errors": len(sched.errors)})
        return RunSummary(report, sched.complete, sched.errors, layout)
    finally:
        manifest.close()


def _by_stage(processed: dict[Stage, int]) -> dict[str, int]:
    """Items processed per stage, keyed by the stage's number (as JSON keys)."""
    return {str(int(k)): v for k, v in sorted(processed.items())}


def _footage_checked(manifest: Manifest, run_id: int) -> float:
    """Seconds of raw footage whose processing started in this run (checked here)."""
    row = manifest.db.execute(
        "SELECT COALESCE(SUM(footage_s), 0) FROM decisions WHERE stage = ? AND run_id = ?", (int(Stage.CHECK), run_id)
    ).fetchone()
    return float(row[0])


def _make_engine(cfg: PreprocessConfig) -> Engine:
    if cfg.engine == "ray":
        from latentsync_core.data.engine_ray import RayEngine

        return RayEngine(cfg)
    from latentsync_core.common.devices import resolve_devices
    from latentsync_core.data.engine_local import LocalEngine

    return LocalEngine(
        cfg, [d.device for d in resolve_devices(cfg.gpus, "cpu", setting="--gpus", cpu_without_gpus=True)]
    )
