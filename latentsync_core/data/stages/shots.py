"""Stage 3, ``shots``: PySceneDetect's adaptive detector over downscaled frames of the
resampled video. CPU pool (OpenCV and ffmpeg only)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2

from latentsync_core.data.config import PreprocessConfig
from latentsync_core.data.items import Outcome, Task
from latentsync_core.media.constants import FPS, SAMPLES_PER_FRAME
from latentsync_core.media.video_io import FrameReader

if TYPE_CHECKING:
    from latentsync_core.data.stages import DeviceModels


def detect_shots(task: Task, cfg: PreprocessConfig) -> Outcome:
    """Measurements: ``frames`` decoded, ``usable_frames`` (frames that also have audio) and
    ``shots`` as ``[start, end)`` frame ranges covering the usable part."""
    from scenedetect import AdaptiveDetector, FrameTimecode  # the 0.7 API: time codes, not frame numbers

    def at(n: int) -> FrameTimecode:
        return FrameTimecode(n, fps=float(FPS))

    video, width, height = Path(task.args["video"]), int(task.args["width"]), int(task.args["height"])
    scale = min(1.0, cfg.shot_detect_width / width)
    small_w, small_h = max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
    detector = AdaptiveDetector(
        adaptive_threshold=cfg.shot_threshold, min_scene_len=cfg.shot_min_frames, min_content_val=cfg.shot_min_content
    )
    cuts: list[int] = []
    frames = 0
    with FrameReader(video, small_w, small_h) as reader:
        for frame in reader:
            found = detector.process_frame(at(frames), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            cuts += [c.frame_num for c in found]
            frames += 1
        errors = reader.errors.strip()
    cuts += [c.frame_num for c in detector.post_process(at(frames))]
    if frames == 0:
        return Outcome.reject(task, "no_frames", error=errors[-300:])
    usable = min(frames, int(task.args["audio_samples"]) // SAMPLES_PER_FRAME)
    bounds = [0] + sorted(c for c in set(cuts) if 0 < c < usable) + [usable]
    shots = [[a, b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    outcome = Outcome.keep(task, frames=frames, usable_frames=usable, shots=shots, cuts=len(shots) - 1)
    outcome.footage_s = frames / FPS
    return outcome


def run(task: Task, cfg: PreprocessConfig, models: DeviceModels | None) -> Outcome:
    return detect_shots(task, cfg)
