"""Exactly-once runs over an at-least-once queue: the run lock, its heartbeat and the delivery counter."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from config import Settings
from tasks.errors import RedeliveryLimitError, RunLockTimeoutError

logger = logging.getLogger(__name__)

DELIVERY_KEY = "toolrunner:deliveries:{}"
RUNNING_KEY = "toolrunner:running:{}"
RUN_LOCK_TTL = 20


@contextmanager
def run_lock(redis_client: redis.Redis, task_id: str, wait: float) -> Iterator[None]:
    """Hold a Redis lock on the task id while it runs, so two deliveries of one message never overlap.

    A broker outage can hand a running task's message out again; the second copy waits here for the
    first instead of running beside it. The lock is short-lived and renewed by a heartbeat thread, so a
    copy whose process was killed releases it within RUN_LOCK_TTL seconds.
    """
    # thread_local=False: the heartbeat thread renews the lock, so the token must not live in this thread only.
    lock = redis_client.lock(
        RUNNING_KEY.format(task_id), timeout=RUN_LOCK_TTL, blocking_timeout=wait, thread_local=False
    )
    if not lock.acquire():
        raise RunLockTimeoutError(f"task {task_id} was still held by another delivery after {wait}s")
    stop = threading.Event()
    heartbeat = threading.Thread(target=_renew, args=(lock, stop), daemon=True, name="run-lock-heartbeat")
    heartbeat.start()
    try:
        yield
    finally:
        stop.set()
        heartbeat.join()
        release_lock(lock)


def _renew(lock: Any, stop: threading.Event) -> None:
    while not stop.wait(RUN_LOCK_TTL / 4):
        try:
            lock.reacquire()
        except redis.RedisError as exc:  # Redis away for a moment: try again at the next beat
            logger.warning("could not renew the run lock %s: %s", lock.name, exc)


def release_lock(lock: Any) -> None:
    """Release a redis-py lock; one that expired meanwhile, or a Redis that is away, is logged, not raised."""
    try:
        lock.release()
    except redis.RedisError as exc:  # LockError (expired, taken over) or a connection error
        logger.warning("could not release the lock %s: %s", lock.name, exc)


def count_delivery(redis_client: redis.Redis, settings: Settings, task_id: str, retries: int) -> int:
    """Count this delivery in Redis (which has no delivery count); refuse past the redelivery cap.

    `retries` are the task's own retries (an unreachable engine), which are deliveries too but not
    deaths of a worker.
    """
    key = DELIVERY_KEY.format(task_id)
    with redis_client.pipeline() as pipe:
        pipe.incr(key)
        # Long enough to outlive every redelivery (each waits up to a visibility timeout) plus the result.
        ttl = settings.visibility_timeout * (settings.max_redeliveries + 2) + settings.result_expires_seconds
        pipe.expire(key, ttl)
        count = int(pipe.execute()[0]) - retries
    if count > settings.max_redeliveries + 1:
        raise RedeliveryLimitError(
            f"task {task_id} was delivered {count} times and its worker died each time "
            f"(killed or out of memory?); giving up after {settings.max_redeliveries} redeliveries"
        )
    return count
