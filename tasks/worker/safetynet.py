"""Each worker's main process: registers its slots for fair share and re-dispatches parked runs nobody dispatched.

A releasing worker that died between its release and its publish, a cap raised at run time, a slot freed by an
expired lease: in each case parked runs could wait for a release that never comes. Every third of a lease TTL,
one worker at a time (a Redis lock) picks what may start and publishes it; runs picked but still unpublished
after UNSENT_GRACE_SECONDS (their picker died between the pick and the publish) and runs dispatched over ten
minutes ago whose message never arrived are published again (a copy that arrives later is dropped by its done
marker, or waits on the run lock and returns the stored result), at most MAX_REPUBLISHES times. A run whose
dispatch is lost more often than that, or that has waited parked longer than TOOLRUNNER_MAX_WAIT_SECONDS, ends
FAILED with the reason (RunExpiredError): it is never retried for ever.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery import Celery
from celery.signals import celeryd_after_setup

from config import Settings
from tasks.errors import RunExpiredError
from tasks.worker import backlog, cache, fairshare, keys, luascript, parking
from tasks.worker.app import app

logger = logging.getLogger(__name__)

STALE_DISPATCH_SECONDS = 600
UNSENT_GRACE_SECONDS = 5  # a picker publishes within milliseconds; one silent this long has died (or failed)
MAX_REPUBLISHES = 3


def register(redis_client: redis.Redis, hostname: str, concurrency: int, settings: Settings) -> None:
    """Count this worker's slots in the global capacity for a lease TTL."""
    expiry = int((time.time() + settings.lease_ttl_seconds) * 1000)
    redis_client.zadd(keys.WORKERS(), {f"{hostname}|{concurrency}": expiry})


def sweep_parked(celery_app: Celery, redis_client: redis.Redis, settings: Settings) -> int:
    """Publish the parked runs that may start now and those whose dispatch got lost; return how many."""
    lock = redis_client.lock(keys.NET_LOCK(), timeout=settings.lease_ttl_seconds, blocking=False)
    if not lock.acquire():
        return 0
    try:
        # Messages queued while every slot runs a long tool: parked now, so they report waiting_for_slot.
        backlog.drain(celery_app, redis_client, settings, str(celery_app.conf.task_default_queue))
        picked = fairshare.release(redis_client, None, settings, budget=fairshare.PICK_BUDGET)
        now_ms = int(time.time() * 1000)
        # Picked but never published (its picker died in between), or published long ago and never taken.
        lost = _lost(celery_app, redis_client, settings, keys.UNSENT, now_ms - UNSENT_GRACE_SECONDS * 1000)
        lost += _lost(celery_app, redis_client, settings, keys.DISPATCHING, now_ms - STALE_DISPATCH_SECONDS * 1000)
        waited = now_ms - settings.max_wait_seconds * 1000
        for task_id in (fairshare.text(s) for s in redis_client.zrangebyscore(keys.PARKED_AT(), "-inf", waited)):
            why = f"it waited over TOOLRUNNER_MAX_WAIT_SECONDS={settings.max_wait_seconds} for a slot"
            _give_up(celery_app, redis_client, settings, task_id, "parked_at", waited, why)
        dispatched = list(dict.fromkeys(picked + lost))
        parking.dispatch(celery_app, redis_client, dispatched)
        return len(dispatched)
    finally:
        lock.release()


def _lost(celery_app: Celery, redis_client: redis.Redis, settings: Settings, key: keys.Key, cutoff: int) -> list[str]:
    """The runs of `key` (unsent or dispatching) marked before the cutoff, to publish again (a copy that arrives
    later is dropped or waits on the run lock); past MAX_REPUBLISHES, they end FAILED instead."""
    again = []
    for task_id in (fairshare.text(s) for s in redis_client.zrangebyscore(key(), "-inf", cutoff)):
        if redis_client.hincrby(keys.REPUBLISHED(), task_id, 1) > MAX_REPUBLISHES:
            why = f"its dispatch was lost {MAX_REPUBLISHES + 1} times (no worker took its message)"
            _give_up(celery_app, redis_client, settings, task_id, key().removeprefix(keys.FAIR_SHARE), cutoff, why)
        else:
            redis_client.zadd(keys.DISPATCHING(), {task_id: int(time.time() * 1000)})
            again.append(task_id)
    return again


def _give_up(
    celery_app: Celery, redis_client: redis.Redis, settings: Settings, task_id: str, which: str, cutoff: int, why: str
) -> None:
    """End a parked run FAILED with the reason, if it is still where the net saw it (atomically)."""
    ended = bool(luascript.run(redis_client, "expire", task_id, which, cutoff, settings.identity_ttl * 1000)[0])
    if not ended:  # it moved on (admitted, dispatched again) since the net looked: not given up
        return
    logger.error("gave up on parked task=%s: %s", task_id, why)
    celery_app.backend.mark_as_failure(task_id, RunExpiredError(f"task {task_id} never started: {why}"))
    parking.dispatch(celery_app, redis_client, fairshare.release(redis_client, None, settings))


def _loop(hostname: str, concurrency: int, stop: threading.Event) -> None:
    settings = app.settings
    client = redis.Redis.from_url(settings.broker)
    while True:
        try:
            register(client, hostname, concurrency, settings)
            if settings.fair_share:
                sweep_parked(app, client, settings)
            cache.sweep_flights(app, client, settings)
        except redis.RedisError as exc:  # Redis away (restarting): the next round tries again
            logger.warning("fair-share safety net skipped a round: %s", exc)
        if stop.wait(settings.lease_ttl_seconds / 3):
            return


@celeryd_after_setup.connect
def _start(sender: str | None = None, instance: Any = None, **_: Any) -> None:
    """In the worker's main process: register its slots and run the safety net until it exits."""
    concurrency = int(getattr(instance, "concurrency", 1) or 1)
    thread = threading.Thread(
        target=_loop, args=(str(sender), concurrency, threading.Event()), daemon=True, name="fair-share-net"
    )
    thread.start()
