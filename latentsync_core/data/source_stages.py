"""Stages 1-3, on whole source files, in the CPU process pool (ffmpeg and OpenCV only;
nothing here imports torch, so the pool's processes start fast).

1. ``check``: drop files that are empty, cannot be probed, lack video or audio, or whose
   first second does not decode;
2. ``resample``: one 25 fps constant-rate H.264 video and one 16 kHz mono WAV, both
   starting at the file's time zero (so frame ``n`` and sample ``640 n`` are the same
   instant, which every later stage relies on);
3. ``shots``: PySceneDetect's adaptive detector over downscaled frames.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import cv2

from latentsync_core.common.errors import MediaError
from latentsync_core.data.config import PreprocessConfig
from latentsync_core.data.items import Outcome, Task
from latentsync_core.data.layout import part_path, publish, remove
from latentsync_core.data.segment_io import wav_samples
from latentsync_core.media.constants import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.media.probe import probe
from latentsync_core.media.video_io import FrameReader

DECODE_CHECK_SECONDS = 1.0


def check_source(task: Task, cfg: PreprocessConfig) -> Outcome:
    """Stage 1. Measurements: what the probe says about the file."""
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


def resample_source(task: Task, cfg: PreprocessConfig) -> Outcome:
    """Stage 2: ``<out>/video.mp4`` + ``<out>/audio.wav``, written to a temporary folder
    that is renamed when both are complete."""
    src, final = Path(task.args["path"]), Path(task.args["out"])
    tmp = part_path(final)
    tmp.mkdir(parents=True)
    # Video: constant 25 fps from t=0 (padding a late start), even size for 4:2:0, a key
    # frame every second so that segment reads seek cheaply.
    video = [
        "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vf", f"fps={FPS}:start_time=0,scale=trunc(iw/2)*2:trunc(ih/2)*2,setsar=1,format=yuv420p",
        "-c:v", "libx264", "-preset", cfg.video_preset, "-crf", str(cfg.video_crf), "-g", str(FPS), "-r", str(FPS),
    ]  # fmt: skip
    # Audio: mono 16 kHz PCM, gaps filled and a late start padded from t=0.
    audio = ["-map", "0:a:0", "-vn", "-sn", "-dn", "-af", "aresample=async=1:first_pts=0",
             "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le"]  # fmt: skip
    try:
        proc = run_ffmpeg(["-i", input_arg(src), *video, str(tmp / "video.mp4"), *audio, str(tmp / "audio.wav")])
        info = probe(tmp / "video.mp4")
        samples = wav_samples(tmp / "audio.wav")
    except (RuntimeError, MediaError) as exc:  # ffmpeg could not read it through
        remove(tmp)
        return Outcome.reject(task, "resample_failed", error=str(exc)[-300:])
    except BaseException:
        remove(tmp)
        raise
    frames = _last_frame_count(proc.stderr.decode(errors="replace"))
    if frames == 0 or samples < SAMPLES_PER_FRAME:
        remove(tmp)
        return Outcome.reject(task, "resample_empty", frames=frames, audio_samples=samples)
    publish(tmp, final)
    outcome = Outcome.keep(task, frames=frames, width=info.width, height=info.height, audio_samples=samples)
    outcome.footage_s = frames / FPS
    return outcome


def _last_frame_count(stderr: str) -> int:
    """Frames ffmpeg reports having encoded (its last progress line)."""
    counts = re.findall(r"frame=\s*(\d+)", stderr)
    return int(counts[-1]) if counts else -1


def detect_shots(task: Task, cfg: PreprocessConfig) -> Outcome:
    """Stage 3. Measurements: ``frames`` decoded, ``usable_frames`` (frames that also have
    audio) and ``shots`` as ``[start, end)`` frame ranges covering the usable part."""
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
