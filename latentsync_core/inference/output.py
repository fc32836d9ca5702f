"""The job's output file: frames are written by ffmpeg as they come (fed from a thread),
into a partial file in the work folder that becomes the output only when complete; and,
when asked, a live stream of the same frames that grows window by window (``live_mp4.py``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from latentsync_core.common.background import Drain
from latentsync_core.inference.composite import to_host
from latentsync_core.inference.context import JobContext
from latentsync_core.media.live_mp4 import LiveMP4Writer
from latentsync_core.media.video_io import VideoWriter, count_video_frames
from latentsync_core.sync.stream import SyncTap


class OutputVideo:
    """``tap``, when given, also sees every frame (on the feeding thread, after the encoder);
    ``stream_path``, when given, gets a fragmented MP4 of the frames so far, growing with
    every window (a preview to serve while the job runs; its failure never fails the job);
    ``depth``: finished windows waiting for the encoder (``memory.py``)."""

    def __init__(
        self,
        ctx: JobContext,
        width: int,
        height: int,
        comment: str | None = None,
        tap: SyncTap | None = None,
        stream_path: str | Path | None = None,
        depth: int = 2,
    ):
        self.tap = tap
        self.target = ctx.output_path
        self.partial = ctx.work / f"output.partial{ctx.output_path.suffix or '.mp4'}"  # the suffix picks the codec
        self.writer = VideoWriter(self.partial, width, height, ctx.audio_path, metadata_comment=comment)
        self.feed = Drain(self._write, depth=depth, name="encode-feed")
        self.done = False
        self.frames_in_file = 0  # what the finished file holds (a job reports these, not its plan)
        self.size_in_file = self.writer.file_size
        self.live = LiveMP4Writer(stream_path, width, height, ctx.audio_path) if stream_path is not None else None

    def _write(self, item: tuple[torch.Tensor, torch.cuda.Event | None]) -> None:
        frames, copied = item
        if copied is not None:
            copied.synchronize()
        host = frames.numpy()
        for frame in host:
            self.writer.write(frame)
        if self.live is not None:
            for frame in host:
                self.live.write(frame)
            self.live.flush()  # the window is playable now
        if self.tap is not None:
            self.tap.add(host)

    def emit(self, frames: torch.Tensor) -> None:
        """Queue (count, H, W, 3) uint8 frames, on any device."""
        self.feed.put(to_host(frames))

    def drain(self) -> None:
        """Wait until every emitted frame reached the encoder."""
        self.feed.finish()

    def close(self) -> None:
        """Finish the file and move it to the output path."""
        self.writer.close()
        if self.live is not None:
            self.live.close()
        self.frames_in_file = count_video_frames(self.partial)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.partial), self.target)
        self.done = True

    def __enter__(self) -> OutputVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.done:
            self.feed.abort()
            self.writer.abort()
            if self.live is not None:
                self.live.abort()
        self.partial.unlink(missing_ok=True)
