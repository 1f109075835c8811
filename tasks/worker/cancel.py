"""Cancelling a run by task id: persisted in Redis, so a worker that was not up when it was sent still sees it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import StrEnum

import kombu.exceptions
import redis
from celery import Celery, states
from celery.exceptions import TaskRevokedError

import isolation
from config import Settings
from tasks.audit import Kind
from tasks.worker import audit, backlog, chunks, completion, fairshare, keys, luascript, parking, webhooks
from tasks.worker.app import app
from tasks.worker.delivery import bind_run, bound_run, bound_tenant
from tasks.worker.monitor import announce_all_revoked, announce_revoked
from tasks.worker.parking import load

logger = logging.getLogger(__name__)

CANCELLED_EVENT_TASK = "toolrunner.webhooks.cancelled"
CANCELLED_EVENTS_TASK = "toolrunner.webhooks.cancelled_many"
AUDIT_CANCELLED_TASK = "toolrunner.audit.cancelled"


class Cancelled(StrEnum):
    """What a cancel did."""

    SENT = "sent"  # the run was started: it stops within seconds and ends REVOKED
    RECORDED = "recorded"  # the tenant's run is queued: it will never start
    UNKNOWN = "unknown"  # no run of this tenant's has this id (yet): recorded, a run later sent with it never starts
    ALREADY = "already"  # cancelled before: nothing more to do
    FINISHED = "finished"  # the run had already ended: nothing to cancel


@dataclass(frozen=True)
class CancelOutcome:
    """The outcome of a cancel and one line saying so."""

    task_id: str
    outcome: Cancelled
    message: str


def cancel_keys(task_id: str, tenant_id: str) -> list[str]:
    """The keys a run checks for a cancel of it: its tenant's, and one recorded by an older release."""
    return [keys.CANCEL(task_id, tenant_id), keys.LEGACY_CANCEL(task_id)]


def is_cancelled(redis_client: redis.Redis, task_id: str, tenant_id: str) -> bool:
    """Whether a cancel of this tenant's run `task_id` is recorded."""
    return bool(redis_client.exists(*cancel_keys(task_id, tenant_id)))


def record_cancel(redis_client: redis.Redis, task_id: str, tenant_id: str, ttl: int) -> bool:
    """Record a cancel of this tenant's run for `ttl` seconds; False when one was already recorded."""
    key = keys.CANCEL(task_id, tenant_id)
    return bool(redis_client.set(key, str(time.time()), nx=True, ex=ttl))


def cancel(
    celery: Celery, redis_client: redis.Redis, settings: Settings, task_id: str, tenant_id: str
) -> CancelOutcome:
    """Cancel the tenant's run `task_id` names, wherever it is: queued, parked, picked, running or not yet sent.

    A task id bound to another tenant's run is answered exactly as an id nobody has used, and nothing is done
    to that run: a cancel acts on the caller's own runs only. The cancel key (per task id and tenant) is what
    every worker checks before a run and once a second during it; for a run of this tenant's, Celery's own
    revoke (without terminate) is sent too, so a live worker drops a queued copy at once and marks it REVOKED.
    """
    isolation.validate_identifier("tenant_id", tenant_id)
    already = CancelOutcome(task_id, Cancelled.ALREADY, f"{task_id}: already cancelled")
    owner = bound_tenant(redis_client, task_id)
    if owner != tenant_id:
        # Nobody has published this id yet, or another tenant did (answered alike: a cancel acts on the caller's
        # own runs only). The cancel waits for this tenant's run: a revoke by id would reach whichever tenant's
        # run took the id first.
        recorded = record_cancel(redis_client, task_id, tenant_id, settings.identity_ttl)
        logger.info("cancel recorded for an unknown task=%s tenant=%s", task_id, tenant_id)
        return _unknown(task_id, tenant_id, recorded)
    state = celery.AsyncResult(task_id).state
    if chunks.stored(redis_client, task_id).get("state") in ("merging", "done"):
        said = f"{task_id}: every chunk has ended; its result is being merged or is stored: nothing to cancel"
        return CancelOutcome(task_id, Cancelled.FINISHED, said)
    if state in states.READY_STATES and state != states.REVOKED:
        return CancelOutcome(task_id, Cancelled.FINISHED, f"{task_id}: already finished ({state}); nothing to cancel")
    if not record_cancel(redis_client, task_id, tenant_id, settings.identity_ttl) or state == states.REVOKED:
        return already
    celery.control.revoke(task_id)
    if chunks.cancel_chunks(celery, redis_client, settings, task_id, tenant_id):
        announce_revoked(celery, task_id, None, chunks.CANCEL_REASON)
        _cancelled_event(celery, redis_client, task_id, chunks.CANCEL_REASON)
        return CancelOutcome(
            task_id, Cancelled.SENT, f"{task_id}: cancel sent to every chunk; they stop within seconds"
        )
    logger.info("cancel recorded task=%s tenant=%s state=%s", task_id, tenant_id, state)
    if _ended_parked(celery, redis_client, settings, task_id):
        return CancelOutcome(task_id, Cancelled.SENT, f"{task_id}: cancelled while it waited; it will not start")
    if state == states.PENDING:
        return CancelOutcome(task_id, Cancelled.RECORDED, f"{task_id}: cancel recorded; the queued run will not start")
    return CancelOutcome(task_id, Cancelled.SENT, f"{task_id}: cancel sent; the run stops within seconds")


def _ended_parked(celery: Celery, redis_client: redis.Redis, settings: Settings, task_id: str) -> bool:
    """End a cancelled run that is parked (waiting for a slot or an identical run) or picked and on its way; False
    when it is neither. Whatever fair share holds for it goes in one step, and it ends REVOKED here, in the backend
    and in Flower (no worker holds it to say so); a chunk's parent counts it. A message already published again
    finds the cancel and its done marker: it never starts."""
    parked = load(redis_client, [task_id])
    if not parked:
        return False
    fairshare.end_parked(celery, redis_client, task_id, settings)
    reason = "cancelled: cancelled while it waited"
    celery.backend.mark_as_revoked(task_id, reason)
    announce_revoked(celery, task_id, parked[0].worker or None, reason)
    message = bind_run(parked[0].task, parked[0].args, parked[0].kwargs)
    if message is not None:
        chunks.ended_unrun(celery, redis_client, settings, message, task_id, reason, status=chunks.CANCELLED)
    if message is not None and not message.get("chunk"):  # a chunk's cancel is its parent's business
        _cancelled_event(celery, redis_client, task_id, reason)
    return True


def _cancelled_event(celery: Celery, redis_client: redis.Redis, task_id: str, reason: str) -> None:
    """Ask a webhook worker for the run.cancelled event of a run this cancel ended itself (a parked run, a chunked
    run's parent). Not written here: a cancel runs in the API tier, whose Redis user may neither read tenants'
    endpoints (their secrets) nor write events a worker would sign (docs/redis-acl.md). A lost publish loses the
    event: logged."""
    try:
        celery.send_task(CANCELLED_EVENT_TASK, [task_id, reason], queue=webhooks.QUEUE)
    except (kombu.exceptions.OperationalError, redis.RedisError) as exc:
        logger.error("run.cancelled of task=%s not asked for: %s", task_id, exc)
    _audit_cancelled(celery, [task_id], reason)


def _cancelled_events(celery: Celery, task_ids: list[str], reason: str) -> None:
    """_cancelled_event for a batch of runs (`cancel --waiting`): one message for them all."""
    try:
        celery.send_task(CANCELLED_EVENTS_TASK, [task_ids, reason], queue=webhooks.QUEUE)
    except (kombu.exceptions.OperationalError, redis.RedisError) as exc:
        logger.error("run.cancelled of %d tasks not asked for: %s", len(task_ids), exc)
    _audit_cancelled(celery, task_ids, reason)


def _audit_cancelled(celery: Celery, task_ids: list[str], reason: str) -> None:
    """Ask a run worker (the default queue: run workers keep the audit; the API tier holds no audit key) to record
    the `run.cancelled` of runs this cancel ended itself. A lost publish loses the audit event: logged."""
    try:
        celery.send_task(AUDIT_CANCELLED_TASK, [task_ids, reason])
    except (kombu.exceptions.OperationalError, redis.RedisError) as exc:
        logger.error("the audit of %d cancelled tasks not asked for: %s", len(task_ids), exc)


@app.task(name=AUDIT_CANCELLED_TASK, ignore_result=True, acks_late=True)
def audit_cancelled(task_ids: list[str], reason: str) -> None:
    """In a run worker: the audit's run.cancelled of each run the ids are bound to whose cancel is recorded (a
    message nobody's cancel sent records nothing)."""
    for task_id in task_ids:
        bound = bound_run(app.redis, task_id)
        if bound is not None and is_cancelled(app.redis, task_id, bound[1]):
            tool, tenant, run_id = bound
            audit.record(Kind.RUN_CANCELLED, tenant=tenant, run_id=run_id, task_id=task_id, tool=tool, reason=reason)


@app.task(name=CANCELLED_EVENTS_TASK, ignore_result=True, acks_late=True)
def cancelled_events(task_ids: list[str], reason: str) -> None:
    """cancelled_event for each of a batch of runs."""
    for task_id in task_ids:
        cancelled_event(task_id, reason)


@app.task(name=CANCELLED_EVENT_TASK, ignore_result=True, acks_late=True)
def cancelled_event(task_id: str, reason: str) -> None:
    """In a webhook worker: the run.cancelled event of the run the id is bound to, if a cancel of it is recorded
    (a message nobody's cancel sent makes nothing)."""
    bound = bound_run(app.redis, task_id)
    if bound is not None and is_cancelled(app.redis, task_id, bound[1]):
        completion.cancelled(app, app.redis, task_id, *bound, reason)


def _unknown(task_id: str, tenant_id: str, recorded: bool) -> CancelOutcome:
    done = "cancel recorded" if recorded else "a cancel was already recorded"
    said = f"{task_id}: no run of tenant {tenant_id} with this id was seen; {done} for {tenant_id}: "
    return CancelOutcome(task_id, Cancelled.UNKNOWN, said + "a run it sends with this id will not start")


CANCEL_BATCH = 100  # waiting runs ended per script call: 500 held Redis up to 33 ms, 100 about 7 (bench.scale)


def cancel_waiting(celery: Celery, redis_client: redis.Redis, settings: Settings, tenant_id: str) -> int:
    """Cancel every run of a tenant's that waits for a slot (parked in its list, or queued before this call: the
    queue is drained into the lists first); return how many. Running runs go on (cancel them by task id).

    Each batch leaves the list and its parked state in one script (cancel_waiting.lua), its cancels are recorded
    (a copy of a message that was on its way never starts), and each run ends REVOKED in the backend and in
    Flower; a chunked run with chunks waiting is cancelled whole, as `cancel` of its parent does.
    """
    isolation.validate_identifier("tenant_id", tenant_id)
    queue = str(celery.conf.task_default_queue)
    for _ in range(-(-redis_client.llen(queue) // backlog.DRAIN_BATCH)):  # what was queued before this call
        if not backlog.drain(celery, redis_client, settings, queue):
            break
    reason, total = "cancelled: every waiting run of its tenant", 0
    while reply := luascript.run(redis_client, "cancel_waiting", tenant_id, CANCEL_BATCH, settings.identity_ttl * 1000):
        envelopes = [parking.Envelope.from_json(reply[i + 1]) for i in range(0, len(reply), 2)]  # type: ignore[arg-type]
        _ended_waiting(celery, redis_client, settings, tenant_id, envelopes, reason)
        total += len(envelopes)
    logger.info("cancelled %d waiting runs of tenant=%s", total, tenant_id)
    return total


def _ended_waiting(
    celery: Celery, redis_client: redis.Redis, settings: Settings, tenant_id: str, envelopes: list[parking.Envelope],
    reason: str,
) -> None:  # fmt: skip
    """What follows a batch of waiting runs ended in Redis: their cancels recorded (a copy of a message on its way
    never starts), REVOKED in the backend and in Flower, their run.cancelled events; a waiting chunk's parent is
    cancelled as a whole (its other chunks too, and no next one is published in its place)."""
    with redis_client.pipeline(transaction=False) as pipe:
        for envelope in envelopes:
            pipe.set(keys.CANCEL(envelope.task_id, tenant_id), str(time.time()), nx=True, ex=settings.identity_ttl)
        pipe.execute()
    _mark_all_revoked(celery, [e.task_id for e in envelopes], reason)
    announce_all_revoked(celery, [(e.task_id, e.worker or None) for e in envelopes], reason)
    own, parents = [], set()  # a chunk's parent is cancelled whole (all its chunks, wherever they are)
    for envelope in envelopes:
        message = bind_run(envelope.task, envelope.args, envelope.kwargs)
        chunk = chunks.ChunkOf.read(message.get("chunk"), envelope.task_id) if message else None
        if chunk is not None:
            parents.add(chunk.parent)
        elif message is not None:
            own.append(envelope.task_id)
    if own:
        _cancelled_events(celery, own, reason)
    for parent in sorted(parents):
        cancel(celery, redis_client, settings, parent, tenant_id)


def _mark_all_revoked(celery: Celery, task_ids: list[str], reason: str) -> None:
    """Store REVOKED for runs that never started, as `backend.mark_as_revoked` does for one (the same meta, set with
    the result expiry and published to whoever waits in `.get()`), in one round trip rather than two per run."""
    backend = celery.backend
    result = backend.prepare_exception(TaskRevokedError(reason))
    meta = backend._get_result_meta(result=result, state=states.REVOKED, traceback=None, request=None)
    with backend.client.pipeline(transaction=False) as pipe:
        for task_id in task_ids:
            key, value = backend.get_key_for_task(task_id), backend.encode({**meta, "task_id": task_id})
            pipe.setex(key, backend.expires, value)
            pipe.publish(key, value)
        pipe.execute()


def cancel_run(task_id: str, *, tenant_id: str) -> CancelOutcome:
    """Cancel one of a tenant's runs by its task id through this process's app, Redis and settings."""
    return cancel(app, app.redis, app.settings, task_id, tenant_id)


def cancel_waiting_runs(*, tenant_id: str) -> int:
    """Cancel every waiting run of a tenant's through this process's app, Redis and settings; return how many."""
    return cancel_waiting(app, app.redis, app.settings, tenant_id)
