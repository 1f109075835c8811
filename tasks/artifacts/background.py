"""Write-behind: a store's slow part (disk write, part upload) runs in one thread while the next bytes arrive."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

_STOP = object()

T = TypeVar("T")


class WriteBehind(Generic[T]):
    """Hands each block to `consume` in one background thread, at most `depth` blocks behind the producer.

    Memory stays bounded (depth + 1 blocks); the first error of `consume` is raised to the producer on its
    next put() or at finish(), and every later block is dropped unconsumed so the producer never blocks on it.
    """

    def __init__(self, consume: Callable[[T], None], depth: int, name: str) -> None:
        self._consume = consume
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, block: T) -> None:
        """Queue a block (waiting while `depth` are queued); raise the consumer's error if it failed."""
        self._raise()
        self._queue.put(block)

    def finish(self) -> None:
        """Wait until every queued block is consumed; raise the consumer's error if it failed."""
        self._stop()
        self._raise()

    def cancel(self) -> None:
        """Drop whatever is queued and stop the thread; never raises."""
        if self._error is None:
            self._error = RuntimeError("write-behind cancelled")
        self._stop()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        while (block := self._queue.get()) is not _STOP:
            if self._error is None:
                try:
                    self._consume(block)  # type: ignore[arg-type]
                except BaseException as exc:  # handed to the producer thread, which raises it
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
