"""The run tasks: `toolrunner.run_tool` and one `toolrunner.tools.<tool>` per catalogue tool."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import docker
import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

import isolation
from config import Settings
from tasks.errors import RedeliveryLimitError
from tasks.service import RunContext, RunPlan, RunRequest, Stage, execute, plan_run
from tasks.tools import ToolSpec, load_catalogue
from tasks.worker.app import app
from tasks.worker.delivery import RUN_LOCK_TTL, count_delivery, run_lock
from tasks.worker.metrics import metrics
from tasks.worker.progress import reporter

logger = logging.getLogger(__name__)

Result = dict[str, Any]


@app.task(bind=True, name="toolrunner.run_tool")
def run_tool(
    self: Task, tool: str, tenant_id: str, run_id: str, params: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
) -> Result:  # fmt: skip
    """Run one tool for a tenant's run and return its parsed findings."""
    return _run(self, RunRequest(tool, tenant_id, run_id, params, files))


def _tool_task(tool: str) -> Task:
    def run(
        self: Task, tenant_id: str, run_id: str, params: dict[str, Any] | None = None,
        files: dict[str, str] | None = None,
    ) -> Result:  # fmt: skip
        return _run(self, RunRequest(tool, tenant_id, run_id, params, files))

    run.__doc__ = f"Run {tool} for a tenant's run and return its parsed findings."
    run.__name__ = run.__qualname__ = f"run_{tool}"
    task: Task = app.task(bind=True, name=f"toolrunner.tools.{tool}")(run)
    return task


def _run(task: Task, request: RunRequest) -> Result:
    return run_request(task, request, app.docker_client, app.redis, app.settings, app.catalogue)


def run_request(
    task: Task,
    request: RunRequest,
    client: docker.DockerClient,
    redis_client: redis.Redis,
    settings: Settings,
    catalogue: Mapping[str, ToolSpec],
) -> Result:
    """Validate, run and shape the result; bad input fails at once, an unreachable engine is retried."""
    report = reporter(task, str(request.tool), str(request.tenant_id), str(request.run_id))
    report(Stage.VALIDATING, {})
    plan = plan_run(
        catalogue, request, max_input_bytes=settings.max_input_bytes, max_timeout_seconds=settings.max_timeout_seconds
    )
    with _only_copy_running(task, redis_client, settings):
        done = _stored_success(task)
        if done is not None:
            logger.info("task=%s already succeeded in another delivery; returning its result", task.request.id)
            return done
        return _run_or_retry(task, plan, client, redis_client, settings)


def _run_or_retry(
    task: Task, plan: RunPlan, client: docker.DockerClient, redis_client: redis.Redis, settings: Settings
) -> Result:
    """Run the plan; when the engine is unreachable, retry with backoff a bounded number of times."""
    task_id = task.request.id
    try:
        if _earlier_attempt(task, client, redis_client, settings):
            # An earlier delivery's worker died mid-run, or an earlier try lost the engine: remove what
            # it left before running again.
            report = isolation.remove_labelled({"task": task_id}, client, label_prefix=settings.label_prefix)
            logger.info("removed leftovers of an earlier attempt task=%s: %s", task_id, report.as_dict())
        ctx = RunContext(
            client, settings, task_id, reporter(task, plan.spec.name, plan.tenant_id, plan.run_id),
            worker=task.request.hostname or "local", metrics=metrics(), interruptions=(SoftTimeLimitExceeded,),
        )  # fmt: skip
        return execute(plan, ctx).as_dict()
    except isolation.DockerUnavailableError as exc:
        countdown = min(2**task.request.retries, 30)
        raise task.retry(exc=exc, countdown=countdown, max_retries=settings.docker_retries) from exc


def _earlier_attempt(task: Task, client: docker.DockerClient, redis_client: redis.Redis, settings: Settings) -> bool:
    """Whether an earlier delivery or try of this task ran; past the redelivery cap, clean up and refuse."""
    if task.request.is_eager:
        return bool(task.request.retries)
    try:
        count = count_delivery(redis_client, settings, task.request.id, int(task.request.retries))
    except RedeliveryLimitError:
        isolation.remove_labelled({"task": task.request.id}, client, label_prefix=settings.label_prefix)
        raise
    return count > 1 or bool(task.request.retries)


def _only_copy_running(task: Task, redis_client: redis.Redis, settings: Settings) -> AbstractContextManager[None]:
    if task.request.is_eager:
        return nullcontext()
    return run_lock(redis_client, task.request.id, wait=settings.hard_time_limit + RUN_LOCK_TTL)


def _stored_success(task: Task) -> Result | None:
    """The stored result of a delivery of this task that already succeeded, if any."""
    if task.request.is_eager:
        return None
    meta = task.backend.get_task_meta(task.request.id)
    if meta.get("status") == "SUCCESS" and isinstance(meta.get("result"), dict):
        return dict(meta["result"])
    return None


TOOL_TASKS: dict[str, Task] = {name: _tool_task(name) for name in load_catalogue()}
