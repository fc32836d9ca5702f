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

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from latentsync_core.errors import Cancelled
from latentsync_core.inference.composite import Compositor, to_host
from latentsync_core.inference.conditioning import Conditioner
from latentsync_core.inference.context import JobContext
from latentsync_core.inference.denoise import Denoiser, WindowNoise
from latentsync_core.inference.source import Window
from latentsync_core.inference.template_cache import TemplateSession

if TYPE_CHECKING:
    from latentsync_core.inference.pipeline import LipSyncPipeline


class DeviceLender(Protocol):
    """Idle devices a running job may use for some of its windows (thread-safe: called
    from the job's thread and its lanes)."""

    def borrow(self) -> list[LipSyncPipeline]:
        """Pipelines of devices idle now, reserved for the caller until given back."""
        ...

    def wanted_back(self, pipeline: LipSyncPipeline) -> bool:
        """True when a borrowed device should return after its current window."""
        ...

    def give_back(self, pipeline: LipSyncPipeline) -> None: ...


@dataclass
class JobWindows:
    """What every lane of a job shares."""

    ctx: JobContext
    features: torch.Tensor
    noise: WindowNoise
    session: TemplateSession
    n_out: int


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
        self.ctx.report("denoise", frames, self.n_out)


class Lane:
    """One device's stages for one job: conditioning, denoising, decoding and compositing
    of the windows it is given, one at a time on its own thread."""

    def __init__(self, pipeline: LipSyncPipeline, job: JobWindows, progress: _Progress, abort: _Abort):
        m = pipeline.m
        self.pipeline, self.job, self.progress, self.abort = pipeline, job, progress, abort
        self.device = m.device
        mask = pipeline.mask.to(self.device)
        self.denoise = Denoiser(pipeline.unet, m.scheduler, job.ctx.params, job.noise.initial, self.device, self._check)
        self.condition = Conditioner(pipeline.vae, mask, job.features, m.dtype)
        self.composite = Compositor(pipeline.vae, mask, m.resolution, self.device)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"window-{self.device}")
        self.windows = 0
        self.returned = False

    def _check(self) -> None:
        self.abort.check()
        self.job.ctx.check_cancelled()

    def run(self, index: int, window: Window, wait: Callable[[], None], stored: Callable[[], None]) -> torch.Tensor:
        """Window ``index``'s output frames (count, H, W, 3) uint8 on the host."""
        device = self.device
        on_gpu = device.type == "cuda"
        try:
            with torch.no_grad(), torch.cuda.device(device) if on_gpu else contextlib.nullcontext():
                frames = window.frames.to(device, non_blocking=True)
                faces = window.faces.to(device, non_blocking=True)
                normal = tuple(t.to(device) for t in self.job.noise.window(index))
                wait()
                cond = self.condition(window, faces, self.job.session, normal)  # stores new moments
                stored()
                latents = self.denoise(cond, lambda k: self.progress.step(index, window.count, k))
                out = self.composite(latents, window, faces, frames)
                host, copied = to_host(out)  # on this device's stream, so this thread waits for it
                if copied is not None:
                    copied.synchronize()
        except BaseException as exc:
            if not isinstance(exc, Cancelled) or self.abort.error is None:
                self.abort.set(exc)
            raise
        self.windows += 1
        return host


def run_windows(
    home: LipSyncPipeline,
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
            if lane is not lanes[0] and lender is not None and lender.wanted_back(lane.pipeline):
                lane.returned = True
                lender.give_back(lane.pipeline)
                return
        free.put(lane)

    def raise_failure() -> None:
        if abort.error is not None:
            raise abort.error

    try:
        for index, window in enumerate(windows):
            if lender is not None:
                for pipeline in lender.borrow():
                    lane = Lane(pipeline, job, progress, abort)
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
                    lender.give_back(lane.pipeline)
    return [{"device": str(lane.device), "windows": lane.windows} for lane in lanes]
