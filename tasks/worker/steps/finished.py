"""The run's final state stored before its tenant slot is let go (Celery stores it again after the task returns).

Letting go marks the run done, and a later copy of its message is dropped for that: a worker killed between the
two used to leave the run PROGRESS for ever, its redelivered message dropped as "already ended". A retry, a
put-back or a park (Retry, Reject, Ignore) is no final state and stores nothing here. A run's result (a chunk's
excepted) is kept in the artifact store and its webhook event recorded first (tasks/worker/completion.py).
"""

from __future__ import annotations

from celery.exceptions import Ignore, Reject, Retry

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
        audit.finished(run, "error", why)
        if run.chunk is None:
            completion.failed(run.task.app, run.services.redis, d.task_id, d.tool, d.tenant_id, d.run_id, why)
        run.task.backend.mark_as_failure(run.task_id, exc)
        raise
    stored = result.as_dict()
    run.ended = True
    audit.finished(run, result.status.value, result.reason or "", result)
    if run.chunk is None:
        completion.completed(run.task.app, run.services.redis, run.services.artifacts, stored)
    run.task.backend.mark_as_done(run.task_id, stored)
    return result


STEP = Step("finished", _finished)
