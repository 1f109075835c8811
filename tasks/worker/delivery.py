"""Exactly-once runs over an at-least-once queue: the run lock, its heartbeat and the delivery counter."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from config import Settings
from isolation import Label
from tasks.errors import RedeliveryLimitError, RunLockTimeoutError, TaskIdentityError
from tasks.service import RunResult
from tasks.worker import keys
from tasks.worker.heartbeat import renewing

logger = logging.getLogger(__name__)

RUN_LOCK_TTL = 20


@dataclass(frozen=True)
class Delivery:
    """The run a task message asks for: its id and what it runs for whom.

    Locks, counters and leftovers are keyed on all of it, not on the bare task id: an id a caller reuses
    for another tenant's run must never reach the first run's lock, volumes or result.
    """

    task_id: str
    tool: str
    tenant_id: str
    run_id: str

    @property
    def key(self) -> str:
        """The Redis key suffix of this delivery's lock and counter."""
        return f"{self.task_id}:{self.tool}:{self.tenant_id}:{self.run_id}"

    @property
    def labels(self) -> dict[str, str]:
        """The (unprefixed) labels of this run's volumes and containers."""
        return {Label.TASK: self.task_id, Label.TOOL: self.tool, Label.TENANT: self.tenant_id, Label.RUN: self.run_id}

    def check(self, stored: Mapping[str, Any]) -> None:
        """Raise TaskIdentityError when a stored result or progress report of this id belongs to another run."""
        theirs = {k: stored.get(k) for k in ("tool", "tenant_id", "run_id") if k in stored}
        ours = {"tool": self.tool, "tenant_id": self.tenant_id, "run_id": self.run_id}
        clash = {k: v for k, v in theirs.items() if v != ours[k]}
        if clash:
            raise TaskIdentityError(
                f"task id {self.task_id} already stands for another run ({', '.join(sorted(clash))} differ): "
                "a task id names one run; send this request with a fresh id"
            )


RUN_TASK = "toolrunner.run_tool"
TOOL_TASK_PREFIX = "toolrunner.tools."


def bind_run(task: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The named arguments of a run task's message (tool, tenant_id, run_id, params, files), or None for any
    other task. Pure: whatever the producer sent, unvalidated (a missing argument is simply absent)."""
    if task == RUN_TASK:
        names = ["tool", "tenant_id", "run_id", "params", "files"]
        extra: dict[str, Any] = {}
    elif task.startswith(TOOL_TASK_PREFIX):
        names, extra = ["tenant_id", "run_id", "params", "files"], {"tool": task.removeprefix(TOOL_TASK_PREFIX)}
    else:
        return None
    return {**extra, **dict(zip(names, args, strict=False)), **kwargs}


def claim_identity(redis_client: redis.Redis, delivery: Delivery, ttl: int) -> None:
    """Bind the task id to this run for `ttl` seconds; raise TaskIdentityError if it is bound to another.

    One atomic SET NX, checked before the task writes any state: the stored state itself cannot say whose
    id it is (and no STARTED state is written for a message before this check: task_track_started is off).
    """
    key = keys.IDENTITY(delivery.task_id)
    if redis_client.set(key, delivery.key, nx=True, ex=ttl):
        return
    raw = redis_client.get(key)
    if raw is not None:
        tool, tenant_id, run_id = _bound_run(raw)
        delivery.check({"tool": tool, "tenant_id": tenant_id, "run_id": run_id})


def bound_tenant(redis_client: redis.Redis, task_id: str) -> str | None:
    """The tenant whose run the task id is bound to, or None while nobody has published it."""
    raw = redis_client.get(keys.IDENTITY(task_id))
    if raw is None:
        return None
    return _bound_run(raw)[1]


def bound_run(redis_client: redis.Redis, task_id: str) -> tuple[str, str, str] | None:
    """(tool, tenant, run) the task id is bound to, or None while nobody has published it."""
    raw = redis_client.get(keys.IDENTITY(task_id))
    return None if raw is None else _bound_run(raw)


def _bound_run(raw: bytes | str) -> tuple[str, str, str]:
    """(tool, tenant, run) of a stored binding "<task id>:<tool>:<tenant>:<run>" (a task id may hold ':')."""
    _, tool, tenant_id, run_id = str(raw.decode() if isinstance(raw, bytes) else raw).rsplit(":", 3)
    return tool, tenant_id, run_id


@contextmanager
def run_lock(redis_client: redis.Redis, key: str, wait: float) -> Iterator[None]:
    """Hold a Redis lock on the task id while it runs, so two deliveries of one message never overlap.

    A broker outage can hand a running task's message out again; the second copy waits here for the
    first instead of running beside it. The lock is short-lived and renewed by a heartbeat thread, so a
    copy whose process was killed releases it within RUN_LOCK_TTL seconds.
    """
    # thread_local=False: the heartbeat thread renews the lock, so the token must not live in this thread only.
    lock = redis_client.lock(keys.RUNNING(key), timeout=RUN_LOCK_TTL, blocking_timeout=wait, thread_local=False)
    if not lock.acquire():
        raise RunLockTimeoutError(f"task {key} was still held by another delivery after {wait}s")
    try:
        with renewing(RUN_LOCK_TTL / 4, lock.reacquire, f"the run lock {lock.name}"):
            yield
    finally:
        release_lock(lock)


def release_lock(lock: Any) -> None:
    """Release a redis-py lock; one that expired meanwhile, or a Redis that is away, is logged, not raised."""
    try:
        lock.release()
    except redis.RedisError as exc:  # LockError (expired, taken over) or a connection error
        logger.warning("could not release the lock %s: %s", lock.name, exc)


def stored_success(backend: Any, delivery: Delivery) -> RunResult | None:
    """The stored result of a delivery of this run that already succeeded, if any.

    What is stored under the id must be this run's: a result or progress report of another run refuses
    the request (TaskIdentityError) instead of handing one tenant another's findings.
    """
    meta = backend.get_task_meta(delivery.task_id)
    stored = meta.get("result")
    if isinstance(stored, dict):
        delivery.check(stored)
        if meta.get("status") == "SUCCESS":
            return RunResult.from_dict(stored)
    return None


def count_delivery(redis_client: redis.Redis, settings: Settings, key: str, retries: int) -> int:
    """Count this delivery in Redis (which has no delivery count); refuse past the redelivery cap.

    `retries` are the task's own retries (an unreachable engine), which are deliveries too but not
    deaths of a worker.
    """
    with redis_client.pipeline() as pipe:
        pipe.incr(keys.DELIVERIES(key))
        # Long enough to outlive every redelivery (each waits up to a visibility timeout) plus the result.
        ttl = settings.redelivery_window * (settings.max_redeliveries + 2) + settings.result_expires_seconds
        pipe.expire(keys.DELIVERIES(key), ttl)
        count = int(pipe.execute()[0]) - retries
    if count > settings.max_redeliveries + 1:
        raise RedeliveryLimitError(
            f"task {key} was delivered {count} times and its worker died each time "
            f"(killed or out of memory?); giving up after {settings.max_redeliveries} redeliveries"
        )
    return count
