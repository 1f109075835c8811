"""Cancelling a run by task id: persisted in Redis, so a worker that was not up when it was sent still sees it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import StrEnum

import redis
from celery import Celery, states

from config import Settings
from tasks.worker import fairshare
from tasks.worker.app import app
from tasks.worker.parking import load, publish

logger = logging.getLogger(__name__)

CANCEL_KEY = "toolrunner:cancel:{}"


class Cancelled(StrEnum):
    """What a cancel did."""

    SENT = "sent"  # the run was started: it stops within seconds and ends REVOKED
    RECORDED = "recorded"  # queued, or an id nobody has seen yet: it will never start
    ALREADY = "already"  # cancelled before: nothing more to do
    FINISHED = "finished"  # the run had already ended: nothing to cancel


@dataclass(frozen=True)
class CancelOutcome:
    """The outcome of a cancel and one line saying so."""

    task_id: str
    outcome: Cancelled
    message: str


def is_cancelled(redis_client: redis.Redis, task_id: str) -> bool:
    """Whether a cancel for this task id is recorded."""
    return bool(redis_client.exists(CANCEL_KEY.format(task_id)))


def record_cancel(redis_client: redis.Redis, task_id: str, ttl: int) -> bool:
    """Record a cancel for `ttl` seconds; False when one was already recorded."""
    return bool(redis_client.set(CANCEL_KEY.format(task_id), str(time.time()), nx=True, ex=ttl))


def cancel(celery: Celery, redis_client: redis.Redis, settings: Settings, task_id: str) -> CancelOutcome:
    """Cancel the run `task_id` names, wherever it is: queued, prefetched, running or not yet sent.

    The cancel key is what every worker checks before a run and once a second during it; Celery's own
    revoke (without terminate) is sent too, so a live worker drops a queued copy at once and marks it REVOKED.
    """
    state = celery.AsyncResult(task_id).state
    if state in states.READY_STATES and state != states.REVOKED:
        return CancelOutcome(task_id, Cancelled.FINISHED, f"{task_id}: already finished ({state}); nothing to cancel")
    if not record_cancel(redis_client, task_id, settings.identity_ttl) or state == states.REVOKED:
        return CancelOutcome(task_id, Cancelled.ALREADY, f"{task_id}: already cancelled")
    celery.control.revoke(task_id)
    logger.info("cancel recorded task=%s state=%s", task_id, state)
    if load(redis_client, [task_id]):
        # Parked (waiting for a slot or an identical run) or picked and on its way: whatever fair share holds
        # for it goes in one step, and it ends REVOKED here. A message already published again finds the
        # cancel and its done marker, so it never starts.
        publish(celery, load(redis_client, fairshare.abandon(redis_client, task_id, settings)))
        celery.backend.mark_as_revoked(task_id, "cancelled: cancelled while it waited")
        return CancelOutcome(task_id, Cancelled.SENT, f"{task_id}: cancelled while it waited; it will not start")
    if state == states.PENDING:
        return CancelOutcome(
            task_id, Cancelled.RECORDED, f"{task_id}: cancel recorded; the run is queued or unknown and will not start"
        )
    return CancelOutcome(task_id, Cancelled.SENT, f"{task_id}: cancel sent; the run stops within seconds")


def cancel_run(task_id: str) -> CancelOutcome:
    """Cancel a run by its task id through this process's app, Redis and settings."""
    return cancel(app, app.redis, app.settings, task_id)
