"""Streaming video decode and encode through ffmpeg pipes: frames one at a time, never
the whole video in memory."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from latentsync_core.media.constants import FPS
from latentsync_core.media.container import input_args
from latentsync_core.media.ffmpeg_bin import collect_stderr, ffmpeg_exe, run_ffmpeg
from latentsync_core.media.input_file import inherited_fds
from latentsync_core.media.limits import video_too_long


class FrameReader:
    """Decodes a video's first video stream as RGB frames resampled to ``fps``.

    Frames come out at the displayed size (ffmpeg applies the rotation metadata), so the
    caller sees what a player shows. Use as a context manager or iterate to the end.

    ``max_frames`` bounds what is decoded whatever the container claims: reading one frame
    more raises MediaError ``VIDEO_TOO_LONG`` (and stops the decoder when closed).
    """

    max_frames: int | None = None
    fps: float = FPS

    def __init__(self, path: str | Path, width: int, height: int, fps: int = FPS, max_frames: int | None = None):
        self.max_frames, self.fps = max_frames, fps
        self._start(width, height, [*input_args(path), "-vf", f"fps={fps},scale={width}:{height}"])

    def _start(self, width: int, height: int, input_args: list[str]) -> None:
        """Run ffmpeg with ``input_args`` (the input and how to read it), decoding the first
        video stream to raw RGB frames of ``width`` x ``height`` on a pipe."""
        self.width, self.height = width, height
        self.frame_bytes = width * height * 3
        self.count = 0
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *input_args]
        cmd += ["-map", "0:v:0", "-an", "-sn", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"]
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=self.frame_bytes, pass_fds=inherited_fds(cmd)
        )
        self._stderr = bytearray()
        self._err_thread = collect_stderr(self._proc, self._stderr)

    def read(self) -> np.ndarray | None:
        """Next (H, W, 3) uint8 frame, or None at the end (a truncated tail is dropped)."""
        assert self._proc.stdout is not None
        buf = self._proc.stdout.read(self.frame_bytes)
        if len(buf) < self.frame_bytes:
            return None
        self.count += 1
        if self.max_frames is not None and self.count > self.max_frames:
            raise video_too_long(self.max_frames / self.fps, (self.max_frames - 1) / self.fps, decoded=True)
        return np.frombuffer(buf, np.uint8).reshape(self.height, self.width, 3)

    def __iter__(self) -> Iterator[np.ndarray]:
        while (frame := self.read()) is not None:
            yield frame

    @property
    def errors(self) -> str:
        return self._stderr.decode(errors="replace")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        if self._proc.stdout:
            self._proc.stdout.close()
        self._err_thread.join(timeout=5)

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoWriter:
    """Encodes RGB frames to H.264 (crf 18, yuv420p) and muxes an AAC audio track; a ``.mkv``
    path gets a lossless master instead (FFV1 in RGB, FLAC audio): the exact frames.

    Odd sizes are padded by one pixel for H.264 (yuv420p needs even dimensions). Every
    frame written is in the file (one per audio window, as upstream), however long the audio.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        audio_path: str | Path | None,
        fps: int = FPS,
        crf: int = 18,
        metadata_comment: str | None = None,
    ):
        self.width, self.height = width, height
        self.path = Path(path)
        self.frames = 0  # written so far
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-"]
        lossless = Path(path).suffix.lower() == ".mkv"
        # The size the file has: H.264 in 4:2:0 pads odd sizes by a pixel.
        self.file_size = (width, height) if lossless else (width + width % 2, height + height % 2)
        if audio_path is not None:
            cmd += [*input_args(audio_path), "-map", "0:v:0", "-map", "1:a:0"]
            cmd += ["-c:a", "flac"] if lossless else ["-c:a", "aac", "-b:a", "160k"]
        if lossless:
            cmd += ["-c:v", "ffv1", "-pix_fmt", "bgr0"]
        else:
            cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "medium", "-crf", str(crf)]
            cmd += ["-pix_fmt", "yuv420p", "-movflags", "+faststart"]
        if metadata_comment:
            cmd += ["-metadata", f"comment={metadata_comment}"]
        cmd += [str(Path(path).resolve())]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=inherited_fds(cmd))

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame must be ({self.height}, {self.width}, 3) uint8, got {frame.shape} {frame.dtype}")
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
            self.frames += 1
        except BrokenPipeError as exc:
            raise RuntimeError(f"ffmpeg encoder stopped: {self._read_err()}") from exc

    def _read_err(self) -> str:
        self._proc.wait(timeout=30)
        return (self._proc.stderr.read() if self._proc.stderr else b"").decode(errors="replace").strip()

    def close(self) -> None:
        """Finish the file; raise if ffmpeg failed."""
        if self._proc.stdin and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        err = self._read_err()
        if self._proc.returncode != 0:
            raise RuntimeError(f"ffmpeg encode failed ({self._proc.returncode}): {err[-500:]}")

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()


def count_video_frames(path: str | Path) -> int:
    """Frames of the first video stream, counted from its packets (``-c copy``, no decoding):
    one ``framecrc`` line per packet. (The ``frame=`` figure of ffmpeg's statistics is not
    printed for stream copies by every release: 7.0 prints none.)"""
    proc = run_ffmpeg([*input_args(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"])
    return sum(1 for line in proc.stdout.splitlines() if line.strip() and not line.startswith(b"#"))
