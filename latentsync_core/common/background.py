"""Small thread helpers that keep the GPU fed: a producer generator run ahead on a thread,
and a consumer that drains work items on a thread. Both are bounded, pass exceptions
back to the caller, and stop cleanly when the caller leaves early."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class Prefetch(Generic[T]):
    """Iterate over ``source`` on a thread, at most ``depth`` items ahead."""

    def __init__(self, source: Iterable[T], depth: int = 2, name: str = "prefetch"):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._source = source
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(("item", item)):
                    return
            self._put(("done", _DONE))
        except BaseException as exc:  # handed to the consumer
            self._put(("error", exc))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, item = self._queue.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Drain(Generic[T]):
    """Hand items to ``consume`` on a thread, at most ``depth`` waiting. An error in
    ``consume`` is raised by the next ``put`` or by ``finish``."""

    def __init__(self, consume: Callable[[T], None], depth: int = 2, name: str = "drain"):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._consume = consume
        self._error: BaseException | None = None
        self._aborted = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is None and not self._aborted:
                try:
                    self._consume(item)
                except BaseException as exc:
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        self._raise()
        self._queue.put(item)

    def finish(self) -> None:
        """Wait until every item was consumed; raise the consumer's error if any."""
        self._queue.put(_DONE)
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop without consuming what is still queued."""
        self._aborted = True
        self._queue.put(_DONE)
        self._thread.join()
