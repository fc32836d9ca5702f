"""Stage 1, ``check``: drop source files that are empty, cannot be probed, lack video or
audio, or whose first second does not decode. CPU pool (ffmpeg only: nothing here imports
torch, so the pool's processes start fast)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from latentsync_core.common.errors import MediaError
from latentsync_core.data.config import PreprocessConfig
from latentsync_core.data.items import Outcome, Task
from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.media.probe import probe

if TYPE_CHECKING:
    from latentsync_core.data.stages import DeviceModels

DECODE_CHECK_SECONDS = 1.0


def check_source(task: Task, cfg: PreprocessConfig) -> Outcome:
    """Measurements: what the probe says about the file."""
    path = Path(task.args["path"])
    size = path.stat().st_size if path.is_file() else -1
    if size < 0:
        return Outcome.reject(task, "missing_file")
    if size == 0:
        return Outcome.reject(task, "empty_file", size=0)
    try:
        info = probe(path)
    except MediaError as exc:
        return Outcome.reject(task, "unreadable", size=size, error=exc.message)
    found = {
        "size": size,
        "duration": info.duration,
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "video_codec": info.video_codec,
        "audio_codec": info.audio_codec,
        "audio_sample_rate": info.audio_sample_rate,
    }
    if not info.has_video or info.width <= 0:
        return Outcome.reject(task, "no_video", **found)
    if not info.has_audio:
        return Outcome.reject(task, "no_audio", **found)
    # Probing reads headers only: decode the start of both streams, failing on any error.
    try:
        run_ffmpeg(
            ["-v", "error", "-xerror", "-t", str(DECODE_CHECK_SECONDS), "-i", input_arg(path)]
            + ["-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-"],
            timeout=120,
        )
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return Outcome.reject(task, "undecodable", error=str(exc)[-300:], **found)
    outcome = Outcome.keep(task, **found)
    outcome.footage_s = info.duration
    return outcome


def run(task: Task, cfg: PreprocessConfig, models: DeviceModels | None) -> Outcome:
    return check_source(task, cfg)
