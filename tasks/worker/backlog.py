"""Draining a backlog: waiting run messages leave the Celery queue for their tenants' waiting lists.

Without it, every worker slot is busy running the head of the queue, nobody reads further, and a tenant that
queued 100 runs keeps every slot until they are all taken: FIFO. So whenever a run ends or is admitted with
messages queued behind it, the worker moves those messages (oldest first, up to DRAIN_BATCH at once) into the
waiting lists, where the next free slots are given round-robin across tenants. Each move is atomic in Redis
(the message leaves the queue and its envelope is parked in one script), so no run is lost or doubled.

Only a run that would be accepted is parked: its request passes plan_run (the tenant id and tool name build
key names, so they are checked before any key is touched), its targets are in its tenant's scope (names are
resolved later, at admission: a drain does not wait on DNS) and its task id is bound to it. Anything else stays
in the queue, where the worker that takes it fails it at once (bad input) or refuses it (an id of another run).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import redis
from celery import Celery

from config import Settings
from tasks.errors import TaskIdentityError, TaskInputError
from tasks.scope.check import check
from tasks.scope.matcher import Scope
from tasks.scope.policy import checker, unresolved
from tasks.scope.store import Scopes
from tasks.service import RunPlan, RunRequest, Stage, plan_run
from tasks.service.intrusive import refuse_unless_opted_in
from tasks.service.plan import is_parent
from tasks.tools import ToolSpec, load_catalogue
from tasks.worker import keys, luascript, parking
from tasks.worker.delivery import Delivery, bind_run, claim_identity
from tasks.worker.limits import intrusive_allowed

logger = logging.getLogger(__name__)

DRAIN_BATCH = 500  # messages read per drain: a 100-run backlog leaves the queue in one go (~20 ms measured)
PARK_BATCH = 50  # messages parked per script call: 500 in one call held Redis 20-30 ms, 100 up to 12 (bench.scale)


@dataclass(frozen=True)
class Queued:
    """A run message read from the queue: its raw bytes (to remove exactly it), run and envelope."""

    raw: bytes | str
    delivery: Delivery
    envelope: parking.Envelope
    request: RunRequest


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
        return _queued(raw, headers, list(args), dict(kwargs), queue)
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _queued(
    raw: bytes | str, headers: dict[str, Any], args: list[Any], kwargs: dict[str, Any], queue: str
) -> Queued | None:
    task, task_id = str(headers["task"]), str(headers["id"])
    bound = bind_run(task, args, kwargs)
    if bound is None:
        return None
    request = RunRequest(
        bound["tool"], bound["tenant_id"], bound["run_id"], bound.get("params"), bound.get("files"), bound.get("chunk")
    )
    tool, tenant, run_id = (str(bound[k]) for k in ("tool", "tenant_id", "run_id"))
    expires = headers.get("expires")
    envelope = parking.Envelope(
        task_id, task, args, kwargs, queue, tenant, tool, waiting_in=keys.WAITING(tenant),
        expires=str(expires) if expires else None, time_limits=parking.limits(headers.get("timelimit")),
    )  # fmt: skip
    return Queued(raw, Delivery(task_id, tool, tenant, run_id), envelope, request)


def drain(
    celery_app: Celery, redis_client: redis.Redis, settings: Settings, queue: str, batch: int = DRAIN_BATCH
) -> int:
    """Park the run messages waiting in `queue` (oldest first) in their tenants' lists; return how many moved."""
    catalogue = getattr(celery_app, "catalogue", None) or load_catalogue(settings.extra_tool_modules)
    try:
        raws = redis_client.lrange(queue, -batch, -1)
        read = [q for q in (read_message(raw, queue) for raw in reversed(raws)) if q is not None]
        in_scope = _scope_check(celery_app, redis_client, settings)
        found = [q for q in read if _acceptable(redis_client, settings, catalogue, q, in_scope)]
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


def _scope_check(celery_app: Celery, redis_client: redis.Redis, settings: Settings) -> Callable[[RunPlan], None]:
    """The intrusive and scope steps' checks without resolving names: IntrusiveToolError or OutOfScopeError (both
    TaskInputError) for a refused run, which stays queued for its worker to refuse."""
    scopes = getattr(celery_app, "scopes", None) or Scopes(redis_client)
    names_unresolved = replace(getattr(celery_app, "scope_checker", None) or checker(settings), resolve=unresolved)
    enforced = settings.scope == "enforce"
    read: dict[str, Scope] = {}  # each tenant's scope read once per drain, however many of its runs it moves

    def in_scope(plan: RunPlan) -> None:
        if plan.spec.intrusive:
            refuse_unless_opted_in(plan.spec, plan.tenant_id, opted_in=intrusive_allowed(redis_client, plan.tenant_id))
        if enforced and plan.spec.targets is not None and plan.tenant_id not in read:
            read[plan.tenant_id] = scopes.of(plan.tenant_id)
        scope = (read[plan.tenant_id] if plan.spec.targets is not None else Scope()) if enforced else None
        network = plan.spec.network or settings.tool_network
        check(plan.spec, plan.params, plan.tenant_id, scope=scope, network=network, checker=names_unresolved)

    return in_scope


def _acceptable(
    redis_client: redis.Redis, settings: Settings, catalogue: Mapping[str, ToolSpec], queued: Queued,
    in_scope: Callable[[RunPlan], None],
) -> bool:  # fmt: skip
    """Whether the run would be accepted as it is: its request is valid and in scope, and its task id is (now)
    bound to it."""
    spec = catalogue.get(str(queued.request.tool))
    if spec is not None and is_parent(spec, queued.request.params):
        return False  # a parent takes no slot: the worker that takes it publishes its chunks, which are drained
    try:
        plan = plan_run(
            catalogue, queued.request, max_input_bytes=settings.max_input_bytes,
            max_timeout_seconds=settings.max_timeout_seconds,
        )  # fmt: skip
        in_scope(plan)
        claim_identity(redis_client, queued.delivery, ttl=settings.identity_ttl)
    except (TaskInputError, TaskIdentityError):
        return False
    return True


def _park(redis_client: redis.Redis, queue: str, found: list[Queued]) -> list[bytes | int]:
    """Move the messages found into their tenants' lists, PARK_BATCH per script call: each call is atomic (a message
    leaves the queue and is parked in one step), and none holds Redis for long."""
    reply: list[bytes | int] = []
    for start in range(0, len(found), PARK_BATCH):
        args: list[str | bytes | int] = [queue]
        for queued in found[start : start + PARK_BATCH]:
            args += [queued.raw, queued.envelope.task_id, queued.envelope.tenant_id, queued.envelope.to_json()]
        reply += luascript.run(redis_client, "drain", *args)
    return reply


def _report_waiting(
    celery_app: Celery, redis_client: redis.Redis, settings: Settings, queued: Queued, ahead: int
) -> None:
    """Store PROGRESS waiting_for_slot for a drained run (its id was bound to it before it was parked)."""
    delivery = queued.delivery
    info = {"stage": Stage.WAITING_FOR_SLOT.value, "tool": delivery.tool, "tenant_id": delivery.tenant_id,
            "run_id": delivery.run_id, "ahead": ahead}  # fmt: skip
    celery_app.backend.store_result(delivery.task_id, info, "PROGRESS")
