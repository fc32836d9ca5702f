"""A growing fragmented MP4 of a job's frames while they are being made, with the speech
muxed in, so a reader can serve the file as it grows and a player can start on the first
window instead of waiting for the whole result.

Why one growing fragmented MP4 (and not HLS segments): a browser's ``<video src>``, ffplay,
VLC and ffmpeg all play a progressive fragmented MP4 from one URL with no playlist and no
script, and one continuous encoder gives seamless audio (separately encoded segments would
each start with AAC priming: a click at every join).

The file only ever grows: ffmpeg writes to a pipe (a muxer never seeks back in a pipe) that
a thread copies to the file, flushed chunk by chunk. H.264 runs at zero latency (no look-ahead,
no B-frames: a frame leaves the encoder when it enters) and a fragment is closed once it
spans a frame's duration, when the next packet comes: every frame of a window but its last
is in the file once the window was written (the last follows with the next window's first
frame, or at ``close``). (Fragments of single packets, ``frag_every_frame``, are not used:
ffmpeg 7-9 then writes audio and video timestamps with jitter, duplicated and skipped ones.)
Fragmented MP4 has no edit list to hide AAC's priming samples, so everything after the
first frame is shifted by them (64 ms at 16 kHz): that frame shows 64 ms longer, in sync after.

A failure of this preview never fails the job: it is logged, the stream stops, ``failed``
says so, and the output file is made as before.
"""

from __future__ import annotations

import logging
import struct
import subprocess
import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np

from latentsync_core.media.container import input_args
from latentsync_core.media.ffmpeg_bin import collect_stderr, ffmpeg_exe
from latentsync_core.media.input_file import inherited_fds

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
AAC_LC = "mp4a.40.2"  # what ffmpeg's aac encoder makes by default (AAC low complexity)


class LiveMP4Writer:
    """Encodes RGB frames of ``width`` x ``height`` at ``fps`` into a fragmented MP4 at ``path``
    (replaced if it exists: a reader of an earlier file keeps its own), with ``audio_path``'s
    first audio track as AAC. ``write`` frames, ``flush`` after each window, then ``close``
    (or ``abort``)."""

    def __init__(
        self, path: str | Path, width: int, height: int, audio_path: str | Path | None, fps: int = 25, crf: int = 23
    ):
        self.path = Path(path)
        self.width, self.height = width, height
        self.frames = 0
        self.failed: str | None = None  # why the stream stopped early, if it did
        cmd = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        ]  # fmt: skip
        if audio_path is not None:
            cmd += [*input_args(audio_path), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "128k"]
        cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast"]
        cmd += ["-tune", "zerolatency", "-crf", str(crf), "-g", str(fps), "-pix_fmt", "yuv420p"]
        frame_us = str(1_000_000 // fps)
        cmd += ["-movflags", "empty_moov+default_base_moof", "-frag_duration", frame_us, "-flush_packets", "1"]
        cmd += ["-f", "mp4", "-"]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)  # a new file: whoever still reads an old one is not confused
        self._file: BinaryIO = open(self.path, "xb")  # noqa: SIM115 - closed by the copy thread
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=inherited_fds(cmd)
        )
        self._stderr = bytearray()
        self._copier = threading.Thread(target=self._copy, name="live-mp4", daemon=True)
        self._copier.start()
        self._errors = collect_stderr(self._proc, self._stderr, name="live-mp4-err")

    def _copy(self) -> None:
        """ffmpeg's output to the file as it comes, each chunk flushed (readers see it now)."""
        assert self._proc.stdout is not None
        try:
            while chunk := self._proc.stdout.read1(CHUNK):
                self._file.write(chunk)
                self._file.flush()
        except OSError as exc:  # the disk: the preview stops, the job goes on
            self._fail(f"writing {self.path.name} failed: {exc}")
            self._proc.kill()
        finally:
            self._file.close()

    def _fail(self, why: str) -> None:
        if self.failed is None:
            self.failed = why
            log.warning("live stream %s stopped: %s", self.path, why)

    def write(self, frame: np.ndarray) -> None:
        """One (H, W, 3) uint8 frame; does nothing once the stream failed."""
        if self.failed is not None:
            return
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame must be ({self.height}, {self.width}, 3) uint8, got {frame.shape} {frame.dtype}")
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
            self.frames += 1
        except (BrokenPipeError, OSError):
            self._fail(f"the encoder stopped: {self._error_text()}")

    def flush(self) -> None:
        """Hand what was written to the encoder now (call at the end of each window)."""
        if self.failed is None and self._proc.stdin is not None:
            try:
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                self._fail(f"the encoder stopped: {self._error_text()}")

    def _error_text(self, timeout: float | None = 10) -> str:
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return "(no exit)"
        self._errors.join(timeout=5)
        return self._stderr.decode(errors="replace").strip()[-300:]

    def close(self) -> None:
        """Finish the stream: the last fragment and the index are in the file when this returns."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
        text = self._error_text(timeout=None)
        self._copier.join()
        if self._proc.returncode not in (0, None) and self.failed is None:
            self._fail(f"ffmpeg exited with {self._proc.returncode}: {text}")

    def abort(self) -> None:
        """Stop now (the job failed or was canceled); the file stays as it is."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._copier.join()
        if self._proc.stdin is not None:
            try:
                self._proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass


def _boxes(data: bytes, start: int, end: int):
    """(type, payload start, box end) of the complete ISO-BMFF boxes in ``data[start:end]``."""
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        header = 8
        if size == 1:
            if start + 16 > end:
                return
            size, header = struct.unpack_from(">Q", data, start + 8)[0], 16
        if size < header or start + size > end:
            return  # not complete yet (or not a box)
        yield kind, start + header, start + size
        start += size


def init_segment_size(head: bytes) -> int | None:
    """Bytes of the initialization segment (``ftyp`` + ``moov``) at the start of a fragmented
    MP4, or None while ``head`` does not hold all of it yet."""
    for kind, _, end in _boxes(head, 0, len(head)):
        if kind == b"moov":
            return end
    return None


def complete_fragments(data: bytes) -> int:
    """Media fragments (``moof`` then its ``mdat``) complete in the first bytes of a fragmented
    MP4 after its initialization segment: a player can show a stream once this is 1."""
    start = init_segment_size(data)
    if start is None:
        return 0
    count, pending = 0, False
    for kind, _, _ in _boxes(data, start, len(data)):
        if kind == b"moof":
            pending = True
        elif kind == b"mdat" and pending:
            count, pending = count + 1, False
    return count


def stream_codecs(init: bytes) -> str:
    """The RFC 6381 ``codecs`` of an initialization segment written by :class:`LiveMP4Writer`
    (what a player's MediaSource needs): ``avc1.PPCCLL`` from the H.264 configuration record
    (profile, constraint flags, level), plus ``mp4a.40.2`` when there is an audio track."""
    found = init.find(b"avcC")
    if found < 0 or found + 8 > len(init):
        raise ValueError("no H.264 configuration record in this initialization segment")
    _, profile, constraints, level = init[found + 4 : found + 8]
    codecs = [f"avc1.{profile:02x}{constraints:02x}{level:02x}"]
    if b"mp4a" in init:
        codecs.append(AAC_LC)
    return ", ".join(codecs)
