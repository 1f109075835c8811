"""Webhooks in the worker: the events a run's end records, the delivery task on its own queue, and the poller.

A run's end (tasks/worker/completion.py) records its event in the outbox (tasks/webhooks/outbox.py) already
claimed for a lease, and publishes `toolrunner.webhooks.deliver` on the `webhooks` queue at once: a worker started
with `-Q webhooks` makes the attempt, outside every run's slot. Retries are no Celery countdown (a countdown
message sits unacked in one worker's memory): each worker's main process polls the outbox's due set every
TOOLRUNNER_WEBHOOK_POLL_SECONDS, claims what is due and publishes its attempt. An attempt whose message or worker
was lost leaves its event claimed until the lease lapses; then the poller sends it again, with the same id.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from functools import cache
from typing import Any

import kombu.exceptions
import redis
from celery import Celery
from celery.signals import celeryd_after_setup

from tasks.webhooks import endpoint, event, outbox
from tasks.webhooks.delivery import Delivering, Report, attempt
from tasks.worker import role
from tasks.worker.app import app
from tasks.worker.metrics import metrics

logger = logging.getLogger(__name__)

QUEUE = role.WEBHOOKS_QUEUE
DELIVER_TASK = "toolrunner.webhooks.deliver"
POLL_BATCH = 500


@cache
def delivering() -> Delivering:
    """This process's way of delivering, from the settings (once)."""
    return Delivering.from_settings(app.settings)


def emit(celery: Celery, redis_client: redis.Redis, how: Delivering, found: event.Event) -> bool:
    """Record an event when its tenant has an enabled endpoint, and ask for its first attempt now; False when
    there is nothing to deliver to, or the event was recorded before (a run's end seen again)."""
    target = endpoint.get(found.tenant, connection=redis_client)
    if target is None or target.disabled:
        return False
    token = int(how.clock() * 1000) + how.lease_ms  # born claimed: the message below holds it
    if not outbox.add(redis_client, found, due_ms=token, ttl=how.pending_ttl()):
        return False
    try:
        celery.send_task(DELIVER_TASK, [found.id, token], queue=QUEUE)
    except (kombu.exceptions.OperationalError, redis.RedisError) as exc:
        logger.warning("webhook event=%s not published (%s): the poller sends it once its lease lapses", found.id, exc)
    return True


def emit_result(celery: Celery, redis_client: redis.Redis, result: Mapping[str, Any]) -> None:
    """The event of a finished run (never a chunk's: the caller knows); a Redis error is logged, never fails it."""
    _emitting(celery, redis_client, lambda how: event.for_result(result, how.clock()))


def emit_end(celery: Celery, redis_client: redis.Redis, task_id: str, tool: str, tenant: str, run_id: str,
             status: str, reason: str) -> None:  # fmt: skip
    """The event of a run that ended with no result (`status` cancelled or error; never a chunk's)."""
    _emitting(
        celery, redis_client, lambda how: event.for_end(task_id, tool, tenant, run_id, status, reason, how.clock())
    )


def _emitting(celery: Celery, redis_client: redis.Redis, make: Any) -> None:
    how = delivering()
    try:
        emit(celery, redis_client, how, make(how))
    except redis.RedisError as exc:
        logger.error("webhook event not recorded: %s", exc)


@app.task(name=DELIVER_TASK, ignore_result=True, acks_late=True)
def deliver(event_id: str, token: int) -> None:
    """One attempt of one event, if `token` still holds its claim (a stale copy of this message does nothing)."""
    count(attempt(app.redis, delivering(), event_id, token))


def count(report: Report | None) -> None:
    """An attempt in the metrics."""
    found = metrics()
    if report is None or found is None:
        return
    found.webhook_deliveries.labels(report.outcome).inc()
    if report.dead_letter:
        found.webhook_dead_letters.inc()
    if report.lag_seconds is not None:
        found.webhook_lag.observe(report.lag_seconds)


def poll(celery: Celery, redis_client: redis.Redis, how: Delivering) -> int:
    """Claim the events due now and publish their attempts; how many.

    Nothing while the queue already holds a batch: no webhook worker is taking them (none runs, or they lag), and
    publishing again each lease would only pile up copies. The events stay due, unclaimed, and lose nothing.
    """
    if redis_client.llen(QUEUE) >= POLL_BATCH:
        return 0
    now_ms = int(how.clock() * 1000)
    sent = 0
    for event_id in outbox.due(redis_client, now_ms, POLL_BATCH):
        token = outbox.claim(redis_client, event_id, now_ms, how.lease_ms)
        if token is not None:
            celery.send_task(DELIVER_TASK, [event_id, token], queue=QUEUE)
            sent += 1
    return sent


def _loop(stop: threading.Event) -> None:
    client = redis.Redis.from_url(app.settings.broker)
    how = delivering()
    while not stop.wait(app.settings.webhook_poll_seconds):
        with contextlib.suppress(redis.RedisError, kombu.exceptions.OperationalError):  # Redis away: next round
            poll(app, client, how)


@celeryd_after_setup.connect
def _start(sender: str | None = None, **_: Any) -> None:
    """In the worker's main process: a malformed webhook setting stops the worker; then poll until it exits."""
    try:
        delivering()
    except (ValueError, OSError) as exc:  # a malformed allowance; a CA bundle that is missing or no PEM (SSLError)
        raise SystemExit(f"toolrunner: refusing to start: webhooks: {exc}") from exc
    threading.Thread(target=_loop, args=(threading.Event(),), daemon=True, name="webhook-poller").start()
    logger.info("webhook poller every %gs (worker %s)", app.settings.webhook_poll_seconds, sender)


__all__ = ["DELIVER_TASK", "QUEUE", "deliver", "emit", "emit_end", "emit_result", "poll"]
