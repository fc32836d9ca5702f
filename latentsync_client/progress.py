"""A job's progress on the terminal while waiting: a tqdm bar (stage, percent, the
service's ETA, the queue position) when tqdm is installed, else a line per change.
tqdm is optional and imported only here, only when a bar is asked for."""

from __future__ import annotations

import sys
from typing import IO, Any

from latentsync_client.models import Job


class JobProgress:
    def __init__(self, stream: IO[str] | None = None):
        self._stream = stream or sys.stderr
        self._bar: Any = None
        self._last_line = ""
        try:
            from tqdm import tqdm
        except ImportError:  # the client works without it: plain lines instead
            self._tqdm = None
        else:
            self._tqdm = tqdm

    def update(self, job: Job) -> None:
        label = job.stage if job.status == "running" and job.stage else job.status
        percent = round(100 * max(0.0, min(1.0, job.progress)), 1)
        extra = {}
        if job.queue_position is not None:
            extra["queue"] = job.queue_position
        if job.eta_seconds is not None and not job.finished:
            extra["eta"] = f"{job.eta_seconds:.0f}s"
        if job.frames_total:
            extra["frames"] = f"{job.frames_done}/{job.frames_total}"
        if self._tqdm is None:
            line = f"{job.id[:8]} {label} {percent:.0f}% " + " ".join(f"{k}={v}" for k, v in extra.items())
            if line != self._last_line:
                print(line.rstrip(), file=self._stream, flush=True)
                self._last_line = line
            return
        if self._bar is None:
            self._bar = self._tqdm(total=100, unit="%", file=self._stream, bar_format=_FORMAT)
        self._bar.set_description_str(f"{label:>10}", refresh=False)
        self._bar.set_postfix(extra, refresh=False)
        self._bar.n = percent
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# The service's ETA is in the postfix; tqdm's own rate-based estimate would be wrong while queued.
_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {elapsed}{postfix}"
