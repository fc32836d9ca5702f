"""Reading and writing the pipeline's segments: a frame range of a 25 fps video (seeking,
not decoding from the start), 16 kHz mono PCM slices as WAV, and the lossless
intermediates (FFV1 + FLAC in Matroska, so no stage adds a generation of compression)."""

from __future__ import annotations

import wave
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from latentsync_core.media.audio_io import load_audio, to_int16
from latentsync_core.media.constants import FPS, SAMPLE_RATE
from latentsync_core.media.ffmpeg_bin import input_arg
from latentsync_core.media.video_io import FrameReader, VideoWriter
from latentsync_core.storage.atomic import writing


class SegmentReader(FrameReader):
    """RGB frames ``start .. start + count`` of a constant-25-fps video (the output of the
    resample stage). Input seeking with decoding from the previous key frame is exact; the
    seek point sits half a frame early so rounding never drops the first frame."""

    def __init__(self, path: str | Path, width: int, height: int, start: int, count: int):
        seek = max(0.0, (start - 0.5) / FPS)
        self._start(width, height, ["-ss", f"{seek:.6f}", "-i", input_arg(path), "-frames:v", str(count)])


def read_all_frames(path: str | Path, size: int) -> np.ndarray:
    """Every frame of a square ``size`` x ``size`` intermediate, (N, size, size, 3) uint8 RGB."""
    with FrameReader(path, size, size) as reader:
        frames = list(reader)
    if not frames:
        raise RuntimeError(f"no frames decoded from {Path(path).name}")
    return np.stack(frames)


def read_pcm(path: str | Path) -> np.ndarray:
    """The audio track as int16 16 kHz mono samples (exactly the samples that were stored)."""
    return to_int16(load_audio(path, SAMPLE_RATE))


def read_wav_slice(path: str | Path, start: int, count: int) -> np.ndarray:
    """``count`` int16 samples from sample ``start`` of a 16-bit mono WAV (short at the end)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise RuntimeError(f"{Path(path).name}: expected 16-bit mono PCM")
        wav.setpos(min(start, wav.getnframes()))
        return np.frombuffer(wav.readframes(count), dtype="<i2").astype(np.int16)


def wav_samples(path: str | Path) -> int:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes()


def write_wav(path: str | Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(np.asarray(pcm, dtype="<i2").tobytes())


def write_lossless(final: Path, frames: Iterable[np.ndarray], size: int, pcm: np.ndarray) -> int:
    """Write square RGB frames and int16 audio as a lossless ``.mkv`` under a temporary
    name, then publish it. Returns the number of frames written."""
    with writing(final) as tmp:
        wav = tmp.with_suffix(".wav")
        write_wav(wav, pcm)
        writer = VideoWriter(tmp, size, size, audio_path=wav, fps=FPS)
        written = 0
        try:
            for frame in frames:
                writer.write(np.ascontiguousarray(frame))
                written += 1
            writer.close()
        except BaseException:
            writer.abort()
            raise
        finally:
            wav.unlink(missing_ok=True)
        return written
