"""A beat in a background thread while a block runs: what keeps a run's Redis keys (lock, lease, flight) alive."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

logger = logging.getLogger(__name__)


@contextmanager
def renewing(every: float, renew: Callable[[], object], what: str) -> Iterator[None]:
    """Call `renew` every `every` seconds while the block runs; the key it renews dies with the process.

    A Redis error is logged and the next beat tries again: Redis away for a moment must not end a run.
    """
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                renew()
            except redis.RedisError as exc:
                logger.warning("could not renew %s: %s", what, exc)

    thread = threading.Thread(target=beat, daemon=True, name=f"renew {what}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
