"""Each worker's main process: registers its slots for fair share and re-dispatches parked runs nobody dispatched.

A releasing worker that died between its release and its publish, a cap raised at run time, a slot freed by an
expired lease: in each case parked runs could wait for a release that never comes. Every third of a lease TTL,
one worker at a time (a Redis lock) picks what may start and publishes it; runs dispatched over ten minutes ago
whose message never arrived are published again (a copy that arrives later is dropped by its done marker).
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
from tasks.worker import backlog, cache, fairshare, parking
from tasks.worker.app import app

logger = logging.getLogger(__name__)

STALE_DISPATCH_SECONDS = 600
_NET_LOCK = parking.PREFIX + "net"


def register(redis_client: redis.Redis, hostname: str, concurrency: int, settings: Settings) -> None:
    """Count this worker's slots in the global capacity for a lease TTL."""
    expiry = int((time.time() + settings.lease_ttl_seconds) * 1000)
    redis_client.zadd(fairshare.WORKERS, {f"{hostname}|{concurrency}": expiry})


def sweep_parked(celery_app: Celery, redis_client: redis.Redis, settings: Settings) -> int:
    """Publish the parked runs that may start now and those whose dispatch got lost; return how many."""
    lock = redis_client.lock(_NET_LOCK, timeout=settings.lease_ttl_seconds, blocking=False)
    if not lock.acquire():
        return 0
    try:
        # Messages queued while every slot runs a long tool: parked now, so they report waiting_for_slot.
        backlog.drain(celery_app, redis_client, settings, str(celery_app.conf.task_default_queue))
        picked = fairshare.release(redis_client, None, settings, budget=fairshare.PICK_BUDGET)
        cutoff = int((time.time() - STALE_DISPATCH_SECONDS) * 1000)
        stale = [fairshare.text(s) for s in redis_client.zrangebyscore(fairshare.DISPATCHING, "-inf", cutoff)]
        for task_id in stale:
            redis_client.zadd(fairshare.DISPATCHING, {task_id: int(time.time() * 1000)})
        parking.publish(celery_app, parking.load(redis_client, picked + stale))
        return len(picked) + len(stale)
    finally:
        lock.release()


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
