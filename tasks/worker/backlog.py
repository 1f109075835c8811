"""Draining a backlog: waiting run messages leave the Celery queue for their tenants' waiting lists.

Without it, every worker slot is busy running the head of the queue, nobody reads further, and a tenant that
queued 100 runs keeps every slot until they are all taken: FIFO. So whenever a run ends or is admitted with
messages queued behind it, the worker moves those messages (oldest first, up to DRAIN_BATCH at once) into the
waiting lists, where the next free slots are given round-robin across tenants. Each move is atomic in Redis
(the message leaves the queue and its envelope is parked in one script), so no run is lost or doubled.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery

from config import Settings
from tasks.errors import TaskIdentityError
from tasks.service import Stage
from tasks.worker import luascript, parking
from tasks.worker.delivery import Delivery, claim_identity

logger = logging.getLogger(__name__)

DRAIN_BATCH = 500  # messages read per drain: a 100-run backlog leaves the queue in one go (~20 ms measured)
RUN_TASK = "toolrunner.run_tool"
TOOL_TASK_PREFIX = "toolrunner.tools."


@dataclass(frozen=True)
class Queued:
    """A run message read from the queue: its raw bytes (to remove exactly it), run and envelope."""

    raw: bytes | str
    delivery: Delivery
    envelope: parking.Envelope


def read_message(raw: bytes | str, queue: str) -> Queued | None:
    """The run a raw kombu message on the Redis transport asks for, or None for anything else (left alone)."""
    try:
        message = json.loads(raw)
        headers, properties = message["headers"], message["properties"]
        if message.get("content-type") != "application/json" or headers.get("eta") or headers.get("retries"):
            return None  # scheduled or retried messages keep their Celery semantics: not ours to move
        body = message["body"]
        decoded = base64.b64decode(body) if properties.get("body_encoding") == "base64" else str(body).encode()
        args, kwargs, _ = json.loads(decoded)
        return _queued(raw, str(headers["task"]), str(headers["id"]), list(args), dict(kwargs), queue)
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _queued(
    raw: bytes | str, task: str, task_id: str, args: list[Any], kwargs: dict[str, Any], queue: str
) -> Queued | None:
    if task == RUN_TASK:
        names = ["tool", "tenant_id", "run_id"]
    elif task.startswith(TOOL_TASK_PREFIX):
        names, kwargs = ["tenant_id", "run_id"], {"tool": task.removeprefix(TOOL_TASK_PREFIX), **kwargs}
    else:
        return None
    bound = {**dict(zip(names, args, strict=False)), **kwargs}
    tool, tenant, run_id = (str(bound[k]) for k in ("tool", "tenant_id", "run_id"))
    envelope = parking.Envelope(task_id, task, args, kwargs if task == RUN_TASK else _without_tool(kwargs), queue,
                                tenant, tool, waiting_in=f"{parking.PREFIX}wait:{tenant}")  # fmt: skip
    return Queued(raw, Delivery(task_id, tool, tenant, run_id), envelope)


def _without_tool(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k != "tool"}


def drain(
    celery_app: Celery, redis_client: redis.Redis, settings: Settings, queue: str, batch: int = DRAIN_BATCH
) -> int:
    """Park the run messages waiting in `queue` (oldest first) in their tenants' lists; return how many moved."""
    try:
        raws = redis_client.lrange(queue, -batch, -1)
        found = [q for q in (read_message(raw, queue) for raw in reversed(raws)) if q is not None]
        reply = _park(redis_client, queue, found) if found else []
    except redis.RedisError as exc:  # only an optimisation: the messages stay queued and are consumed in order
        logger.warning("could not drain queue=%s: %s", queue, exc)
        return 0
    ahead = {luascript.text(reply[i]): int(reply[i + 1]) for i in range(0, len(reply), 2)}
    for queued in found:
        if queued.envelope.task_id in ahead:
            _report_waiting(celery_app, redis_client, settings, queued, ahead[queued.envelope.task_id])
    if ahead:
        logger.info("moved %d waiting runs from queue=%s to their tenants' lists", len(ahead), queue)
    return len(ahead)


def _park(redis_client: redis.Redis, queue: str, found: list[Queued]) -> list[bytes | int]:
    args: list[str | bytes | int] = [queue]
    for queued in found:
        args += [queued.raw, queued.envelope.task_id, queued.envelope.tenant_id, queued.envelope.to_json()]
    return luascript.run(redis_client, "drain", *args)


def _report_waiting(
    celery_app: Celery, redis_client: redis.Redis, settings: Settings, queued: Queued, ahead: int
) -> None:
    """Store PROGRESS waiting_for_slot for a drained run, once its id is known to be this run's."""
    delivery = queued.delivery
    try:
        claim_identity(redis_client, delivery, ttl=identity_ttl(settings))
    except TaskIdentityError:
        return  # the id names another run: its task refuses it when dispatched; write nothing under it
    info = {"stage": Stage.WAITING_FOR_SLOT.value, "tool": delivery.tool, "tenant_id": delivery.tenant_id,
            "run_id": delivery.run_id, "ahead": ahead}  # fmt: skip
    celery_app.backend.store_result(delivery.task_id, info, "PROGRESS")


def identity_ttl(settings: Settings) -> int:
    """How long a task id stays bound to its run: as run.py binds it when the run's task starts."""
    return settings.visibility_timeout * (settings.max_redeliveries + 2) + settings.result_expires_seconds
