"""Probing media files: container, streams, duration, frame rate, size, rotation.

Uses ffprobe's JSON when ffprobe exists; otherwise parses the stream summary that
``ffmpeg -i`` prints (the bundled imageio-ffmpeg has no ffprobe).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from latentsync_core.media.ffmpeg_bin import MediaError, ffmpeg_exe, ffprobe_exe, input_arg

PROBE_TIMEOUT_S = 30


@dataclass(frozen=True)
class MediaInfo:
    container: str
    duration: float  # seconds, 0 when unknown
    has_video: bool
    has_audio: bool
    width: int = 0  # displayed size (after rotation)
    height: int = 0
    fps: float = 0.0
    rotation: int = 0  # degrees, as stored in the file's display matrix
    audio_sample_rate: int = 0
    video_codec: str = ""
    audio_codec: str = ""


def probe(path: str | Path) -> MediaInfo:
    path = Path(path)
    if not path.is_file():
        raise MediaError("FILE_NOT_FOUND", f"file not found: {path.name}")
    if path.stat().st_size == 0:
        raise MediaError("EMPTY_FILE", f"{path.name} is empty")
    ffprobe = ffprobe_exe()
    return _probe_ffprobe(ffprobe, path) if ffprobe else _probe_ffmpeg(path)


def probe_video(path: str | Path) -> MediaInfo:
    """Probe and require a decodable video stream."""
    info = probe(path)
    if not info.has_video or info.width <= 0 or info.height <= 0:
        raise MediaError("NO_VIDEO_STREAM", f"{Path(path).name} has no video stream")
    return info


def probe_audio(path: str | Path) -> MediaInfo:
    """Probe and require an audio stream."""
    info = probe(path)
    if not info.has_audio:
        raise MediaError("NO_AUDIO_STREAM", f"{Path(path).name} has no audio stream")
    return info


def check_inputs(
    video: str | Path, audio: str | Path, max_video_s: float, max_audio_s: float
) -> tuple[MediaInfo, MediaInfo]:
    """What a job needs before it is queued: a video stream, an audio stream, both within
    their duration limits, and some audio. Runs ffprobe: call it off any event loop."""
    vinfo = probe_video(video)
    ainfo = probe_audio(audio)
    if vinfo.duration > max_video_s:
        raise MediaError("VIDEO_TOO_LONG", f"video lasts {vinfo.duration:.0f} s; the limit is {max_video_s:.0f} s")
    if ainfo.duration > max_audio_s:
        raise MediaError("AUDIO_TOO_LONG", f"audio lasts {ainfo.duration:.0f} s; the limit is {max_audio_s:.0f} s")
    if ainfo.duration <= 0.01:
        raise MediaError("EMPTY_AUDIO", "the audio track is empty")
    return vinfo, ainfo


def _probe_ffprobe(ffprobe: str, path: Path) -> MediaInfo:
    cmd = [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", input_arg(path)]
    proc = subprocess.run(cmd, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise MediaError("INVALID_MEDIA", f"{path.name} is not a readable media file")
    data = json.loads(proc.stdout or b"{}")
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video" and not _is_cover_art(s)), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    fmt = data.get("format", {})
    duration = _float(fmt.get("duration"))
    width = height = rotation = 0
    fps = 0.0
    if video:
        width, height = int(video.get("width", 0)), int(video.get("height", 0))
        rotation = _rotation_from_ffprobe(video)
        num, _, den = str(video.get("avg_frame_rate") or video.get("r_frame_rate") or "0/1").partition("/")
        fps = _float(num) / _float(den) if _float(den) else 0.0
        if rotation % 180 != 0:
            width, height = height, width
    return MediaInfo(
        container=str(fmt.get("format_name", "")),
        duration=duration,
        has_video=video is not None,
        has_audio=audio is not None,
        width=width,
        height=height,
        fps=fps,
        rotation=rotation,
        audio_sample_rate=int(_float(audio.get("sample_rate"))) if audio else 0,
        video_codec=str(video.get("codec_name", "")) if video else "",
        audio_codec=str(audio.get("codec_name", "")) if audio else "",
    )


def _is_cover_art(stream: dict) -> bool:
    return bool(stream.get("disposition", {}).get("attached_pic"))


def _rotation_from_ffprobe(stream: dict) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(round(_float(side["rotation"])))
    return int(round(_float(stream.get("tags", {}).get("rotate", 0))))


_INPUT = re.compile(r"^Input #0, (.+?), from ", re.M)
_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: (Video|Audio): (.*)$", re.M)
_SIZE = re.compile(r"(?<![\dx])(\d{1,5})x(\d{1,5})(?![\dx])")
_FPS = re.compile(r"([\d.]+)(k?) (?:fps|tbr)")
_HZ = re.compile(r"(\d+) Hz")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees|rotate\s*:\s*(-?\d+)")


def _probe_ffmpeg(path: Path) -> MediaInfo:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", input_arg(path)]
    proc = subprocess.run(cmd, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    text = proc.stderr.decode(errors="replace")
    header = _INPUT.search(text)
    if header is None:
        raise MediaError("INVALID_MEDIA", f"{path.name} is not a readable media file")
    duration = 0.0
    if m := _DURATION.search(text):
        duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    video_line = audio_line = None
    video_block = ""
    for m in _STREAM.finditer(text):
        kind, rest = m.group(1), m.group(2)
        if kind == "Video" and video_line is None and "attached pic" not in rest:
            video_line = rest
            nxt = _STREAM.search(text, m.end())
            video_block = text[m.end() : nxt.start() if nxt else len(text)]
        elif kind == "Audio" and audio_line is None:
            audio_line = rest
    width = height = rotation = 0
    fps = 0.0
    if video_line:
        if size := _SIZE.search(video_line):
            width, height = int(size.group(1)), int(size.group(2))
        if rate := _FPS.search(video_line):
            fps = float(rate.group(1)) * (1000 if rate.group(2) else 1)
        if rot := _ROTATION.search(video_block):
            rotation = int(round(float(rot.group(1) or rot.group(2))))
        if rotation % 180 != 0:
            width, height = height, width
    sample_rate = 0
    if audio_line and (hz := _HZ.search(audio_line)):
        sample_rate = int(hz.group(1))
    return MediaInfo(
        container=header.group(1),
        duration=duration,
        has_video=video_line is not None,
        has_audio=audio_line is not None,
        width=width,
        height=height,
        fps=fps,
        rotation=rotation,
        audio_sample_rate=sample_rate,
        video_codec=video_line.split()[0].rstrip(",") if video_line else "",
        audio_codec=audio_line.split()[0].rstrip(",") if audio_line else "",
    )


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
