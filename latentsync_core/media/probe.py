"""Probing media files: container, streams, duration, frame rate, size, rotation.

Uses ffprobe's JSON when ffprobe exists; otherwise parses the stream summary that
``ffmpeg -i`` prints (the bundled imageio-ffmpeg has no ffprobe).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from latentsync_core.media.container import input_args
from latentsync_core.media.ffmpeg_bin import MediaError, capped, ffmpeg_exe, ffprobe_exe
from latentsync_core.media.info import MediaInfo
from latentsync_core.media.input_file import InputFile, display_name, held_open, inherited_fds
from latentsync_core.media.limits import MediaLimits

DEFAULT_LIMITS = MediaLimits()


def probe(path: str | Path, limits: MediaLimits = DEFAULT_LIMITS) -> MediaInfo:
    """What ffprobe (or ffmpeg) says of the file, opened as its detected container only
    (``container.py``), by a child process held to ``limits``' probe time and memory."""
    with held_open(path) as held:
        if held.stat().st_size == 0:
            raise MediaError("EMPTY_FILE", f"{display_name(path)} is empty")
        ffprobe = ffprobe_exe()
        return _probe_ffprobe(ffprobe, held, limits) if ffprobe else _probe_ffmpeg(held, limits)


def probe_video(path: str | Path, limits: MediaLimits = DEFAULT_LIMITS) -> MediaInfo:
    """Probe and require a decodable video stream."""
    info = probe(path, limits)
    if not info.has_video or info.width <= 0 or info.height <= 0:
        raise MediaError("NO_VIDEO_STREAM", f"{display_name(path)} has no video stream")
    return info


def probe_audio(path: str | Path, limits: MediaLimits = DEFAULT_LIMITS) -> MediaInfo:
    """Probe and require an audio stream."""
    info = probe(path, limits)
    if not info.has_audio:
        raise MediaError("NO_AUDIO_STREAM", f"{display_name(path)} has no audio stream")
    return info


def probe_inputs(video: str | Path, audio: str | Path, limits: MediaLimits) -> tuple[MediaInfo, MediaInfo]:
    """A job's two inputs, probed and held to ``limits``: a video stream within the pixel
    limit, an audio stream, durations (as the containers state them) within their limits
    and a worst-case disk need within its limit. The one check of a job's inputs, made
    before it is queued (``check_inputs``) and again when it runs (the pipeline's probe
    stage, on the inputs it holds open)."""
    vinfo = probe_video(video, limits)
    ainfo = probe_audio(audio, limits)
    limits.check_video(vinfo)
    limits.check_audio(ainfo)
    limits.check_disk(vinfo, ainfo)
    return vinfo, ainfo


def check_inputs(video: str | Path, audio: str | Path, limits: MediaLimits) -> tuple[MediaInfo, MediaInfo]:
    """What a job needs before it is queued: its inputs opened as ``limits`` allow
    (``InputFile``), ``probe_inputs``, and some audio as the container states it (the
    pipeline checks the decoded samples). Runs ffprobe: call it off any event loop."""
    with InputFile(video, limits.follow_symlinks) as v, InputFile(audio, limits.follow_symlinks) as a:
        vinfo, ainfo = probe_inputs(v.path, a.path, limits)
    if ainfo.duration <= 0.01:
        raise MediaError("EMPTY_AUDIO", "the audio track is empty")
    return vinfo, ainfo


def _run_probe(cmd: list[str], path: Path, limits: MediaLimits) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            capped(cmd, limits.probe_memory_mb << 20),
            capture_output=True,
            timeout=limits.probe_timeout_s,
            check=False,
            pass_fds=inherited_fds(cmd),
        )
    except subprocess.TimeoutExpired as exc:
        raise MediaError(
            "PROBE_FAILED", f"{display_name(path)} could not be probed within {limits.probe_timeout_s:.0f} s"
        ) from exc


def _probe_ffprobe(ffprobe: str, path: Path, limits: MediaLimits) -> MediaInfo:
    cmd = [ffprobe, "-v", "error", "-threads", "1", "-print_format", "json", "-show_format", "-show_streams"]
    cmd += input_args(path)
    proc = _run_probe(cmd, path, limits)
    if proc.returncode != 0:
        raise MediaError("INVALID_MEDIA", f"{display_name(path)} is not a readable media file")
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
# The size is its own comma-separated field ("yuv420p, 64x48 [SAR 1:1 ...], 25 fps"), unlike
# codec tags such as "(FMP4 / 0x34504D46)".
_SIZE = re.compile(r"(?<=, )(\d{1,5})x(\d{1,5})(?=[ ,]|$)")
_FPS = re.compile(r"([\d.]+)(k?) (?:fps|tbr)")
_HZ = re.compile(r"(\d+) Hz")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees|rotate\s*:\s*(-?\d+)")


def _probe_ffmpeg(path: Path, limits: MediaLimits) -> MediaInfo:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-threads", "1", *input_args(path)]
    proc = _run_probe(cmd, path, limits)
    text = proc.stderr.decode(errors="replace")
    header = _INPUT.search(text)
    if header is None:
        raise MediaError("INVALID_MEDIA", f"{display_name(path)} is not a readable media file")
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
