"""Stage 2, ``resample``: one 25 fps constant-rate H.264 video and one 16 kHz mono WAV per
source, both starting at the file's time zero (so frame ``n`` and sample ``640 n`` are the
same instant, which every later stage relies on). CPU pool (ffmpeg only)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from latentsync_core.common.errors import MediaError
from latentsync_core.data.config import PreprocessConfig
from latentsync_core.data.items import Outcome, Task
from latentsync_core.data.segment_io import wav_samples
from latentsync_core.media.constants import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.media.probe import probe
from latentsync_core.storage.atomic import part_path, publish, remove

if TYPE_CHECKING:
    from latentsync_core.data.stages import DeviceModels


def resample_source(task: Task, cfg: PreprocessConfig) -> Outcome:
    """``<out>/video.mp4`` + ``<out>/audio.wav``, written to a temporary folder that is
    renamed when both are complete."""
    src, final = Path(task.args["path"]), Path(task.args["out"])
    tmp = part_path(final)
    tmp.mkdir(parents=True)
    # Video: constant 25 fps from t=0 (padding a late start), even size for 4:2:0, a key
    # frame every second so that segment reads seek cheaply.
    scale = f"fps={FPS}:start_time=0,scale=trunc(iw/2)*2:trunc(ih/2)*2,setsar=1,format=yuv420p"
    video = ["-map", "0:v:0", "-an", "-sn", "-dn", "-vf", scale]
    video += ["-c:v", "libx264", "-preset", cfg.video_preset, "-crf", str(cfg.video_crf)]
    video += ["-g", str(FPS), "-r", str(FPS)]
    # Audio: mono 16 kHz PCM, gaps filled and a late start padded from t=0.
    audio = ["-map", "0:a:0", "-vn", "-sn", "-dn", "-af", "aresample=async=1:first_pts=0"]
    audio += ["-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le"]
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


def run(task: Task, cfg: PreprocessConfig, models: DeviceModels | None) -> Outcome:
    return resample_source(task, cfg)
