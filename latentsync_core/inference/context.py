"""What one job's stages share: its files, parameters, limits, callbacks, work folder and
device. The two inputs are opened once here (``InputFile``: a regular file, no blocking,
no symlink when the limits say so) and every stage reads them through those descriptors,
so replacing a name after the job started changes nothing."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from latentsync_core.common.errors import Cancelled
from latentsync_core.inference.params import LipSyncParams
from latentsync_core.inference.stages import ProgressEvent, ProgressFn, Stage
from latentsync_core.media.input_file import InputFile
from latentsync_core.media.limits import MediaLimits

CancelFn = Callable[[], bool]  # polled between steps: True stops the job


def _no_progress(event: ProgressEvent) -> None:
    pass


def _never() -> bool:
    return False


@dataclass
class JobContext:
    video_path: Path  # /proc/self/fd/N of the opened input
    audio_path: Path
    output_path: Path
    params: LipSyncParams
    work: Path  # the job's private folder: frame store, moments, the partial output
    device: torch.device
    dtype: torch.dtype
    limits: MediaLimits = field(default_factory=MediaLimits)
    progress: ProgressFn = _no_progress
    should_cancel: CancelFn = _never
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (its value), and "sync"

    def check_cancelled(self) -> None:
        if self.should_cancel():
            raise Cancelled("cancelled")

    def report(self, stage: Stage, done: int, total: int) -> None:
        self.progress(ProgressEvent(stage, done, total))

    @contextmanager
    def timed(self, stage: Stage) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings[stage.value] = time.perf_counter() - start

    @contextmanager
    def stage(self, stage: Stage) -> Iterator[None]:
        """A one-step stage: timed, and reported as 0 of 1 before and 1 of 1 after."""
        with self.timed(stage):
            self.report(stage, 0, 1)
            yield
            self.report(stage, 1, 1)


@contextmanager
def open_job(
    video_path: str | Path,
    audio_path: str | Path,
    output_path: str | Path,
    params: LipSyncParams,
    device: torch.device,
    dtype: torch.dtype,
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    work_dir: str | Path | None = None,
    limits: MediaLimits | None = None,
) -> Iterator[JobContext]:
    """A job's context with its inputs held open; without ``work_dir`` a temporary work
    folder, removed afterwards. Raises MediaError when an input is missing, not a regular
    file, or (``limits.follow_symlinks`` false) a symlink."""
    limits = limits or MediaLimits()
    own_work = work_dir is None
    with ExitStack() as held:
        video = held.enter_context(InputFile(video_path, limits.follow_symlinks))
        audio = held.enter_context(InputFile(audio_path, limits.follow_symlinks))
        work = Path(tempfile.mkdtemp(prefix="latentsync-")) if own_work else Path(work_dir)  # type: ignore[arg-type]
        work.mkdir(parents=True, exist_ok=True)
        try:
            yield JobContext(
                video_path=video.path,
                audio_path=audio.path,
                output_path=Path(output_path),
                params=params,
                work=work,
                device=device,
                dtype=dtype,
                limits=limits,
                progress=progress or _no_progress,
                should_cancel=should_cancel or _never,
            )
        finally:
            if own_work:
                shutil.rmtree(work, ignore_errors=True)
