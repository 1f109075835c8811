"""A chunk's end counted in its parent: its outcome once, a failed or timed-out chunk run again alone first.

First in line, so every way a chunk's delivery ends is seen: a result (ok, tool_failed, timed_out), a cancel, an
error (bad input, too many deliveries). A park, a put-back or a retry is no end and records nothing. The chunk
that completes its parent publishes the merge; any other reports the parent's progress.
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
    parent = chunks.stored(run.services.redis, chunk.parent)
    tenant = parent.get("tenant_id")
    if tenant is None or tenant != run.request.tenant_id:
        return proceed(run)  # no such parent (or another tenant's): it runs as the run it is, counted nowhere
    try:
        result = proceed(run)
    except (Retry, Reject):
        raise
    except Ignore:  # parked, cancelled, or its id taken by another run (it would never run: its parent must know)
        if is_cancelled(run.services.redis, run.task_id, tenant):
            _ended(run, chunk, None, chunks.CANCELLED, "cancelled", retry=False)
        elif bound_tenant(run.services.redis, run.task_id) != tenant:
            _ended(run, chunk, None, Status.TOOL_FAILED.value, "its task id is bound to another run", retry=False)
        raise
    except Exception as exc:
        _ended(run, chunk, None, Status.TOOL_FAILED.value, f"{type(exc).__name__}: {exc}"[:500], retry=False)
        raise
    _ended(run, chunk, result, result.status.value, result.reason, retry=result.status is not Status.OK)
    return result


def _ended(
    run: Run, chunk: chunks.ChunkOf, result: RunResult | None, status: str, reason: str | None, *, retry: bool
) -> None:
    services = run.services
    if retry and (again := chunks.retry(run.task, chunk, services.settings)) is not None:
        logger.warning(
            "chunk %d of task=%s ended %s; running it again as task=%s", chunk.index, chunk.parent, status, again
        )
        return
    chunks.finish(run.task.app, services.redis, services.settings, chunk, run.task_id, result, status, reason)


STEP = Step("chunk", _chunk)
