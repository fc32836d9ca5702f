"""Decoding any audio (or the audio track of a video) to 16 kHz mono float32 samples."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import numpy as np

from latentsync_core.media.constants import SAMPLE_RATE
from latentsync_core.media.container import input_args
from latentsync_core.media.ffmpeg_bin import MediaError, ffmpeg_exe
from latentsync_core.media.input_file import display_name, held_open, inherited_fds
from latentsync_core.media.limits import AUDIO_SLACK_S, audio_too_long

_CHUNK = 1 << 16


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    """Samples in [-1, 1) as float32, resampled to ``sample_rate`` mono through ffmpeg
    (16-bit PCM in between, as Whisper's own loader does).

    With ``max_seconds``, decoding stops as soon as more than that (plus ``AUDIO_SLACK_S``)
    came out, whatever the container claims, with MediaError ``AUDIO_TOO_LONG``: memory is
    bounded by the limit, not by the file."""
    if not Path(path).is_file():
        raise MediaError("AUDIO_NOT_FOUND", f"audio file not found: {Path(path).name}")
    cap = None if max_seconds is None else int((max_seconds + AUDIO_SLACK_S) * sample_rate) * 2
    with held_open(path) as held:
        try:
            source = input_args(held)  # the container, from the bytes
        except MediaError as exc:  # not media at all: for a speech track that is INVALID_AUDIO
            if exc.code != "INVALID_MEDIA":
                raise
            raise MediaError("INVALID_AUDIO", f"cannot decode audio from {display_name(path)}: {exc.message}") from exc
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "0", *source]
        cmd += ["-vn", "-f", "s16le", "-acodec", "pcm_s16le", "-ac", "1", "-ar", str(sample_rate), "-"]
        pcm, err, code = _read_capped(cmd, cap)
    if cap is not None and len(pcm) > cap:
        raise audio_too_long(cap / 2 / sample_rate, max_seconds or 0.0, decoded=True)
    if code != 0:
        raise MediaError("INVALID_AUDIO", f"cannot decode audio from {display_name(path)}: {err[-300:]}")
    return np.frombuffer(bytes(pcm[: len(pcm) // 2 * 2]), np.int16).astype(np.float32) / 32768.0


def _read_capped(cmd: list[str], cap: int | None) -> tuple[bytearray, str, int]:
    """ffmpeg's stdout up to ``cap`` bytes and one chunk more (then it is stopped), its
    stderr's tail and its exit code."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=inherited_fds(cmd))
    err = bytearray()

    def drain() -> None:
        assert proc.stderr is not None
        for chunk in iter(lambda: proc.stderr.read(4096), b""):
            err[:] = (err + chunk)[-4096:]

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    out = bytearray()
    finished = False
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(_CHUNK):
            out += chunk
            if cap is not None and len(out) > cap:
                break
        else:
            finished = True
    finally:
        if not finished:  # over the cap, or interrupted: the rest is never decoded
            proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        drainer.join(timeout=5)
    return out, err.decode(errors="replace").strip(), proc.returncode


def to_int16(samples: np.ndarray) -> np.ndarray:
    """[-1, 1) float samples (as :func:`load_audio` gives) as int16, the scale MFCCs expect."""
    return np.clip(np.round(np.asarray(samples, np.float64) * 32768.0), -32768, 32767).astype(np.int16)
