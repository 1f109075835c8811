"""The run tasks: `toolrunner.run_tool` and one `toolrunner.tools.<tool>` per catalogue tool."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from celery import Task

import isolation
from tasks.app import app
from tasks.errors import RedeliveryLimitError
from tasks.metrics import metrics
from tasks.request import plan_run
from tasks.runner import RunContext, execute
from tasks.tools import load_catalogue

logger = logging.getLogger(__name__)

DELIVERY_KEY = "toolrunner:deliveries:{}"


@app.task(bind=True, name="toolrunner.run_tool")
def run_tool(
    self: Task,
    tool: str,
    tenant_id: str,
    run_id: str,
    params: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one tool for a tenant's run and return its parsed findings."""
    return run_request(self, tool, tenant_id, run_id, params, files)


def run_request(task: Task, tool: str, tenant_id: str, run_id: str, params: object, files: object) -> dict[str, Any]:
    """Validate, run and shape the result; bad input fails at once, an unreachable engine is retried."""
    settings = app.settings
    reporter = _reporter(task, tool, tenant_id, run_id)
    reporter("validating", {})
    plan = plan_run(
        app.catalogue,
        tool,
        tenant_id,
        run_id,
        params,
        files,
        max_input_bytes=settings.max_input_bytes,
        max_timeout_seconds=settings.max_timeout_seconds,
    )
    client = app.docker_client
    if _count_delivery(task) > 1:
        # An earlier delivery's worker died mid-run: remove what it left before running again.
        report = isolation.remove_labelled({"task": task.request.id}, client, label_prefix=settings.label_prefix)
        logger.info("removed leftovers of an earlier attempt task=%s: %s", task.request.id, report.as_dict())
    try:
        ctx = RunContext(client, settings, task.request.id, reporter, task.request.hostname or "local", metrics())
        return execute(plan, ctx)
    except isolation.DockerUnavailableError as exc:
        countdown = min(2**task.request.retries, 30)
        raise task.retry(exc=exc, countdown=countdown, max_retries=settings.docker_retries) from exc


def _count_delivery(task: Task) -> int:
    """Count this delivery in Redis (which has no delivery count) and refuse past the redelivery cap."""
    if task.request.is_eager:
        return 1
    settings = app.settings
    key = DELIVERY_KEY.format(task.request.id)
    with app.redis.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, settings.visibility_timeout * (settings.max_redeliveries + 2))
        count = int(pipe.execute()[0]) - int(task.request.retries)
    if count > settings.max_redeliveries + 1:
        isolation.remove_labelled({"task": task.request.id}, app.docker_client, label_prefix=settings.label_prefix)
        raise RedeliveryLimitError(
            f"task {task.request.id} was delivered {count} times and its worker died each time "
            f"(killed or out of memory?); giving up after {settings.max_redeliveries} redeliveries"
        )
    return count


def _reporter(task: Task, tool: str, tenant_id: str, run_id: str) -> Any:
    def report(stage: str, meta: Mapping[str, Any]) -> None:
        if task.request.is_eager:
            return  # eager mode has no worker, no broker and nobody watching: nothing to publish
        info = {"stage": stage, "tool": tool, "tenant_id": tenant_id, "run_id": run_id, **meta}
        task.update_state(state="PROGRESS", meta=info)
        # Flower shows a custom event's type as the task's state and keeps only its known fields, of which
        # `result` is one: carrying the progress there puts it in Flower's task list and /api/task/info.
        task.send_event("task-progress", result=info)

    return report


def _tool_task(tool: str) -> Task:
    def run(
        self: Task,
        tenant_id: str,
        run_id: str,
        params: dict[str, Any] | None = None,
        files: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return run_request(self, tool, tenant_id, run_id, params, files)

    run.__doc__ = f"Run {tool} for a tenant's run and return its parsed findings."
    run.__name__ = run.__qualname__ = f"run_{tool}"
    task: Task = app.task(bind=True, name=f"toolrunner.tools.{tool}")(run)
    return task


TOOL_TASKS: dict[str, Task] = {name: _tool_task(name) for name in load_catalogue()}
