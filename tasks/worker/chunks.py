"""Chunked runs: a parent whose chunks are ordinary runs on any worker, its state in Redis, merged once all end.

A run with more targets than its tool's chunk holds (tasks/tools/chunking.py) becomes a parent. Its worker
writes the parent's record (CHUNKS), publishes one message per chunk under a task id derived from the parent's
(`chunk_task_id`), and lets go of the message: the parent holds no slot, no tenant lease and no host lease. Each
chunk is a run like any other (plan, scope, cache, fair share, host leases, its own volumes), taken by any worker.
When a chunk ends, its outcome goes into the parent's record once (lua/chunk_done.lua: a duplicate changes
nothing); a failed or timed-out chunk first runs again alone, under a new id, up to TOOLRUNNER_CHUNK_RETRIES
times. The chunk that completes the parent publishes its merge (tasks/worker/merge.py), which streams the chunks'
findings into the parent's findings.jsonl and stores the parent's result under its task id.

Nothing lives in one worker's memory: a parent whose worker died while publishing is delivered again and goes
on from the chunks it had not published (`sent`); a chunk whose worker died is delivered again like any run;
a merge whose publisher died is asked again by the safety net (MERGING). Celery's chord is not used: on the
Redis backend it hands every header result to the callback at once (15,625 results for a million targets)
and fails the whole chord when one header raises; here an outcome is a few hundred bytes, a failed chunk is
an outcome, and the merge reads findings from the artifact store, never from Redis.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kombu.exceptions
import redis
from celery import Celery, Task

from config import Settings
from tasks.artifacts.writer import FINDINGS_NAME
from tasks.service import RunPlan, RunResult, Stage, Status
from tasks.service.plan import chunk_params
from tasks.worker import fairshare, keys, luascript, parking
from tasks.worker.delivery import bind_run

logger = logging.getLogger(__name__)

MERGE_TASK = "toolrunner.merge_chunks"
PUBLISH_BATCH = 100  # chunks published between two marks of how far the parent got
_Field = bytes | bytearray | memoryview | str | int | float  # what redis-py's hset takes
_NAMESPACE = uuid.UUID("6f1c2a52-3d0e-4a8b-9a57-2f7c1f0c9b11")
CANCELLED = "cancelled"
CANCEL_REASON = "cancelled: every chunk cancelled"
COUNTED = (Status.OK.value, Status.TOOL_FAILED.value, Status.TIMED_OUT.value, CANCELLED)


@dataclass(frozen=True)
class ChunkOf:
    """A chunk's place in its parent, as its message carries it (the run task's `chunk` keyword)."""

    parent: str
    index: int
    attempt: int = 0

    @property
    def task_id(self) -> str:
        """The chunk's task id: derived from its parent's, so a cancel of the parent finds every chunk."""
        return chunk_task_id(self.parent, self.index, self.attempt)

    def as_kwarg(self) -> dict[str, Any]:
        """The message's `chunk` keyword."""
        return {"parent": self.parent, "index": self.index, "attempt": self.attempt}

    @classmethod
    def read(cls, raw: object, task_id: str) -> ChunkOf | None:
        """The chunk a message says it is, if its task id is that chunk's (a forged `chunk` names nothing)."""
        if not isinstance(raw, Mapping):
            return None
        parent, index, attempt = raw.get("parent"), raw.get("index"), raw.get("attempt", 0)
        if not isinstance(parent, str) or type(index) is not int or type(attempt) is not int:
            return None
        chunk = cls(parent, index, attempt)
        return chunk if chunk.task_id == task_id else None


def chunk_task_id(parent: str, index: int, attempt: int = 0) -> str:
    """The task id of a chunk's attempt."""
    return str(uuid.uuid5(_NAMESPACE, f"{parent}/{index}/{attempt}"))


def _ttl_ms(settings: Settings) -> int:
    """How long a parent's record lives without news of a chunk: as long as a chunk may wait, then its result."""
    return (settings.max_wait_seconds + settings.max_timeout_seconds + settings.result_expires_seconds) * 1000


def _text(value: object) -> str:
    return luascript.text(value)


# --- the parent ------------------------------------------------------------------------------------------------


def start(task: Task, redis_client: redis.Redis, settings: Settings, plan: RunPlan) -> int:
    """Write the parent's record (once) and publish the chunks it has not published yet; return how many it did.

    Chunks go out in order, the record noting how far every PUBLISH_BATCH: a parent delivered again (its worker
    died mid-way) publishes the rest, and at most one batch again (those copies find their run taken or done). A
    cancel recorded before the record existed (while the parent was planned) is honoured here: nothing goes out.
    """
    assert plan.chunked is not None
    parent, record = str(task.request.id), keys.CHUNKS(task.request.id)
    queue = parking.queue_of(task)
    meta: dict[_Field, _Field] = {
        "tenant_id": plan.tenant_id, "tool": plan.spec.name, "run_id": plan.run_id, "task": task.name,
        "queue": queue, "total": str(plan.chunked.chunks), "size": str(plan.chunked.size),
        "weight": str(plan.chunked.weight), "retries": str(settings.chunk_retries), "state": "running", "sent": "0",
        "started": str(time.time()), "notices": json.dumps(list(plan.notices)),
    }  # fmt: skip
    _create(redis_client, record, meta, _ttl_ms(settings))
    current = stored(redis_client, parent)
    if current.get("tenant_id") != plan.tenant_id or current.get("state") != "running":
        return 0  # merged, cancelled, or (never) another tenant's: nothing to publish
    if redis_client.exists(keys.CANCEL(parent, plan.tenant_id)):
        cancel_chunks(task.app, redis_client, settings, parent, plan.tenant_id)
        return 0
    sent = int(current.get("sent", 0))
    files = (bind_run(task.name, task.request.args or (), task.request.kwargs or {}) or {}).get("files")
    published = 0
    for index, params in enumerate(chunk_params(plan)):
        if index < sent:
            continue
        _publish(task.app, task.name, plan, params, files, ChunkOf(parent, index), queue)
        published += 1
        if published % PUBLISH_BATCH == 0:
            redis_client.hset(record, "sent", index + 1)
    redis_client.hset(record, "sent", plan.chunked.chunks)
    logger.info(
        "chunked task=%s tenant=%s tool=%s into %d chunks of %d (%d published now)",
        parent, plan.tenant_id, plan.spec.name, plan.chunked.chunks, plan.chunked.size, published,
    )  # fmt: skip
    return published


def _create(redis_client: redis.Redis, record: str, meta: dict[_Field, _Field], ttl_ms: int) -> None:
    """The whole record at once, only if there is none (a delivery killed mid-write leaves none, not half)."""
    with redis_client.pipeline() as pipe:
        try:
            pipe.watch(record)
            if not pipe.exists(record):
                pipe.multi()
                pipe.hset(record, mapping=meta)
                pipe.pexpire(record, ttl_ms)
                pipe.execute()
        except redis.WatchError:
            pass  # another delivery of the parent wrote it meanwhile


def _publish(
    app: Celery, name: str, plan: RunPlan, params: dict[str, Any], files: object, chunk: ChunkOf, queue: str
) -> None:
    args: list[Any] = [plan.tenant_id, plan.run_id, params, files]
    if name == "toolrunner.run_tool":
        args.insert(0, plan.spec.name)
    app.send_task(name, args, {"chunk": chunk.as_kwarg()}, task_id=chunk.task_id, queue=queue)


def progress(stored: Mapping[str, str]) -> dict[str, Any]:
    """A parent's progress as its PROGRESS state and Flower show it."""
    return {
        "stage": Stage.CHUNKS.value, "tool": stored.get("tool"), "tenant_id": stored.get("tenant_id"),
        "run_id": stored.get("run_id"), "chunks_done": int(stored.get("done", 0)),
        "chunks_total": int(stored.get("total", 0)), "findings": int(stored.get("findings", 0)),
    }  # fmt: skip


def report(app: Celery, redis_client: redis.Redis, parent: str) -> None:
    """Store a running parent's PROGRESS and send its task-progress event (Flower). Best effort, never over an end:
    Celery does not overwrite SUCCESS, and a parent cancelled meanwhile is marked REVOKED again after."""
    try:
        record = stored(redis_client, parent)
        if record.get("state") != "running":
            return
        info = progress(record)
        app.backend.store_result(parent, info, "PROGRESS")
        with app.events.default_dispatcher() as dispatcher:
            dispatcher.send("task-progress", uuid=parent, result=info)
        if stored(redis_client, parent).get("state") == CANCELLED:  # cancelled while this reported
            app.backend.mark_as_revoked(parent, CANCEL_REASON)
    except (redis.RedisError, OSError, kombu.exceptions.OperationalError) as exc:
        logger.warning("progress of chunked task=%s not published: %s", parent, exc)


# --- a chunk's end ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """What recording a chunk's outcome found: the parent's state and counts, and whether it completed it."""

    state: str
    done: int
    total: int
    findings: int
    completed: bool


def summary(chunk: ChunkOf, task_id: str, result: RunResult | None, status: str, reason: str | None) -> str:
    """A chunk's outcome as the parent keeps it: a few hundred bytes, its findings left in the artifact store."""
    stats = result.as_dict()["stats"] if result is not None else {}
    # Its findings.jsonl is published only when its result could not carry them all (tasks/service/outputs.py).
    artifact = next((a for a in result.artifacts if a.get("name") == FINDINGS_NAME), None) if result else None
    return json.dumps(
        {
            "index": chunk.index, "task_id": task_id, "attempt": chunk.attempt, "status": status,
            "reason": reason, "image": result.image if result else None,
            "exit_code": result.exit_code if result else None, "stats": stats,
            "findings_artifact": artifact.get("uri") if artifact else None,
            "stderr_tail": (result.stderr_tail[-2000:] if result and status != Status.OK.value else ""),
            "findings_truncated": bool(result.findings_truncated) if result else False,
        },
        separators=(",", ":"),
    )  # fmt: skip


def record(
    redis_client: redis.Redis, settings: Settings, chunk: ChunkOf, status: str, outcome: str, found: int
) -> Recorded:
    """Count a chunk's outcome in its parent, once; the chunk that completes it must then publish the merge."""
    if status not in COUNTED:
        raise ValueError(f"unknown chunk status {status!r}")
    reply = luascript.run_keyed(
        redis_client, "chunk_done", [keys.CHUNKS(chunk.parent), keys.CHUNK_OUTCOMES(chunk.parent), keys.MERGING()],
        chunk.parent, str(chunk.index), status, outcome, str(found), str(_ttl_ms(settings)),
    )  # fmt: skip
    state, done, total, findings, completed = reply
    return Recorded(_text(state), int(done), int(total), int(findings), bool(int(completed)))


def finish(
    app: Celery, redis_client: redis.Redis, settings: Settings, chunk: ChunkOf, task_id: str, result: RunResult | None,
    status: str, reason: str | None,
) -> Recorded:  # fmt: skip
    """Count a chunk's end in its parent; the chunk that completes it publishes the merge, any other reports the
    parent's progress."""
    found = result.stats.findings if result is not None else 0
    recorded = record(redis_client, settings, chunk, status, summary(chunk, task_id, result, status, reason), found)
    if recorded.completed:
        publish_merge(app, redis_client, chunk.parent)
    elif recorded.state == "running":
        report(app, redis_client, chunk.parent)
    return recorded


def ended_unrun(
    app: Celery, redis_client: redis.Redis, settings: Settings, message: Mapping[str, Any], task_id: str, why: str,
    status: str = Status.TOOL_FAILED.value,
) -> None:  # fmt: skip
    """Count the end of a chunk that never ran its steps (given up after waiting, expired, revoked unrun), from the
    arguments of its message (`bind_run`'s): a parent must not wait for a chunk nobody will run."""
    chunk = ChunkOf.read(message.get("chunk"), task_id)
    if chunk is None or stored(redis_client, chunk.parent).get("tenant_id") != message.get("tenant_id"):
        return
    finish(app, redis_client, settings, chunk, task_id, None, status, why)


def retry(task: Task, chunk: ChunkOf, settings: Settings) -> str | None:
    """Publish a failed chunk's next attempt under its own id; None when it has had its retries."""
    if chunk.attempt >= settings.chunk_retries:
        return None
    again = ChunkOf(chunk.parent, chunk.index, chunk.attempt + 1)
    kwargs = {**(task.request.kwargs or {}), "chunk": again.as_kwarg()}
    task.app.send_task(
        task.name, list(task.request.args or ()), kwargs, task_id=again.task_id, queue=parking.queue_of(task)
    )
    return again.task_id


def publish_merge(app: Celery, redis_client: redis.Redis, parent: str) -> None:
    """Ask for the parent's merge on the parent's own queue (the safety net asks again when this publish was lost)."""
    queue = stored(redis_client, parent).get("queue") or str(app.conf.task_default_queue)
    app.send_task(MERGE_TASK, [parent], queue=queue)


def stored(redis_client: redis.Redis, parent: str) -> dict[str, str]:
    """A parent's record as text ({} when it has none)."""
    return {_text(k): _text(v) for k, v in redis_client.hgetall(keys.CHUNKS(parent)).items()}


def ended(pipe: redis.client.Pipeline, parent: str, state: str, settings: Settings) -> None:
    """Queue the end of a parent's record on `pipe`: its final state, kept for the identity TTL (a late copy of the
    parent's message finds it ended), its outcomes and its merge ask gone."""
    pipe.hset(keys.CHUNKS(parent), "state", state)
    pipe.expire(keys.CHUNKS(parent), settings.identity_ttl)
    pipe.delete(keys.CHUNK_OUTCOMES(parent))
    pipe.zrem(keys.MERGING(), parent)


def cancel_chunks(celery: Celery, redis_client: redis.Redis, settings: Settings, parent: str, tenant_id: str) -> int:
    """Cancel every chunk of a tenant's parent, wherever it is, and end the parent; return how many chunks it named.

    Each chunk attempt's cancel is recorded (a queued or later-published copy never starts; a running one stops
    within a second, as any cancelled run), a parked one ends now, and the parent is marked cancelled first, so
    no merge follows: its result is REVOKED.
    """
    record = stored(redis_client, parent)
    if record.get("tenant_id") != tenant_id or record.get("state") != "running":
        return 0  # no such parent of this tenant's, or its chunks have all ended (merging, done) or were cancelled
    with redis_client.pipeline() as pipe:
        ended(pipe, parent, CANCELLED, settings)
        pipe.execute()
    attempts = int(record.get("retries", settings.chunk_retries)) + 1  # as the workers that run them count
    ids = [chunk_task_id(parent, i, a) for i in range(int(record["total"])) for a in range(attempts)]
    for start in range(0, len(ids), 1000):
        batch = ids[start : start + 1000]
        with redis_client.pipeline(transaction=False) as pipe:  # as cancel.record_cancel, a thousand at a time
            for task_id in batch:
                pipe.set(keys.CANCEL(task_id, tenant_id), str(time.time()), nx=True, ex=settings.identity_ttl)
            pipe.execute()
        for envelope in parking.load(redis_client, batch):
            fairshare.end_parked(celery, redis_client, envelope.task_id, settings)
            celery.backend.mark_as_revoked(envelope.task_id, "cancelled: its parent was cancelled")
    celery.backend.mark_as_revoked(parent, CANCEL_REASON)
    logger.info("cancelled chunked task=%s tenant=%s: %d chunk ids", parent, tenant_id, len(ids))
    return len(ids)
