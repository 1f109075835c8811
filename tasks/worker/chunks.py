"""Chunked runs: a parent whose chunks are ordinary runs on any worker, its state in Redis, merged once all end.

A run with more targets than its tool's chunk holds (tasks/tools/chunking.py) becomes a parent. Its worker
writes the parent's plan (CHUNK_PLAN: each chunk's targets, by index) and record (CHUNKS), publishes a window of
chunks under task ids derived from the parent's (`chunk_task_id`), and lets go of the message: the parent holds no
slot, no tenant lease and no host lease. Each chunk is a run like any other (plan, scope, cache, fair share, host
leases, its own volumes), taken by any worker. When a chunk ends, its outcome goes into the parent's record once
(lua/chunk_done.lua: a duplicate changes nothing) and the next chunk goes out in its place (lua/chunk_claim.lua):
at most WINDOW_PER_SLOT times the tenant's cap are out at once. A failed or timed-out chunk first runs again
alone, under a new id, up to TOOLRUNNER_CHUNK_RETRIES times. The chunk that completes the parent publishes its
merge (tasks/worker/merge.py), which streams the chunks' findings into the parent's findings.jsonl and stores the
parent's result under its task id.

Nothing lives in one worker's memory: chunks are claimed before they are published (CHUNK_CLAIMS), and a claim
whose claimer died before publishing is published again by the safety net; a chunk whose worker died is
delivered again like any run; a merge whose publisher died is asked again by the safety net (MERGING).

Celery's chord is not used: on the Redis backend it hands every header result to the callback at once (15,625
results for a million targets) and fails the whole chord when one header raises; here an outcome is a few
hundred bytes, a failed chunk is an outcome, and the merge reads findings from the artifact store.
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
PLAN_BATCH = 500  # chunks' targets written to the plan per round trip
WINDOW_PER_SLOT = 2  # a parent's chunks out at once, per slot its tenant may run of its tool (_window)
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
    """Write the parent's plan and record (once) and publish its first window of chunks; return how many it did.

    The plan (each chunk's targets, by index) is written before the record, and the record together with the claim
    of the first window: a parent delivered again (its worker died mid-way) finds the record and publishes nothing,
    and a window claimed but never published is published again by the safety net (`republish_claims`). A cancel
    recorded before the record existed (while the parent was planned) is honoured here: nothing goes out.
    """
    assert plan.chunked is not None and plan.spec.chunking is not None
    parent, record = str(task.request.id), keys.CHUNKS(task.request.id)
    if redis_client.exists(record):
        return 0  # delivered again: its first delivery wrote everything, and its claim is the safety net's
    if redis_client.exists(keys.CANCEL(parent, plan.tenant_id)):
        task.app.backend.mark_as_revoked(parent, CANCEL_REASON)  # cancelled while it was planned: nothing goes out
        return 0
    field, ttl_ms = plan.spec.chunking.field, _ttl_ms(settings)
    files = (bind_run(task.name, task.request.args or (), task.request.kwargs or {}) or {}).get("files")
    rest: dict[str, Any] = {}
    with redis_client.pipeline(transaction=False) as pipe:
        for index, params in enumerate(chunk_params(plan)):
            rest = {k: v for k, v in params.items() if k != field}
            pipe.hset(keys.CHUNK_PLAN(parent), str(index), json.dumps(params[field], separators=(",", ":")))
            if index % PLAN_BATCH == PLAN_BATCH - 1:
                pipe.execute()
        pipe.pexpire(keys.CHUNK_PLAN(parent), ttl_ms)
        pipe.execute()
    window = _window(redis_client, settings, plan.tenant_id, plan.spec.name)
    first = min(window, plan.chunked.chunks)
    meta: dict[_Field, _Field] = {
        "tenant_id": plan.tenant_id, "tool": plan.spec.name, "run_id": plan.run_id, "task": task.name,
        "queue": parking.queue_of(task), "total": str(plan.chunked.chunks), "size": str(plan.chunked.size),
        "weight": str(plan.chunked.weight), "retries": str(settings.chunk_retries), "state": "running",
        "sent": str(first), "started": str(time.time()), "notices": json.dumps(list(plan.notices)),
        "field": field, "params": json.dumps(rest), "files": json.dumps(files),
    }  # fmt: skip
    if not _create(redis_client, parent, meta, ttl_ms, first):
        return 0
    published = publish_claimed(task.app, redis_client, parent, 0, first)
    logger.info(
        "chunked task=%s tenant=%s tool=%s into %d chunks of %d (%d out at once)",
        parent, plan.tenant_id, plan.spec.name, plan.chunked.chunks, plan.chunked.size, first,
    )  # fmt: skip
    return published


def _create(redis_client: redis.Redis, parent: str, meta: dict[_Field, _Field], ttl_ms: int, first: int) -> bool:
    """The whole record and the claim of its first window at once, only if there is no record (a delivery killed
    mid-write leaves none, not half); False when another delivery wrote it."""
    record = keys.CHUNKS(parent)
    with redis_client.pipeline() as pipe:
        try:
            pipe.watch(record)
            if pipe.exists(record):
                return False
            pipe.multi()
            pipe.hset(record, mapping=meta)
            pipe.pexpire(record, ttl_ms)
            pipe.zadd(keys.CHUNK_CLAIMS(), {_claim(parent, 0, first): int(time.time() * 1000)})
            pipe.execute()
            return True
        except redis.WatchError:
            return False  # another delivery of the parent wrote it meanwhile


def _window(redis_client: redis.Redis, settings: Settings, tenant_id: str, tool: str) -> int:
    """How many of a parent's chunks may be out (published, not yet counted) at once: WINDOW_PER_SLOT times what
    its tenant may run of its tool now, read at every claim, so a cap changed at run time widens or narrows it.

    Chunks out wait in their tenant's fair-share list like any runs; a window keeps that wait to a few chunks'
    run time (never TOOLRUNNER_MAX_WAIT_SECONDS), leaves room in the list for the tenant's other runs, and keeps
    Redis holding the targets once (the plan), not as a message per chunk.
    """
    tenant_cap, tool_cap = redis_client.hmget(keys.LIMITS(), [tenant_id, f"{tenant_id}:{tool}"])
    cap = int(_text(tenant_cap)) if tenant_cap is not None else settings.tenant_max_running
    if tool_cap is not None:
        cap = min(cap, int(_text(tool_cap)))
    return max(1, cap) * WINDOW_PER_SLOT


def _claim(parent: str, first: int, upto: int) -> str:
    return f"{parent}|{first}|{upto}"


def refill(app: Celery, redis_client: redis.Redis, settings: Settings, parent: str) -> int:
    """Claim and publish the chunks a running parent's window now lets out (one ended: one more); return how many."""
    tenant_id, tool = (_text(v) for v in redis_client.hmget(keys.CHUNKS(parent), ["tenant_id", "tool"]))
    window = _window(redis_client, settings, tenant_id, tool)
    now_ms = int(time.time() * 1000)
    first, upto = (
        int(v)
        for v in luascript.run_keyed(
            redis_client, "chunk_claim", [keys.CHUNKS(parent), keys.CHUNK_CLAIMS()], parent, str(window), str(now_ms)
        )
    )
    return publish_claimed(app, redis_client, parent, first, upto) if upto > first else 0


def publish_claimed(app: Celery, redis_client: redis.Redis, parent: str, first: int, upto: int) -> int:
    """Publish the chunks [first, upto) of a parent from its plan, then drop their claim; return how many went out.

    A chunk already counted (its plan entry gone) is skipped; one published twice (the safety net after a claimer
    that did publish but died before dropping its claim) finds its run taken or done, as any duplicate message.
    """
    record = stored(redis_client, parent)
    if record.get("state") == "running":
        indices = list(range(first, upto))
        pieces = redis_client.hmget(keys.CHUNK_PLAN(parent), [str(i) for i in indices]) if indices else []
        rest, files, field = json.loads(record["params"]), json.loads(record["files"]), record["field"]
        for index, piece in zip(indices, pieces, strict=True):
            if piece is not None:
                params = {**rest, field: json.loads(piece)}
                _publish(app, record, params, files, ChunkOf(parent, index))
    redis_client.zrem(keys.CHUNK_CLAIMS(), _claim(parent, first, upto))
    return upto - first if record.get("state") == "running" else 0


def republish_claims(app: Celery, redis_client: redis.Redis, older_than_ms: int, limit: int = 100) -> int:
    """Publish again the claimed ranges whose claimer has been silent since `older_than_ms` (it died between its
    claim and its publish, or mid-way); a parent that ended meanwhile only loses its claims. Return how many."""
    stale = redis_client.zrangebyscore(keys.CHUNK_CLAIMS(), "-inf", older_than_ms, start=0, num=limit)
    published = 0
    for member in (_text(m) for m in stale):
        parent, first, upto = member.rsplit("|", 2)
        logger.warning("publishing again chunks %s..%s of chunked task=%s (their claimer went silent)", first,
                       int(upto) - 1, parent)  # fmt: skip
        published += publish_claimed(app, redis_client, parent, int(first), int(upto))
    return published


def _publish(app: Celery, record: Mapping[str, str], params: dict[str, Any], files: object, chunk: ChunkOf) -> None:
    args: list[Any] = [record["tenant_id"], record["run_id"], params, files]
    if record["task"] == "toolrunner.run_tool":
        args.insert(0, record["tool"])
    kwargs = {"chunk": chunk.as_kwarg()}
    app.send_task(record["task"], args, kwargs, task_id=chunk.task_id, queue=record["queue"])


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
        redis_client, "chunk_done",
        [keys.CHUNKS(chunk.parent), keys.CHUNK_OUTCOMES(chunk.parent), keys.MERGING(), keys.CHUNK_PLAN(chunk.parent)],
        chunk.parent, str(chunk.index), status, outcome, str(found), str(_ttl_ms(settings)),
    )  # fmt: skip
    state, done, total, findings, completed = reply
    return Recorded(_text(state), int(done), int(total), int(findings), bool(int(completed)))


def finish(
    app: Celery, redis_client: redis.Redis, settings: Settings, chunk: ChunkOf, task_id: str, result: RunResult | None,
    status: str, reason: str | None, *, merge: bool = True,
) -> Recorded:  # fmt: skip
    """Count a chunk's end in its parent; the chunk that completes it publishes the merge (unless `merge` is False:
    its caller does, once the chunk's result is stored), any other lets the next chunk out and reports progress."""
    found = result.stats.findings if result is not None else 0
    recorded = record(redis_client, settings, chunk, status, summary(chunk, task_id, result, status, reason), found)
    if recorded.completed and merge:
        publish_merge(app, redis_client, chunk.parent)
    elif recorded.state == "running":
        refill(app, redis_client, settings, chunk.parent)
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


def merge_after(task: Task, parent: str) -> None:
    """Have this delivery ask for its parent's merge once Celery has stored its state (`merge_asked`, run at
    task_postrun): the merge deletes the chunks' results, so none may be stored after it. A worker killed in
    between leaves the parent in MERGING, where the safety net asks for it."""
    task.request.toolrunner_merge = parent


def merge_asked(task: Task) -> str | None:
    """The parent whose merge this delivery must now ask for (merge_after), if any."""
    parent = getattr(task.request, "toolrunner_merge", None)
    return parent if isinstance(parent, str) else None


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
    pipe.delete(keys.CHUNK_OUTCOMES(parent), keys.CHUNK_PLAN(parent))
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
