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

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from celery.signals import celeryd_after_setup

from config import Settings
from tasks.errors import RunExpiredError
from tasks.worker import backlog, cache, chunks, diskguard, fairshare, keys, luascript, parking, role
from tasks.worker.app import app
from tasks.worker.delivery import bind_run

logger = logging.getLogger(__name__)

STALE_DISPATCH_SECONDS = 600
UNSENT_GRACE_SECONDS = 5  # a picker publishes within milliseconds; one silent this long has died (or failed)
CLAIM_GRACE_SECONDS = 30  # a claimer publishes its chunks within a second or two: one silent this long has died
MERGE_GRACE_SECONDS = 60  # a merge of a million targets streams for minutes: asked again only once it is quiet
LOST_DISPATCH_SECONDS = 30  # a published run taken by no worker this long, and in no queue or unacked set: lost
SEARCH_LIMIT = 10_000  # the most messages a queue (or the unacked set) may hold for the net to look through it
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
        return _Round(celery_app, redis_client, settings).sweep()
    finally:
        lock.release()


@dataclass(frozen=True)
class _Round:
    """One round of the safety net, under its lock."""

    app: Celery
    redis: redis.Redis
    settings: Settings

    def sweep(self) -> int:
        # Messages queued while every slot runs a long tool: parked now, so they report waiting_for_slot.
        backlog.drain(self.app, self.redis, self.settings, str(self.app.conf.task_default_queue))
        picked = fairshare.release(self.redis, None, self.settings, budget=fairshare.PICK_BUDGET)
        now_ms = int(time.time() * 1000)
        again = [task_id for task_id, seen in self._lost(now_ms).items() if self._again(task_id, seen)]
        waited = now_ms - self.settings.max_wait_seconds * 1000
        for task_id in (fairshare.text(s) for s in self.redis.zrangebyscore(keys.PARKED_AT(), "-inf", waited)):
            why = f"it waited over TOOLRUNNER_MAX_WAIT_SECONDS={self.settings.max_wait_seconds} for a slot"
            self._give_up(task_id, (keys.PARKED_AT, waited), why)
        chunks.republish_claims(self.app, self.redis, now_ms - CLAIM_GRACE_SECONDS * 1000)
        self._merges(now_ms)
        dispatched = list(dict.fromkeys(picked + again))
        parking.dispatch(self.app, self.redis, dispatched)
        return len(dispatched)

    def _lost(self, now_ms: int) -> dict[str, tuple[keys.Key, int]]:
        """The picked runs whose message is lost, each with where the net saw it: picked but never published (its
        picker died in between), or published but in no queue and held by no worker, or published ten minutes
        ago and still not taken."""
        unsent = now_ms - UNSENT_GRACE_SECONDS * 1000
        lost = {
            fairshare.text(i): (keys.UNSENT, unsent) for i in self.redis.zrangebyscore(keys.UNSENT(), "-inf", unsent)
        }
        cutoff, stale = now_ms - LOST_DISPATCH_SECONDS * 1000, now_ms - STALE_DISPATCH_SECONDS * 1000
        scored = self.redis.zrangebyscore(keys.DISPATCHING(), "-inf", cutoff, withscores=True)
        sent = [(fairshare.text(pair[0]), float(pair[1])) for pair in scored]
        missing = self._nowhere([task_id for task_id, at in sent if at > stale])
        for task_id in [task_id for task_id, at in sent if at <= stale or task_id in missing]:
            lost.setdefault(task_id, (keys.DISPATCHING, cutoff))
        return lost

    def _nowhere(self, task_ids: list[str]) -> set[str]:
        """Those of the runs whose message is neither in its queue nor held unacked by any worker: lost (a worker
        killed between Redis popping a message and recording it unacked: a window of Kombu's Redis transport).
        Read in one transaction, so a message moving from one to the other is seen in one of them; a queue or
        unacked set too big to read here tells nothing, and the ten-minute republish covers its runs."""
        if not task_ids:
            return set()
        queues = sorted({envelope.queue for envelope in parking.load(self.redis, task_ids)})
        with self.redis.pipeline(transaction=True) as pipe:
            for name in queues:
                pipe.llen(name)
            pipe.hlen(keys.UNACKED)
            if max(pipe.execute()) > SEARCH_LIMIT:
                return set()
        with self.redis.pipeline(transaction=True) as pipe:
            for name in queues:
                pipe.lrange(name, 0, -1)
            pipe.hvals(keys.UNACKED)
            present = {_message_id(raw) for found in pipe.execute() for raw in found}
        return set(task_ids) - present

    def _again(self, task_id: str, seen: tuple[keys.Key, int]) -> bool:
        """Count one more publish of a lost run (its dispatching mark restarts now); past MAX_REPUBLISHES it ends
        FAILED instead. A copy that arrives later anyway is dropped, or waits on the run lock for the result."""
        if self.redis.hincrby(keys.REPUBLISHED(), task_id, 1) > MAX_REPUBLISHES:
            self._give_up(
                task_id, seen, f"its dispatch was lost {MAX_REPUBLISHES + 1} times (no worker took its message)"
            )
            return False
        self.redis.zadd(keys.DISPATCHING(), {task_id: int(time.time() * 1000)})
        return True

    def _merges(self, now_ms: int) -> None:
        """Ask again for the merge of a chunked run whose merge was asked MERGE_GRACE_SECONDS ago and is not done (its
        publisher died, or its merge did)."""
        stale = now_ms - MERGE_GRACE_SECONDS * 1000
        for parent in (fairshare.text(p) for p in self.redis.zrangebyscore(keys.MERGING(), "-inf", stale)):
            self.redis.zadd(keys.MERGING(), {parent: now_ms})
            if self.redis.exists(keys.MERGE_LEASE(parent)):
                continue  # a merge is streaming it
            logger.warning("asking again for the merge of chunked task=%s", parent)
            chunks.publish_merge(self.app, self.redis, parent)

    def _give_up(self, task_id: str, seen: tuple[keys.Key, int], why: str) -> None:
        """End a parked run FAILED with the reason, if it is still where the net saw it (`seen`: in that sorted
        set, scored before that cutoff), atomically."""
        key, cutoff = seen
        which = key().removeprefix(keys.FAIR_SHARE)
        done_ms = self.settings.identity_ttl * 1000
        parked = parking.load(self.redis, [task_id])
        if not bool(luascript.run(self.redis, "expire", task_id, which, cutoff, done_ms)[0]):
            return  # it moved on (admitted, dispatched again) since the net looked: not given up
        logger.error("gave up on parked task=%s: %s", task_id, why)
        self.app.backend.mark_as_failure(task_id, RunExpiredError(f"task {task_id} never started: {why}"))
        message = bind_run(parked[0].task, parked[0].args, parked[0].kwargs) if parked else None
        if message is not None:  # a chunk: its parent counts it failed rather than wait for it
            chunks.ended_unrun(self.app, self.redis, self.settings, message, task_id, f"never started: {why}")
        parking.dispatch(self.app, self.redis, fairshare.release(self.redis, None, self.settings))


def _message_id(raw: bytes | str) -> str | None:
    """The task id of a raw Kombu message (a queue's) or of an unacked entry ([message, exchange, routing key])."""
    try:
        message = json.loads(raw)
        return str((message[0] if isinstance(message, list) else message)["headers"]["id"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _loop(hostname: str, concurrency: int, stop: threading.Event) -> None:
    settings = app.settings
    client = redis.Redis.from_url(settings.broker)
    registered: int | None = None
    while True:
        try:
            slots = 0 if diskguard.paused() else concurrency  # a worker taking no runs offers no slots
            if registered not in (None, slots):
                client.zrem(keys.WORKERS(), f"{hostname}|{registered}")
            register(client, hostname, slots, settings)
            registered = slots
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
    queues = role.consumed(getattr(instance, "app", app), str(sender))
    concurrency = role.offered_slots(int(getattr(instance, "concurrency", 1) or 1), queues)
    thread = threading.Thread(
        target=_loop, args=(str(sender), concurrency, threading.Event()), daemon=True, name="fair-share-net"
    )
    thread.start()
