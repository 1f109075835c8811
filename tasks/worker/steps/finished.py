"""The run's final state stored before its tenant slot is let go (Celery stores it again after the task returns).

Letting go marks the run done, and a later copy of its message is dropped for that: a worker killed between the
two used to leave the run PROGRESS for ever, its redelivered message dropped as "already ended". A retry, a
put-back or a park (Retry, Reject, Ignore) is no final state and stores nothing here. A run's result (a chunk's
excepted) is kept in the artifact store and its webhook event recorded first (tasks/worker/completion.py).
"""

from __future__ import annotations

from celery.exceptions import Ignore, Reject, Retry

from tasks.audit import Kind
from tasks.service import RunResult
from tasks.worker import audit, completion
from tasks.worker.context import Run
from tasks.worker.steps import Proceed, Step


def _finished(run: Run, proceed: Proceed) -> RunResult:
    try:
        result = proceed(run)
    except (Retry, Reject, Ignore):
        raise
    except Exception as exc:
        run.ended = True
        d = run.delivery
        why = f"{type(exc).__name__}: {exc}"
        _audited(run, "error", why)
        if run.chunk is None:
            completion.failed(run.task.app, run.services.redis, d.task_id, d.tool, d.tenant_id, d.run_id, why)
        run.task.backend.mark_as_failure(run.task_id, exc)
        raise
    stored = result.as_dict()
    run.ended = True
    _audited(run, result.status.value, result.reason or "", result)
    if run.chunk is None:
        completion.completed(run.task.app, run.services.redis, run.services.artifacts, stored)
    run.task.backend.mark_as_done(run.task_id, stored)
    return result


def _audited(run: Run, status: str, reason: str, result: RunResult | None = None) -> None:
    """The run's end in the audit trail: its status, bytes in and out, and the image ID the engine ran."""
    d, stats = run.delivery, result.stats if result is not None else None
    image = result.image if result is not None else ""
    audit.record(
        Kind.RUN_FINISHED, tenant=d.tenant_id, run_id=d.run_id, task_id=d.task_id, tool=d.tool, status=status,
        reason=reason[:1000], image_id=run.services.images.id_of(image) if image else "",
        bytes_in=stats.bytes_in if stats else None, bytes_out=stats.bytes_out if stats else None,
        detail={"image": image, "cache_hit": bool(result.cache and result.cache.hit)} if result else {},
    )  # fmt: skip


STEP = Step("finished", _finished)
