"""Parked runs: a task message acked and kept in Redis until it may run, then published again with its own id.

A parked run is not an unacked message: no visibility timeout can deliver it again and no delivery counter
sees it. It lives as an envelope (task name, arguments, queue) in one hash, and its id sits in exactly one
waiting list: a tenant's slot queue (fair share) or an identical run's waiters (the result cache).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import redis
from celery import Celery, Task

logger = logging.getLogger(__name__)

PREFIX = "toolrunner:fs:"
PARKED = PREFIX + "parked"  # hash: task id -> envelope JSON

_DISCARD = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local envelope = cjson.decode(raw)
-- Only a run still in its waiting list is parked; one already dispatched has a message again.
if redis.call('LREM', envelope['waiting_in'], 1, ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class Envelope:
    """What it takes to publish a parked run again: its task, arguments and queue, and the list it waits in."""

    task_id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    tenant_id: str
    tool: str
    waiting_in: str = ""

    def to_json(self) -> str:
        """The envelope as stored in the parked hash."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        """An envelope read back from the parked hash."""
        return cls(**json.loads(raw))


def envelope_of(task: Task, tenant_id: str, tool: str) -> Envelope:
    """The envelope of the message this task is running."""
    info = task.request.delivery_info or {}
    return Envelope(
        task.request.id, task.name, list(task.request.args or ()), dict(task.request.kwargs or {}),
        str(info.get("routing_key") or task.app.conf.task_default_queue), tenant_id, tool,
    )  # fmt: skip


def publish(app: Celery, envelopes: Iterable[Envelope]) -> None:
    """Publish parked runs again under their own task ids."""
    for envelope in envelopes:
        app.send_task(envelope.task, envelope.args, envelope.kwargs, task_id=envelope.task_id, queue=envelope.queue)
        logger.info(
            "dispatched parked run task=%s tenant=%s tool=%s", envelope.task_id, envelope.tenant_id, envelope.tool
        )


def load(redis_client: redis.Redis, task_ids: Iterable[str]) -> list[Envelope]:
    """The envelopes of these parked runs (ids no longer parked are skipped)."""
    ids = list(task_ids)
    if not ids:
        return []
    raws = redis_client.hmget(PARKED, ids)
    return [Envelope.from_json(raw) for raw in raws if raw is not None]


def discard_parked(redis_client: redis.Redis, task_id: str) -> bool:
    """Remove a parked run (waiting for a slot or for an identical run) so it never starts; True if it was parked.

    For cancel: a run that is parked has no message anywhere, so removing its envelope is all it takes. A run
    already dispatched (its message published again) is not parked any more and returns False.
    """
    return bool(redis_client.eval(_DISCARD, 1, PARKED, task_id))
