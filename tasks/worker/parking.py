"""Parked runs: a task message acked and kept in Redis until it may run, then published again with its own id.

A parked run is not an unacked message: no visibility timeout can deliver it again and no delivery counter
sees it. It lives as an envelope (task name, arguments, queue) in one hash, and its id sits in exactly one
waiting list: a tenant's slot queue (fair share) or an identical run's waiters (the result cache).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from celery import Celery, Task

from tasks.worker import keys

logger = logging.getLogger(__name__)


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
    expires: str | None = None  # the producer's expiry (ISO 8601), kept so a stale parked run never starts
    time_limits: tuple[float | None, float | None] = (None, None)  # the producer's (hard, soft) time limits
    retries: int = 0  # the task's own retries (an unreachable engine) so far: not deaths of a worker
    # Host politeness (lua/common.lua): the run's host keys as the scripts read them (HostKey.wire), the rate its
    # request asks for (0: none) and the least its tool can be told (1 for tools that take whole numbers).
    hosts: list[list[Any]] = field(default_factory=list)
    rate: float = 0.0
    min_rate: float = 0.0
    worker: str = ""  # the worker that parked it ('' when a backlog drain did): a cancel's event is sent as it

    def to_json(self) -> str:
        """The envelope as stored in the parked hash."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        """An envelope read back from the parked hash. Fields this release does not know are left out: a newer
        worker of a rolling deploy may have parked it (the Lua scripts read the fields they need themselves)."""
        fields = json.loads(raw)
        hard, soft = fields.pop("time_limits", None) or (None, None)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in fields.items() if k in known}, time_limits=(hard, soft))


def envelope_of(
    task: Task, tenant_id: str, tool: str, *, hosts: list[list[Any]] | None = None, rate: float = 0.0,
    min_rate: float = 0.0,
) -> Envelope:  # fmt: skip
    """The envelope of the message this task is running (with the run's host keys, when politeness applies)."""
    expires = task.request.expires
    return Envelope(
        task.request.id, task.name, list(task.request.args or ()), dict(task.request.kwargs or {}),
        queue_of(task), tenant_id, tool,
        expires=expires.isoformat() if hasattr(expires, "isoformat") else expires,
        time_limits=limits(task.request.timelimit), retries=int(task.request.retries or 0),
        hosts=hosts or [], rate=rate, min_rate=min_rate, worker=task.request.hostname or "",
    )  # fmt: skip


def queue_of(task: Task) -> str:
    """The queue the message this task is running came from (the app's default when the broker does not say)."""
    return str((task.request.delivery_info or {}).get("routing_key") or task.app.conf.task_default_queue)


def limits(timelimit: object) -> tuple[float | None, float | None]:
    """A message's (hard, soft) time limits as Celery carries them: a pair, or nothing."""
    if isinstance(timelimit, list | tuple) and len(timelimit) == 2:
        hard, soft = timelimit
        return (float(hard) if hard is not None else None, float(soft) if soft is not None else None)
    return (None, None)


def publish(app: Celery, envelopes: Iterable[Envelope]) -> None:
    """Publish parked runs again under their own task ids."""
    for envelope in envelopes:
        hard, soft = envelope.time_limits
        app.send_task(
            envelope.task, envelope.args, envelope.kwargs, task_id=envelope.task_id, queue=envelope.queue,
            expires=envelope.expires, time_limit=hard, soft_time_limit=soft, retries=envelope.retries,
        )  # fmt: skip
        logger.info(
            "dispatched parked run task=%s tenant=%s tool=%s", envelope.task_id, envelope.tenant_id, envelope.tool
        )


def dispatch(app: Celery, redis_client: redis.Redis, task_ids: Iterable[str]) -> None:
    """Publish picked runs again under their own ids, each marked sent once its message is on the broker."""
    for envelope in load(redis_client, task_ids):
        publish(app, [envelope])
        redis_client.zrem(keys.UNSENT(), envelope.task_id)


def load(redis_client: redis.Redis, task_ids: Iterable[str]) -> list[Envelope]:
    """The envelopes of these parked runs (ids no longer parked are skipped)."""
    ids = list(task_ids)
    if not ids:
        return []
    raws = redis_client.hmget(keys.PARKED(), ids)
    return [Envelope.from_json(raw) for raw in raws if raw is not None]
