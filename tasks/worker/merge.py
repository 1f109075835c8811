"""A chunked run's merge: its chunks' outcomes and findings become the parent's one result, stored under its id.

The findings stream from each chunk's findings.jsonl in the artifact store into the parent's, one at a time, the
first that fit the inline budget kept for the result (tasks.service.findings.collect): never all in memory. The
merge is idempotent: a second delivery finds the parent merged and does nothing; one that died mid-way writes the
parent's artifact again from the start (the half-written one was never published).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

import redis
from celery import Celery, states

from config import Settings
from tasks.artifacts import ArtifactRecord, Artifacts
from tasks.errors import ChunkMergeError
from tasks.service import RunResult, RunStats, Status
from tasks.service.findings import collect
from tasks.worker import chunks, keys, luascript
from tasks.worker.completion import completed, failed

logger = logging.getLogger(__name__)

MAX_LISTED_FAILURES = 100  # failed chunks named in the result; the counts cover them all
MERGE_LEASE_SECONDS = 300  # renewed after each chunk's findings: a merge silent this long has died
MAX_MERGES = 5  # failed merges of one parent before it ends FAILURE
_WORST = {Status.TOOL_FAILED.value: 2, chunks.CANCELLED: 2, Status.TIMED_OUT.value: 1, Status.OK.value: 0}


def merge(app: Celery, redis_client: redis.Redis, settings: Settings, artifacts: Artifacts, parent: str) -> bool:
    """Merge a parent whose chunks have all ended and store its result; False when there is nothing to merge here
    (merged, cancelled, or another merge holds its lease). A merge that fails MAX_MERGES times ends the parent
    FAILURE with the reason; before that it raises, and the safety net asks again once its lease has lapsed."""
    record = chunks.stored(redis_client, parent)
    if record.get("state") != "merging":
        redis_client.zrem(keys.MERGING(), parent)
        return False
    lease, token = keys.MERGE_LEASE(parent), uuid.uuid4().hex
    if not redis_client.set(lease, token, nx=True, ex=MERGE_LEASE_SECONDS):
        return False
    try:
        _merge(app, redis_client, settings, artifacts, parent, record)
    except Exception as exc:
        if redis_client.hincrby(keys.CHUNKS(parent), "merges", 1) < MAX_MERGES:
            raise
        _failed(app, redis_client, settings, parent, record, exc)
        return False
    finally:
        if luascript.text(redis_client.get(lease) or b"") == token:
            redis_client.delete(lease)
    return True


def _merge(
    app: Celery, redis_client: redis.Redis, settings: Settings, artifacts: Artifacts, parent: str,
    record: Mapping[str, str],
) -> None:  # fmt: skip
    tenant, run_id, total = record["tenant_id"], record["run_id"], int(record["total"])
    outcomes = [_outcome(raw) for raw in _ordered(redis_client, parent, total)]
    sink = artifacts.for_task(tenant, run_id, parent)
    with sink.findings() as writer:
        alive = partial(_touch, redis_client, parent)
        streamed = _findings(artifacts, tenant, outcomes, alive, partial(_inline, app))
        # Any error reading a chunk's findings stops the merge (collect would keep what came before as a parse
        # error): a parent result is all of its chunks' findings or none.
        found = collect(streamed, settings.inline_findings_bytes, also=writer.write, interruptions=(Exception,))
    result = _result(parent, record, outcomes, found.inline, found.count, found.truncated, sink.records)
    stored = result.as_dict()
    completed(app, redis_client, artifacts, stored)
    app.backend.store_result(parent, stored, states.SUCCESS)
    _announce(app, parent, result)
    _ended(app, redis_client, settings, parent, "done", outcomes)
    logger.info("merged task=%s: %d chunks, status %s, %d findings", parent, total, result.status, found.count)


def _failed(
    app: Celery, redis_client: redis.Redis, settings: Settings, parent: str, record: Mapping[str, str], exc: Exception
) -> None:
    why = f"the chunks' findings could not be merged ({MAX_MERGES} tries): {type(exc).__name__}: {exc}"[:1000]
    logger.error("chunked task=%s failed: %s", parent, why)
    failed(app, redis_client, parent, record["tool"], record["tenant_id"], record["run_id"], why)
    app.backend.mark_as_failure(parent, ChunkMergeError(why))
    _ended(app, redis_client, settings, parent, "failed", [])


def _ended(
    app: Celery, redis_client: redis.Redis, settings: Settings, parent: str, state: str,
    outcomes: list[dict[str, Any]],
) -> None:  # fmt: skip
    with redis_client.pipeline() as pipe:
        chunks.ended(pipe, parent, state, settings)
        for outcome in outcomes:  # merged: each chunk's own results (inline findings) would only cost memory
            for attempt in range(int(outcome.get("attempt", 0)) + 1):
                pipe.delete(app.backend.get_key_for_task(chunks.chunk_task_id(parent, outcome["index"], attempt)))
        pipe.execute()


def _ordered(redis_client: redis.Redis, parent: str, total: int) -> Iterator[bytes | str]:
    batch = 1000
    for start in range(0, total, batch):
        for raw in redis_client.hmget(
            keys.CHUNK_OUTCOMES(parent), [str(i) for i in range(start, min(total, start + batch))]
        ):
            if raw is None:
                raise RuntimeError(f"chunked task {parent} is merging with a chunk's outcome missing")
            yield raw


def _outcome(raw: bytes | str) -> dict[str, Any]:
    outcome: dict[str, Any] = json.loads(raw)
    return outcome


def _touch(redis_client: redis.Redis, parent: str) -> None:
    """This merge is alive: its lease renewed, its parent's ask fresh."""
    redis_client.expire(keys.MERGE_LEASE(parent), MERGE_LEASE_SECONDS)
    redis_client.zadd(keys.MERGING(), {parent: int(time.time() * 1000)})


def _inline(app: Celery, task_id: str) -> list[dict[str, Any]]:
    """The findings a chunk's result carries (all of them: it was not truncated), read from the result backend."""
    meta = app.backend.get_task_meta(task_id, cache=False)
    result = meta.get("result") if meta.get("status") == states.SUCCESS else None
    if not isinstance(result, dict):
        raise ChunkMergeError(f"chunk task {task_id}'s result is gone (expired?): its findings cannot be merged")
    return list(result.get("findings") or [])


def _findings(
    artifacts: Artifacts, tenant: str, outcomes: list[dict[str, Any]], alive: Callable[[], object],
    inline: Callable[[str], list[dict[str, Any]]],
) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Every chunk's findings in chunk order, one chunk in memory at most: from its findings.jsonl when its result
    could not carry them all, else from its result. `alive` is told after each chunk (so the safety net does not
    ask for a second merge while this one streams)."""
    for outcome in outcomes:
        alive()
        expected = int((outcome.get("stats") or {}).get("findings", 0))
        if not expected:
            continue
        read = 0
        for finding in _chunk_findings(artifacts, tenant, outcome, inline):
            read += 1
            yield finding
        if read != expected:
            raise ChunkMergeError(f"chunk {outcome['index']} found {expected} findings; {read} were read back")


def _chunk_findings(
    artifacts: Artifacts, tenant: str, outcome: Mapping[str, Any], inline: Callable[[str], list[dict[str, Any]]]
) -> Iterator[dict[str, Any]]:
    uri = outcome.get("findings_artifact")
    if not uri:
        yield from inline(outcome["task_id"])
        return
    with artifacts.open_artifact(uri, tenant=tenant) as stream:
        for line in stream:
            if line.strip():
                yield json.loads(line)


def _status(outcomes: list[dict[str, Any]]) -> tuple[Status, str | None]:
    worst = max(outcomes, key=lambda o: _WORST[o["status"]])
    if worst["status"] == Status.OK.value:
        return Status.OK, None
    failed = sum(1 for o in outcomes if o["status"] != Status.OK.value)
    status = Status.TIMED_OUT if worst["status"] == Status.TIMED_OUT.value else Status.TOOL_FAILED
    why = worst.get("reason") or worst["status"]
    return status, f"{failed} of {len(outcomes)} chunks did not end ok; chunk {worst['index']}: {why}"


def _counts(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    counts: dict[str, Any] = {"total": len(outcomes), **{status: 0 for status in chunks.COUNTED}}
    for outcome in outcomes:
        counts[outcome["status"]] += 1
    counts["failed"] = [
        {k: o.get(k) for k in ("index", "task_id", "status", "reason")}
        for o in outcomes
        if o["status"] != Status.OK.value
    ][:MAX_LISTED_FAILURES]
    return counts


def _result(
    parent: str, record: Mapping[str, str], outcomes: list[dict[str, Any]], inline: list[dict[str, Any]],
    count: int, truncated: bool, artifacts: list[ArtifactRecord],
) -> RunResult:  # fmt: skip
    status, reason = _status(outcomes)
    stats = [o.get("stats") or {} for o in outcomes]
    total = {
        k: sum(int(s.get(k, 0)) for s in stats) for k in ("tool_duration_ms", "bytes_in", "bytes_out", "stdout_lines")
    }
    first_failed = next((o for o in outcomes if o["status"] != Status.OK.value), None)
    return RunResult(
        tool=record["tool"], tenant_id=record["tenant_id"], run_id=record["run_id"], task_id=parent,
        image=next((o["image"] for o in outcomes if o.get("image")), ""),
        exit_code=0 if status is Status.OK else (first_failed or {}).get("exit_code"),
        status=status, reason=reason, findings=inline, findings_truncated=truncated,
        stats=RunStats(findings=count, duration_ms=int((time.time() - float(record["started"])) * 1000), **total),
        stderr_tail=(first_failed or {}).get("stderr_tail") or "",
        artifacts=[a.as_dict() for a in artifacts],
        notices=json.loads(record.get("notices", "[]")), chunks=_counts(outcomes),
    )  # fmt: skip


def _announce(app: Celery, parent: str, result: RunResult) -> None:
    """The parent's task-succeeded event: what Flower shows once the merge stored its result."""
    try:
        with app.events.default_dispatcher() as dispatcher:
            dispatcher.send("task-succeeded", uuid=parent, result=f"{result.status}: {result.stats.findings} findings")
    except Exception as exc:
        logger.warning("task-succeeded event of task=%s not sent: %s", parent, exc)
