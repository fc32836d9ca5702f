"""The API's view of "run this job somewhere": :class:`JobRunner`. The local device pool
(``device_pool.py``) and the Celery dispatcher (``celery_dispatcher.py``) implement it;
``factory.make_backend`` picks one."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from server.jobs.model import Job

LoadState = Literal["loading", "ready", "error"]
FastPath = Literal["off", "compiling", "ready", "failed"]


class JobRunner(Protocol):
    state: LoadState  # "ready" once jobs can run (the models are loaded where they run)
    load_error: str | None  # why loading failed (state "error"); /ready shows it
    fast_path: FastPath  # the compiled kernels: off, compiling, ready, failed

    def load(self) -> None:
        """Blocking, on a thread (/health answers meanwhile): get ready to run jobs."""
        ...

    def start(self) -> None:
        """On the event loop: start taking queued jobs."""
        ...

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs; a running one goes back to the queue."""
        ...

    def recover(self) -> None:
        """At start-up: jobs a crash left running run once more, then fail INTERRUPTED."""
        ...

    def submit(self, job: Job) -> None:
        """``job`` was queued in the store: run it (in queue order) when a device is free."""
        ...

    def cancel(self, job_id: str) -> None:
        """Stop a running job at its next step (its lifecycle then says canceled)."""
        ...

    def progress(self, job_id: str) -> dict[str, Any] | None:
        """The running job's latest progress if this process sees it live, else None (the
        record has it, at most half a second old)."""
        ...

    @property
    def running_id(self) -> str | None:
        """A job running in this process (None when jobs run elsewhere)."""
        ...

    @property
    def seconds_per_frame(self) -> float | None:
        """Recent throughput of the whole runner, for the ETAs of queued jobs."""
        ...

    def describe(self) -> dict[str, Any]:
        """Once ready: device, dtype, weights, every device (for /ready)."""
        ...

    def memory_stats(self) -> dict[str, int]:
        """GPU memory, summed over the devices (for /metrics)."""
        ...
