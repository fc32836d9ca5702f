"""One job's 16-frame windows spread over several devices.

A job runs on its own device (the first lane) and may borrow idle devices from a
``DeviceLender`` (the service's device pool) between windows; a borrowed device goes back
after the window it is on once the lender wants it (a job is waiting for it). Windows are
independent once their random draws are fixed (``WindowNoise``), so the output does not
depend on the split; results are emitted in window order.

One more thing must not depend on the split: a source frame's encoder moments are computed
once, in the batch of the first window that shows it (a looped video shows frames again),
and later windows reuse them. A window whose frames first appeared in an earlier window
waits until that window has stored them, so every batch is the one a single device would
encode (on the CPU the output is bit-identical however the windows are split).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import numpy as np
import torch

from latentsync_core.common.errors import Cancelled
from latentsync_core.inference.context import JobContext
from latentsync_core.inference.source import Window
from latentsync_core.inference.stages import Stage
from latentsync_core.inference.window import DeviceModels, JobWindows, WindowStages


class WindowDevice(Protocol):
    """A device that can run windows: its models for the per-window stages (a
    ``LipSyncPipeline`` is one)."""

    @property
    def window_models(self) -> DeviceModels: ...


class DeviceLender(Protocol):
    """Idle devices a running job may use for some of its windows (thread-safe: called
    from the job's thread and its lanes)."""

    def borrow(self) -> Sequence[WindowDevice]:
        """Devices idle now, reserved for the caller until given back."""
        ...

    def wanted_back(self, device: WindowDevice) -> bool:
        """True when a borrowed device should return after its current window."""
        ...

    def give_back(self, device: WindowDevice) -> None: ...


class _Abort:
    """The first real failure of any lane; the other lanes stop at their next check."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self._event = threading.Event()
        self._lock = threading.Lock()

    def set(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc
                self._event.set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("another window of this job failed")


class _MomentsOrder:
    """Which earlier window first showed each source frame; a window waits for those."""

    def __init__(self, abort: _Abort):
        self._owner: dict[int, int] = {}
        self._stored: list[threading.Event] = []
        self._abort = abort

    def add(self, index: int, src_idx: np.ndarray) -> tuple[Callable[[], None], Callable[[], None]]:
        """For window ``index`` (added in order): ``wait()`` before its moments are
        taken, ``stored()`` once they are."""
        earlier = sorted({self._owner[s] for s in src_idx.tolist() if s in self._owner})
        for s in src_idx.tolist():
            self._owner.setdefault(s, index)
        self._stored.append(threading.Event())
        events = [self._stored[i] for i in earlier]

        def wait() -> None:
            for event in events:
                while not event.wait(0.05):
                    self._abort.check()

        return wait, self._stored[index].set


class _Progress:
    """Denoise progress summed over the windows in flight (frames x steps done)."""

    def __init__(self, ctx: JobContext, n_out: int):
        self.ctx, self.n_out = ctx, n_out
        self.steps = ctx.params.inference_steps
        self._done: dict[int, int] = {}
        self._total = 0
        self._lock = threading.Lock()

    def step(self, index: int, count: int, k: int) -> None:
        with self._lock:
            self._total += count * k - self._done.get(index, 0)
            self._done[index] = count * k
            frames = self._total // self.steps
        self.ctx.report(Stage.DENOISE, frames, self.n_out)


class Lane:
    """One device's share of a job: its ``WindowStages``, run on its own thread for the
    windows it is given, one at a time."""

    def __init__(self, source: WindowDevice, job: JobWindows, progress: _Progress, abort: _Abort):
        self.source, self.job, self.progress, self.abort = source, job, progress, abort
        self.stages = WindowStages(source.window_models, job, self._check)
        self.device = self.stages.device
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"window-{self.device}")
        self.windows = 0
        self.returned = False

    def _check(self) -> None:
        self.abort.check()
        self.job.ctx.check_cancelled()

    def run(self, index: int, window: Window, wait: Callable[[], None], stored: Callable[[], None]) -> torch.Tensor:
        """Window ``index``'s output frames (count, H, W, 3) uint8 on the host."""
        try:
            host = self.stages.run(index, window, wait, stored, lambda k: self.progress.step(index, window.count, k))
        except BaseException as exc:
            if not isinstance(exc, Cancelled) or self.abort.error is None:
                self.abort.set(exc)
            raise
        self.windows += 1
        return host


def run_windows(
    home: WindowDevice,
    job: JobWindows,
    windows: Iterable[Window],
    emit: Callable[[torch.Tensor], None],
    lender: DeviceLender | None = None,
) -> list[dict]:
    """Process ``windows`` (in order) on ``home`` and on devices borrowed from ``lender``,
    emitting each window's frames in order. Returns what each lane did
    (``[{"device", "windows"}]``, ``home`` first)."""
    abort = _Abort()
    progress = _Progress(job.ctx, job.n_out)
    order = _MomentsOrder(abort)
    lanes = [Lane(home, job, progress, abort)]
    free: queue.Queue[Lane] = queue.Queue()
    free.put(lanes[0])
    pending: deque[Future] = deque()
    lock = threading.Lock()

    def returned(lane: Lane, _: Future) -> None:
        with lock:
            if lane is not lanes[0] and lender is not None and lender.wanted_back(lane.source):
                lane.returned = True
                lender.give_back(lane.source)
                return
        free.put(lane)

    def raise_failure() -> None:
        if abort.error is not None:
            raise abort.error

    try:
        for index, window in enumerate(windows):
            if lender is not None:
                for device in lender.borrow():
                    lane = Lane(device, job, progress, abort)
                    lanes.append(lane)
                    free.put(lane)
            wait, stored = order.add(index, window.src_idx)
            lane = free.get()
            raise_failure()
            future = lane.executor.submit(lane.run, index, window, wait, stored)
            future.add_done_callback(lambda f, lane=lane: returned(lane, f))
            pending.append(future)
            # bounded: at most two finished windows per lane wait for an earlier, slower one
            while pending and (pending[0].done() or len(pending) >= 2 * len(lanes)):
                emit(pending.popleft().result())
        while pending:
            emit(pending.popleft().result())
    except BaseException as exc:
        abort.set(exc)
        for future in pending:
            future.cancel()
        for lane in lanes:
            lane.executor.shutdown(wait=True)
        if abort.error is not exc:
            raise abort.error from exc  # the first failure, not a lane stopped because of it
        raise
    finally:
        for lane in lanes:
            lane.executor.shutdown(wait=True)
        with lock:
            for lane in lanes[1:]:
                if not lane.returned and lender is not None:
                    lane.returned = True
                    lender.give_back(lane.source)
    return [{"device": str(lane.device), "windows": lane.windows} for lane in lanes]
