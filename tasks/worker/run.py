"""The run tasks: `toolrunner.run_tool` and one `toolrunner.tools.<tool>` per catalogue tool.

Each delivery of a run message goes through the steps of tasks/worker/pipeline.py; the typed result becomes
the dict Celery stores only here, at the boundary.
"""

from __future__ import annotations

import contextlib
import logging
from functools import cache
from typing import Any

import kombu.exceptions
import redis
from celery import Task, states
from celery.signals import task_postrun, task_revoked

from tasks.artifacts import ArtifactError
from tasks.audit import Kind
from tasks.service import RunRequest
from tasks.tools import load_catalogue
from tasks.worker import audit, chunks, completion, fairshare
from tasks.worker.app import app
from tasks.worker.cancel import is_cancelled
from tasks.worker.context import Run, Services
from tasks.worker.delivery import Delivery, bind_run
from tasks.worker.merge import merge
from tasks.worker.monitor import RedactedRequest
from tasks.worker.pipeline import run_pipeline
from tasks.worker.results import kept_result

logger = logging.getLogger(__name__)

Result = dict[str, Any]


@app.task(bind=True, name="toolrunner.run_tool", Request=RedactedRequest)
def run_tool(
    self: Task, tool: str, tenant_id: str, run_id: str, params: dict[str, Any] | None = None,
    files: dict[str, str] | None = None, chunk: dict[str, Any] | None = None,
) -> Result:  # fmt: skip
    """Run one tool for a tenant's run and return its parsed findings (`chunk`: set by a parent for its chunks)."""
    return _run(self, RunRequest(tool, tenant_id, run_id, params, files, chunk))


def _tool_task(tool: str) -> Task:
    def run(
        self: Task, tenant_id: str, run_id: str, params: dict[str, Any] | None = None,
        files: dict[str, str] | None = None, chunk: dict[str, Any] | None = None,
    ) -> Result:  # fmt: skip
        return _run(self, RunRequest(tool, tenant_id, run_id, params, files, chunk))

    run.__doc__ = f"Run {tool} for a tenant's run and return its parsed findings."
    run.__name__ = run.__qualname__ = f"run_{tool}"
    task: Task = app.task(bind=True, name=f"toolrunner.tools.{tool}", Request=RedactedRequest)(run)
    return task


def _run(task: Task, request: RunRequest) -> Result:
    return run_pipeline(Run(task, request, services())).as_dict()


@cache
def services() -> Services:
    """This process's services, made once: the engine client at its first use (a pool child makes its own)."""
    return Services(
        lambda: app.docker_client, app.redis, app.settings, app.catalogue, app.scopes, app.scope_checker, app.artifacts
    )


@app.task(name=chunks.MERGE_TASK, acks_late=True)
def merge_chunks(parent: str) -> bool:
    """Merge a chunked run whose chunks have all ended into its one result (tasks/worker/merge.py)."""
    return merge(app, app.redis, app.settings, app.artifacts, parent)


@task_revoked.connect
def _revoked(request: Any = None, expired: bool = False, **_: Any) -> None:
    """Celery dropped a revoked or expired message unrun: it never runs, so its parked state ends too (and, for a
    chunk, its parent counts it)."""
    task_id = getattr(request, "id", None)
    name = str(getattr(request, "task", ""))
    if task_id and name.startswith("toolrunner."):  # the context's task name
        fairshare.best_effort_end(app, app.redis, str(task_id), app.settings)
        message = bind_run(name, getattr(request, "args", None) or (), getattr(request, "kwargs", None) or {})
        if message is not None:
            why = "its message expired before it started" if expired else "revoked before it started"
            with contextlib.suppress(redis.RedisError, kombu.exceptions.OperationalError):
                chunks.ended_unrun(app, app.redis, app.settings, message, str(task_id), why)
                _ended_unrun(message, str(task_id), expired)


def _ended_unrun(message: dict[str, Any], task_id: str, expired: bool) -> None:
    """A queued run Celery dropped unrun: its message expired (a `run.failed` event) or a cancel revoked it (a
    `run.cancelled` event); never a chunk's (its parent's business), nothing for a revoke no cancel recorded."""
    tenant = message.get("tenant_id")
    if message.get("chunk") or not isinstance(tenant, str):
        return
    tool, run_id = str(message.get("tool")), str(message.get("run_id"))
    if expired:
        why = "expired: its message expired before it started"
        audit.record(Kind.RUN_FINISHED, tenant=tenant, run_id=run_id, task_id=task_id, tool=tool, status="error",
                     reason=why)  # fmt: skip
        completion.failed(app, app.redis, task_id, tool, tenant, run_id, why)
    elif is_cancelled(app.redis, task_id, tenant):
        why = "cancelled: revoked before it started"
        audit.record(Kind.RUN_CANCELLED, tenant=tenant, run_id=run_id, task_id=task_id, tool=tool, reason=why)
        completion.cancelled(app, app.redis, task_id, tool, tenant, run_id, why)


@task_postrun.connect
def _stored(sender: Task | None = None, **_: Any) -> None:
    """A chunk that completed its parent asks for the merge now that Celery has stored its own state."""
    parent = chunks.merge_asked(sender) if isinstance(sender, Task) else None
    if parent is not None:
        chunks.publish_merge(app, app.redis, parent)


def result_for(task_id: str, tool: str, tenant_id: str, run_id: str, timeout: float | None = None) -> Result:
    """Wait for the result of the run `task_id` names, checking it is this tool's run for this tenant.

    The API tier's way to read a result: an id that names another run (a reused id) raises
    TaskIdentityError instead of handing over that run's findings; a failed run raises its error. Once the backend
    has let the result go (TOOLRUNNER_RESULT_EXPIRES_SECONDS), the copy in the artifact store (`result.json`, kept
    for the artifact retention) is returned, for this tenant only.
    """
    pending = run_tool.AsyncResult(task_id)
    if pending.state == states.PENDING:  # not finished, or finished and expired from the backend
        try:
            kept = kept_result(app.artifacts, app.redis, task_id, tenant_id)
        except (ArtifactError, OSError) as exc:  # no store here (an API tier without one): the backend is all there is
            logger.warning("no artifact store to read task=%s's kept result from: %s", task_id, exc)
            kept = None
        if kept is not None:
            Delivery(task_id, tool, tenant_id, run_id).check(kept)
            return kept
    result: Result = pending.get(timeout=timeout)
    Delivery(task_id, tool, tenant_id, run_id).check(result)
    return result


TOOL_TASKS: dict[str, Task] = {name: _tool_task(name) for name in load_catalogue()}
