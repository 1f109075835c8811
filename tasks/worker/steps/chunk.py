"""A chunk's end counted in its parent: its outcome once, a failed or timed-out chunk run again alone first.

Two steps. STEP, first in line, finds the chunk (a `chunk` keyword naming it, under a parent of its tenant) and
sees every way its delivery ends before a result: a cancel, an id another run holds, an error (bad input, too
many deliveries), and a cache hit's result. RESULT, right after `finished`, counts a run's result before
`finished` stores it and before its slot is let go: a worker killed in between leaves the message to run again
(its count is kept once), never a stored result its parent did not count. A park, a put-back or a retry is no
end and counts nothing. The chunk that completes its parent asks for the merge once Celery has stored its own
state (the merge deletes the chunks' results: none may be stored after it); any other lets the next chunk out
and reports progress.
"""

from __future__ import annotations

import logging

from celery.exceptions import Ignore, Reject, Retry

from tasks.service import RunResult, Status
from tasks.worker import chunks
from tasks.worker.cancel import is_cancelled
from tasks.worker.context import Run
from tasks.worker.delivery import bound_tenant
from tasks.worker.steps import Proceed, Step

logger = logging.getLogger(__name__)


def _chunk(run: Run, proceed: Proceed) -> RunResult:
    chunk = chunks.ChunkOf.read(run.request.chunk, run.task_id)
    if chunk is None:
        return proceed(run)
    tenant = chunks.stored(run.services.redis, chunk.parent).get("tenant_id")
    if tenant is None or tenant != run.request.tenant_id:
        return proceed(run)  # no such parent (or another tenant's): it runs as the run it is, counted nowhere
    run.chunk = chunk
    try:
        result = proceed(run)
    except (Retry, Reject):
        raise
    except Ignore:
        _ignored(run, chunk, tenant)
        raise
    except Exception as exc:
        _ended(run, chunk, None, Status.TOOL_FAILED.value, f"{type(exc).__name__}: {exc}"[:500], retry=False)
        raise
    if not run.chunk_counted:  # a result that did not come through RESULT (a cache hit)
        _ended(run, chunk, result, result.status.value, result.reason, retry=result.status is not Status.OK)
    return result


def _ignored(run: Run, chunk: chunks.ChunkOf, tenant: str) -> None:
    """Parked (no end), cancelled, or its id taken by another run (it would never run: its parent must know)."""
    if is_cancelled(run.services.redis, run.task_id, tenant):
        _ended(run, chunk, None, chunks.CANCELLED, "cancelled", retry=False)
    elif bound_tenant(run.services.redis, run.task_id) != tenant:
        _ended(run, chunk, None, Status.TOOL_FAILED.value, "its task id is bound to another run", retry=False)


def _result(run: Run, proceed: Proceed) -> RunResult:
    result = proceed(run)
    if run.chunk is not None:
        _ended(run, run.chunk, result, result.status.value, result.reason, retry=result.status is not Status.OK)
    return result


def _ended(
    run: Run, chunk: chunks.ChunkOf, result: RunResult | None, status: str, reason: str | None, *, retry: bool
) -> None:
    services = run.services
    run.chunk_counted = True
    if retry and (again := chunks.retry(run.task, chunk, services.settings)) is not None:
        logger.warning(
            "chunk %d of task=%s ended %s; running again as task=%s", chunk.index, chunk.parent, status, again
        )
        return
    recorded = chunks.finish(
        run.task.app, services.redis, services.settings, chunk, run.task_id, result, status, reason, merge=False
    )
    if recorded.completed:  # asked once Celery has stored this delivery's own state (tasks/worker/run.py)
        chunks.merge_after(run.task, chunk.parent)


STEP = Step("chunk", _chunk)
RESULT = Step("chunk_result", _result)
